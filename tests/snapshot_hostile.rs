//! Hostile snapshot files: every damaged, cut, foreign, wrong-version or
//! forged file is refused with a typed error, never a panic and never an
//! allocation beyond the file's size. A refused file changes nothing.
//!
//! "Sealed" files are forged by a holder of the key, with the format
//! re-implemented here from the docs of `sesame::snapshot` (decrypt, edit
//! the plaintext, encrypt again): they reach the decoder's own checks.

use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use sesame::snapshot::SnapshotErrorKind as K;
use sesame::{SecretKey, Sessions};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cart {
    items: Vec<u32>,
    note: String,
}

const KEY: [u8; 32] = [0x42; 32];
/// The format's encryption key derivation (see `sesame::snapshot`).
const CONTEXT: &str = "sesame 2026 snapshot v2 encryption key";
const HEADER: usize = 96;
const CHUNK: usize = 64 << 10;
const TAG: usize = 16;
/// Header, trailer (count, end marker) and one tag: the shortest file.
const SHORTEST: usize = HEADER + 16 + TAG;

fn engine() -> Sessions<Cart> {
    Sessions::builder()
        .secret_key(SecretKey::from_bytes(KEY))
        .reaper_interval(None)
        .build()
        .unwrap()
}

/// A small valid snapshot: two sessions, one logged in (made once).
fn small_snapshot() -> Vec<u8> {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(make_small_snapshot).clone()
}

fn make_small_snapshot() -> Vec<u8> {
    let s = engine();
    let (t, _) = s
        .create(Cart {
            items: vec![1, 2, 3],
            note: "hi".into(),
        })
        .unwrap();
    s.login(&t, "alice".to_string()).unwrap();
    s.create(Cart::default()).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "sesame-hostile-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.snap");
    s.save_snapshot(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    bytes
}

fn cipher() -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&blake3::derive_key(CONTEXT, &KEY).into())
}

fn nonce(header: &[u8], index: u64) -> XNonce {
    let mut n = [0u8; 24];
    n[..16].copy_from_slice(&header[80..96]);
    n[16..].copy_from_slice(&index.to_le_bytes());
    n.into()
}

fn aad(header: &[u8], last: bool) -> Vec<u8> {
    let mut a = header[..HEADER].to_vec();
    a.push(u8::from(last));
    a
}

/// Decrypts a file: its header and its plaintext (entries, count, end
/// marker).
fn unseal(file: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (header, body) = file.split_at(HEADER);
    let chunks: Vec<&[u8]> = body.chunks(CHUNK + TAG).collect();
    let mut plain = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let payload = Payload {
            msg: c,
            aad: &aad(header, last),
        };
        plain.extend(cipher().decrypt(&nonce(header, i as u64), payload).unwrap());
    }
    (header.to_vec(), plain)
}

/// Encrypts a plaintext under a header: what a forger holding the key would
/// do.
fn seal(header: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut out = header.to_vec();
    let chunks: Vec<&[u8]> = if plain.is_empty() {
        vec![&[]]
    } else {
        plain.chunks(CHUNK).collect()
    };
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let payload = Payload {
            msg: c,
            aad: &aad(header, last),
        };
        out.extend(cipher().encrypt(&nonce(header, i as u64), payload).unwrap());
    }
    out
}

/// Decrypts, lets `edit` change header and plaintext, encrypts again.
fn forge(file: &[u8], edit: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>)) -> Vec<u8> {
    let (mut header, mut plain) = unseal(file);
    edit(&mut header, &mut plain);
    seal(&header, &plain)
}

fn load(bytes: &[u8]) -> Result<usize, K> {
    let s = engine();
    match s.load_snapshot_bytes(bytes) {
        Ok(r) => Ok(r.restored),
        Err(e) => {
            assert!(s.is_empty(), "a refused file changed the engine");
            // The message is never empty, never panics.
            assert!(!e.to_string().is_empty());
            Err(e.kind())
        }
    }
}

#[test]
fn the_small_snapshot_loads() {
    assert_eq!(load(&small_snapshot()), Ok(2));
}

#[test]
fn corruption_at_every_byte_offset_is_detected() {
    let good = small_snapshot();
    for i in 0..good.len() {
        for mask in [1u8 << (i % 8), 0xff] {
            let mut bad = good.clone();
            bad[i] ^= mask;
            let kind = load(&bad).expect_err("a flipped byte loaded");
            // Flags, generation, times and nonce are authenticated as the
            // body's associated data: a flip there fails the tag too.
            let expected = match i {
                0..8 => K::BadMagic,
                8..12 => K::UnsupportedVersion,
                16..48 => K::ForeignKey,
                _ => K::Checksum,
            };
            assert_eq!(kind, expected, "byte {i} mask {mask:#x}");
        }
    }
}

#[test]
fn truncation_at_every_length_is_detected() {
    let good = small_snapshot();
    for n in 0..good.len() {
        let expected = if n < SHORTEST {
            K::Truncated
        } else {
            K::Checksum // the tag at the end no longer matches
        };
        assert_eq!(load(&good[..n]), Err(expected), "cut at {n}");
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(load(&longer).is_err());
}

#[test]
fn not_a_snapshot_is_bad_magic() {
    assert_eq!(
        load(b"hello, world, this is not a snapshot"),
        Err(K::BadMagic)
    );
    assert_eq!(load(b"SESA"), Err(K::Truncated));
    assert_eq!(load(b"XESA"), Err(K::BadMagic));
}

#[test]
fn another_version_is_refused_even_when_sealed() {
    let bytes = forge(&small_snapshot(), |h, _| {
        h[8..12].copy_from_slice(&3u32.to_le_bytes())
    });
    assert_eq!(load(&bytes), Err(K::UnsupportedVersion));
    let s = engine();
    let e = s.load_snapshot_bytes(&bytes).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unsupported snapshot version: expected 2, got 3"
    );
}

/// The entry count is the plaintext's 16th-from-last to 8th-from-last bytes.
fn set_count(plain: &mut [u8], count: u64) {
    let at = plain.len() - 16;
    plain[at..at + 8].copy_from_slice(&count.to_le_bytes());
}

#[test]
fn forged_entry_count_of_two_to_the_sixty_is_refused_without_allocating() {
    let good = small_snapshot();
    for forged in [1u64 << 60, u64::MAX, 3, 1, 0] {
        let bytes = forge(&good, |_, p| set_count(p, forged));
        assert_eq!(load(&bytes), Err(K::Corrupt), "count {forged}");
    }
    // The same file re-sealed unchanged loads: the forgery is what fails.
    assert_eq!(load(&forge(&good, |_, _| {})), Ok(2));
}

#[test]
fn forged_field_lengths_are_refused() {
    let good = small_snapshot();
    // The first entry's principal length sits at plaintext offset 81.
    for forged in [u32::MAX, 1 << 30, good.len() as u32] {
        let bytes = forge(&good, |_, p| {
            p[81..85].copy_from_slice(&forged.to_le_bytes())
        });
        assert_eq!(load(&bytes), Err(K::Corrupt), "length {forged}");
    }
    // Unknown entry flags, unknown header flags, a missing end marker.
    assert_eq!(load(&forge(&good, |_, p| p[80] |= 0x80)), Err(K::Corrupt));
    assert_eq!(load(&forge(&good, |h, _| h[12] = 1)), Err(K::Corrupt));
    let no_end = forge(&good, |_, p| {
        let n = p.len();
        p[n - 1] ^= 1;
    });
    assert_eq!(load(&no_end), Err(K::Corrupt));
    assert_eq!(
        load(&seal(&good[..HEADER], &[])),
        Err(K::Truncated),
        "no trailer"
    );
}

#[test]
fn data_of_another_type_is_a_decode_error() {
    let bytes = small_snapshot();
    let s = Sessions::<Vec<String>>::builder()
        .secret_key(SecretKey::from_bytes(KEY))
        .build()
        .unwrap();
    let e = s.load_snapshot_bytes(&bytes).unwrap_err();
    assert_eq!(e.kind(), K::Decode);
    assert!(s.is_empty());
}

#[test]
fn key_file_is_created_private_and_refused_when_exposed() {
    let dir = std::env::temp_dir().join(format!(
        "sesame-keyfile-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key");
    let k = sesame::snapshot::load_or_create_key(&path).unwrap();
    assert_eq!(sesame::snapshot::load_or_create_key(&path).unwrap(), k);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = sesame::snapshot::load_or_create_key(&path).unwrap_err();
        assert_eq!(e.kind(), K::InsecureKeyFile);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(&path, "not a key\n").unwrap();
    let e = sesame::snapshot::load_or_create_key(&path).unwrap_err();
    assert_eq!(e.kind(), K::BadKeyFile);
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random bytes behind a valid header and a valid seal reach the entry
    /// decoder: it refuses or restores, and never panics.
    #[test]
    fn sealed_random_bodies_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        count in 0u64..8,
    ) {
        let good = small_snapshot();
        let mut plain = body;
        plain.extend_from_slice(&count.to_le_bytes());
        plain.extend_from_slice(b"SESAMEnd");
        let _ = load(&seal(&good[..HEADER], &plain));
    }

    /// Any bytes at all: refused (a random file is never a snapshot).
    #[test]
    fn random_files_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        prop_assert!(load(&bytes).is_err());
    }

    /// Random bytes spliced into a valid file: refused.
    #[test]
    fn spliced_files_are_refused(at in 0usize..400, junk in proptest::collection::vec(any::<u8>(), 1..16)) {
        let good = small_snapshot();
        let at = at % good.len();
        let mut bytes = good.clone();
        bytes.splice(at..at, junk);
        prop_assert!(load(&bytes).is_err());
    }
}

/// Deadlines in a sealed file far in the future or at u64::MAX do not
/// overflow anything.
#[test]
fn extreme_times_in_a_sealed_file_do_not_overflow() {
    let good = small_snapshot();
    for v in [0u64, u64::MAX, 1 << 63] {
        let bytes = forge(&good, |h, p| {
            for f in 0..5 {
                let at = 40 + 8 * f;
                p[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            for at in [48, 56, 64, 72] {
                h[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
        });
        let s = engine();
        let r = s.load_snapshot_bytes(&bytes).unwrap();
        // The restored session (if any) is never extended past a timeout.
        for info in s.sessions_of(&"alice".to_string()) {
            let left = info.expires.duration_since(std::time::SystemTime::now());
            assert!(left.unwrap_or_default() <= Duration::from_secs(12 * 3600 + 60));
        }
        assert!(r.restored <= 2);
    }
}
