//! The `snapshot_load` fuzz target's checks: arbitrary bytes, and arbitrary
//! bodies in a correctly signed frame, through the snapshot loader.

use std::time::Duration;

use crate::{SecretKey, Sessions};

/// The secret key of every engine here (the frame is signed with it).
const KEY: [u8; 32] = [0x42; 32];
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

/// Wraps `body` (plaintext entries) in a version-2 file sealed with the key
/// of this module's engines (`[0x42; 32]`): header with the saved-at, idle
/// and absolute fields from `fields` (generation 1), then the body and the
/// entry count (`fields`' fourth u64), encrypted. With this, the fuzzer
/// reaches the entry decoder instead of stopping at the tag check.
pub fn frame_snapshot(fields: &[u8], body: &[u8]) -> Vec<u8> {
    let header =
        crate::snapshot::format_header(1, u64_at(fields, 0), u64_at(fields, 1), u64_at(fields, 2));
    crate::snapshot::seal_file(
        &SecretKey::from_bytes(KEY),
        &header,
        body,
        u64_at(fields, 3),
    )
}

/// The inverse of the framed mode for seeds: a real snapshot's header
/// fields and plaintext body, as an input that [`check_snapshot_load`]
/// frames again. `None` unless `file` opens under this module's key.
pub fn unframe_snapshot(file: &[u8]) -> Option<Vec<u8>> {
    let (fields, body) = crate::snapshot::open_plain(file, &SecretKey::from_bytes(KEY))?;
    let mut input = vec![1u8];
    for v in fields {
        input.extend_from_slice(&v.to_le_bytes());
    }
    input.extend_from_slice(&body);
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
