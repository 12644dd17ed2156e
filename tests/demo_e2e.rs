//! End to end: the demo's router (the very file `cargo run --example demo`
//! runs) on an ephemeral loopback port, driven over TCP by a real HTTP
//! client.

#[allow(dead_code)] // `main` and the env helper are the binary's
#[path = "../examples/demo.rs"]
mod demo;
mod support;

use std::collections::HashSet;
use std::time::Duration;

use reqwest::header::{COOKIE, HeaderValue};
use reqwest::{Method, StatusCode};
use sesame::{ManualClock, Sessions};
use support::{Http, LogBuffer, NAME, serve};

use demo::DemoSessions;

fn engine() -> DemoSessions {
    Sessions::builder().build().expect("engine")
}

async fn start() -> (Http, DemoSessions) {
    let sessions = engine();
    (serve(demo::router(sessions.clone())).await, sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_write_sets_a_secure_host_only_cookie() {
    let (http, _) = start().await;
    let r = http.get("/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r
        .session_cookie()
        .expect("the first visit creates a session");
    let mut parts = cookie.split("; ");
    let pair = parts.next().unwrap();
    let token = pair.strip_prefix(&format!("{NAME}=")).unwrap();
    assert_eq!(token.len(), 43);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_never_write_create_nothing() {
    let (http, sessions) = start().await;
    let reads = [
        ("/healthz", StatusCode::OK),
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
    assert!(r.set_cookies().is_empty());
    let r = http
        .send(http.request(Method::DELETE, "/api/sessions/00000000deadbeef", None))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.set_cookies().is_empty());
    let health = http.get("/healthz", None).await.json();
    assert_eq!(health["created"], 0);
    assert_eq!(sessions.len(), 0);
    assert_eq!(sessions.stats().created, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visits_are_counted_per_session() {
    let (http, sessions) = start().await;
    let first = http.get("/", None).await;
    assert_eq!(first.visits(), 1);
    let a = first.token().unwrap();
    for n in 2..=4 {
        let r = http.get("/", Some(&a)).await;
        assert_eq!(r.visits(), n);
        assert!(
            r.set_cookies().is_empty(),
            "an unchanged session sets no cookie"
        );
        assert!(r.no_store(), "the page shows this session's count");
    }
    let b = http.get("/", None).await;
    assert_eq!(b.visits(), 1, "another client has its own count");
    assert_ne!(b.token().unwrap(), a);
    assert_eq!(sessions.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_rotates_the_id_and_keeps_the_data() {
    let (http, _) = start().await;
    let anon = http.get("/", None).await.token().unwrap();
    let r = http
        .post("/login", Some(&anon), "username=alice&password=wonderland")
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/protected"));
    assert!(r.no_store());
    let user = r.token().expect("login sets a new cookie");
    assert_ne!(user, anon, "the ID changes at login");

    let page = http.get("/protected", Some(&user)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(">alice<"));

    let old = http.get("/protected", Some(&anon)).await;
    assert_eq!(
        old.status,
        StatusCode::SEE_OTHER,
        "the pre-login ID is dead"
    );
    assert_eq!(old.location(), Some("/login"));
    assert_eq!(
        old.session_cookie(),
        None,
        "and its cookie is left alone: a clearing cookie could land after \
         the login's response (a racing request) and log the user out"
    );

    let home = http.get("/", Some(&user)).await;
    assert_eq!(home.visits(), 2, "the data moved with the session");
    let me = http.get("/api/me", Some(&user)).await.json();
    assert_eq!(me["user"], "alice");
    let (created, expires) = (
        me["created"].as_u64().unwrap(),
        me["expires"].as_u64().unwrap(),
    );
    assert!(
        (1799..=1801).contains(&(expires - created)),
        "idle timeout 30 min"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_without_a_session_creates_one_logged_in() {
    let (http, sessions) = start().await;
    let bob = http.login("bob", "builder").await;
    let me = http.get("/api/me", Some(&bob)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["user"], "bob");
    assert_eq!(sessions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_is_401_and_leaves_the_session_alone() {
    let (http, sessions) = start().await;
    let anon = http.get("/", None).await.token().unwrap();
    for form in [
        "username=alice&password=builder",
        "username=alice&password=",
        "username=mallory&password=wonderland",
        "username=alice&password=wonderland2",
    ] {
        let r = http.post("/login", Some(&anon), form).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{form}");
        assert!(r.set_cookies().is_empty(), "{form}: no cookie change");
    }
    assert_eq!(
        http.get("/api/me", Some(&anon)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(http.get("/", Some(&anon)).await.visits(), 2, "same session");
    let r = http
        .post("/login", None, "username=bob&password=wonderland")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.set_cookies().is_empty());
    assert_eq!(
        sessions.stats().created,
        1,
        "a failed login creates nothing"
    );
    assert_eq!(sessions.stats().rotated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_destroys_the_session_and_clears_the_cookie() {
    let (http, sessions) = start().await;
    let alice = http.login("alice", "wonderland").await;
    let r = http.post("/logout", Some(&alice), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/"));
    assert!(r.clears());
    assert!(r.no_store());
    let cookie = r.session_cookie().unwrap();
    assert!(
        cookie.contains("; Secure") && cookie.contains("; Path=/"),
        "{cookie}"
    );
    assert_eq!(
        http.get("/protected", Some(&alice)).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(sessions.len(), 0);
    assert_eq!(sessions.stats().destroyed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_all_ends_the_users_other_clients_only() {
    let (http, _) = start().await;
    let laptop = http.login("alice", "wonderland").await;
    let phone = http.login("alice", "wonderland").await;
    let bob = http.login("bob", "builder").await;
    assert_eq!(
        http.get("/protected", Some(&phone)).await.status,
        StatusCode::OK
    );

    let r = http.post("/logout-all", Some(&laptop), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.clears());
    for token in [&laptop, &phone] {
        let r = http.get("/protected", Some(token)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.location(), Some("/login"));
    }
    assert_eq!(
        http.get("/protected", Some(&bob)).await.status,
        StatusCode::OK
    );
    let anon = http.get("/", None).await.token().unwrap();
    let r = http.post("/logout-all", Some(&anon), "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "not logged in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_api_lists_and_ends_only_the_users_own() {
    let (http, _) = start().await;
    let laptop = http.login("alice", "wonderland").await;
    let phone = http.login("alice", "wonderland").await;
    let bob = http.login("bob", "builder").await;

    let r = http.get("/api/sessions", Some(&laptop)).await;
    assert_eq!(r.status, StatusCode::OK);
    for token in [&laptop, &phone, &bob] {
        assert!(!r.body.contains(token.as_str()), "never a token");
    }
    let list = r.json();
    let list = list["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    for s in list {
        assert!(s["created"].as_u64().unwrap() <= s["last_seen"].as_u64().unwrap());
    }
    let other = list.iter().find(|s| s["current"] == false).unwrap();
    let other = other["handle"].as_str().unwrap().to_owned();
    let bobs = http.get("/api/sessions", Some(&bob)).await.json();
    let bobs = bobs["sessions"][0]["handle"].as_str().unwrap().to_owned();

    let delete = |token: &str, handle: &str| {
        http.request(
            Method::DELETE,
            &format!("/api/sessions/{handle}"),
            Some(token),
        )
    };
    for handle in [bobs.as_str(), "00000000deadbeef", "not-a-handle"] {
        let r = http.send(delete(&laptop, handle)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{handle}");
    }
    assert_eq!(
        http.get("/protected", Some(&bob)).await.status,
        StatusCode::OK
    );

    let r = http.send(delete(&laptop, &other)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.set_cookies().is_empty(), "the caller's own cookie stays");
    assert_eq!(
        http.get("/protected", Some(&phone)).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        http.get("/protected", Some(&laptop)).await.status,
        StatusCode::OK
    );
    let r = http.send(delete(&laptop, &other)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "already ended");

    let list = http.get("/api/sessions", Some(&laptop)).await.json();
    let own = list["sessions"][0]["handle"].as_str().unwrap().to_owned();
    let r = http.send(delete(&laptop, &own)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.clears(), "ending the current session clears its cookie");
}

/// Serves the demo as `demo::serve` does: with the connection's address
/// (`ConnectInfo`), which the session layer records as the device's.
async fn start_with_addresses() -> (Http, DemoSessions) {
    let sessions = engine();
    let app = demo::router(sessions.clone())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = tokio::net::TcpListener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind an ephemeral loopback port");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("server runs");
    });
    (Http::new(addr), sessions)
}

/// Logs in as alice with `agent` as the browser's `User-Agent`.
async fn login_as_alice_with(http: &Http, agent: &str) -> String {
    let rb = http
        .request(Method::POST, "/login", None)
        .header("user-agent", agent)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=alice&password=wonderland");
    let r = http.send(rb).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "alice logs in");
    r.token().expect("login sets the session cookie")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_listed_and_logout_others_keeps_only_this_one() {
    let (http, sessions) = start_with_addresses().await;
    let phone = login_as_alice_with(&http, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)").await;
    let laptop = login_as_alice_with(&http, "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0").await;
    let bob = http.login("bob", "builder").await;

    // Both of alice's sessions are listed, each with its own device.
    let list = http.get("/api/sessions", Some(&laptop)).await.json();
    let list = list["sessions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    let mut agents: Vec<_> = list
        .iter()
        .map(|s| s["user_agent"].as_str().unwrap())
        .collect();
    agents.sort();
    assert_eq!(
        agents,
        [
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)"
        ]
    );
    for s in &list {
        assert_eq!(s["address"], "127.0.0.1", "the connection's address");
    }
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(
        current[0]["user_agent"],
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"
    );
    // The user's page shows them too.
    let page = http.get("/protected", Some(&laptop)).await;
    assert!(page.body.contains("iPhone") && page.body.contains("Firefox/120.0"));
    assert!(page.body.contains("action=\"/logout-others\""));

    // Sign out of all other devices, from the laptop.
    let r = http.post("/logout-others", Some(&laptop), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/protected"));
    assert!(r.session_cookie().is_none(), "the laptop keeps its cookie");
    // The phone's next request is anonymous.
    let r = http.get("/api/me", Some(&phone)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        http.get("/protected", Some(&phone)).await.status,
        StatusCode::SEE_OTHER
    );
    // The laptop is still alice; bob is untouched.
    assert_eq!(
        http.get("/api/me", Some(&laptop)).await.json()["user"],
        "alice"
    );
    assert_eq!(http.get("/api/me", Some(&bob)).await.json()["user"], "bob");
    let list = http.get("/api/sessions", Some(&laptop)).await.json();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(list["sessions"][0]["current"], true);
    // The phone's device went with its session.
    assert_eq!(sessions.device_slots(), 2, "the laptop's and bob's");

    // Not logged in: 401, nothing ended.
    let anon = http.get("/", None).await.token().unwrap();
    let r = http.post("/logout-others", Some(&anon), "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        http.get("/api/me", Some(&laptop)).await.json()["user"],
        "alice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_on_one_session_count_fifty() {
    let (http, sessions) = start().await;
    let token = http.get("/", None).await.token().unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (http, token) = (http.clone(), token.clone());
            tokio::spawn(async move { http.get("/", Some(&token)).await })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.set_cookies().is_empty());
        seen.push(r.visits());
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (2..=51).collect::<Vec<_>>(),
        "each request saw its own increment"
    );
    assert_eq!(sessions.get(token.as_str()).unwrap().count, 51);
    assert_eq!(http.get("/", Some(&token)).await.visits(), 52);
    assert_eq!(sessions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_cookies_give_no_500_and_no_session() {
    let (http, sessions) = start().await;
    let other_engine = Sessions::<()>::new();
    let (foreign, _) = other_engine.create(()).unwrap();
    // Strict text form, but no engine issued it.
    let valid = sesame::SessionToken::generate().as_str().to_owned();
    let big = format!("{NAME}={}", "A".repeat(8 * 1024));
    let many: String =
        (0..500).map(|i| format!("c{i}=v{i}; ")).collect::<String>() + &format!("{NAME}=x");
    let many_ours = format!("{NAME}=garbage; ").repeat(500);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", format!("{NAME}=garbage").into_bytes()),
        ("empty", format!("{NAME}=").into_bytes()),
        ("8 KB value", big.into_bytes()),
        ("500 cookies", many.into_bytes()),
        ("500 of ours", many_ours.into_bytes()),
        (
            "non-UTF-8",
            format!("{NAME}=")
                .into_bytes()
                .into_iter()
                .chain(*b"\xff\xfe\x80\xc3(")
                .collect(),
        ),
        ("non-UTF-8 elsewhere", b"a=\xff; b=\xc3\x28".to_vec()),
        (
            "another engine's token",
            format!("{NAME}={}", foreign.as_str()).into_bytes(),
        ),
        (
            "unknown valid-looking token",
            format!("{NAME}={valid}").into_bytes(),
        ),
        ("padded", format!("{NAME}={}=", &valid[..42]).into_bytes()),
        ("quoted", format!("{NAME}=\"{valid}\"").into_bytes()),
        (
            "wrong case name",
            format!("__host-id={}", foreign.as_str()).into_bytes(),
        ),
    ];
    for (what, header) in &cases {
        let with = |method, path| {
            http.request(method, path, None)
                .header(COOKIE, HeaderValue::from_bytes(header).unwrap())
        };
        let me = http.send(with(Method::GET, "/api/me")).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{what}");
        let page = http.send(with(Method::GET, "/protected")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{what}");
        let home = http.send(with(Method::GET, "/")).await;
        assert_eq!(home.status, StatusCode::OK, "{what}");
        assert_eq!(home.visits(), 1, "{what}: a fresh session, not a found one");
        let fresh = home.token().expect("the write creates a new session");
        assert!(!String::from_utf8_lossy(header).contains(&fresh));
        // A cookie that names no session is left alone (see
        // `sesame::tower`): the home page's new session replaces it.
        assert!(me.set_cookies().is_empty(), "{what}: nothing cleared");
        assert!(!me.no_store(), "{what}: anonymous content");
    }
    // Many separate Cookie headers.
    let mut rb = http.request(Method::GET, "/api/me", None);
    for i in 0..64 {
        rb = rb.header(COOKIE, format!("{NAME}=junk{i}"));
    }
    assert_eq!(http.send(rb).await.status, StatusCode::UNAUTHORIZED);

    let stats = sessions.stats();
    assert_eq!(
        stats.live,
        cases.len() as u64,
        "one session per `/` visit, nothing else"
    );
    assert!(
        stats.rejected >= 3 * 10,
        "rejected lookups are counted: {}",
        stats.rejected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_cookie_is_no_session_cleared_and_counted() {
    let clock = ManualClock::new();
    let sessions: DemoSessions = Sessions::builder()
        .clock(clock.clone())
        .idle_timeout(Duration::from_secs(60))
        .reaper_interval(None)
        .build()
        .unwrap();
    let http = serve(demo::router(sessions.clone())).await;
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
    let health = http.get("/healthz", None).await.json();
    assert_eq!(health["rejected"], rejected + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_state_changes_are_refused() {
    let (http, sessions) = start().await;
    let alice = http.login("alice", "wonderland").await;
    let hostile: [(&str, &str); 5] = [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "https://127.0.0.1.evil.example"),
    ];
    for (name, value) in hostile {
        for path in ["/logout", "/logout-all", "/login"] {
            let rb = http
                .request(Method::POST, path, Some(&alice))
                .header(name, value)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("username=bob&password=builder");
            let r = http.send(rb).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{path} with {name}: {value}"
            );
            assert!(r.set_cookies().is_empty());
        }
        let rb = http
            .request(
                Method::DELETE,
                "/api/sessions/00000000deadbeef",
                Some(&alice),
            )
            .header(name, value);
        assert_eq!(http.send(rb).await.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        http.get("/api/me", Some(&alice)).await.json()["user"],
        "alice"
    );
    assert_eq!(sessions.len(), 1);

    // A same-origin form post passes.
    let origin = format!("http://{}", http_authority(&http));
    let rb = http
        .request(Method::POST, "/logout", Some(&alice))
        .header("origin", origin)
        .header("sec-fetch-site", "same-origin");
    let r = http.send(rb).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.clears());
    assert_eq!(sessions.len(), 0);
}

fn http_authority(http: &Http) -> String {
    let url = http.request(Method::GET, "/", None).build().unwrap();
    let url = url.url();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_stats_and_creates_nothing() {
    let (http, sessions) = start().await;
    http.get("/", None).await;
    http.login("bob", "builder").await;
    let r = http.get("/healthz", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let h = r.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["live"], 2);
    assert_eq!(h["anonymous"], 1);
    assert_eq!(h["created"], 2);
    assert_eq!(h["rotated"], 1);
    assert_eq!(sessions.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_log_never_holds_a_token() {
    let log = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .finish();
    // The only test of this binary that installs a subscriber.
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
    let (http, _) = start().await;
    let anon = http.get("/", None).await.token().unwrap();
    let alice = http
        .post("/login", Some(&anon), "username=alice&password=wonderland")
        .await
        .token()
        .unwrap();
    http.post("/login", Some(&alice), "username=alice&password=nope")
        .await;
    http.get("/api/sessions", Some(&alice)).await;
    http.post("/logout", Some(&alice), "").await;
    let text = log.text();
    assert!(
        text.contains("path=\"/login\"") && text.contains("status=303"),
        "{text}"
    );
    assert!(text.contains("failed login"));
    for token in [&anon, &alice] {
        assert!(
            !text.contains(token.as_str()),
            "a token in the log:\n{text}"
        );
    }
    assert!(!text.contains("wonderland"), "nor a password");
}

/// Item 11: the pages built from the session (the user's name, the
/// session's times, the list of sessions) set no cookie, and used to be
/// cacheable: a shared cache could hand one user's page to another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_pages_are_not_cacheable() {
    let (http, _) = start().await;
    let alice = http.login("alice", "wonderland").await;
    for path in ["/protected", "/api/me", "/api/sessions"] {
        let r = http.get(path, Some(&alice)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.body.contains("alice"), "{path}");
        assert!(r.set_cookies().is_empty(), "{path}");
        assert!(r.no_store(), "{path}: {r:?}");
    }
    for path in ["/healthz", "/login"] {
        let r = http.get(path, Some(&alice)).await;
        assert!(!r.no_store(), "{path} does not depend on the session");
    }
}

/// Item 11: the cross-site check compared `Origin` with `Host` after
/// stripping either scheme, so an `https://` page could post to an
/// `http://` app of the same host and port, and back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_check_compares_the_scheme_too() {
    let (http, sessions) = start().await;
    let alice = http.login("alice", "wonderland").await;
    let authority = http_authority(&http);
    let port: u16 = authority.rsplit(':').next().unwrap().parse().unwrap();
    let refused = [
        format!("https://{authority}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        format!("http://localhost:{port}"),
        format!("http://{authority}/"),
        "null".to_owned(),
    ];
    for origin in &refused {
        let rb = http
            .request(Method::POST, "/logout", Some(&alice))
            .header("origin", origin);
        assert_eq!(
            http.send(rb).await.status,
            StatusCode::FORBIDDEN,
            "{origin}"
        );
    }
    assert_eq!(sessions.len(), 1, "nothing logged out");
    let rb = http
        .request(Method::POST, "/logout", Some(&alice))
        .header("origin", format!("http://{authority}"));
    assert_eq!(http.send(rb).await.status, StatusCode::SEE_OTHER);
    assert_eq!(sessions.len(), 0);
}

/// Item 11: an app configured with its public origin (behind a TLS proxy)
/// accepts exactly that origin, over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_public_origin_is_the_only_same_origin() {
    let sessions = engine();
    let ours = demo::Origin::parse("https://app.example").unwrap();
    let http = serve(demo::router_for(sessions.clone(), Some(ours))).await;
    let alice = http.login("alice", "wonderland").await;
    let authority = http_authority(&http);
    let cases: [(Option<&str>, Option<&str>, StatusCode); 12] = [
        (Some("https://app.example"), None, StatusCode::UNAUTHORIZED),
        (
            Some("https://APP.example:443"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (Some("http://app.example"), None, StatusCode::FORBIDDEN),
        (
            Some("https://app.example:8443"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (Some("https://other.example"), None, StatusCode::FORBIDDEN),
        (
            Some(&format!("http://{authority}")),
            None,
            StatusCode::FORBIDDEN,
        ),
        (Some("null"), None, StatusCode::FORBIDDEN),
        (None, Some("same-origin"), StatusCode::UNAUTHORIZED),
        (None, Some("none"), StatusCode::UNAUTHORIZED),
        (None, Some("cross-site"), StatusCode::FORBIDDEN),
        (None, None, StatusCode::UNAUTHORIZED),
        (
            Some("https://app.example"),
            Some("cross-site"),
            StatusCode::FORBIDDEN,
        ),
    ];
    // A wrong password: a request that passes gets `401`, one refused `403`.
    for (origin, site, status) in cases {
        let mut rb = http
            .request(Method::POST, "/login", Some(&alice))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("username=alice&password=nope");
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        if let Some(s) = site {
            rb = rb.header("sec-fetch-site", s);
        }
        let r = http.send(rb).await;
        assert_eq!(
            r.status, status,
            "Origin {origin:?}, Sec-Fetch-Site {site:?}"
        );
    }
    assert_eq!(sessions.len(), 1);
}

/// The demo's guard (`demo::csrf_guard`), header by header, with and
/// without a configured origin (`None`: `http://` and the `Host`).
#[test]
fn cross_site_table() {
    use axum::http::{HeaderMap, HeaderValue, Method};
    let https = demo::Origin::parse("https://app.example").unwrap();
    let check =
        |ours: Option<&demo::Origin>, host: &str, origin: Option<&str>, site: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert("host", HeaderValue::from_str(host).unwrap());
            if let Some(o) = origin {
                h.insert("origin", HeaderValue::from_str(o).unwrap());
            }
            if let Some(s) = site {
                h.insert("sec-fetch-site", HeaderValue::from_str(s).unwrap());
            }
            demo::csrf_guard(ours.cloned())
                .check(&Method::POST, &h)
                .is_err()
        };
    let host = "app.example";
    /// Configured origin, `Origin`, `Sec-Fetch-Site`, cross-site?
    type Row<'a> = (
        Option<&'a demo::Origin>,
        Option<&'a str>,
        Option<&'a str>,
        bool,
    );
    let table: [Row; 17] = [
        (Some(&https), Some("https://app.example"), None, false),
        (
            Some(&https),
            Some("https://app.example:443"),
            Some("same-origin"),
            false,
        ),
        (Some(&https), Some("http://app.example"), None, true),
        (
            Some(&https),
            Some("http://app.example"),
            Some("same-origin"),
            true,
        ),
        (Some(&https), Some("https://app.example:444"), None, true),
        (Some(&https), Some("https://evil.example"), None, true),
        (Some(&https), Some("null"), None, true),
        (Some(&https), Some("https://app.example/"), None, true),
        (
            Some(&https),
            Some("https://app.example@evil.example"),
            None,
            true,
        ),
        (Some(&https), None, Some("same-origin"), false),
        (Some(&https), None, Some("cross-site"), true),
        (Some(&https), None, Some("same-site"), true),
        (Some(&https), None, None, false),
        (None, Some("http://app.example"), None, false),
        (None, Some("http://app.example:80"), None, false),
        (None, Some("https://app.example"), None, true),
        (None, Some("http://app.example:8080"), None, true),
    ];
    for (ours, origin, site, cross) in table {
        assert_eq!(
            check(ours, host, origin, site),
            cross,
            "configured {ours:?}, Origin {origin:?}, Sec-Fetch-Site {site:?}"
        );
    }
    assert!(!check(
        None,
        "app.example:8080",
        Some("http://APP.example:8080"),
        None
    ));
    assert!(check(
        None,
        "app.example:8080",
        Some("http://app.example"),
        None
    ));
}

#[test]
fn origins_parse_strictly() {
    for good in [
        "http://a.example",
        "https://a.example:8443",
        "https://[::1]:3000",
        "http://127.0.0.1:3000",
    ] {
        assert!(demo::Origin::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "null",
        "a.example",
        "ftp://a.example",
        "https://",
        "https://a.example/",
        "https://a.example/x",
        "https://a.example?x",
        "https://u@a.example",
        "https://a.example:99999",
        "https://a.example:",
        "//a.example",
    ] {
        assert!(demo::Origin::parse(bad).is_err(), "{bad:?}");
    }
    let vars = |origin: &'static str| {
        move |name: &str| (name == "SESAME_PUBLIC_ORIGIN").then(|| origin.into())
    };
    let config = demo::Config::from_vars(vars("https://demo.example")).unwrap();
    assert_eq!(
        config.public_origin,
        demo::Origin::parse("https://demo.example:443").ok()
    );
    let err = demo::Config::from_vars(vars("demo.example")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SESAME_PUBLIC_ORIGIN: expected http(s)://host[:port], got \"demo.example\""
    );
}
