//! Issue 11, item 12: restarting must not bring back what ended. Log in,
//! save, end the session (logout, revoke, revoke_user), "crash" (drop the
//! engine with no save after the end), restart from the snapshot: with a
//! [`SnapshotStore`] the ended session stays ended; and an older genuine
//! snapshot written back into place is refused.
//!
//! `with_plain_snapshots_an_ended_session_comes_back` records the behaviour
//! of `save_snapshot`/`load_snapshot` alone (what the store fixes).

mod tempdir;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use tempdir::TempDir;

use sesame::snapshot::{SnapshotErrorKind as K, SnapshotStore};
use sesame::{SecretKey, SessionToken, Sessions};

const KEY: [u8; 32] = [0x33; 32];

fn engine() -> Sessions<u32> {
    Sessions::builder()
        .secret_key(SecretKey::from_bytes(KEY))
        .reaper_interval(None)
        .build()
        .unwrap()
}

/// A process: an engine and its store over `dir`'s files.
fn start(dir: &TempDir) -> (Sessions<u32>, SnapshotStore<u32>) {
    let s = engine();
    let store = SnapshotStore::open(&s, dir.file("s.snap"), dir.file("key.state")).unwrap();
    (s, store)
}

fn login(s: &Sessions<u32>, user: &str) -> SessionToken {
    let (t, _) = s.create(1).unwrap();
    s.login(&t, user.to_string()).unwrap()
}

#[test]
fn with_plain_snapshots_an_ended_session_comes_back() {
    let dir = TempDir::new("plain");
    let path = dir.file("s.snap");
    let s = engine();
    let alice = login(&s, "alice");
    s.save_snapshot(&path).unwrap();
    s.revoke_user(&"alice".to_string());
    drop(s); // crash before the next save
    let s = engine();
    s.load_snapshot(&path).unwrap();
    assert!(
        s.get(&alice).is_some(),
        "documented: the plain API has no journal"
    );
}

#[test]
fn logout_revoke_and_revoke_user_stay_ended_after_a_crash() {
    let dir = TempDir::new("ended");
    let (s, store) = start(&dir);
    assert!(store.load().unwrap().is_none());
    let out = login(&s, "alice");
    let revoked = login(&s, "bob");
    let everywhere = [login(&s, "carol"), login(&s, "carol")];
    let kept = login(&s, "dave");
    let anon = s.create(9).unwrap().0;
    let saved = store.save().unwrap();
    assert_eq!((saved.saved, saved.generation), (6, 1));

    assert!(s.logout(&out));
    let bob = s.info(&revoked).unwrap().handle;
    assert!(s.revoke(&"bob".to_string(), bob));
    assert_eq!(s.revoke_user(&"carol".to_string()), 2);
    drop((store, s)); // killed: no save after the ends

    let (s, store) = start(&dir);
    let r = store.load().unwrap().unwrap();
    assert_eq!((r.restored, r.ended), (2, 4), "{r:?}");
    for t in [&out, &revoked, &everywhere[0], &everywhere[1]] {
        assert!(s.get(t).is_none(), "an ended session came back");
    }
    assert_eq!(s.get(&kept), Some(1));
    assert_eq!(s.get(&anon), Some(9));

    // A save then drops the records the new file makes needless, and the
    // sessions stay ended across the next restart too.
    assert_eq!(store.save().unwrap().generation, 2);
    drop((store, s));
    let state = std::fs::metadata(dir.file("key.state")).unwrap().len();
    assert_eq!(state, 40, "header only: the journal was compacted");
    let (s, store) = start(&dir);
    let r = store.load().unwrap().unwrap();
    assert_eq!((r.restored, r.ended), (2, 0));
    assert!(s.get(&out).is_none());
}

/// Data whose encoding stalls at the `STALL_AT`-th session a save encodes,
/// until released: holds a save in the middle of its walk.
#[derive(Default, serde::Deserialize)]
struct Gate(u32);

const STALL_AT: usize = 40;
static ENCODED: AtomicUsize = AtomicUsize::new(usize::MAX);
static GATES: Mutex<Option<(Arc<Barrier>, Arc<Barrier>)>> = Mutex::new(None);

impl serde::Serialize for Gate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if ENCODED.fetch_add(1, Ordering::SeqCst) == STALL_AT {
            let (entered, release) = GATES.lock().unwrap().clone().unwrap();
            entered.wait();
            release.wait();
        }
        s.serialize_u32(self.0)
    }
}

/// Ends that happen while a save runs, of sessions that save already
/// wrote, are kept by its compaction: lost, they would come back with the
/// file. The save stalls midway through its walk of the shards; every
/// session is logged out; the save completes; the process dies.
#[test]
fn an_end_during_a_save_of_a_session_it_wrote_is_not_lost() {
    let dir = TempDir::new("racing");
    let gate_engine = || -> Sessions<Gate> {
        Sessions::builder()
            .secret_key(SecretKey::from_bytes(KEY))
            .reaper_interval(None)
            .shards(8)
            .build()
            .unwrap()
    };
    let s = gate_engine();
    let store = SnapshotStore::open(&s, dir.file("s.snap"), dir.file("key.state")).unwrap();
    let tokens: Vec<_> = (0..64)
        .map(|i| {
            let (t, _) = s.create(Gate(i)).unwrap();
            s.login(&t, format!("u{i}")).unwrap()
        })
        .collect();
    let (entered, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    *GATES.lock().unwrap() = Some((Arc::clone(&entered), Arc::clone(&release)));
    ENCODED.store(0, Ordering::SeqCst);
    // Releases the save even if this test fails first, so no thread hangs.
    struct Open(Arc<Barrier>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.wait();
        }
    }
    let saving = {
        let store = store.clone();
        std::thread::spawn(move || store.save().map(|r| r.saved))
    };
    entered.wait();
    let open = Open(release);
    for t in &tokens {
        assert!(s.logout(t));
    }
    drop(open);
    let saved = saving.join().unwrap().unwrap();
    ENCODED.store(usize::MAX, Ordering::SeqCst);
    drop((store, s)); // killed before the next save

    // Not vacuous: the file does hold sessions that were logged out.
    assert!(saved > 0, "the save wrote no session before it stalled");
    let plain = gate_engine();
    assert_eq!(
        plain.load_snapshot(dir.file("s.snap")).unwrap().restored,
        saved
    );
    // With the journal none comes back.
    let s = gate_engine();
    let store = SnapshotStore::open(&s, dir.file("s.snap"), dir.file("key.state")).unwrap();
    let r = store.load().unwrap().unwrap();
    assert_eq!((r.restored, r.ended), (0, saved), "{r:?}");
    assert!(tokens.iter().all(|t| s.validate(t).is_none()));
}

#[test]
fn an_older_genuine_snapshot_put_back_is_refused() {
    let dir = TempDir::new("replay");
    let path = dir.file("s.snap");
    let (s, store) = start(&dir);
    let alice = login(&s, "alice");
    store.save().unwrap();
    let old = std::fs::read(&path).unwrap();
    s.revoke_user(&"alice".to_string());
    store.save().unwrap();
    drop((store, s));

    // The attacker writes the older file (genuine, sealed by the key) back.
    std::fs::write(&path, &old).unwrap();
    let (s, store) = start(&dir);
    let e = store.load().unwrap_err();
    assert_eq!(e.kind(), K::RolledBack);
    assert!(s.is_empty(), "a refused file changes nothing");
    assert!(s.get(&alice).is_none());
    // The plain loader, which keeps no state, still reads it.
    assert_eq!(engine().load_snapshot(&path).unwrap().restored, 1);

    // Deleting the snapshot brings nothing back either: an empty start.
    std::fs::remove_file(&path).unwrap();
    drop((store, s));
    let (_s, store) = start(&dir);
    assert!(store.load().unwrap().is_none());
}

/// A save killed after the state file recorded its generation but before
/// its rename: the path still holds the previous file, which is now older
/// than the record. The complete new file left beside it is rolled forward.
#[test]
fn a_save_killed_between_its_commit_and_its_rename_rolls_forward() {
    let dir = TempDir::new("forward");
    let path = dir.file("s.snap");
    let (s, store) = start(&dir);
    let alice = login(&s, "alice");
    store.save().unwrap();
    let first = std::fs::read(&path).unwrap();
    let bob = login(&s, "bob");
    store.save().unwrap();
    let second = std::fs::read(&path).unwrap();
    drop((store, s));
    // The state says 2; put back file 1 and leave file 2 as a temporary.
    std::fs::write(&path, &first).unwrap();
    let tmp = dir.file(".s.snap.4242.0123456789abcdef.tmp");
    std::fs::write(&tmp, &second).unwrap();

    let (s, store) = start(&dir);
    let r = store.load().unwrap().unwrap();
    assert_eq!(r.restored, 2);
    assert!(s.get(&alice).is_some() && s.get(&bob).is_some());
    assert_eq!(std::fs::read(&path).unwrap(), second, "renamed into place");
    assert!(!tmp.exists());
}

#[test]
fn a_damaged_or_foreign_state_file_is_refused() {
    let dir = TempDir::new("state");
    let (s, store) = start(&dir);
    store.save().unwrap();
    drop((store, s));
    let state = dir.file("key.state");
    let mut bytes = std::fs::read(&state).unwrap();
    bytes[20] ^= 1; // the generation
    std::fs::write(&state, &bytes).unwrap();
    let e = SnapshotStore::open(&engine(), dir.file("s.snap"), &state).unwrap_err();
    assert_eq!(e.kind(), K::BadState);

    // Under another key.
    std::fs::remove_file(&state).unwrap();
    drop(start(&dir));
    let other = Sessions::<u32>::builder()
        .secret_key(SecretKey::from_bytes([1; 32]))
        .build()
        .unwrap();
    let e = SnapshotStore::open(&other, dir.file("s.snap"), &state).unwrap_err();
    assert_eq!(e.kind(), K::BadState);

    // One store per engine.
    let s = engine();
    let _store = SnapshotStore::open(&s, dir.file("s.snap"), &state).unwrap();
    let e = SnapshotStore::open(&s, dir.file("s.snap"), &state).unwrap_err();
    assert_eq!(e.kind(), K::InUse);
}

#[cfg(unix)]
#[test]
fn a_state_file_open_to_others_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("mode");
    drop(start(&dir));
    let state = dir.file("key.state");
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = SnapshotStore::open(&engine(), dir.file("s.snap"), &state).unwrap_err();
    assert_eq!(e.kind(), K::InsecureKeyFile);
}

#[test]
fn a_file_over_the_cap_is_refused_before_its_body_is_read() {
    let dir = TempDir::new("cap");
    let (s, store) = start(&dir);
    for i in 0..200 {
        login(&s, &format!("user{i}"));
    }
    let bytes = store.save().unwrap().bytes;
    drop((store, s));
    let s = engine();
    let store = SnapshotStore::open(&s, dir.file("s.snap"), dir.file("key.state"))
        .unwrap()
        .max_bytes(bytes - 1);
    let mut result = None;
    let info = allocation_counter::measure(|| result = Some(store.load()));
    assert_eq!(result.unwrap().unwrap_err().kind(), K::TooLarge);
    assert!(info.bytes_max < bytes, "read the body: {info:?}");
    let store = store.max_bytes(bytes);
    assert_eq!(store.load().unwrap().unwrap().restored, 200);
}

/// Data whose encoding fails while `FAIL_ENCODE` is set.
#[derive(serde::Deserialize)]
struct Flaky(u32);

static FAIL_ENCODE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl serde::Serialize for Flaky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if FAIL_ENCODE.load(Ordering::SeqCst) {
            return Err(serde::ser::Error::custom("refused"));
        }
        s.serialize_u32(self.0)
    }
}

/// A save whose rename failed after its commit (simulated: the path holds
/// the previous file, the complete new one lies beside it) is finished by
/// the next save before it writes anything, so even when that save fails
/// the path holds the newest file.
#[test]
fn the_next_save_finishes_a_rename_that_failed_after_its_commit() {
    let dir = TempDir::new("finish");
    let path = dir.file("s.snap");
    let flaky = || -> Sessions<Flaky> {
        Sessions::builder()
            .secret_key(SecretKey::from_bytes(KEY))
            .reaper_interval(None)
            .build()
            .unwrap()
    };
    let s = flaky();
    let store = SnapshotStore::open(&s, &path, dir.file("key.state")).unwrap();
    s.create(Flaky(1)).unwrap();
    store.save().unwrap();
    let first = std::fs::read(&path).unwrap();
    s.create(Flaky(2)).unwrap();
    store.save().unwrap();
    let second = std::fs::read(&path).unwrap();
    std::fs::write(&path, &first).unwrap();
    std::fs::write(dir.file(".s.snap.1.2.tmp"), &second).unwrap();

    FAIL_ENCODE.store(true, Ordering::SeqCst);
    let e = store.save().unwrap_err();
    FAIL_ENCODE.store(false, Ordering::SeqCst);
    assert_eq!(e.kind(), K::Encode);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        second,
        "rolled forward first"
    );
    assert_eq!(store.generation(), 2);
    let back = flaky();
    let store = SnapshotStore::open(&back, &path, dir.file("key.state")).unwrap();
    drop(s);
    assert_eq!(store.load().unwrap().unwrap().restored, 2);
}

/// Logouts from several threads at once (sharing `fdatasync`s) are all
/// durable: none comes back after a crash.
#[test]
fn concurrent_logouts_are_all_journaled() {
    let dir = TempDir::new("threads");
    let (s, store) = start(&dir);
    let tokens: Vec<_> = (0..200).map(|i| login(&s, &format!("u{i}"))).collect();
    store.save().unwrap();
    std::thread::scope(|scope| {
        for chunk in tokens.chunks(50) {
            let s = &s;
            scope.spawn(move || {
                for t in chunk {
                    assert!(s.logout(t));
                }
            });
        }
    });
    assert_eq!(store.journal_failures(), 0);
    drop((store, s));
    let state = std::fs::metadata(dir.file("key.state")).unwrap().len();
    assert_eq!(state, 40 + 200 * 24, "one record per logout");
    let (s, store) = start(&dir);
    let r = store.load().unwrap().unwrap();
    assert_eq!((r.restored, r.ended), (0, 200));
    assert!(tokens.iter().all(|t| s.get(t).is_none()));
}
