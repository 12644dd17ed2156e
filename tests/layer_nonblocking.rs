//! The session layer never blocks a runtime worker on the store's I/O
//! (issue 12, item 1). The demo on Redis, on a 2-worker runtime of its own;
//! Redis frozen with SIGSTOP (sockets open, no answers: a hung host); 32
//! requests with unknown but well-formed cookies in flight, each of which
//! the layer must check with Redis. Meanwhile `GET /login`, which needs no
//! session, answers within 250 ms, and every Redis-bound request answers
//! `503` within the store's I/O timeout plus slack.
//!
//! Before the layer awaited its store, each of those requests held one of
//! the two workers for a whole I/O timeout: `/login` waited behind them.

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
use sesame::SessionToken;
use support::Http;

use redis_support::RedisServer;

/// The demo's Redis I/O timeout (`sesame::redis` default).
const IO_TIMEOUT: Duration = sesame::redis::DEFAULT_IO_TIMEOUT;
/// A request that opens a new connection to the frozen server first
/// spends the connect timeout in the client's handshake (the kernel
/// accepts the TCP connection; the hello is never answered), then the I/O
/// timeout on the command.
const CONNECT_TIMEOUT: Duration = sesame::redis::DEFAULT_CONNECT_TIMEOUT;
/// Scheduling slack on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(500);
const IN_FLIGHT: usize = 32;

#[test]
fn a_frozen_redis_blocks_no_worker() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("sesame-nonblocking-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("secret.key");
    let vars: HashMap<&str, OsString> = HashMap::from([
        ("SESAME_REDIS_URL", OsString::from(redis.url())),
        ("SESAME_SECRET_FILE", key.as_os_str().to_owned()),
    ]);
    let config = demo::Config::from_vars(|name| vars.get(name).cloned()).expect("valid settings");

    // The server's runtime: two workers, as on the 2-core target.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = {
        let _in = server.enter();
        demo::start(&config).expect("demo starts")
    };
    assert!(started.redis.is_some(), "SESAME_REDIS_URL selects Redis");
    let listener = server
        .block_on(tokio::net::TcpListener::bind(SocketAddr::from((
            [127, 0, 0, 1],
            0,
        ))))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    server.spawn(demo::serve(listener, started, std::future::pending()));

    // The client's runtime: this thread, apart from the server's workers.
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = Http::new(addr);
    client.block_on(async {
        // Up: an unknown cookie is no session; `/login` answers.
        let stranger = SessionToken::generate();
        let r = http.get("/api/me", Some(stranger.as_str())).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(http.get("/login", None).await.status, StatusCode::OK);

        // Dropped (SIGCONT) before the server runtime, also on failure.
        let _frozen = redis.freeze();
        let start = Instant::now();
        let mut slow = tokio::task::JoinSet::new();
        for _ in 0..IN_FLIGHT {
            let http = http.clone();
            slow.spawn(async move {
                let token = SessionToken::generate();
                let r = http.get("/api/me", Some(token.as_str())).await;
                (r.status, start.elapsed())
            });
        }
        // Let them all reach the server and the store.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let asked = Instant::now();
        let login =
            tokio::time::timeout(Duration::from_millis(250), http.get("/login", None)).await;
        let took = asked.elapsed();
        let login = login.unwrap_or_else(|_| {
            panic!("GET /login did not answer within 250 ms with Redis frozen ({took:?})")
        });
        assert_eq!(login.status, StatusCode::OK);
        eprintln!("GET /login with {IN_FLIGHT} requests stuck on Redis: {took:?}");

        let (mut fastest, mut slowest) = (Duration::MAX, Duration::ZERO);
        while let Some(done) = slow.join_next().await {
            let (status, elapsed) = done.unwrap();
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "fails closed");
            fastest = fastest.min(elapsed);
            slowest = slowest.max(elapsed);
        }
        eprintln!(
            "{IN_FLIGHT} x 503 in {fastest:?} ..= {slowest:?} \
             (connect timeout {CONNECT_TIMEOUT:?}, I/O timeout {IO_TIMEOUT:?})"
        );
        assert!(
            slowest <= CONNECT_TIMEOUT + IO_TIMEOUT + SLACK,
            "503 within the store's timeouts: {slowest:?}"
        );
    });
    server.shutdown_background();
    let _ = std::fs::remove_dir_all(&dir);
}
