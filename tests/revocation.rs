//! Listing and revoking a principal's sessions.

mod common;

use common::{manual, secs};
use sesame::{EventKind, Handle, ManualClock};

#[test]
fn revoke_user_ends_all_their_sessions_only() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let alice = "alice".to_string();
    let mut mine = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..4 {
        let (t, h) = s.create(()).unwrap();
        mine.push(s.login(&t, alice.clone()).unwrap());
        handles.push(h);
    }
    let (b, _) = s.create(()).unwrap();
    let b = s.login(&b, "bob".to_string()).unwrap();
    let (anon, _) = s.create(()).unwrap();
    let events = s.subscribe(16);
    assert_eq!(s.revoke_user(&alice), 4);
    for t in &mine {
        assert!(s.validate(t).is_none());
    }
    assert!(s.validate(&b).is_some());
    assert!(s.validate(&anon).is_some());
    assert_eq!(s.len(), 2);
    assert_eq!(s.stats().revoked, 4);
    assert!(s.sessions_of(&alice).is_empty());
    // One `Revoked` event per session, naming alice and its handle, and
    // nothing else. (`.all(..)` alone passed when no event was sent.)
    let mut revoked: Vec<Handle> = Vec::new();
    for e in events.try_iter() {
        assert_eq!(e.kind, EventKind::Revoked, "unexpected event {e:?}");
        assert_eq!(e.principal.as_deref(), Some("alice"));
        revoked.push(e.handle);
    }
    revoked.sort();
    handles.sort();
    assert_eq!(revoked, handles, "one Revoked event per session of alice");
    assert_eq!(s.revoke_user(&alice), 0);
}

#[test]
fn listing_shows_metadata_oldest_first() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let alice = "alice".to_string();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let (t, h) = s.create(()).unwrap();
        s.login(&t, alice.clone()).unwrap();
        handles.push(h);
        clock.advance(secs(2));
    }
    let list = s.sessions_of(&alice);
    let got: Vec<Handle> = list.iter().map(|i| i.handle).collect();
    assert_eq!(got, handles);
    assert!(list.windows(2).all(|w| w[0].created < w[1].created));
    assert!(list.iter().all(|i| i.principal.as_deref() == Some("alice")));
    assert!(list.iter().all(|i| i.expires > i.last_seen));
}

#[test]
fn listing_omits_expired_sessions() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let alice = "alice".to_string();
    let (t, _) = s.create(()).unwrap();
    s.login(&t, alice.clone()).unwrap();
    clock.advance(secs(30));
    let (t2, _) = s.create(()).unwrap();
    let t2 = s.login(&t2, alice.clone()).unwrap();
    clock.advance(secs(40)); // first idle 70 s, second 40 s
    assert_eq!(s.sessions_of(&alice).len(), 1);
    s.run_pending();
    assert_eq!(s.sessions_of(&alice).len(), 1);
    assert!(s.validate(&t2).is_some());
}

#[test]
fn revoke_by_handle_needs_the_owner() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let (a, ha) = s.create(()).unwrap();
    let a = s.login(&a, "alice".to_string()).unwrap();
    let (b, hb) = s.create(()).unwrap();
    let b = s.login(&b, "bob".to_string()).unwrap();
    // Bob cannot end Alice's session by knowing its handle.
    assert!(!s.revoke(&"bob".to_string(), ha));
    assert!(s.validate(&a).is_some());
    // Alice ends her own; a second try finds nothing.
    assert!(s.revoke(&"alice".to_string(), ha));
    assert!(!s.revoke(&"alice".to_string(), ha));
    assert!(s.validate(&a).is_none());
    assert!(s.validate(&b).is_some());
    assert!(!s.revoke(&"alice".to_string(), hb));
    assert_eq!(s.len(), 1);
}

#[test]
fn logout_destroys_and_is_idempotent() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let (t, _) = s.create(()).unwrap();
    let t = s.login(&t, "alice".to_string()).unwrap();
    assert!(s.logout(&t));
    assert!(!s.logout(&t));
    assert!(s.validate(&t).is_none());
    assert!(s.sessions_of(&"alice".to_string()).is_empty());
    assert_eq!(s.stats().destroyed, 1);
    assert!(s.is_empty());
}

#[test]
fn logout_through_grace_alias_ends_the_session() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock)
        .rotation_grace(secs(5))
        .build()
        .unwrap();
    let (old, _) = s.create(()).unwrap();
    let new = s.rotate(&old).unwrap();
    assert!(s.logout(&old));
    assert!(s.validate(&new).is_none());
    assert!(s.is_empty());
    clock.advance(secs(120));
    assert_eq!(s.run_pending(), 0, "already ended, not expired");
}
