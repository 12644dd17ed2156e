//! The cache-line table (issue 15) under races: a session's hot state lives
//! on its line, and a rotation moves the line to another shard. Every path
//! that reaches a session from its entry rather than its token (the
//! principal index: `sessions_of`, `revoke`, `revoke_user`,
//! `logout_others`, the per-user limit; a grace alias's hit) must find the
//! line wherever it is at that moment, and an ended session must stay
//! ended whichever path ended it.

mod guard;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use guard::Background;
use parking_lot::Mutex;
use sesame::{ErrorKind, SessionToken, Sessions};

const ROUNDS: usize = 3_000;

fn store(grace: Duration) -> Sessions<u64> {
    Sessions::builder()
        .shards(16)
        .rotation_grace(grace)
        .unlimited_sessions_per_user()
        .build()
        .unwrap()
}

/// Rotates the session in `current` until stopped or the session ends;
/// returns how many rotations succeeded. Every token it replaced goes to
/// `old`.
fn rotator(
    s: Sessions<u64>,
    current: Arc<Mutex<SessionToken>>,
    old: Arc<Mutex<Vec<SessionToken>>>,
    stop: Arc<AtomicBool>,
) -> usize {
    let mut n = 0;
    while !stop.load(Ordering::Acquire) {
        let t = current.lock().clone();
        match s.rotate(&t) {
            Ok(new) => {
                *current.lock() = new;
                old.lock().push(t);
                n += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::NotFound);
                break; // ended
            }
        }
    }
    n
}

/// `sessions_of` never loses a live session while its line moves between
/// shards, and the handle it lists ends it.
#[test]
fn the_index_finds_a_session_whatever_shard_its_line_is_in() {
    for grace in [Duration::ZERO, Duration::from_secs(60)] {
        let s = store(grace);
        let alice = "alice".to_string();
        let (t, handle) = s.create(0).unwrap();
        let current = Arc::new(Mutex::new(s.login(&t, alice.clone()).unwrap()));
        let old = Arc::new(Mutex::new(Vec::new()));
        let mut bg = Background::new();
        {
            let (s, current, old) = (s.clone(), current.clone(), old.clone());
            bg.spawn(move |stop| rotator(s, current, old, stop));
        }
        // At least ROUNDS lookups, and on until the rotator has moved the
        // line a hundred times (it may start late on a busy machine).
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        let mut round = 0;
        while round < ROUNDS || (old.lock().len() < 100 && std::time::Instant::now() < give_up) {
            let listed = s.sessions_of(&alice);
            assert_eq!(listed.len(), 1, "grace {grace:?}, round {round}: lost");
            assert_eq!(listed[0].handle, handle);
            round += 1;
        }
        // Ended by its handle while it moves: the rotator stops on its own
        // (NotFound), and no token of the session works again.
        assert!(s.revoke(&alice, handle), "revoked while rotating");
        let rotations = bg.finish();
        assert!(rotations[0] > 0, "the rotation raced the lookups");
        assert!(s.validate(&*current.lock()).is_none(), "the last token");
        for t in old.lock().iter() {
            assert!(s.validate(t).is_none(), "a replaced token (or its alias)");
        }
        assert!(s.sessions_of(&alice).is_empty());
        assert_eq!(s.len(), 0);
        assert_eq!(s.stats().revoked, 1);
    }
}

/// "Log out everywhere" while every session of the principal rotates:
/// each is revoked exactly once and none survives, round after round (the
/// window where a rotation moves a line between the revoker's read of the
/// tag and its lock is a few ns wide: many rounds meet it).
#[test]
fn revoke_user_ends_sessions_that_are_moving() {
    const SESSIONS: usize = 2;
    let s = store(Duration::from_secs(60));
    let bob = "bob".to_string();
    for round in 0..300 {
        let mut bg = Background::new();
        let started = Arc::new(AtomicUsize::new(0));
        let tokens: Vec<_> = (0..SESSIONS)
            .map(|_| {
                let (t, _) = s.create(0).unwrap();
                let current = Arc::new(Mutex::new(s.login(&t, bob.clone()).unwrap()));
                let old = Arc::new(Mutex::new(Vec::new()));
                let (s2, c2, o2, go) = (s.clone(), current.clone(), old.clone(), started.clone());
                bg.spawn(move |stop| {
                    go.fetch_add(1, Ordering::AcqRel);
                    rotator(s2, c2, o2, stop)
                });
                (current, old)
            })
            .collect();
        while started.load(Ordering::Acquire) < SESSIONS {
            std::thread::yield_now();
        }
        assert_eq!(
            s.revoke_user(&bob),
            SESSIONS,
            "round {round}: each moving session counted once"
        );
        bg.finish();
        for (current, old) in &tokens {
            assert!(s.validate(&*current.lock()).is_none(), "round {round}");
            assert!(old.lock().iter().all(|t| s.validate(t).is_none()));
        }
        assert_eq!(s.len(), 0, "round {round}");
    }
    let st = s.stats();
    assert_eq!((st.revoked, st.live), (300 * SESSIONS as u64, 0));
}

/// Hits through a grace alias race the rotations that move the live line
/// and the logout that ends the session: an alias answers only while its
/// session lives, and after the logout returns no token of it works.
#[test]
fn an_alias_answers_only_while_its_session_lives() {
    let s = store(Duration::from_secs(60));
    let (t, handle) = s.create(7).unwrap();
    let current = Arc::new(Mutex::new(s.rotate(&t).unwrap()));
    let old = Arc::new(Mutex::new(vec![t]));
    let ended = Arc::new(AtomicBool::new(false));
    let late_hits = Arc::new(AtomicUsize::new(0));
    let mut bg = Background::new();
    {
        let (s, current, old) = (s.clone(), current.clone(), old.clone());
        bg.spawn(move |stop| rotator(s, current, old, stop));
    }
    {
        // Validates the newest replaced token (an alias while in its window,
        // then nothing once the next rotation ends it).
        let (s, old, ended, late) = (s.clone(), old.clone(), ended.clone(), late_hits.clone());
        bg.spawn(move |stop| {
            while !stop.load(Ordering::Acquire) {
                let Some(t) = old.lock().last().cloned() else {
                    continue;
                };
                let was_ended = ended.load(Ordering::Acquire);
                let hit = s.validate(&t);
                if let Some(h) = hit {
                    assert_eq!(h, handle, "an alias leads to its own session");
                    if was_ended {
                        late.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            0
        });
    }
    std::thread::sleep(Duration::from_millis(30));
    // Logs out through whichever token is current, retrying if a rotation
    // replaced it in between (then it is an alias: that ends it too).
    let ended_it = (0..1000).any(|_| {
        let t = current.lock().clone();
        s.logout(&t)
    });
    assert!(ended_it, "the current token or its alias ends the session");
    ended.store(true, Ordering::Release);
    std::thread::sleep(Duration::from_millis(20));
    bg.finish();
    assert_eq!(late_hits.load(Ordering::Relaxed), 0, "a hit after logout");
    assert!(s.validate(&*current.lock()).is_none());
    assert!(old.lock().iter().all(|t| s.validate(t).is_none()));
    assert_eq!(s.len(), 0);
    s.run_pending();
    assert_eq!(s.stats().destroyed, 1);
}

/// The per-user limit reads each session's line outside every lock:
/// concurrent logins of one principal whose older sessions keep rotating
/// still leave at most the limit, and never end the newest.
#[test]
fn the_limit_holds_while_older_sessions_move() {
    let s: Sessions<u64> = Sessions::builder()
        .shards(16)
        .max_sessions_per_user(3)
        .build()
        .unwrap();
    let carol = "carol".to_string();
    let mut bg = Background::new();
    for _ in 0..3 {
        let (t, _) = s.create(0).unwrap();
        let current = Arc::new(Mutex::new(s.login(&t, carol.clone()).unwrap()));
        let (s2, c2) = (s.clone(), current.clone());
        bg.spawn(move |stop| rotator(s2, c2, Arc::new(Mutex::new(Vec::new())), stop));
    }
    let newest: Vec<SessionToken> = std::thread::scope(|scope| {
        let joins: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut last = None;
                    for _ in 0..50 {
                        let (t, _) = s.create(0).unwrap();
                        last = Some(s.login(&t, carol.clone()).unwrap());
                    }
                    last.unwrap()
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).collect()
    });
    bg.finish();
    let listed = s.sessions_of(&carol);
    assert!(
        listed.len() <= 3,
        "{} sessions over a limit of 3",
        listed.len()
    );
    // The last login of all is never a victim; each thread's last one may
    // have been ended by a later login of another thread.
    assert!(newest.iter().any(|t| s.validate(t).is_some()));
    assert_eq!(s.len(), listed.len());
}
