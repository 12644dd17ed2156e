//! Snapshots round trip: tokens issued before a save work after a load into
//! a new engine with the same secret key; data, principals, handles and
//! times survive; deadlines hold across the restart.

mod tempdir;
use tempdir::TempDir;
mod guard;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use guard::Background;
use serde::{Deserialize, Serialize};
use sesame::snapshot::SnapshotErrorKind;
use sesame::{ManualClock, SecretKey, SessionToken, Sessions};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cart {
    items: Vec<u32>,
    note: String,
}

fn key() -> SecretKey {
    SecretKey::from_bytes([0x5e; 32])
}

fn engine(clock: &ManualClock) -> Sessions<Cart> {
    Sessions::builder()
        .secret_key(key())
        .clock(clock.clone())
        .idle_timeout(Duration::from_secs(10 * 60))
        .absolute_timeout(Duration::from_secs(3600))
        .reaper_interval(None)
        .build()
        .unwrap()
}

fn ms(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Wall times agree to within a few ms (two engines derive them from two
/// readings of the system clock).
fn close(a: SystemTime, b: SystemTime) -> bool {
    ms(a).abs_diff(ms(b)) <= 50
}

#[test]
fn tokens_issued_before_save_validate_after_load() {
    let dir = TempDir::new("rt");
    let path = dir.file("s.snap");
    let c1 = ManualClock::new();
    let before = engine(&c1);
    let mut tokens = Vec::new();
    for i in 0..50u32 {
        let cart = Cart {
            items: vec![i, i + 1],
            note: format!("cart {i}"),
        };
        let (t, _) = before.create(cart).unwrap();
        tokens.push(t);
    }
    let alice = before.login(&tokens[0], "alice".to_string()).unwrap();
    let pre_login = std::mem::replace(&mut tokens[0], alice);
    let bob1 = before.login(&tokens[1], "bob".to_string()).unwrap();
    tokens[1] = bob1;
    c1.advance(Duration::from_secs(5));
    let bob2 = before.login(&tokens[2], "bob".to_string()).unwrap();
    tokens[2] = bob2;
    let rotated = before.rotate(&tokens[3]).unwrap();
    let pre_rotation = std::mem::replace(&mut tokens[3], rotated);
    before
        .update(&tokens[4], |c| c.note.push_str(" updated"))
        .unwrap();
    c1.advance(Duration::from_secs(30));
    before.validate(&tokens[5]).unwrap();
    let infos: Vec<_> = tokens.iter().map(|t| before.info(t).unwrap()).collect();

    let report = before.save_snapshot(&path).unwrap();
    assert_eq!(report.saved, 50);
    assert_eq!(report.bytes, std::fs::metadata(&path).unwrap().len());

    // The new engine's clock starts where the first one's stood (its wall
    // time is read when it is built).
    let c2 = ManualClock::new();
    let after = engine(&c2);
    c2.advance(Duration::from_secs(35));
    let loaded = after.load_snapshot(&path).unwrap();
    assert_eq!(loaded.restored, 50);
    assert_eq!(loaded.expired + loaded.duplicates + loaded.refused_full, 0);
    assert_eq!(after.len(), 50);
    assert_eq!(after.stats().anonymous, 47);

    for (t, old) in tokens.iter().zip(&infos) {
        assert_eq!(after.get(t), before.get(t));
        let new = after.info(t).unwrap();
        assert_eq!(new.handle, old.handle);
        assert_eq!(new.principal, old.principal);
        assert!(close(new.created, old.created), "created");
        assert!(close(new.token_issued, old.token_issued), "issued");
        assert!(
            close(new.absolute_expires, old.absolute_expires),
            "absolute"
        );
    }
    assert_eq!(after.get(&tokens[4]).unwrap().note, "cart 4 updated");
    assert!(after.validate(&pre_login).is_none());
    assert!(after.validate(&pre_rotation).is_none());
    // The principal index is rebuilt: listings and "log out everywhere".
    let bobs = after.sessions_of(&"bob".to_string());
    assert_eq!(bobs.len(), 2);
    assert!(bobs[0].created <= bobs[1].created);
    assert_eq!(after.revoke_user(&"bob".to_string()), 2);
    assert!(after.validate(&tokens[1]).is_none());
    // Restored sessions keep working as usual.
    let t = after.login(&tokens[7], "carol".to_string()).unwrap();
    assert_eq!(after.get(&t).unwrap().items, vec![7, 8]);
    assert!(after.logout(&t));
}

#[test]
fn snapshot_holds_no_token() {
    let dir = TempDir::new("notoken");
    let path = dir.file("s.snap");
    let s = engine(&ManualClock::new());
    let tokens: Vec<SessionToken> = (0..20)
        .map(|_| s.create(Cart::default()).unwrap().0)
        .collect();
    s.save_snapshot(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for t in &tokens {
        assert!(!bytes.windows(32).any(|w| w == t.as_bytes()));
        assert!(!bytes.windows(43).any(|w| w == t.as_str().as_bytes()));
    }
}

#[test]
fn different_secret_key_is_refused_and_changes_nothing() {
    let dir = TempDir::new("foreign");
    let path = dir.file("s.snap");
    let s = engine(&ManualClock::new());
    s.create(Cart::default()).unwrap();
    s.save_snapshot(&path).unwrap();
    let other = Sessions::<Cart>::builder()
        .secret_key(SecretKey::from_bytes([0x77; 32]))
        .build()
        .unwrap();
    let e = other.load_snapshot(&path).unwrap_err();
    assert_eq!(e.kind(), SnapshotErrorKind::ForeignKey);
    assert!(other.is_empty());
}

#[test]
fn sessions_that_expired_while_down_are_dropped() {
    let dir = TempDir::new("expired");
    let path = dir.file("s.snap");
    let c1 = ManualClock::new();
    let before = engine(&c1);
    let (idle_soon, _) = before.create(Cart::default()).unwrap();
    let (used_late, _) = before.create(Cart::default()).unwrap();
    c1.advance(Duration::from_secs(9 * 60));
    before.validate(&used_late).unwrap();
    before.save_snapshot(&path).unwrap();

    // Down for two minutes: `idle_soon` passed its idle deadline (10 min
    // after 0), `used_late` has 7 minutes left.
    let c2 = ManualClock::new();
    let after = engine(&c2);
    c2.advance(Duration::from_secs(11 * 60));
    let r = after.load_snapshot(&path).unwrap();
    assert_eq!((r.restored, r.expired), (1, 1));
    assert!(after.validate(&idle_soon).is_none());
    c2.advance(Duration::from_secs(7 * 60 - 5));
    assert!(after.get(&used_late).is_some(), "within its idle deadline");
    c2.advance(Duration::from_secs(10 * 60 + 5));
    assert!(after.validate(&used_late).is_none(), "idle again");
}

#[test]
fn absolute_deadline_survives_a_restart() {
    let dir = TempDir::new("absolute");
    let path = dir.file("s.snap");
    let c1 = ManualClock::new();
    let before = engine(&c1);
    let (t, _) = before.create(Cart::default()).unwrap();
    let t = before.login(&t, "alice".to_string()).unwrap();
    for _ in 0..2 {
        c1.advance(Duration::from_secs(9 * 60));
        before.validate(&t).unwrap();
    }
    before.save_snapshot(&path).unwrap();

    let c2 = ManualClock::new();
    let after = engine(&c2);
    c2.advance(Duration::from_secs(19 * 60));
    after.load_snapshot(&path).unwrap();
    // Used every 9 minutes, it still ends an hour after login.
    for _ in 0..4 {
        assert!(after.validate(&t).is_some());
        c2.advance(Duration::from_secs(9 * 60));
    }
    assert!(after.validate(&t).is_some(), "at 55 minutes");
    c2.advance(Duration::from_secs(4 * 60));
    assert!(after.validate(&t).is_some(), "at 59 minutes");
    c2.advance(Duration::from_secs(2 * 60));
    assert!(after.validate(&t).is_none(), "past the absolute deadline");
}

#[test]
fn shorter_timeouts_apply_at_once_and_longer_ones_extend_nothing() {
    let dir = TempDir::new("timeouts");
    let path = dir.file("s.snap");
    let before = engine(&ManualClock::new());
    let (t, _) = before.create(Cart::default()).unwrap();
    before.save_snapshot(&path).unwrap();

    let with_idle = |idle: u64, abs: u64, clock: &ManualClock| {
        Sessions::<Cart>::builder()
            .secret_key(key())
            .clock(clock.clone())
            .idle_timeout(Duration::from_secs(idle * 60))
            .absolute_timeout(Duration::from_secs(abs * 60))
            .reaper_interval(None)
            .build()
            .unwrap()
    };
    // Idle 5 minutes now (was 10): unused, it ends after 5.
    let c = ManualClock::new();
    let short = with_idle(5, 60, &c);
    short.load_snapshot(&path).unwrap();
    c.advance(Duration::from_secs(5 * 60 + 5));
    assert!(short.validate(&t).is_none());

    // Idle 60 minutes now: its saved 10-minute deadline still holds until
    // it is used again.
    let c = ManualClock::new();
    let long = with_idle(60, 120, &c);
    long.load_snapshot(&path).unwrap();
    c.advance(Duration::from_secs(10 * 60 + 5));
    assert!(long.validate(&t).is_none());

    // Absolute 12 minutes now (was 60): used all along, it ends at 12.
    let c = ManualClock::new();
    let strict = with_idle(10, 12, &c);
    strict.load_snapshot(&path).unwrap();
    c.advance(Duration::from_secs(8 * 60));
    assert!(strict.validate(&t).is_some());
    c.advance(Duration::from_secs(4 * 60 + 5));
    assert!(strict.validate(&t).is_none());
}

#[test]
fn expired_but_unreaped_sessions_are_not_saved() {
    let dir = TempDir::new("unreaped");
    let path = dir.file("s.snap");
    let clock = ManualClock::new();
    let s = engine(&clock);
    s.create(Cart::default()).unwrap();
    clock.advance(Duration::from_secs(10 * 60));
    let (live, _) = s.create(Cart::default()).unwrap();
    assert_eq!(s.len(), 2, "not reaped yet");
    assert_eq!(s.save_snapshot(&path).unwrap().saved, 1);
    let after = engine(&ManualClock::new());
    assert_eq!(after.load_snapshot(&path).unwrap().restored, 1);
    assert!(after.validate(&live).is_some());
}

#[test]
fn grace_aliases_are_not_saved() {
    let dir = TempDir::new("grace");
    let path = dir.file("s.snap");
    let clock = ManualClock::new();
    let before = Sessions::<Cart>::builder()
        .secret_key(key())
        .clock(clock.clone())
        .rotation_grace(Duration::from_secs(30))
        .reaper_interval(None)
        .build()
        .unwrap();
    let (old, _) = before.create(Cart::default()).unwrap();
    let new = before.rotate(&old).unwrap();
    assert!(before.validate(&old).is_some(), "in its grace window");
    let r = before.save_snapshot(&path).unwrap();
    assert_eq!(r.saved, 1);
    let after = engine(&ManualClock::new());
    after.load_snapshot(&path).unwrap();
    assert!(after.validate(&old).is_none());
    assert!(after.validate(&new).is_some());
}

#[test]
fn loading_respects_capacity_and_per_user_limits() {
    let dir = TempDir::new("limits");
    let path = dir.file("s.snap");
    let c1 = ManualClock::new();
    let before = engine(&c1);
    let mut anon = Vec::new();
    for _ in 0..3 {
        anon.push(before.create(Cart::default()).unwrap().0);
    }
    let mut bob = Vec::new();
    for _ in 0..2 {
        let (t, _) = before.create(Cart::default()).unwrap();
        bob.push(before.login(&t, "bob".to_string()).unwrap());
        c1.advance(Duration::from_secs(1));
    }
    before.save_snapshot(&path).unwrap();

    // Room for 3: both authenticated sessions, then one anonymous.
    let small = Sessions::<Cart>::builder()
        .secret_key(key())
        .max_sessions(3)
        .max_sessions_per_user(3)
        .build()
        .unwrap();
    let r = small.load_snapshot(&path).unwrap();
    assert_eq!((r.restored, r.refused_full), (3, 2));
    assert!(bob.iter().all(|t| small.validate(t).is_some()));
    assert_eq!(
        anon.iter().filter(|t| small.validate(*t).is_some()).count(),
        1
    );

    // One session per user: bob keeps his newest.
    let one = Sessions::<Cart>::builder()
        .secret_key(key())
        .max_sessions_per_user(1)
        .build()
        .unwrap();
    one.load_snapshot(&path).unwrap();
    assert!(one.validate(&bob[0]).is_none());
    assert!(one.validate(&bob[1]).is_some());
    assert_eq!(one.len(), 4);
}

#[test]
fn another_shard_count_loads_the_same_sessions() {
    let dir = TempDir::new("shards");
    let path = dir.file("s.snap");
    let s = engine(&ManualClock::new());
    let tokens: Vec<SessionToken> = (0..100u32)
        .map(|i| {
            s.create(Cart {
                items: vec![i],
                note: String::new(),
            })
            .unwrap()
            .0
        })
        .collect();
    s.save_snapshot(&path).unwrap();
    for shards in [1, 4, 1024] {
        let other = Sessions::<Cart>::builder()
            .secret_key(key())
            .shards(shards)
            .build()
            .unwrap();
        assert_eq!(other.load_snapshot(&path).unwrap().restored, 100);
        for (i, t) in tokens.iter().enumerate() {
            assert_eq!(other.get(t).unwrap().items, vec![i as u32]);
        }
    }
}

#[test]
fn loading_twice_leaves_live_sessions_alone() {
    let dir = TempDir::new("twice");
    let path = dir.file("s.snap");
    let s = engine(&ManualClock::new());
    let (t, _) = s.create(Cart::default()).unwrap();
    s.save_snapshot(&path).unwrap();
    s.update(&t, |c| c.items.push(1)).unwrap();
    let r = s.load_snapshot(&path).unwrap();
    assert_eq!((r.restored, r.duplicates), (0, 1));
    assert_eq!(s.get(&t).unwrap().items, vec![1]);
    assert_eq!(s.len(), 1);
}

#[test]
fn missing_file_is_not_found_or_none() {
    let dir = TempDir::new("missing");
    let s = engine(&ManualClock::new());
    let e = s.load_snapshot(dir.file("nope")).unwrap_err();
    assert_eq!(e.kind(), SnapshotErrorKind::NotFound);
    assert_eq!(s.load_snapshot_if_exists(dir.file("nope")).unwrap(), None);
    let e = s.save_snapshot(dir.file("no-such-dir/s.snap")).unwrap_err();
    assert_eq!(e.kind(), SnapshotErrorKind::NotFound);
}

#[test]
fn a_failed_save_keeps_the_previous_file() {
    #[derive(Clone)]
    struct Bomb(bool);
    impl Serialize for Bomb {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if self.0 {
                Err(serde::ser::Error::custom("refuses"))
            } else {
                s.serialize_bool(false)
            }
        }
    }
    let dir = TempDir::new("failed");
    let path = dir.file("s.snap");
    let s = Sessions::<Bomb>::builder()
        .secret_key(key())
        .build()
        .unwrap();
    let (t, _) = s.create(Bomb(false)).unwrap();
    s.save_snapshot(&path).unwrap();
    let good = std::fs::read(&path).unwrap();
    s.update(&t, |b| b.0 = true).unwrap();
    let e = s.save_snapshot(&path).unwrap_err();
    assert_eq!(e.kind(), SnapshotErrorKind::Encode);
    assert_eq!(std::fs::read(&path).unwrap(), good);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 1);
}

#[test]
fn periodic_task_saves_and_finish_saves_once_more() {
    let dir = TempDir::new("task");
    let path = dir.file("s.snap");
    let s = engine(&ManualClock::new());
    let task = s.snapshot_every(&path, Duration::from_millis(5));
    let (t, _) = s.create(Cart::default()).unwrap();
    // Bounded wait for a periodic save that saw the session.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !matches!(task.last_outcome(), Some(Ok(r)) if r.saved == 1) {
        assert!(std::time::Instant::now() < deadline, "no periodic save");
        std::thread::yield_now();
    }
    let (u, _) = s.create(Cart::default()).unwrap();
    assert_eq!(task.finish().unwrap().saved, 2);
    let after = engine(&ManualClock::new());
    after.load_snapshot(&path).unwrap();
    assert!(after.validate(&t).is_some() && after.validate(&u).is_some());

    // Dropping the task saves too.
    let task = s.snapshot_every(&path, Duration::from_secs(3600));
    s.create(Cart::default()).unwrap();
    drop(task);
    let after = engine(&ManualClock::new());
    assert_eq!(after.load_snapshot(&path).unwrap().restored, 3);
}

/// A save racing with rotations and logins never saves one session twice
/// (under an old and a new token) and never loses the store's consistency.
#[test]
fn saves_racing_rotations_save_each_session_at_most_once() {
    let dir = TempDir::new("race");
    let s: Sessions<Cart> = Sessions::builder()
        .secret_key(key())
        .shards(8)
        .unlimited_sessions_per_user() // 2,000 sessions logged in as 7 users
        .reaper_interval(None)
        .build()
        .unwrap();
    let n = 2_000;
    let current: Vec<SessionToken> = (0..n)
        .map(|_| s.create(Cart::default()).unwrap().0)
        .collect();
    let all_tokens = Arc::new(parking_lot::Mutex::new(current.clone()));
    // Stopped by `finish` below, or by the guard's drop if a save fails.
    let mut rotator = Background::new();
    {
        let (s, all) = (s.clone(), Arc::clone(&all_tokens));
        rotator.spawn(move |stop| {
            let mut current = current;
            let mut i = 0usize;
            while !stop.load(Ordering::Acquire) {
                let slot = i % current.len();
                let t = if i % 3 == 0 {
                    s.login(&current[slot], format!("user{}", i % 7)).unwrap()
                } else {
                    s.rotate(&current[slot]).unwrap()
                };
                s.update(&t, |c| c.items.push(i as u32)).unwrap();
                all.lock().push(t.clone());
                current[slot] = t;
                i += 1;
            }
        });
    }
    let mut paths = Vec::new();
    for k in 0..6 {
        let p = dir.file(&format!("s{k}.snap"));
        s.save_snapshot(&p).unwrap();
        paths.push(p);
    }
    rotator.finish();
    let tokens = all_tokens.lock().clone();
    for p in paths {
        let after: Sessions<Cart> = Sessions::builder()
            .secret_key(key())
            .unlimited_sessions_per_user()
            .reaper_interval(None)
            .build()
            .unwrap();
        let r = after.load_snapshot(&p).unwrap();
        assert!(
            r.restored <= n && r.restored > n / 2,
            "restored {}",
            r.restored
        );
        let mut per_handle: HashMap<sesame::Handle, usize> = HashMap::new();
        for t in &tokens {
            if let Some(h) = after.validate(t) {
                *per_handle.entry(h).or_default() += 1;
            }
        }
        assert_eq!(per_handle.len(), r.restored);
        assert!(
            per_handle.values().all(|&c| c == 1),
            "a session saved twice"
        );
    }
}
