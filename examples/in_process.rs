//! The engine alone, no HTTP: create, update, login, logout, "log out
//! everywhere", stats. Runs to completion and prints what happens.
//!
//! ```sh
//! cargo run --example in_process
//! ```

use std::time::{Duration, SystemTime};

use sesame::{EventKind, Sessions};

#[derive(Clone, Debug, Default)]
struct Cart {
    items: Vec<&'static str>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sessions = Sessions::<Cart>::builder()
        .idle_timeout(Duration::from_secs(30 * 60))
        .absolute_timeout(Duration::from_secs(12 * 3600))
        .build()?;
    let events = sessions.subscribe(64);

    // An anonymous visitor: a session, and a token for the cookie.
    let (token, handle) = sessions.create(Cart::default())?;
    println!("created session {handle} (the token goes in a cookie, never in a log)");

    // Fill the cart in place: atomic per session.
    sessions.update(&token, |cart| cart.items.push("teapot"))?;
    sessions.update(&token, |cart| cart.items.push("cups"))?;
    println!("cart: {:?}", sessions.get(&token).map(|c| c.items));

    // Log in: a new token, the old one is dead (no session fixation); the
    // anonymous cart survives.
    let alice = "alice".to_string();
    let token = {
        let old = token;
        let new = sessions.login(&old, alice.clone())?;
        assert!(sessions.validate(&old).is_none());
        new
    };
    println!(
        "alice logged in; cart kept: {:?}",
        sessions.get(&token).map(|c| c.items)
    );

    // A second device, then the list of alice's sessions (metadata only).
    let (phone, _) = sessions.create(Cart::default())?;
    let phone = sessions.login(&phone, alice.clone())?;
    for info in sessions.sessions_of(&alice) {
        let left = info
            .expires
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        println!(
            "alice's session {} expires in {} s unless used",
            info.handle,
            left.as_secs()
        );
    }

    // Log out on the phone, then "log out everywhere".
    assert!(sessions.logout(&phone));
    let ended = sessions.revoke_user(&alice);
    println!("log out everywhere ended {ended} session(s)");
    assert!(sessions.validate(&token).is_none());

    let stats = sessions.stats();
    println!(
        "stats: live {}, created {}, rotated {}, destroyed {}, revoked {}",
        stats.live, stats.created, stats.rotated, stats.destroyed, stats.revoked
    );
    let kinds: Vec<EventKind> = events.try_iter().map(|e| e.kind).collect();
    println!("events: {kinds:?}");
    Ok(())
}
