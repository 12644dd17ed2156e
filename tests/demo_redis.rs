//! Two demo servers on one Redis (`SESAME_REDIS_URL`): a login on one is a
//! login on the other, "log out everywhere" on one ends it on the other
//! within 100 ms, and with Redis gone requests answer `503`.
//!
//! One real `redis-server` (tests/redis_support), two servers started by
//! the demo's own [`demo::start`] and [`demo::serve`] on two ephemeral
//! loopback ports, each with its own store (own near cache, own connections
//! and invalidation subscriber, as two processes would have), driven over
//! TCP by a real HTTP client.

#[allow(dead_code)] // `main` and the env helper are the binary's
#[path = "../examples/demo.rs"]
mod demo;
mod redis_support;
mod support;

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use support::Http;

use redis_support::RedisServer;

/// Starts a demo server on Redis at `url` with the key file `key`.
async fn server(url: &str, key: &std::path::Path) -> Http {
    let vars: HashMap<&str, OsString> = HashMap::from([
        ("SESAME_REDIS_URL", OsString::from(url)),
        ("SESAME_SECRET_FILE", key.as_os_str().to_owned()),
    ]);
    let config = demo::Config::from_vars(|name| vars.get(name).cloned()).expect("valid settings");
    let started = tokio::task::block_in_place(|| demo::start(&config)).expect("demo starts");
    assert!(started.redis.is_some(), "SESAME_REDIS_URL selects Redis");
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(demo::serve(listener, started, std::future::pending()));
    Http::new(addr)
}

/// Polls `check` (every 2 ms) until it holds or `within` passes; the time
/// it took, or `None`.
async fn within(within: Duration, mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn handles(r: &support::Reply) -> Vec<String> {
    r.json()["sessions"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["handle"].as_str().expect("handle").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_demos_on_one_redis_share_logins_and_revocation() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("sesame-demo-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("secret.key");
    let _ = std::fs::remove_file(&key);
    let one = server(&redis.url(), &key).await;
    let two = server(&redis.url(), &key).await;

    // Log in on server 1; the same cookie works on server 2.
    let token = one.login("alice", "wonderland").await;
    let r = one.get("/api/me", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK);
    let handle = r.json()["session"].as_str().unwrap().to_owned();
    let r = two.get("/protected", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "server 2 knows the login");
    assert!(r.body.contains("<strong id=\"user\">alice</strong>"));
    assert!(r.set_cookies().is_empty(), "nothing to change");
    let r = two.get("/api/me", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["user"], "alice");
    assert_eq!(r.json()["session"], handle.as_str(), "the same session");

    // Both list it.
    for http in [&one, &two] {
        let r = http.get("/api/sessions", Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(handles(&r), vec![handle.clone()]);
        assert_eq!(r.json()["sessions"][0]["current"], true);
    }
    // Visits counted on either server land in the one session.
    assert_eq!(one.get("/", Some(&token)).await.visits(), 1);
    assert_eq!(two.get("/", Some(&token)).await.visits(), 2);
    assert_eq!(one.get("/", Some(&token)).await.visits(), 3);

    // Server 1 has the session in its near cache; log out everywhere on
    // server 2, and server 1 refuses within 100 ms.
    assert_eq!(
        one.get("/api/me", Some(&token)).await.status,
        StatusCode::OK
    );
    let r = two.post("/logout-all", Some(&token), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.clears());
    let took = within(Duration::from_millis(100), async || {
        one.get("/api/me", Some(&token)).await.status == StatusCode::UNAUTHORIZED
    })
    .await
    .expect("server 1 refuses the revoked session within 100 ms");
    eprintln!("revocation seen on server 1 after {took:?}");
    assert_eq!(
        one.get("/protected", Some(&token)).await.location(),
        Some("/login")
    );

    // A second login, seen (and cached) by both servers; then Redis dies.
    let token = two.login("bob", "builder").await;
    assert_eq!(one.get("/api/me", Some(&token)).await.json()["user"], "bob");
    assert_eq!(two.get("/api/me", Some(&token)).await.json()["user"], "bob");
    redis.kill();

    // A cookie no server has cached needs Redis: 503 at once, on both.
    let unknown = "A".repeat(43);
    for http in [&one, &two] {
        let r = http.get("/api/me", Some(&unknown)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
        assert!(
            r.set_cookies().is_empty(),
            "a cookie is not cleared for an outage"
        );
        // A first visit cannot create a session: 503, no cookie.
        let r = http.get("/", None).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.set_cookies().is_empty());
    }
    // The cached session: once the server notices the dead subscription
    // (at once for a closed socket), it is no longer served.
    for http in [&one, &two] {
        within(Duration::from_secs(3), async || {
            http.get("/api/me", Some(&token)).await.status == StatusCode::SERVICE_UNAVAILABLE
        })
        .await
        .expect("503 for a cached session once Redis is gone");
        let r = http.get("/protected", Some(&token)).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "not a session, not 500"
        );
        assert!(r.set_cookies().is_empty());
        let r = http.post("/logout", Some(&token), "").await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            r.set_cookies().is_empty(),
            "the cookie stays: nothing ended"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_mode_refuses_to_start_without_a_shared_key() {
    let vars: HashMap<&str, OsString> =
        HashMap::from([("SESAME_REDIS_URL", OsString::from("redis://127.0.0.1:1/"))]);
    let config = demo::Config::from_vars(|name| vars.get(name).cloned()).expect("valid settings");
    let err = demo::start(&config).unwrap_err().to_string();
    assert!(err.contains("SESAME_SECRET_FILE"), "{err}");
}

/// Issue 14 item 5: three demos on one Redis Cluster (six real nodes,
/// `SESAME_REDIS_URL=redis+cluster://...`) share a login, count visits in
/// one session, and "log out everywhere" on one ends it on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_demos_on_one_redis_cluster_share_logins_and_revocation() {
    let Some(cluster) = redis_support::cluster::RedisCluster::start() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("sesame-demo-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("secret.key");
    let _ = std::fs::remove_file(&key);
    let url = format!("redis+cluster://127.0.0.1:{}/", cluster.node(0).port());
    let servers = [
        server(&url, &key).await,
        server(&url, &key).await,
        server(&url, &key).await,
    ];
    let token = servers[0].login("alice", "wonderland").await;
    for http in &servers {
        let r = http.get("/api/me", Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["user"], "alice");
    }
    for (i, http) in servers.iter().enumerate() {
        assert_eq!(http.get("/", Some(&token)).await.visits(), i as u64 + 1);
    }
    let r = servers[2].post("/logout-all", Some(&token), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    for http in &servers[..2] {
        let took = within(Duration::from_secs(1), async || {
            http.get("/api/me", Some(&token)).await.status == StatusCode::UNAUTHORIZED
        })
        .await
        .expect("the revoked session is refused on every demo");
        eprintln!("revocation seen after {took:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
