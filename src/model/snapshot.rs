//! The `snapshot_load` fuzz target's checks: arbitrary bytes, and arbitrary
//! bodies in a correctly signed frame, through the snapshot loader.

use std::time::Duration;

use crate::{SecretKey, Sessions};

/// The secret key of every engine here (the frame is signed with it).
const KEY: [u8; 32] = [0x42; 32];
/// The checksum key's derivation context (the format's, restated).
const MAC_CONTEXT: &str = "sesame 2026 snapshot v1 checksum key";
/// Length of the header fields the framed mode takes from the input:
/// saved-at, idle and absolute timeouts, entry count (u64 each).
const FRAME_FIELDS: usize = 32;

fn engine() -> Sessions<Vec<u8>, String> {
    match Sessions::builder()
        .secret_key(SecretKey::from_bytes(KEY))
        .reaper_interval(None)
        .max_sessions(64)
        .idle_timeout(Duration::from_secs(3_600))
        .absolute_timeout(Duration::from_secs(24 * 3_600))
        .build()
    {
        Ok(s) => s,
        Err(e) => unreachable!("valid options: {e}"),
    }
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    for (x, y) in a.iter_mut().zip(b.iter().skip(i * 8)) {
        *x = *y;
    }
    u64::from_le_bytes(a)
}

/// Wraps `body` in a version-1 frame signed with the key of this module's engines (`[0x42; 32]`): magic, version,
/// flags, fingerprint, header fields from `fields`, the body, the entry
/// count, end marker and keyed checksum. With this, the fuzzer reaches the
/// entry decoder instead of stopping at the checksum.
pub fn frame_snapshot(fields: &[u8], body: &[u8]) -> Vec<u8> {
    let key = SecretKey::from_bytes(KEY);
    let mut out = Vec::with_capacity(72 + body.len() + 48);
    out.extend_from_slice(b"SESAMEsn");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&key.fingerprint());
    for i in 0..3 {
        out.extend_from_slice(&u64_at(fields, i).to_le_bytes());
    }
    out.extend_from_slice(body);
    out.extend_from_slice(&u64_at(fields, 3).to_le_bytes());
    out.extend_from_slice(b"SESAMEnd");
    let mac = blake3::keyed_hash(&blake3::derive_key(MAC_CONTEXT, &KEY), &out);
    out.extend_from_slice(mac.as_bytes());
    out
}

/// The inverse of the framed mode for seeds: a real snapshot's header
/// fields and body, as an input that [`check_snapshot_load`] frames again.
pub fn unframe_snapshot(file: &[u8]) -> Option<Vec<u8>> {
    if file.len() < 72 + 48 {
        return None;
    }
    let body_end = file.len() - 48;
    let mut input = vec![1u8];
    input.extend_from_slice(&file[48..72]);
    input.extend_from_slice(&file[body_end..body_end + 8]);
    input.extend_from_slice(&file[72..body_end]);
    Some(input)
}

/// Input layout: a mode byte; with an even mode the rest is a whole file,
/// with an odd one it is 32 bytes of header fields and entry
/// count, then a body, framed and signed by [`frame_snapshot`].
///
/// Checks: loading never panics; a refused file changes nothing; a loaded
/// one leaves exactly the sessions it reports restored; saving that engine
/// and loading the save into a fresh one restores every saved session
/// (less any whose deadline passed in between) with nothing refused.
///
/// # Panics
///
/// On any disagreement (that is the point).
pub fn check_snapshot_load(data: &[u8]) {
    let (&mode, rest) = data.split_first().unwrap_or((&0, &[]));
    let file = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let split = FRAME_FIELDS.min(rest.len());
        frame_snapshot(&rest[..split], &rest[split..])
    };
    let first = engine();
    let before = first.stats();
    let report = match first.load_snapshot_bytes(&file) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert_eq!(first.stats(), before, "a refused file changed the engine");
            assert_eq!(first.len(), 0);
            return;
        }
    };
    assert_eq!(first.len(), report.restored, "len after load");
    assert_eq!(first.stats().created, 0, "restoring creates nothing");

    let mut saved = Vec::new();
    let save = match first.write_snapshot(&mut saved) {
        Ok(s) => s,
        Err(e) => panic!("saving a loaded engine failed: {e}"),
    };
    assert!(save.saved <= report.restored);
    assert_eq!(save.bytes, saved.len() as u64);
    let second = engine();
    let again = match second.load_snapshot_bytes(&saved) {
        Ok(r) => r,
        Err(e) => panic!("an engine's own snapshot does not load: {e}"),
    };
    assert_eq!(again.restored + again.expired, save.saved, "round trip");
    assert_eq!((again.duplicates, again.refused_full), (0, 0));
    assert_eq!(second.len(), again.restored);
}
