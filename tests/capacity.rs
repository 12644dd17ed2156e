//! Bounded memory: max_sessions under a flood, and the per-principal limit.

mod common;

use common::{manual, secs};
use sesame::{ErrorKind, EventKind, EvictionReason, ManualClock};

#[test]
fn anonymous_flood_stays_bounded_and_spares_logged_in_sessions() {
    let clock = ManualClock::new();
    let max = 1_000;
    let s = manual::<u32>(&clock).max_sessions(max).build().unwrap();
    let mut users = Vec::new();
    for i in 0..100 {
        let (t, _) = s.create(i).unwrap();
        users.push(s.login(&t, format!("user{i}")).unwrap());
    }
    for i in 0..(10 * max as u32) {
        s.create(i).unwrap();
        assert!(s.len() <= max, "len {} > max {max}", s.len());
        if i % 997 == 0 {
            clock.advance(secs(1));
        }
    }
    assert_eq!(s.len(), max);
    for (i, t) in users.iter().enumerate() {
        assert_eq!(
            s.get(t),
            Some(i as u32),
            "logged-in session {i} was evicted"
        );
    }
    let st = s.stats();
    assert_eq!(st.evicted_capacity, 10 * max as u64 - (max as u64 - 100));
    assert_eq!(st.live, max as u64);
    assert_eq!(st.anonymous, max as u64 - 100);
}

#[test]
fn eviction_prefers_sessions_not_seen_recently() {
    let clock = ManualClock::new();
    let max = 200;
    // Timeouts far beyond the test's 110 s: every session that goes is
    // evicted, none expires.
    let s = manual::<()>(&clock)
        .idle_timeout(secs(3600))
        .absolute_timeout(secs(7200))
        .max_sessions(max)
        .shards(1)
        .build()
        .unwrap();
    let mut old = Vec::new();
    for _ in 0..max {
        old.push(s.create(()).unwrap().0);
    }
    clock.advance(secs(10));
    // A user who keeps coming back.
    let regular = old[0].clone();
    let mut fresh = Vec::new();
    for round in 0..(max / 2) {
        assert!(
            s.validate(&regular).is_some(),
            "regular evicted in round {round}"
        );
        clock.advance(secs(1));
        fresh.push(s.create(()).unwrap().0);
    }
    // Each create evicted one session, never the regular (the only one used
    // since it was made) and none made in the loop (all seen more recently
    // than the untouched ones). This used to end by counting `survived` for
    // every round, unconditionally.
    assert_eq!(s.len(), max);
    assert_eq!(s.stats().evicted_capacity, (max / 2) as u64);
    assert!(s.validate(&regular).is_some(), "regular evicted at the end");
    let fresh_gone = fresh.iter().filter(|t| s.validate(*t).is_none()).count();
    let untouched_gone = old[1..].iter().filter(|t| s.validate(*t).is_none()).count();
    assert_eq!(
        (untouched_gone, fresh_gone),
        (max / 2, 0),
        "(untouched sessions evicted, sessions made in the loop evicted)"
    );
}

#[test]
fn full_of_logged_in_sessions_refuses_with_typed_error() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).max_sessions(10).build().unwrap();
    for i in 0..10 {
        let (t, _) = s.create(()).unwrap();
        s.login(&t, format!("u{i}")).unwrap();
    }
    let err = s.create(()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Full);
    assert_eq!(s.len(), 10);
    assert_eq!(s.stats().refused_full, 1);
    // Room again once one logs out.
    assert_eq!(s.revoke_user(&"u3".to_string()), 1);
    assert!(s.create(()).is_ok());
}

#[test]
fn per_user_limit_evicts_that_users_oldest_session() {
    let clock = ManualClock::new();
    let s = manual::<u32>(&clock)
        .max_sessions_per_user(3)
        .build()
        .unwrap();
    let events = s.subscribe(64);
    let alice = "alice".to_string();
    let mut tokens = Vec::new();
    for i in 0..5u32 {
        let (t, _) = s.create(i).unwrap();
        tokens.push(s.login(&t, alice.clone()).unwrap());
        clock.advance(secs(1));
    }
    // Bob is not affected by Alice's limit.
    let (b, _) = s.create(99).unwrap();
    let b = s.login(&b, "bob".to_string()).unwrap();
    let listed = s.sessions_of(&alice);
    assert_eq!(listed.len(), 3);
    assert!(s.validate(&tokens[0]).is_none());
    assert!(s.validate(&tokens[1]).is_none());
    for t in &tokens[2..] {
        assert!(s.validate(t).is_some());
    }
    assert!(s.validate(&b).is_some());
    assert_eq!(s.stats().evicted_per_user, 2);
    let evicted = events
        .try_iter()
        .filter(|e| e.kind == EventKind::Evicted(EvictionReason::PerUser))
        .count();
    assert_eq!(evicted, 2);
    assert_eq!(s.len(), 4);
}
