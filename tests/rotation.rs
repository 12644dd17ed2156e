//! Rotation and login: the session fixation defence.

mod common;

use common::{manual, secs};
use sesame::{ErrorKind, EventKind, ManualClock, SessionToken};

#[test]
fn login_invalidates_pre_login_token_and_moves_data() {
    let clock = ManualClock::new();
    let s = manual::<Vec<u8>>(&clock).build().unwrap();
    let (anon, handle) = s.create(vec![1, 2, 3]).unwrap();
    let user = s.login(&anon, "alice".to_string()).unwrap();

    assert_ne!(anon, user);
    assert!(s.validate(&anon).is_none(), "pre-login token must fail");
    assert!(s.get(&anon).is_none());
    assert_eq!(
        s.update(&anon, |_| ()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(s.get(&user), Some(vec![1, 2, 3]));
    let info = s.info(&user).unwrap();
    assert_eq!(info.principal.as_deref(), Some("alice"));
    assert_eq!(info.handle, handle, "the handle survives rotation");
    assert_eq!(s.len(), 1);
    assert_eq!(s.stats().rotated, 1);
    assert_eq!(s.stats().anonymous, 0);
}

#[test]
fn plain_rotation_keeps_principal_and_data() {
    let clock = ManualClock::new();
    let s = manual::<u32>(&clock).build().unwrap();
    let (t0, _) = s.create(5).unwrap();
    let t1 = s.login(&t0, "bob".to_string()).unwrap();
    let t2 = s.rotate(&t1).unwrap();
    assert!(s.validate(&t1).is_none());
    assert_eq!(s.get(&t2), Some(5));
    assert_eq!(s.info(&t2).unwrap().principal.as_deref(), Some("bob"));
    // The principal index follows the rotation: revocation still finds it.
    assert_eq!(s.sessions_of(&"bob".to_string()).len(), 1);
    assert_eq!(s.revoke_user(&"bob".to_string()), 1);
    assert!(s.validate(&t2).is_none());
}

#[test]
fn old_token_works_only_within_grace_window() {
    let clock = ManualClock::new();
    let s = manual::<u32>(&clock)
        .rotation_grace(secs(5))
        .build()
        .unwrap();
    let (anon, _) = s.create(1).unwrap();
    let user = s.rotate(&anon).unwrap();
    // In flight: the old token still reaches the same session (a plain
    // rotation; a login leaves no alias, see tests/lifecycle.rs).
    assert_eq!(s.update(&anon, |n| *n += 1), Ok(()));
    assert_eq!(s.get(&user), Some(2));
    assert_eq!(s.info(&anon).unwrap().handle, s.info(&user).unwrap().handle);
    // A grace token cannot rotate or log in again.
    assert!(s.rotate(&anon).is_err());
    clock.advance(secs(5));
    assert!(s.validate(&anon).is_none(), "grace window over");
    assert!(s.validate(&user).is_some());
    // The reaper drops the alias; the session stays.
    s.run_pending();
    assert_eq!(s.len(), 1);
    assert!(s.validate(&user).is_some());
}

#[test]
fn login_restarts_absolute_timeout() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap(); // idle 60 s, absolute 600 s
    let (t, _) = s.create(()).unwrap();
    for _ in 0..10 {
        clock.advance(secs(50));
        assert!(s.validate(&t).is_some());
    }
    // 500 s in: logging in restarts the 600 s absolute deadline.
    let t = s.login(&t, "alice".to_string()).unwrap();
    for _ in 0..10 {
        clock.advance(secs(50));
        assert!(s.validate(&t).is_some());
    }
    clock.advance(secs(50)); // 550 s after login
    assert!(s.validate(&t).is_some());
    clock.advance(secs(50)); // 600 s after login
    assert!(s.validate(&t).is_none());
}

#[test]
fn relogin_as_other_principal_moves_the_session() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let (t, _) = s.create(()).unwrap();
    let t = s.login(&t, "alice".to_string()).unwrap();
    let t = s.login(&t, "bob".to_string()).unwrap();
    assert!(s.sessions_of(&"alice".to_string()).is_empty());
    assert_eq!(s.sessions_of(&"bob".to_string()).len(), 1);
    assert_eq!(s.revoke_user(&"alice".to_string()), 0);
    assert!(s.validate(&t).is_some());
}

#[test]
fn rotating_unknown_or_malformed_tokens_fails() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let stranger = SessionToken::generate();
    assert_eq!(s.rotate(&stranger).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        s.login("not a token", "x".to_string()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(s.len(), 0);
}

#[test]
fn login_emits_logged_in_with_principal() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let events = s.subscribe(16);
    let (t, h) = s.create(()).unwrap();
    let t = s.login(&t, "alice".to_string()).unwrap();
    s.rotate(&t).unwrap();
    let got: Vec<_> = events
        .try_iter()
        .map(|e| (e.kind, e.handle, e.principal))
        .collect();
    assert_eq!(
        got,
        vec![
            (EventKind::Created, h, None),
            (EventKind::LoggedIn, h, Some("alice".to_string())),
            (EventKind::Rotated, h, Some("alice".to_string())),
        ]
    );
}
