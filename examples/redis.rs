//! The Redis backend: many servers, one session space. Create, update,
//! login, logout and "log out everywhere" against a Redis server; prints
//! what happens.
//!
//! ```sh
//! redis-server &   # or any Redis 6+
//! SESAME_REDIS_URL=redis://127.0.0.1:6379/ cargo run --example redis --features redis
//! ```
//!
//! `SESAME_REDIS_URL` defaults to `redis://127.0.0.1:6379/`. Every server
//! of one application needs the same URL and the same secret key (here a
//! random one: run it twice and the first run's sessions are unreachable,
//! and expire in Redis on their own).

use std::error::Error as _;
use std::time::Duration;

use sesame::SecretKey;
use sesame::redis::{BackendError, BackendErrorKind, RedisSessions};

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Cart {
    items: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url =
        std::env::var("SESAME_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_string());
    let sessions = RedisSessions::<Cart>::builder(&url)
        .secret_key(SecretKey::generate())
        .idle_timeout(Duration::from_secs(30 * 60))
        .connect_timeout(Duration::from_secs(1))
        .key_prefix("sesame-example")
        .build()?;

    // The first write tells whether Redis is there (and why not).
    let (token, handle) = match sessions.create(Cart::default()).await {
        Ok(created) => created,
        Err(e) => {
            let cause = e.source().and_then(|c| c.downcast_ref::<BackendError>());
            let why = cause.map_or_else(|| e.to_string(), ToString::to_string);
            let hint = if cause.is_some_and(|c| c.kind() == BackendErrorKind::Auth) {
                "check the password in SESAME_REDIS_URL (redis://:password@host:port/)"
            } else {
                "start one (`redis-server`) or point SESAME_REDIS_URL at one"
            };
            // The URL is not printed: it may hold a password.
            eprintln!(
                "cannot use the Redis at SESAME_REDIS_URL (default redis://127.0.0.1:6379/): {why}\n{hint}"
            );
            std::process::exit(2);
        }
    };
    println!("created session {handle} in Redis");
    let ready = sessions.wait_ready(Duration::from_secs(5)).await;
    println!(
        "invalidation channel subscribed: {ready}; keyspace notifications: {}",
        sessions.keyspace_notifications()
    );

    // Versioned, atomic updates: concurrent writers from any server all land.
    sessions
        .update(&token, |cart| cart.items.push("teapot".into()))
        .await?;
    println!("cart: {:?}", sessions.get(&token).await?.map(|c| c.items));

    // Log in: a new token everywhere, the old one dead on every server.
    let alice = "alice".to_string();
    let old = token;
    let token = sessions.login(&old, alice.clone()).await?;
    assert_eq!(sessions.validate(&old).await?, None);
    println!(
        "alice logged in; cart kept: {:?}",
        sessions.get(&token).await?.map(|c| c.items)
    );

    // A second device, a logout, then "log out everywhere".
    let (phone, _) = sessions.create(Cart::default()).await?;
    let phone = sessions.login(&phone, alice.clone()).await?;
    println!(
        "alice has {} session(s)",
        sessions.sessions_of(&alice).await?.len()
    );
    assert!(sessions.logout(&phone).await?);
    let ended = sessions.revoke_user(&alice).await?;
    println!("log out everywhere ended {ended} session(s)");
    assert_eq!(sessions.validate(&token).await?, None);

    let stats = sessions.stats().await?;
    println!(
        "stats: {} created, {} rotated, {} destroyed, {} revoked, {} live in Redis",
        stats.created, stats.rotated, stats.destroyed, stats.revoked, stats.live
    );
    let redis = sessions.redis_stats();
    println!(
        "redis: {} reads went to Redis, {} copies cached, {} invalidations",
        redis.fetches, redis.cached, redis.invalidations
    );
    Ok(())
}
