//! End to end on actix-web: the actix demo's routes (the very file
//! `cargo run --example actix_demo --features actix` serves) behind
//! `sesame::actix::SessionMiddleware`, in a real `actix_web::HttpServer`
//! on an ephemeral loopback port, driven over TCP by a real HTTP client
//! that handles cookies by hand. The scenarios of `tests/demo_e2e.rs`
//! that apply, on the in-process store; login, logout and "log out
//! everywhere" also on Redis (a real `redis-server`, tests/redis_support).

#[allow(dead_code)] // `main` and `/healthz` are the binary's
#[path = "../examples/actix_demo.rs"]
mod demo;
#[cfg(feature = "redis")]
mod redis_support;
mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use reqwest::header::{COOKIE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use sesame::actix::{Session, SessionMiddleware};
use sesame::{ManualClock, Sessions};
use support::{Http, NAME};

use demo::{DemoSessions, DemoStore};

/// A demo server on its own actix system thread; stopped (and joined) on
/// drop, so a failing test leaves nothing running.
struct Server {
    http: Http,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The stop command is sent when `stop` is called; its future only
        // waits for the workers, which the join below does.
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A handler whose session type no middleware gives: a wiring bug.
async fn mismatched(session: Session<Sessions<u32>>) -> Result<String, sesame::Error> {
    Ok(format!("{:?}", session.get().await?))
}

/// Serves the demo's routes (and `/mismatch`) behind `middleware`.
fn serve<S: DemoStore>(middleware: SessionMiddleware<S>) -> Server {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(middleware.clone())
                    .wrap(demo::csrf())
                    .configure(demo::routes::<S>)
                    .route("/mismatch", web::get().to(mismatched))
            })
            .workers(2)
            .disable_signals()
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind an ephemeral loopback port");
            let addr = server.addrs()[0];
            let server = server.run();
            tx.send((addr, server.handle())).expect("the test waits");
            server.await.expect("server runs");
        });
    });
    let (addr, handle) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the server starts");
    Server {
        http: Http::new(addr),
        handle,
        thread: Some(thread),
    }
}

fn engine() -> DemoSessions {
    Sessions::builder().build().expect("engine")
}

fn start() -> (Server, DemoSessions) {
    let sessions = engine();
    (serve(SessionMiddleware::new(sessions.clone())), sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_write_sets_a_secure_host_only_cookie_and_reads_it_back() {
    let (server, sessions) = start();
    let http = &server.http;
    let r = http.get("/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.visits(), 1);
    let cookie = r
        .session_cookie()
        .expect("the first visit creates a session");
    let mut parts = cookie.split("; ");
    let token = parts
        .next()
        .unwrap()
        .strip_prefix(&format!("{NAME}="))
        .unwrap();
    assert_eq!(token.len(), 43);
    let attrs: HashSet<&str> = parts.collect();
    assert_eq!(
        attrs,
        HashSet::from(["HttpOnly", "SameSite=Lax", "Secure", "Path=/"]),
        "no Domain, no Max-Age/Expires (browser-session cookie): {cookie}"
    );
    assert!(
        r.no_store(),
        "a response setting the cookie is not cacheable"
    );
    let token = r.token().unwrap();
    for n in 2..=3 {
        let r = http.get("/", Some(&token)).await;
        assert_eq!(r.visits(), n, "the data is read back");
        assert!(
            r.set_cookies().is_empty(),
            "an unchanged session sets no cookie"
        );
        assert!(r.no_store(), "the page shows this session's count");
    }
    let other = http.get("/", None).await;
    assert_eq!(other.visits(), 1, "another client has its own count");
    assert_eq!(sessions.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_never_write_create_nothing() {
    let (server, sessions) = start();
    let http = &server.http;
    let reads = [
        ("/login", StatusCode::OK),
        ("/protected", StatusCode::SEE_OTHER),
        ("/api/me", StatusCode::UNAUTHORIZED),
        ("/api/sessions", StatusCode::UNAUTHORIZED),
    ];
    for (path, status) in reads {
        let r = http.get(path, None).await;
        assert_eq!(r.status, status, "{path}");
        assert!(r.set_cookies().is_empty(), "{path} sets no cookie");
        assert!(!r.no_store(), "{path} is not marked no-store");
    }
    let r = http.post("/logout", None, "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.set_cookies().is_empty(), "no cookie to clear");
    let r = http
        .send(http.request(Method::DELETE, "/api/sessions/00000000deadbeef", None))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.set_cookies().is_empty());
    assert_eq!(sessions.len(), 0);
    assert_eq!(sessions.stats().created, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_rotates_the_id_binds_the_user_and_keeps_the_data() {
    let (server, sessions) = start();
    let http = &server.http;
    let anon = http.get("/", None).await.token().unwrap();
    let r = http
        .post("/login", Some(&anon), "username=alice&password=wonderland")
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/protected"));
    assert!(r.no_store());
    let user = r.token().expect("login sets a new cookie");
    assert_ne!(user, anon, "the ID changes at login");

    let old = http.get("/protected", Some(&anon)).await;
    assert_eq!(
        old.status,
        StatusCode::SEE_OTHER,
        "the pre-login token is refused"
    );
    assert!(old.set_cookies().is_empty(), "a dead cookie is left alone");
    let page = http.get("/protected", Some(&user)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<strong id=\"user\">alice</strong>"));
    let me = http.get("/api/me", Some(&user)).await.json();
    assert_eq!(me["user"], "alice");
    assert_eq!(
        http.get("/", Some(&user)).await.visits(),
        2,
        "the data moved"
    );
    assert_eq!(sessions.len(), 1);

    // A wrong password changes nothing.
    let r = http
        .post("/login", Some(&user), "username=alice&password=nope")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.set_cookies().is_empty());
    assert_eq!(
        http.get("/api/me", Some(&user)).await.json()["user"],
        "alice"
    );

    // Without a session, login creates one already logged in.
    let bob = http.login("bob", "builder").await;
    assert_eq!(http.get("/api/me", Some(&bob)).await.json()["user"], "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_clears_the_cookie_and_the_old_token_is_refused() {
    let (server, sessions) = start();
    let http = &server.http;
    let token = http.login("alice", "wonderland").await;
    let r = http.post("/logout", Some(&token), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.clears(), "{:?}", r.set_cookies());
    assert!(r.no_store());
    let me = http.get("/api/me", Some(&token)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert!(me.set_cookies().is_empty());
    assert!(sessions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_everywhere_ends_the_users_other_sessions_only() {
    let (server, sessions) = start();
    let http = &server.http;
    let a = http.login("alice", "wonderland").await;
    let b = http.login("alice", "wonderland").await;
    let bob = http.login("bob", "builder").await;
    let list = http.get("/api/sessions", Some(&a)).await.json();
    let list = list["sessions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);

    let r = http.post("/logout-all", Some(&a), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.clears());
    for t in [&a, &b] {
        let me = http.get("/api/me", Some(t)).await;
        assert_eq!(
            me.status,
            StatusCode::UNAUTHORIZED,
            "alice's sessions ended"
        );
    }
    assert_eq!(http.get("/api/me", Some(&bob)).await.json()["user"], "bob");
    assert_eq!(sessions.len(), 1);

    // Ending one session by its handle: one's own only.
    let c = http.login("alice", "wonderland").await;
    let d = http.login("alice", "wonderland").await;
    let list = http.get("/api/sessions", Some(&c)).await.json();
    let other = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/sessions/{other}");
    let r = http
        .send(http.request(Method::DELETE, &path, Some(&bob)))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "not bob's to end");
    let r = http
        .send(http.request(Method::DELETE, &path, Some(&c)))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        http.get("/api/me", Some(&d)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(http.get("/api/me", Some(&c)).await.json()["user"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_after_rotates_the_token_when_due() {
    let clock = ManualClock::new();
    let sessions: DemoSessions = Sessions::builder()
        .clock(clock.clone())
        .build()
        .expect("engine");
    let middleware = SessionMiddleware::new(sessions.clone()).renew_after(Duration::from_secs(300));
    let server = serve(middleware);
    let http = &server.http;
    let first = http.get("/", None).await.token().unwrap();
    clock.advance(Duration::from_secs(299));
    let r = http.get("/", Some(&first)).await;
    assert!(r.set_cookies().is_empty(), "not due yet");
    clock.advance(Duration::from_secs(2));
    let r = http.get("/", Some(&first)).await;
    assert_eq!(r.visits(), 3);
    assert!(r.no_store());
    let renewed = r.token().expect("due: a new token");
    assert_ne!(renewed, first);
    assert!(
        sessions.validate(&first).is_none(),
        "the old token is refused"
    );
    let r = http.get("/", Some(&renewed)).await;
    assert_eq!(r.visits(), 4, "same session, new token");
    assert!(r.set_cookies().is_empty(), "the new token is fresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_cookies_give_no_500_and_no_session() {
    let (server, sessions) = start();
    let http = &server.http;
    let live = http.login("alice", "wonderland").await;
    let long = "A".repeat(4096);
    let many = format!("{NAME}=x; ").repeat(100);
    let values: Vec<HeaderValue> = vec![
        HeaderValue::from_static("__Host-id="),
        HeaderValue::from_static("__Host-id=not-a-token"),
        HeaderValue::from_str(&format!("{NAME}={}", "A".repeat(43))).unwrap(),
        HeaderValue::from_str(&format!("{NAME}={}A", live)).unwrap(),
        HeaderValue::from_str(&format!("{NAME}={long}")).unwrap(),
        HeaderValue::from_str(&many).unwrap(),
        HeaderValue::from_bytes(b"__Host-id=\xff\xfe\x80abc").unwrap(),
        HeaderValue::from_static(";;;==;__Host-id;=x"),
        HeaderValue::from_str(&format!("{}={live}", NAME.to_lowercase())).unwrap(),
    ];
    for value in values {
        let me = http
            .send(
                http.request(Method::GET, "/api/me", None)
                    .header(COOKIE, value.clone()),
            )
            .await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{value:?}");
        assert!(
            me.set_cookies().is_empty(),
            "{value:?}: the cookie is left alone"
        );
        let r = http
            .send(
                http.request(Method::GET, "/", None)
                    .header(COOKIE, value.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{value:?}");
        assert_eq!(r.visits(), 1, "{value:?}: a new session, not someone's");
    }
    assert!(sessions.stats().rejected > 0, "rejections are counted");
    // A hostile value next to the live one does not hide it.
    let both = format!("{NAME}=junk; {NAME}={live}");
    let me = http
        .send(
            http.request(Method::GET, "/api/me", None)
                .header(COOKIE, both),
        )
        .await;
    assert_eq!(me.json()["user"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_cookie_is_no_session_left_alone_and_counted() {
    let clock = ManualClock::new();
    let sessions: DemoSessions = Sessions::builder()
        .clock(clock.clone())
        .idle_timeout(Duration::from_secs(60))
        .reaper_interval(None)
        .build()
        .expect("engine");
    let server = serve(SessionMiddleware::new(sessions.clone()));
    let http = &server.http;
    let alice = http.login("alice", "wonderland").await;
    clock.advance(Duration::from_secs(59));
    assert_eq!(
        http.get("/api/me", Some(&alice)).await.status,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(61));
    let rejected = sessions.stats().rejected;
    let r = http.get("/api/me", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.set_cookies().is_empty(), "a dead cookie is left alone");
    assert_eq!(sessions.stats().rejected, rejected + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_answers_503_with_retry_after() {
    // Logged-in sessions are never evicted for room: fill the store with
    // them (one user, no per-user limit), and a new visitor's session
    // cannot be created.
    let sessions: DemoSessions = Sessions::builder()
        .max_sessions(4)
        .unlimited_sessions_per_user()
        .build()
        .expect("engine");
    let server = serve(SessionMiddleware::new(sessions.clone()));
    let http = &server.http;
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(http.login("alice", "wonderland").await);
    }
    assert_eq!(sessions.len(), 4);
    let r = http.get("/", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.headers.get(RETRY_AFTER),
        Some(&HeaderValue::from_static("1"))
    );
    assert!(r.no_store());
    assert!(r.set_cookies().is_empty());
    assert_eq!(r.body, "service unavailable", "a fixed body");
    let r = http
        .post("/login", None, "username=bob&password=builder")
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    // Existing sessions still work.
    assert_eq!(http.get("/", Some(&tokens[0])).await.visits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_of_another_session_type_gets_500_naming_nothing() {
    let (server, _) = start();
    let r = server.http.get("/mismatch", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.body,
        "no session: session type mismatch (see the server log)"
    );
    // The server keeps serving.
    assert_eq!(server.http.get("/", None).await.status, StatusCode::OK);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_logout_and_logout_everywhere_on_redis() {
    use redis_support::RedisServer;
    use sesame::redis::RedisSessions;

    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let store: RedisSessions<demo::Visits, String> = RedisSessions::builder(&redis.url())
        .secret_key(sesame::SecretKey::generate())
        .build()
        .expect("valid options");
    assert!(store.wait_ready(Duration::from_secs(5)).await, "subscribed");
    let server = serve(SessionMiddleware::new(store.clone()));
    let http = &server.http;

    let anon = http.get("/", None).await;
    assert_eq!(anon.visits(), 1);
    let anon = anon.token().expect("the first write sets the cookie");
    assert_eq!(
        http.get("/", Some(&anon)).await.visits(),
        2,
        "read back from Redis"
    );
    let r = http
        .post("/login", Some(&anon), "username=alice&password=wonderland")
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let user = r.token().expect("login sets a new cookie");
    assert_ne!(user, anon);
    assert_eq!(
        http.get("/protected", Some(&anon)).await.status,
        StatusCode::SEE_OTHER,
        "the pre-login token is refused"
    );
    assert_eq!(
        http.get("/api/me", Some(&user)).await.json()["user"],
        "alice"
    );
    assert_eq!(
        http.get("/", Some(&user)).await.visits(),
        3,
        "the data moved"
    );

    let r = http.post("/logout", Some(&user), "").await;
    assert!(r.clears());
    assert_eq!(
        http.get("/api/me", Some(&user)).await.status,
        StatusCode::UNAUTHORIZED
    );

    let a = http.login("alice", "wonderland").await;
    let b = http.login("alice", "wonderland").await;
    let bob = http.login("bob", "builder").await;
    let r = http.post("/logout-all", Some(&a), "").await;
    assert!(r.clears());
    for t in [&a, &b] {
        assert_eq!(
            http.get("/api/me", Some(t)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(http.get("/api/me", Some(&bob)).await.json()["user"], "bob");

    // Redis gone: a request that needs it is 503 with Retry-After, and the
    // client's cookie is left alone (never a session that was not checked,
    // never a cookie cleared because the store was down).
    redis.kill();
    for token in [None, Some(bob.as_str())] {
        let r = http.get("/", token).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{token:?}");
        assert_eq!(
            r.headers.get(RETRY_AFTER),
            Some(&HeaderValue::from_static("1"))
        );
        assert!(r.set_cookies().is_empty(), "{token:?}");
        assert_eq!(r.body, "service unavailable");
    }
}

/// The actix demo runs sesame's CSRF guard as middleware: a state-changing
/// request from another origin, or one the browser marks `cross-site`, is
/// an empty `403` and changes nothing; a same-origin one, one without
/// either header (curl) and a cross-site `GET` pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_state_changes_are_refused() {
    let (server, sessions) = start();
    let http = &server.http;
    let token = http.login("alice", "wonderland").await;
    let post = |headers: &[(&str, String)]| {
        let mut rb = http.request(Method::POST, "/logout", Some(&token));
        for (name, value) in headers {
            rb = rb.header(*name, value);
        }
        rb
    };
    for headers in [
        vec![("origin", "https://evil.example".to_owned())],
        vec![("sec-fetch-site", "cross-site".to_owned())],
        vec![("origin", "null".to_owned())],
    ] {
        let r = http.send(post(&headers)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(r.body.is_empty());
        assert_eq!(sessions.len(), 1, "nothing changed: {headers:?}");
    }
    let cross_site_get = http
        .request(Method::GET, "/api/me", Some(&token))
        .header("sec-fetch-site", "cross-site");
    assert_eq!(http.send(cross_site_get).await.status, StatusCode::OK);
    let own = http.base().trim_end_matches('/').to_owned();
    let r = http.send(post(&[("origin", own)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "same origin passes");
    assert_eq!(sessions.len(), 0, "logged out");
}

/// "Sign out of all other devices" on actix: the other session of the user
/// ends, this one and other users' stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_others_keeps_only_this_session() {
    let (server, sessions) = start();
    let http = &server.http;
    let phone = http.login("alice", "wonderland").await;
    let laptop = http.login("alice", "wonderland").await;
    let bob = http.login("bob", "builder").await;
    let r = http.post("/logout-others", Some(&laptop), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        http.get("/api/me", Some(&phone)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        http.get("/api/me", Some(&laptop)).await.status,
        StatusCode::OK
    );
    assert_eq!(http.get("/api/me", Some(&bob)).await.status, StatusCode::OK);
    assert_eq!(sessions.len(), 2);
    let anonymous = http.post("/logout-others", None, "").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}
