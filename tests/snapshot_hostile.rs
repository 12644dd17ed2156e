//! Hostile snapshot files: every damaged, cut, foreign, wrong-version or
//! forged file is refused with a typed error, never a panic and never an
//! allocation beyond the file's size. A refused file changes nothing.

use std::time::Duration;

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
/// The format's checksum key derivation (see `sesame::snapshot`).
const MAC_CONTEXT: &str = "sesame 2026 snapshot v1 checksum key";
const HEADER: usize = 72;
const FOOTER: usize = 48;

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

/// Recomputes the keyed checksum: what a forger holding the key would do.
fn seal(bytes: &mut [u8]) {
    let n = bytes.len() - 32;
    let key = blake3::derive_key(MAC_CONTEXT, &KEY);
    let sum = blake3::keyed_hash(&key, &bytes[..n]);
    bytes[n..].copy_from_slice(sum.as_bytes());
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
            let expected = match i {
                0..8 => K::BadMagic,
                8..12 => K::UnsupportedVersion,
                16..48 => K::ForeignKey,
                _ if (good.len() - 40..good.len() - 32).contains(&i) => K::Truncated,
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
        assert_eq!(load(&good[..n]), Err(K::Truncated), "cut at {n}");
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
    let mut bytes = small_snapshot();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    seal(&mut bytes);
    assert_eq!(load(&bytes), Err(K::UnsupportedVersion));
    let s = engine();
    let e = s.load_snapshot_bytes(&bytes).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unsupported snapshot version: expected 1, got 2"
    );
}

#[test]
fn forged_entry_count_of_two_to_the_sixty_is_refused_without_allocating() {
    let mut bytes = small_snapshot();
    let at = bytes.len() - FOOTER;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert_eq!(load(&bytes), Err(K::Checksum), "unsealed");
    seal(&mut bytes);
    assert_eq!(load(&bytes), Err(K::Corrupt), "sealed");
    for forged in [u64::MAX, 3, 1, 0] {
        bytes[at..at + 8].copy_from_slice(&forged.to_le_bytes());
        seal(&mut bytes);
        assert_eq!(load(&bytes), Err(K::Corrupt), "count {forged}");
    }
}

#[test]
fn forged_field_lengths_are_refused() {
    let good = small_snapshot();
    // The first entry's principal length sits at header + 81.
    let len_at = HEADER + 81;
    for forged in [u32::MAX, 1 << 30, good.len() as u32] {
        let mut bytes = good.clone();
        bytes[len_at..len_at + 4].copy_from_slice(&forged.to_le_bytes());
        seal(&mut bytes);
        assert_eq!(load(&bytes), Err(K::Corrupt), "length {forged}");
    }
    // Unknown entry flags, unknown header flags.
    let mut bytes = good.clone();
    bytes[HEADER + 80] |= 0x80;
    seal(&mut bytes);
    assert_eq!(load(&bytes), Err(K::Corrupt));
    let mut bytes = good.clone();
    bytes[12] = 1;
    seal(&mut bytes);
    assert_eq!(load(&bytes), Err(K::Corrupt));
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
        let mut bytes = good[..HEADER].to_vec();
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.extend_from_slice(b"SESAMEnd");
        bytes.extend_from_slice(&[0; 32]);
        seal(&mut bytes);
        let _ = load(&bytes);
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
        let mut bytes = good.clone();
        for f in 0..5 {
            let at = HEADER + 40 + 8 * f;
            bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        for at in [48, 56, 64] {
            bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        seal(&mut bytes);
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
