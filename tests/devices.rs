//! Device lists users can act on: each session's recorded device (user
//! agent, address), listed by `sessions_of`; `logout_others` ("sign out of
//! all other devices"); and the device dropped on every path that ends a
//! session, so memory does not grow under churn.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{manual, secs};
use sesame::{Device, ErrorKind, EventKind, ManualClock, SessionToken, Sessions};

fn device(agent: &str, ip: [u8; 4]) -> Device {
    Device::new()
        .with_user_agent(agent, 256)
        .with_address(IpAddr::from(ip))
}

fn agent_of(info: &sesame::SessionInfo<String>) -> Option<&str> {
    info.device.as_ref()?.user_agent.as_deref()
}

/// A logged-in session of `who` with `agent` recorded.
fn signed_in(s: &Sessions<(), String>, who: &str, agent: &str) -> SessionToken {
    let (t, _) = s.create(()).unwrap();
    let t = s.login(&t, who.to_string()).unwrap();
    s.set_device(&t, device(agent, [192, 0, 2, 1])).unwrap();
    t
}

#[test]
fn each_session_lists_its_own_device() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let alice = "alice".to_string();
    let (phone, h_phone) = s.create(()).unwrap();
    // Recorded at creation, kept across login (same session, new token).
    s.set_device(&phone, device("Phone/1.0", [198, 51, 100, 7]))
        .unwrap();
    let phone = s.login(&phone, alice.clone()).unwrap();
    clock.advance(secs(1));
    let (laptop, h_laptop) = s.create(()).unwrap();
    let laptop = s.login(&laptop, alice.clone()).unwrap();
    s.set_device(&laptop, device("Laptop/2.0", [203, 0, 113, 9]))
        .unwrap();
    signed_in(&s, "bob", "Bob/1.0");

    let list = s.sessions_of(&alice);
    let got: Vec<_> = list
        .iter()
        .map(|i| {
            let d = i.device.as_ref().unwrap();
            (i.handle, d.user_agent.as_deref(), d.address)
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                h_phone,
                Some("Phone/1.0"),
                Some(IpAddr::from([198, 51, 100, 7]))
            ),
            (
                h_laptop,
                Some("Laptop/2.0"),
                Some(IpAddr::from([203, 0, 113, 9]))
            ),
        ]
    );
    let agent = |t: &SessionToken| s.device(t).and_then(|d| d.user_agent);
    assert_eq!(agent(&phone).as_deref(), Some("Phone/1.0"));
    // A lookup on the request path does not carry it (see the field's docs).
    assert_eq!(s.info(&phone).unwrap().device, None);
    // A later recording (the next login) replaces the device.
    s.set_device(&phone, device("Phone/1.1", [198, 51, 100, 8]))
        .unwrap();
    assert_eq!(agent(&phone).as_deref(), Some("Phone/1.1"));
    assert_eq!(s.device_slots(), 3);
    // A session with nothing recorded lists no device.
    let (bare, _) = s.create(()).unwrap();
    assert_eq!(s.device(&bare), None);
}

#[test]
fn an_engine_that_records_nothing_lists_no_device() {
    let s = Sessions::<(), String>::new();
    let (t, _) = s.create(()).unwrap();
    let t = s.login(&t, "alice".to_string()).unwrap();
    assert_eq!(s.sessions_of(&"alice".to_string())[0].device, None);
    assert_eq!(s.device(&t), None);
    assert_eq!(s.device_slots(), 0);
}

#[test]
fn recording_needs_a_live_session() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let d = device("Agent", [192, 0, 2, 1]);
    let err = s.set_device("not a token", d.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let (t, _) = s.create(()).unwrap();
    s.logout(&t);
    assert_eq!(
        s.set_device(&t, d.clone()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let (t, _) = s.create(()).unwrap();
    clock.advance(secs(61)); // idle timeout passed, not yet reaped
    assert_eq!(s.set_device(&t, d).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(s.device_slots(), 0);
}

#[test]
fn user_agents_are_bounded_whatever_the_caller_builds() {
    let s = Sessions::<(), String>::new();
    let (t, _) = s.create(()).unwrap();
    // Through the constructor: cut at the asked length, on a char boundary.
    let ua = format!("Agent{}", "é".repeat(300));
    s.set_device(&t, Device::new().with_user_agent(&ua, 256))
        .unwrap();
    let kept = s.device(&t).unwrap().user_agent.unwrap();
    assert!(kept.len() <= 256 && ua.starts_with(&kept), "{}", kept.len());
    assert_eq!(kept.len(), 255, "the last 'é' would straddle byte 256");
    // Built by hand (the fields are public): still held to the hard bound
    // and cleaned of control characters.
    let mut d = Device::new();
    d.user_agent = Some(format!("evil\r\nSet-Cookie: x{}", "y".repeat(100_000)));
    s.set_device(&t, d).unwrap();
    let kept = s.device(&t).unwrap().user_agent.unwrap();
    assert_eq!(kept.len(), sesame::device::MAX_USER_AGENT_BYTES);
    assert!(kept.starts_with("evilSet-Cookie: x"), "{kept:.20}");
}

#[test]
fn a_device_is_never_in_debug_output() {
    let s = Sessions::<(), String>::new();
    let t = signed_in(&s, "alice", "SecretAgent/9");
    let alice = "alice".to_string();
    let shown = format!("{:?} {:?}", s.sessions_of(&alice), s.device(&t));
    assert!(
        !shown.contains("SecretAgent") && !shown.contains("192.0.2.1"),
        "{shown}"
    );
}

#[test]
fn logout_others_keeps_the_current_session_and_ends_the_rest() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let alice = "alice".to_string();
    let mine: Vec<SessionToken> = (0..4)
        .map(|i| signed_in(&s, "alice", &format!("A/{i}")))
        .collect();
    let bob = signed_in(&s, "bob", "B/1");
    let (anon, _) = s.create(()).unwrap();
    let current = s.info(&mine[2]).unwrap().handle;
    let events = s.subscribe(16);

    assert_eq!(s.logout_others(&mine[2]).unwrap(), 3);
    for (i, t) in mine.iter().enumerate() {
        assert_eq!(s.validate(t).is_some(), i == 2, "session {i}");
    }
    let listed: Vec<_> = s.sessions_of(&alice).iter().map(|i| i.handle).collect();
    assert_eq!(listed, [current]);
    assert_eq!(
        agent_of(&s.sessions_of(&alice)[0]),
        Some("A/2"),
        "its device stays"
    );
    // Other principals and anonymous sessions are untouched.
    assert!(s.validate(&bob).is_some() && s.validate(&anon).is_some());
    assert_eq!(s.sessions_of(&"bob".to_string()).len(), 1);
    // Each ended session is reported as revoked, never the current one.
    let ended: Vec<_> = events.try_iter().collect();
    assert_eq!(ended.len(), 3);
    for e in &ended {
        assert_eq!(e.kind, EventKind::Revoked);
        assert_ne!(e.handle, current);
        assert_eq!(e.principal.as_deref(), Some("alice"));
    }
    assert_eq!(s.stats().revoked, 3);
    // Their devices went with them: alice's current one and bob's remain.
    assert_eq!(s.device_slots(), 2);
    // Again: nothing else to end.
    assert_eq!(s.logout_others(&mine[2]).unwrap(), 0);
}

#[test]
fn logout_others_decides_for_anonymous_and_dead_tokens() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock).build().unwrap();
    let alice_1 = signed_in(&s, "alice", "A/1");
    // An anonymous session has no principal, so no other sessions: 0.
    let (anon, _) = s.create(()).unwrap();
    assert_eq!(s.logout_others(&anon).unwrap(), 0);
    // A token that no longer works ends nothing: NotFound.
    let alice_2 = signed_in(&s, "alice", "A/2");
    s.logout(&alice_2);
    assert_eq!(
        s.logout_others(&alice_2).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.logout_others("garbage").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // So does a pre-login token (login rotated it away).
    let (pre, _) = s.create(()).unwrap();
    s.login(&pre, "alice".to_string()).unwrap();
    assert_eq!(
        s.logout_others(&pre).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(s.validate(&alice_1).is_some(), "nothing ended");
    assert_eq!(s.sessions_of(&"alice".to_string()).len(), 2);
}

#[test]
fn logout_others_from_a_grace_alias_keeps_its_own_session() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock)
        .rotation_grace(Duration::from_secs(5))
        .build()
        .unwrap();
    let other = signed_in(&s, "alice", "A/1");
    let old = signed_in(&s, "alice", "A/2");
    let new = s.rotate(&old).unwrap();
    assert_eq!(s.logout_others(&old).unwrap(), 1);
    assert!(s.validate(&new).is_some() && s.validate(&old).is_some());
    assert!(s.validate(&other).is_none());
}

/// Every path that ends a session drops its device.
#[test]
fn every_end_path_drops_the_device() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock)
        .max_sessions(4)
        .max_sessions_per_user(2)
        .shards(1) // one eviction ring: the oldest anonymous sessions go first
        .build()
        .unwrap();
    let alice = "alice".to_string();
    let d = || device("Agent", [192, 0, 2, 1]);

    // logout
    let t = signed_in(&s, "alice", "A");
    s.logout(&t);
    assert_eq!(s.device_slots(), 0, "logout");
    // revoke (one handle)
    let t = signed_in(&s, "alice", "A");
    assert!(s.revoke(&alice, s.info(&t).unwrap().handle));
    assert_eq!(s.device_slots(), 0, "revoke");
    // revoke_user
    signed_in(&s, "alice", "A");
    signed_in(&s, "alice", "A");
    assert_eq!(s.revoke_user(&alice), 2);
    assert_eq!(s.device_slots(), 0, "revoke_user");
    // logout_others (the current one keeps its device)
    signed_in(&s, "alice", "A");
    let keep = signed_in(&s, "alice", "A");
    assert_eq!(s.logout_others(&keep).unwrap(), 1);
    assert_eq!(s.device_slots(), 1, "logout_others");
    s.logout(&keep);
    // per-user limit: a third login ends the first
    signed_in(&s, "alice", "A");
    signed_in(&s, "alice", "A");
    signed_in(&s, "alice", "A");
    assert_eq!(s.stats().evicted_per_user, 1);
    assert_eq!(s.device_slots(), 2, "per-user limit");
    s.revoke_user(&alice);
    // capacity eviction of anonymous sessions
    for _ in 0..4 {
        let (t, _) = s.create(()).unwrap();
        s.set_device(&t, d()).unwrap();
    }
    assert_eq!(s.device_slots(), 4);
    clock.advance(secs(1));
    for _ in 0..4 {
        s.create(()).unwrap();
    }
    assert_eq!(s.stats().evicted_capacity, 4);
    assert_eq!(s.device_slots(), 0, "capacity eviction");
    // expiry, reaped
    let (t, _) = s.create(()).unwrap(); // evicts one device-less session
    s.set_device(&t, d()).unwrap();
    assert_eq!(s.device_slots(), 1);
    clock.advance(secs(61));
    assert!(s.run_pending() >= 1);
    assert_eq!(s.len(), 0);
    assert_eq!(s.device_slots(), 0, "expiry");
}

/// Churn through every end path, after a warm-up: no device outlives its
/// session, and the engine's heap does not grow with the number of
/// sessions that came and went.
#[test]
fn memory_does_not_grow_under_churn() {
    let clock = ManualClock::new();
    let s = manual::<()>(&clock)
        .max_sessions(64)
        .max_sessions_per_user(2)
        .shards(4)
        .build()
        .unwrap();
    let round = |i: usize| {
        let who = format!("user{}", i % 8);
        let (t, _) = s.create(()).unwrap();
        s.set_device(
            &t,
            device(&format!("Agent/{i}"), [192, 0, 2, (i % 250) as u8]),
        )
        .unwrap();
        match i % 6 {
            0 => {
                s.logout(&t);
            }
            1 => {
                let t = s.login(&t, who.clone()).unwrap();
                s.set_device(&t, device("Again", [192, 0, 2, 1])).unwrap();
                s.revoke_user(&who);
            }
            2 => {
                let t = s.login(&t, who.clone()).unwrap();
                let _ = s.logout_others(&t).unwrap();
                s.logout(&t);
            }
            3 => {
                // Left to the per-user limit, then to expiry.
                s.login(&t, who).unwrap();
            }
            4 => {} // left to capacity eviction or expiry
            _ => {
                clock.advance(secs(61));
                s.run_pending();
            }
        }
    };
    for i in 0..6_000 {
        round(i);
    }
    let used = allocation_counter::measure(|| {
        for i in 0..60_000 {
            round(i);
        }
    });
    clock.advance(secs(61));
    s.run_pending();
    assert_eq!(s.len(), 0);
    assert_eq!(s.device_slots(), 0, "a device outlived its session");
    // The most heap the churn ever held beyond what the warm-up left: the
    // few dozen live sessions' worth (34 KB measured), not 60,000 sessions'
    // (a device left behind by each would be megabytes).
    assert!(
        used.bytes_max < 128 * 1024 && used.bytes_current <= 0,
        "heap over the churn: peak {} bytes, net {} bytes",
        used.bytes_max,
        used.bytes_current
    );
}

/// Devices are personal data and are not persisted: a session restored
/// from a snapshot lists no device until its next login records one, and
/// nothing of the device is in the file (it is encrypted anyway; this
/// checks the design, not the cipher, by reading the file's plain bytes).
#[cfg(feature = "snapshot")]
#[test]
fn snapshots_keep_the_session_but_not_its_device() {
    let key = sesame::SecretKey::generate();
    let build = || {
        Sessions::<(), String>::builder()
            .secret_key(key.clone())
            .reaper_interval(None)
            .build()
            .unwrap()
    };
    let a = build();
    let t = signed_in(&a, "alice", "PersistMe/1.0");
    let dir = std::env::temp_dir().join(format!("sesame-devices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("snap");
    a.save_snapshot(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.windows(9).any(|w| w == b"PersistMe"));
    let b = build();
    b.load_snapshot(&path).unwrap();
    let info = b.info(&t).expect("the session is restored");
    assert_eq!(info.principal.as_deref(), Some("alice"));
    assert_eq!(b.device(&t), None, "its device is not");
    assert_eq!(b.sessions_of(&"alice".to_string())[0].device, None);
    assert_eq!(b.device_slots(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What a recorded device costs: the table's entry and the user agent's
/// bytes, only for sessions that have one.
#[test]
fn a_device_costs_a_table_entry_and_its_user_agent() {
    let s = manual::<()>(&ManualClock::new()).build().unwrap();
    let tokens: Vec<_> = (0..4096).map(|_| s.create(()).unwrap().0).collect();
    let agent = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
    let used = allocation_counter::measure(|| {
        for t in &tokens {
            s.set_device(t, device(agent, [192, 0, 2, 1])).unwrap();
        }
    });
    let per_session = used.bytes_current as usize / tokens.len();
    // The user agent's 70 bytes, a `Device` (48) and a handle (8) in a
    // hash table at its load factor, and the table's shards, once: 174
    // bytes measured.
    assert!(
        per_session <= agent.len() + 160,
        "{per_session} bytes per device"
    );
}

/// A recording that races the end of its session never leaves the device
/// behind: `set_device` re-checks liveness after inserting, and `retire`
/// drops what it finds (see src/engine/device.rs).
#[test]
fn a_recording_racing_a_logout_leaves_nothing_behind() {
    let s = Sessions::<(), String>::builder()
        .reaper_interval(None)
        .build()
        .unwrap();
    let d = device("Racer/1.0", [192, 0, 2, 1]);
    for _ in 0..200 {
        let tokens: Vec<_> = (0..256).map(|_| s.create(()).unwrap().0).collect();
        // Scoped threads: a failing assertion in one ends the scope (no
        // barrier to wait on), so the test cannot hang.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for t in &tokens {
                    let _ = s.set_device(t, d.clone());
                }
            });
            scope.spawn(|| {
                for t in &tokens {
                    assert!(s.logout(t));
                }
            });
        });
        assert_eq!(s.len(), 0);
        assert_eq!(s.device_slots(), 0, "a device outlived its session");
    }
}
