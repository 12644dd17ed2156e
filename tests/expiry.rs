//! Idle and absolute expiry, reaped or not, with a clock that misbehaves.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{manual, secs};
use sesame::{EventKind, ExpiryReason, ManualClock, Sessions};

#[test]
fn idle_session_expires_after_idle_timeout() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let (t, _) = s.create(()).unwrap();
    clock.advance(secs(59));
    assert!(s.validate(&t).is_some(), "a use restarts the idle timer");
    clock.advance(secs(59));
    assert!(s.validate(&t).is_some());
    clock.advance(secs(60));
    assert!(s.validate(&t).is_none());
}

#[test]
fn busy_session_expires_at_absolute_deadline() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let (t, _) = s.create(()).unwrap();
    for _ in 0..19 {
        clock.advance(secs(30));
        assert!(s.validate(&t).is_some());
    }
    clock.advance(secs(30)); // 600 s
    assert!(s.validate(&t).is_none());
    let events = s.subscribe(8);
    assert_eq!(s.run_pending(), 1);
    assert_eq!(s.stats().expired_absolute, 1);
    assert_eq!(s.stats().expired_idle, 0);
    assert_eq!(
        events.try_recv().unwrap().kind,
        EventKind::Expired(ExpiryReason::Absolute)
    );
}

#[test]
fn expired_but_not_reaped_is_never_returned() {
    let clock = ManualClock::new();
    let s = manual::<u32>(&clock).build().unwrap();
    let (t, _) = s.create(1).unwrap();
    clock.advance(secs(60));
    // Not reaped yet: still counted, never returned by any path.
    assert_eq!(s.len(), 1);
    assert!(s.validate(&t).is_none());
    assert!(s.get(&t).is_none());
    assert!(s.info(&t).is_none());
    assert!(s.with(&t, |_| ()).is_none());
    assert!(s.update(&t, |n| *n += 1).is_err());
    assert!(s.rotate(&t).is_err());
    assert!(s.login(&t, "a".to_string()).is_err());
    assert!(!s.logout(&t));
    assert_eq!(s.run_pending(), 1);
    assert_eq!(s.len(), 0);
    assert_eq!(s.stats().expired_idle, 1);
}

/// `revoke_user` and `revoke` count what they revoked: a session already
/// past its deadline, not yet reaped, granted nothing and ends as expired.
/// Before: `revoke` returned true for a session that had expired a
/// minute earlier, and `revoke_user` counted the expired ones too.
#[test]
fn revoking_counts_no_session_that_had_expired() {
    let clock = ManualClock::new();
    let s = manual::<u32>(&clock).build().unwrap();
    let alice = "alice".to_string();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let (t, h) = s.create(1).unwrap();
        s.login(&t, alice.clone()).unwrap();
        handles.push(h);
    }
    clock.advance(secs(60)); // past the idle timeout, not reaped
    let (t, live) = s.create(1).unwrap();
    s.login(&t, alice.clone()).unwrap();
    let events = s.subscribe(16);
    assert!(
        !s.revoke(&alice, handles[0]),
        "an expired session is not revoked"
    );
    assert_eq!(s.revoke_user(&alice), 1, "only the live one");
    let stats = s.stats();
    assert_eq!((stats.revoked, stats.expired_idle), (1, 3));
    assert_eq!(stats.live, 0);
    let kinds: Vec<_> = events.try_iter().map(|e| (e.handle, e.kind)).collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert!(kinds.contains(&(live, EventKind::Revoked)), "{kinds:?}");
    assert!(kinds.contains(&(handles[0], EventKind::Expired(ExpiryReason::Idle))));
}

#[test]
fn reaper_leaves_touched_sessions_alone() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let (a, _) = s.create(()).unwrap();
    let (b, _) = s.create(()).unwrap();
    clock.advance(secs(40));
    assert!(s.validate(&a).is_some());
    clock.advance(secs(30)); // b idle 70 s, a idle 30 s
    assert_eq!(s.run_pending(), 1);
    assert!(s.validate(&a).is_some());
    assert!(s.validate(&b).is_none());
    clock.advance(secs(61));
    assert_eq!(s.run_pending(), 1);
    assert!(s.is_empty());
}

#[test]
fn clock_going_backwards_neither_resurrects_nor_panics() {
    let clock = ManualClock::new();
    clock.set(secs(1000));
    let s = manual::<()>(&clock).build().unwrap();
    let (t, _) = s.create(()).unwrap();
    let (u, _) = s.create(()).unwrap();
    clock.advance(secs(61));
    assert!(s.validate(&t).is_none());
    clock.rewind(secs(500)); // far before creation
    assert!(s.validate(&t).is_none(), "no resurrection");
    assert!(s.validate(&u).is_none(), "no resurrection");
    assert_eq!(s.run_pending(), 2);
    // New sessions still work and expire in engine time, which never went back.
    let (v, _) = s.create(()).unwrap();
    assert!(s.validate(&v).is_some());
    clock.rewind(secs(10_000));
    assert!(s.validate(&v).is_some());
    clock.set(secs(1061 + 60));
    assert!(s.validate(&v).is_none());
}

#[test]
fn far_future_and_huge_jumps_do_not_panic() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock)
        .idle_timeout(Duration::from_secs(3 * 365 * 24 * 3600))
        .absolute_timeout(Duration::from_secs(9 * 365 * 24 * 3600))
        .build()
        .unwrap();
    let (t, _) = s.create(()).unwrap();
    clock.advance(Duration::from_secs(365 * 24 * 3600));
    assert_eq!(
        s.run_pending(),
        0,
        "beyond the wheel's range: re-scheduled, not reaped"
    );
    assert!(s.validate(&t).is_some());
    clock.advance(Duration::from_secs(u64::MAX / 4));
    assert!(s.validate(&t).is_none());
    assert_eq!(s.run_pending(), 1);
}

#[test]
fn background_reaper_reaps_and_stops_with_engine() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let clock = ManualClock::new();
    let s = Sessions::<Counted>::builder()
        .clock(clock.clone())
        .idle_timeout(secs(60))
        .reaper_interval(Some(Duration::from_millis(5)))
        .build()
        .unwrap();
    for _ in 0..100 {
        s.create(Counted(dropped.clone())).unwrap();
    }
    let (keep, _) = s.create(Counted(dropped.clone())).unwrap();
    clock.advance(secs(30));
    assert!(s.validate(&keep).is_some());
    clock.advance(secs(31));
    // Watchdog: poll until reaped and freed, fail after 10 s. The count
    // drops when a session is retired; the reaper frees the batch's entries
    // a moment later, so both are awaited.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.len() > 1 || dropped.load(Ordering::SeqCst) < 100 {
        assert!(
            Instant::now() < deadline,
            "reaper did not run: len {}, freed {}",
            s.len(),
            dropped.load(Ordering::SeqCst)
        );
        std::thread::yield_now();
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 100);
    assert!(s.validate(&keep).is_some());
    // Dropping the engine stops the thread and frees every session: nothing
    // (such as the reaper) keeps the engine alive.
    drop(s);
    assert_eq!(dropped.load(Ordering::SeqCst), 101);
}
