//! The tower layer and axum extractor over TCP: options (rolling,
//! persistent cookies, renewal, custom names), cookie selection, headers it
//! must keep or override, and failure paths.

mod support;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use reqwest::Method;
use reqwest::header::COOKIE;
use sesame::cookie::{CookieConfig, SameSite};
use sesame::tower::{Session, SessionLayer};
use sesame::{ManualClock, Sessions};
use support::{Http, NAME, serve};

type Counter = Session<u32>;

fn routes() -> Router<()> {
    Router::new()
        .route("/read", get(read))
        .route("/write", get(write))
        .route("/login", post(login))
        .route("/rotate", post(rotate))
        .route("/logout", post(logout))
        .route("/logout-then-write", post(logout_then_write))
        .route("/cached-read", get(cached_read))
        .route("/cached-write", get(cached_write))
        .route("/own-cookie", get(own_cookie))
        .route("/debug", get(debug))
}

async fn debug(s: Counter) -> String {
    format!("{s:?}")
}

async fn read(s: Counter) -> String {
    s.get().map_or("none".to_owned(), |n| n.to_string())
}

async fn write(s: Counter) -> Response {
    match s.update(|n| {
        *n += 1;
        *n
    }) {
        Ok(n) => n.to_string().into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn login(s: Counter) -> StatusCode {
    match s.login("alice".to_owned()) {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn rotate(s: Counter) -> StatusCode {
    match s.rotate() {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::NOT_FOUND,
    }
}

async fn logout(s: Counter) -> String {
    s.logout().to_string()
}

async fn logout_then_write(s: Counter) -> String {
    s.logout();
    s.update(|n| *n = 100)
        .map_or("full".to_owned(), |()| "ok".to_owned())
}

fn public() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    h
}

async fn cached_read(s: Counter) -> (HeaderMap, String) {
    (public(), read(s).await)
}

async fn cached_write(s: Counter) -> (HeaderMap, Response) {
    (public(), write(s).await)
}

async fn own_cookie(s: Counter) -> Response {
    let mut r = write(s).await;
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("theme=dark; Path=/"),
    );
    r
}

async fn start(
    sessions: Sessions<u32>,
    layer: impl FnOnce(SessionLayer<u32>) -> SessionLayer<u32>,
) -> Http {
    let layer = layer(SessionLayer::new(sessions));
    serve(routes().layer(layer)).await
}

fn manual(clock: &ManualClock, idle: u64, absolute: u64) -> Sessions<u32> {
    Sessions::builder()
        .clock(clock.clone())
        .idle_timeout(Duration::from_secs(idle))
        .absolute_timeout(Duration::from_secs(absolute))
        .reaper_interval(None)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_find_the_session_and_set_nothing() {
    let sessions = Sessions::new();
    let http = start(sessions.clone(), |l| l).await;
    assert_eq!(http.get("/read", None).await.body, "none");
    let w = http.get("/write", None).await;
    let t = w.token().unwrap();
    assert!(w.no_store());
    let r = http.get("/read", Some(&t)).await;
    assert_eq!(r.body, "1");
    assert!(r.set_cookies().is_empty());
    assert_eq!(sessions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_resends_the_cookie_while_the_session_lives() {
    let http = start(Sessions::new(), |l| l.rolling(true)).await;
    let none = http.get("/read", None).await;
    assert!(none.set_cookies().is_empty(), "rolling never creates");
    let t = http.get("/write", None).await.token().unwrap();
    let r = http.get("/read", Some(&t)).await;
    assert_eq!(r.token().as_deref(), Some(t.as_str()), "same token re-sent");
    assert!(r.no_store());
    http.post("/logout", Some(&t), "").await;
    let r = http.get("/read", Some(&t)).await;
    assert!(
        r.clears(),
        "a dead session's cookie is cleared, not re-sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_cookie_max_age_is_the_remaining_lifetime() {
    let clock = ManualClock::new();
    let cookie = CookieConfig::builder().persistent(true).build().unwrap();
    let http = start(manual(&clock, 600, 900), |l| l.cookie(cookie).rolling(true)).await;
    let w = http.get("/write", None).await;
    assert!(
        w.session_cookie().unwrap().ends_with("; Max-Age=600"),
        "{w:?}"
    );
    let t = w.token().unwrap();
    clock.advance(Duration::from_secs(400));
    let r = http.get("/read", Some(&t)).await;
    let c = r.session_cookie().unwrap();
    assert!(
        c.ends_with("; Max-Age=500"),
        "capped by the absolute deadline: {c}"
    );
    let clear = http
        .post("/logout", Some(&t), "")
        .await
        .session_cookie()
        .unwrap();
    assert!(clear.contains("; Max-Age=0"), "{clear}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_cookie_without_rolling_is_written_only_when_issued() {
    let clock = ManualClock::new();
    let cookie = CookieConfig::builder().persistent(true).build().unwrap();
    let http = start(manual(&clock, 600, 3600), |l| l.cookie(cookie)).await;
    let t = http.get("/write", None).await.token().unwrap();
    clock.advance(Duration::from_secs(100));
    assert!(http.get("/write", Some(&t)).await.set_cookies().is_empty());
    let r = http.post("/rotate", Some(&t), "").await;
    assert!(r.session_cookie().unwrap().ends_with("; Max-Age=600"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_after_rotates_an_old_token() {
    let clock = ManualClock::new();
    let sessions = manual(&clock, 600, 3600);
    let http = start(sessions.clone(), |l| l.renew_after(Duration::from_secs(60))).await;
    let old = http.get("/write", None).await.token().unwrap();
    let handle = sessions.validate(old.as_str()).unwrap();
    clock.advance(Duration::from_secs(59));
    let r = http.get("/read", Some(&old)).await;
    assert!(r.set_cookies().is_empty(), "not due yet");
    clock.advance(Duration::from_secs(1));
    let r = http.get("/read", Some(&old)).await;
    assert_eq!(r.body, "1", "the request is served by the renewed session");
    let new = r.token().expect("renewed: a new cookie");
    assert_ne!(new, old);
    assert!(r.no_store());
    assert_eq!(
        sessions.validate(new.as_str()),
        Some(handle),
        "same session"
    );
    let stale = http.get("/read", Some(&old)).await;
    assert_eq!(stale.body, "none");
    assert!(stale.clears());
    clock.advance(Duration::from_secs(30));
    assert!(http.get("/read", Some(&new)).await.set_cookies().is_empty());
    assert_eq!(sessions.stats().rotated, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_with_grace_lets_in_flight_requests_finish() {
    let clock = ManualClock::new();
    let sessions: Sessions<u32> = Sessions::builder()
        .clock(clock.clone())
        .rotation_grace(Duration::from_secs(5))
        .reaper_interval(None)
        .build()
        .unwrap();
    let http = start(sessions.clone(), |l| l.renew_after(Duration::from_secs(60))).await;
    let old = http.get("/write", None).await.token().unwrap();
    clock.advance(Duration::from_secs(61));
    let first = http.get("/write", Some(&old)).await;
    assert_eq!(first.body, "2");
    assert!(first.token().is_some());
    // A request that left before it saw the new cookie.
    let late = http.get("/write", Some(&old)).await;
    assert_eq!(late.body, "3", "served within the grace window");
    assert!(
        late.set_cookies().is_empty(),
        "neither renewed again nor cleared"
    );
    assert_eq!(sessions.stats().rotated, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_cookie_that_validates_wins() {
    let sessions = Sessions::new();
    let http = start(sessions.clone(), |l| l).await;
    let a = http.get("/write", None).await.token().unwrap();
    let b = http.get("/write", None).await.token().unwrap();
    http.get("/write", Some(&b)).await;
    let rb = http
        .request(Method::GET, "/read", None)
        .header(COOKIE, format!("{NAME}=forged; other=1"))
        .header(COOKIE, format!("{NAME}={b}; {NAME}={a}"));
    let r = http.send(rb).await;
    assert_eq!(r.body, "2", "b comes first among the valid ones");
    assert!(r.set_cookies().is_empty(), "never clear when one validated");
    let rb = http
        .request(Method::GET, "/read", None)
        .header(COOKIE, format!("{NAME}={a};{NAME}={b}"));
    assert_eq!(http.send(rb).await.body, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_cookie_name_and_attributes() {
    let cookie = CookieConfig::builder()
        .name("sid")
        .secure(false)
        .same_site(SameSite::Strict)
        .path("/")
        .build()
        .unwrap();
    let http = start(Sessions::new(), |l| l.cookie(cookie)).await;
    let w = http.get("/write", None).await;
    let set = w.set_cookies();
    assert_eq!(set.len(), 1);
    let (pair, attrs) = set[0].split_once("; ").unwrap();
    let t = pair.strip_prefix("sid=").unwrap().to_owned();
    assert_eq!(attrs, "HttpOnly; SameSite=Strict; Path=/");
    let as_sid = http
        .request(Method::GET, "/read", None)
        .header(COOKIE, format!("sid={t}"));
    assert_eq!(http.send(as_sid).await.body, "1");
    let as_default = http.get("/read", Some(&t)).await;
    assert_eq!(as_default.body, "none", "another name is not our cookie");
    assert!(as_default.set_cookies().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_rotate_issue_new_tokens() {
    let sessions = Sessions::new();
    let http = start(sessions.clone(), |l| l).await;
    let t0 = http.get("/write", None).await.token().unwrap();
    let r = http.post("/rotate", Some(&t0), "").await;
    assert_eq!(r.status, StatusCode::OK);
    let t1 = r.token().unwrap();
    assert_eq!(http.get("/read", Some(&t0)).await.body, "none");
    let r = http.post("/login", Some(&t1), "").await;
    let t2 = r.token().unwrap();
    assert!(r.no_store());
    assert_eq!(http.get("/read", Some(&t1)).await.body, "none");
    assert_eq!(http.get("/read", Some(&t2)).await.body, "1");
    assert_eq!(sessions.sessions_of(&"alice".to_owned()).len(), 1);
    let r = http.post("/rotate", None, "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "nothing to rotate");
    assert!(r.set_cookies().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_then_write_starts_a_fresh_session() {
    let sessions = Sessions::new();
    let http = start(sessions.clone(), |l| l).await;
    let t = http.get("/write", None).await.token().unwrap();
    let r = http.post("/logout-then-write", Some(&t), "").await;
    assert_eq!(r.body, "ok");
    let fresh = r
        .token()
        .expect("a new session's cookie, not a clearing one");
    assert_ne!(fresh, t);
    assert_eq!(http.get("/read", Some(&fresh)).await.body, "100");
    assert_eq!(http.get("/read", Some(&t)).await.body, "none");
    assert_eq!(sessions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_overrides_caching_only_with_a_cookie() {
    let http = start(Sessions::new(), |l| l).await;
    let r = http.get("/cached-read", None).await;
    assert_eq!(r.headers[header::CACHE_CONTROL], "public, max-age=60");
    let r = http.get("/cached-write", None).await;
    assert!(r.no_store());
    assert_eq!(r.headers.get_all(header::CACHE_CONTROL).iter().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_applications_own_cookies_are_kept() {
    let http = start(Sessions::new(), |l| l).await;
    let r = http.get("/own-cookie", None).await;
    let set = r.set_cookies();
    assert_eq!(set.len(), 2, "{set:?}");
    assert!(set.iter().any(|c| c == "theme=dark; Path=/"));
    assert!(r.token().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_refuses_creation_without_a_cookie() {
    let sessions: Sessions<u32> = Sessions::builder().max_sessions(1).build().unwrap();
    let http = start(sessions.clone(), |l| l).await;
    let alice = http.post("/login", None, "").await.token().unwrap();
    let r = http.get("/write", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.set_cookies().is_empty());
    assert_eq!(http.get("/read", Some(&alice)).await.body, "0");
    assert_eq!(sessions.stats().refused_full, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_without_the_layer_gets_a_500() {
    let http = serve(Router::new().route("/read", get(read))).await;
    let r = http.get("/read", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body.contains("SessionLayer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_never_shows_the_token() {
    let layer = SessionLayer::new(Sessions::<u32>::new());
    let http = serve(routes().layer(layer.clone())).await;
    let t = http.get("/write", None).await.token().unwrap();
    let r = http.get("/debug", Some(&t)).await;
    assert!(r.body.starts_with("Session {"), "{}", r.body);
    assert!(!r.body.contains(&t));
    assert!(!format!("{layer:?}").contains(&t));
}
