//! Issue 11, items 13 and 14: a snapshot is confidential without the key,
//! and loading and saving hold up against a hostile or crashed directory:
//! the header is checked before the body is read, the key file must belong
//! to this user, a killed save's temporary file is cleaned up, and of two
//! concurrent saves the newer one wins.

mod tempdir;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use tempdir::TempDir;

use serde::{Deserialize, Serialize, Serializer};
use sesame::snapshot::SnapshotErrorKind as K;
use sesame::{SecretKey, Sessions};

const KEY: [u8; 32] = [0x17; 32];

fn engine<T: Send + 'static>() -> Sessions<T> {
    Sessions::builder()
        .secret_key(SecretKey::from_bytes(KEY))
        .reaper_interval(None)
        .build()
        .unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Item 13: principals and data were written in clear; the docs called the
/// file harmless. Encrypted, neither appears (nor any 8-byte run of them).
#[test]
fn a_snapshot_shows_neither_principals_nor_data() {
    let dir = TempDir::new("clear");
    let path = dir.file("s.snap");
    let s = engine::<String>();
    let (t, _) = s.create("card 4111-1111-1111-1111".to_string()).unwrap();
    let t = s
        .login(&t, "alice.liddell@example.org".to_string())
        .unwrap();
    s.save_snapshot(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for secret in ["4111-1111", "alice.liddell", "example.org"] {
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "{secret:?} in clear in the snapshot"
        );
    }
    let mut memory = Vec::new();
    s.write_snapshot(&mut memory).unwrap();
    assert!(!contains(&memory, b"alice.liddell"), "in clear in memory");
    // And it still loads under the key.
    let back = engine::<String>();
    assert_eq!(back.load_snapshot(&path).unwrap().restored, 1);
    assert_eq!(back.get(&t).unwrap(), "card 4111-1111-1111-1111");
}

/// Item 14: a 64 MiB file of junk was read whole before its magic was
/// checked. Now only the header is read.
#[test]
fn a_large_junk_file_is_refused_after_reading_its_header_only() {
    let dir = TempDir::new("junk");
    let path = dir.file("s.snap");
    {
        let f = std::fs::File::create(&path).unwrap();
        // Sparse: 64 MiB of zeros that take no disk.
        f.set_len(64 << 20).unwrap();
    }
    let s = engine::<u8>();
    let mut kind = None;
    let info = allocation_counter::measure(|| {
        kind = Some(s.load_snapshot(&path).unwrap_err().kind());
    });
    assert_eq!(kind, Some(K::BadMagic));
    assert!(
        info.bytes_max < 1 << 20,
        "loading junk held {} bytes at once",
        info.bytes_max
    );
}

/// Item 14: the key file must belong to the process's user, not only have
/// mode 0600 (as ssh requires of a private key): a file another user owns
/// could be replaced by that user.
#[cfg(unix)]
#[test]
fn a_key_file_owned_by_another_user_is_refused() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = TempDir::new("owner");
    let path = dir.file("key");
    let key = sesame::snapshot::load_or_create_key(&path).unwrap();
    assert_eq!(sesame::snapshot::load_or_create_key(&path).unwrap(), key);
    let me = std::fs::metadata(&path).unwrap().uid();
    let other = if me == 0 { 4242 } else { 0 };
    if std::os::unix::fs::chown(&path, Some(other), None).is_err() {
        // Only root can give a file away: nothing to check as a user.
        eprintln!("skipped: cannot chown as uid {me}");
        return;
    }
    let e = sesame::snapshot::load_or_create_key(&path).unwrap_err();
    assert_eq!(e.kind(), K::InsecureKeyFile);
    assert!(e.to_string().contains("owned"), "{e}");
}

/// Item 14: a save killed before its rename leaves `.<name>.<pid>.<n>.tmp`;
/// the next save removes it (it was never read, but piled up forever).
#[test]
fn a_leftover_temporary_file_is_removed_by_the_next_save() {
    let dir = TempDir::new("leftover");
    let path = dir.file("s.snap");
    let s = engine::<u8>();
    s.create(1).unwrap();
    s.save_snapshot(&path).unwrap();
    let leftovers = [".s.snap.999999.00000000deadbeef.tmp", ".s.snap.1.2.tmp"];
    for name in leftovers {
        std::fs::write(dir.file(name), b"half a snapshot").unwrap();
    }
    let unrelated = dir.file(".other.snap.1.2.tmp");
    std::fs::write(&unrelated, b"another file's").unwrap();
    s.save_snapshot(&path).unwrap();
    assert_eq!(
        dir.names(),
        [".other.snap.1.2.tmp", "s.snap"],
        "leftovers of s.snap removed, nothing else"
    );
}

/// Data whose encoding blocks until released: holds a save in the middle.
#[derive(Deserialize)]
struct Gate(u32);

static HOLD: AtomicBool = AtomicBool::new(false);
static ENTERED: std::sync::Mutex<Option<Arc<Barrier>>> = std::sync::Mutex::new(None);
static RELEASE: std::sync::Mutex<Option<Arc<Barrier>>> = std::sync::Mutex::new(None);

impl Serialize for Gate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if HOLD.swap(false, Ordering::SeqCst) {
            let entered = ENTERED.lock().unwrap().clone().unwrap();
            let release = RELEASE.lock().unwrap().clone().unwrap();
            entered.wait();
            release.wait();
        }
        s.serialize_u32(self.0)
    }
}

/// Item 14: two concurrent saves to one path each renamed their own file,
/// and the last rename won, even when it held the older state. Here save A
/// captures the one shard, stalls mid-encoding; a session is created and
/// save B runs; then A finishes. The file must hold B's state (the new
/// session), not A's.
#[test]
fn of_two_concurrent_saves_the_older_never_wins() {
    let dir = TempDir::new("concurrent");
    let path = dir.file("s.snap");
    let s: Sessions<Gate> = Sessions::builder()
        .secret_key(SecretKey::from_bytes(KEY))
        .reaper_interval(None)
        .shards(1)
        .build()
        .unwrap();
    let (old, _) = s.create(Gate(1)).unwrap();
    let entered = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    *ENTERED.lock().unwrap() = Some(Arc::clone(&entered));
    *RELEASE.lock().unwrap() = Some(Arc::clone(&release));
    HOLD.store(true, Ordering::SeqCst);

    // Releases A even if this test fails first, so no thread hangs.
    struct Open(Arc<Barrier>, bool);
    impl Drop for Open {
        fn drop(&mut self) {
            if !self.1 {
                self.0.wait();
            }
        }
    }
    let a = {
        let (s, path) = (s.clone(), path.clone());
        std::thread::spawn(move || s.save_snapshot(&path).map(|r| r.saved))
    };
    entered.wait(); // A has read the shard and is encoding.
    let mut guard = Open(Arc::clone(&release), false);
    let (new, _) = s.create(Gate(2)).unwrap();
    let b = {
        let (s, path) = (s.clone(), path.clone());
        std::thread::spawn(move || s.save_snapshot(&path).map(|r| r.saved))
    };
    // B either completes now (saves not serialized) or waits for A.
    let t = Instant::now();
    while !b.is_finished() && t.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(5));
    }
    guard.1 = true;
    release.wait();
    assert_eq!(a.join().unwrap().unwrap(), 1, "A saw one session");
    assert_eq!(b.join().unwrap().unwrap(), 2, "B saw both");
    let back = engine::<Gate>();
    back.load_snapshot(&path).unwrap();
    assert!(back.validate(&old).is_some());
    assert!(
        back.validate(&new).is_some(),
        "the older save won the rename: a session is missing"
    );
}
