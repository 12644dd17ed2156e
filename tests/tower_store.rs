//! The tower layer on a store other than the in-process engine: a wrapper
//! of [`Sessions`] that can be switched "down" (every call fails with
//! `Unavailable`, as `RedisSessions` does when Redis cannot be reached).
//! Checks that the generic path behaves as the in-process one while the
//! store is up, and that an outage is never a session, never a cleared
//! cookie, and passes to the handler as an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use axum::routing::{get, post};
use sesame::axum::SessionRouterExt as _;
use sesame::store::Store;
use sesame::tower::{Session, SessionLayer};
use sesame::{Error, ErrorKind, Handle, SessionInfo, SessionToken, Sessions};
use tower::ServiceExt as _;

/// `Sessions<u32>` behind a switch; counts the calls that reach it.
#[derive(Clone)]
struct Flaky {
    inner: Sessions<u32>,
    down: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Flaky {
    fn gate(&self) -> Result<(), Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.down.load(Ordering::Relaxed) {
            return Err(Error::from(ErrorKind::Unavailable));
        }
        Ok(())
    }
}

/// Each call counts, fails when down, and otherwise awaits the engine's own
/// (ready) future.
impl Store for Flaky {
    type Data = u32;
    type Principal = String;

    async fn validate(&self, token: &SessionToken) -> Result<Option<Handle>, Error> {
        self.gate()?;
        Store::validate(&self.inner, token).await
    }
    async fn is_current(&self, token: &SessionToken) -> Result<bool, Error> {
        self.gate()?;
        Store::is_current(&self.inner, token).await
    }
    async fn info(&self, token: &SessionToken) -> Result<Option<SessionInfo<String>>, Error> {
        self.gate()?;
        Store::info(&self.inner, token).await
    }
    async fn with<R: Send, F: FnOnce(&u32) -> R + Send>(
        &self,
        token: &SessionToken,
        f: F,
    ) -> Result<Option<R>, Error> {
        self.gate()?;
        Store::with(&self.inner, token, f).await
    }
    async fn update<R: Send, F: FnMut(&mut u32) -> R + Send>(
        &self,
        token: &SessionToken,
        f: F,
    ) -> Result<R, Error> {
        self.gate()?;
        Store::update(&self.inner, token, f).await
    }
    async fn create(&self, data: u32) -> Result<SessionToken, Error> {
        self.gate()?;
        Store::create(&self.inner, data).await
    }
    async fn rotate(&self, token: &SessionToken) -> Result<SessionToken, Error> {
        self.gate()?;
        Store::rotate(&self.inner, token).await
    }
    async fn login(&self, token: &SessionToken, principal: String) -> Result<SessionToken, Error> {
        self.gate()?;
        Store::login(&self.inner, token, principal).await
    }
    async fn logout(&self, token: &SessionToken) -> Result<bool, Error> {
        self.gate()?;
        Store::logout(&self.inner, token).await
    }
    async fn revoke_user(&self, principal: &String) -> Result<usize, Error> {
        self.gate()?;
        Store::revoke_user(&self.inner, principal).await
    }
    async fn revoke(&self, principal: &String, handle: Handle) -> Result<bool, Error> {
        self.gate()?;
        Store::revoke(&self.inner, principal, handle).await
    }
    async fn sessions_of(&self, principal: &String) -> Result<Vec<SessionInfo<String>>, Error> {
        self.gate()?;
        Store::sessions_of(&self.inner, principal).await
    }
    async fn stats(&self) -> Result<sesame::Stats, Error> {
        self.gate()?;
        Store::stats(&self.inner).await
    }
    fn subscribe(&self, capacity: usize) -> crossbeam_channel::Receiver<sesame::Event<String>> {
        Store::subscribe(&self.inner, capacity)
    }
}

type S = Session<u32, String, Flaky>;

/// Handlers answer with `?`: a store error is `sesame::Error`'s response.
async fn count(s: S) -> Result<String, Error> {
    let n = s
        .update(|n| {
            *n += 1;
            *n
        })
        .await?;
    Ok(n.to_string())
}

async fn read(s: S) -> Result<String, Error> {
    Ok(format!("{:?}", s.get().await?))
}

async fn login(s: S) -> Result<&'static str, Error> {
    s.login("alice".to_owned()).await?;
    Ok("in")
}

async fn who(s: S) -> Result<String, Error> {
    Ok(format!("{:?}", s.principal().await?))
}

async fn logout(s: S) -> Result<String, Error> {
    Ok(s.logout().await?.to_string())
}

async fn everywhere(s: S) -> Result<String, Error> {
    Ok(s.logout_everywhere().await?.to_string())
}

fn setup() -> (Router, Flaky) {
    let store = Flaky {
        inner: Sessions::new(),
        down: Arc::new(AtomicBool::new(false)),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/count", get(count))
        .route("/read", get(read))
        .route("/login", post(login))
        .route("/who", get(who))
        .route("/logout", post(logout))
        .route("/everywhere", post(everywhere))
        .session_layer(SessionLayer::new(store.clone()))
        .with_state(store.clone());
    (app, store)
}

async fn call(app: &Router, method: &str, path: &str, token: Option<&str>) -> Response<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::COOKIE, format!("__Host-id={t}"));
    }
    app.clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn set_cookie(r: &Response<Body>) -> Option<String> {
    r.headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn token_of(r: &Response<Body>) -> String {
    let c = set_cookie(r).expect("a Set-Cookie");
    c["__Host-id=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn body(r: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn while_up_the_generic_path_acts_like_the_engine() {
    let (app, store) = setup();
    let r = call(&app, "GET", "/read", None).await;
    assert_eq!(body(r).await, "None", "a read creates nothing");
    assert_eq!(store.inner.len(), 0);
    let r = call(&app, "GET", "/count", None).await;
    let token = token_of(&r);
    assert_eq!(body(r).await, "1");
    let r = call(&app, "GET", "/count", Some(&token)).await;
    assert!(set_cookie(&r).is_none(), "same session, no new cookie");
    assert_eq!(body(r).await, "2");
    let r = call(&app, "POST", "/login", Some(&token)).await;
    let logged = token_of(&r);
    assert_ne!(logged, token, "login rotates");
    assert!(store.inner.validate(&token).is_none());
    let r = call(&app, "GET", "/who", Some(&logged)).await;
    assert_eq!(body(r).await, "Some(\"alice\")");
    let r = call(&app, "POST", "/everywhere", Some(&logged)).await;
    assert!(set_cookie(&r).unwrap().contains("Max-Age=0"), "cleared");
    assert_eq!(body(r).await, "1");
    assert_eq!(store.inner.len(), 0);
    // A dead cookie is left alone, as on the engine path.
    let r = call(&app, "GET", "/read", Some(&logged)).await;
    assert!(set_cookie(&r).is_none());
}

#[tokio::test]
async fn an_outage_is_an_error_never_a_session_nor_a_cleared_cookie() {
    let (app, store) = setup();
    let r = call(&app, "POST", "/login", None).await;
    let token = token_of(&r);
    store.down.store(true, Ordering::Relaxed);
    for (method, path) in [
        ("GET", "/read"),
        ("GET", "/count"),
        ("GET", "/who"),
        ("POST", "/login"),
        ("POST", "/logout"),
        ("POST", "/everywhere"),
    ] {
        let r = call(&app, method, path, Some(&token)).await;
        assert_eq!(
            r.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
        assert!(
            set_cookie(&r).is_none(),
            "{method} {path}: cookie left alone"
        );
    }
    // No cookie at all: reads are empty without asking the store, the first
    // write fails with the store's error and sets nothing.
    let before = store.calls.load(Ordering::Relaxed);
    let r = call(&app, "GET", "/read", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(store.calls.load(Ordering::Relaxed), before, "no store call");
    let r = call(&app, "GET", "/count", None).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(set_cookie(&r).is_none());
    // Back up: the session survived the outage untouched.
    store.down.store(false, Ordering::Relaxed);
    let r = call(&app, "GET", "/who", Some(&token)).await;
    assert!(set_cookie(&r).is_none());
    assert_eq!(body(r).await, "Some(\"alice\")");
    assert_eq!(store.inner.len(), 1);
}

/// `sesame::Error` as a response: an unavailable store is `503` with
/// `Retry-After: 1` and a fixed body; a session that vanished (here: no
/// session to rotate) is `409`. Nothing in either names the token.
#[tokio::test]
async fn store_errors_answer_fixed_responses() {
    async fn rotate(s: S) -> Result<&'static str, Error> {
        s.rotate().await?;
        Ok("rotated")
    }
    let (app, store) = setup();
    let app = app.merge(
        Router::new()
            .route(
                "/rotate",
                post(rotate).layer(SessionLayer::new(store.clone())),
            )
            .with_state(store.clone()),
    );
    let r = call(&app, "POST", "/rotate", None).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.headers().get(header::RETRY_AFTER).is_none());
    assert_eq!(body(r).await, "session ended or changed");

    let r = call(&app, "POST", "/login", None).await;
    let token = token_of(&r);
    store.down.store(true, Ordering::Relaxed);
    let r = call(&app, "GET", "/read", Some(&token)).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(body(r).await, "service unavailable");
}

/// A handler asking for `Session<u64>` under a layer of `Session<u32>`
/// does not compile when the router's state is the `Sessions<u32>` store or
/// the layer is added with `session_layer` (the `compile_fail` examples of
/// `sesame::axum`). What the compiler cannot see is a layer added with
/// axum's plain `layer` over another store than the state's: a debug build
/// panics naming both types (a release build logs them once and answers
/// `500`, tested below).
#[cfg(debug_assertions)]
#[tokio::test]
// The message names the handler's type by its full path (`type_name`).
#[should_panic(expected = "::tower::session::Session<u64")]
async fn a_handler_of_another_session_type_is_a_loud_error() {
    let app = Router::new()
        .route("/", get(|_: Session<u64>| async { "unreachable" }))
        .with_state(Sessions::<u64>::new())
        .layer(SessionLayer::new(Sessions::<u32>::new()));
    let _ = call(&app, "GET", "/", None).await;
}

#[cfg(not(debug_assertions))]
#[tokio::test]
async fn a_handler_of_another_session_type_is_a_loud_error() {
    let app = Router::new()
        .route("/", get(|_: Session<u64>| async { "unreachable" }))
        .with_state(Sessions::<u64>::new())
        .layer(SessionLayer::new(Sessions::<u32>::new()));
    let r = call(&app, "GET", "/", None).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = body(r).await;
    assert!(
        text.contains("type mismatch") && !text.contains("u64"),
        "{text}"
    );
}

/// The right type under the same layer is found (the check above is not
/// "any session fails").
#[tokio::test]
async fn the_layers_own_session_type_is_extracted() {
    let sessions = Sessions::<u32>::new();
    let app = Router::new()
        .route(
            "/",
            get(|s: Session<u32>| async move { s.is_active().map(|a| a.to_string()) }),
        )
        .session_layer(SessionLayer::new(sessions.clone()))
        .with_state(sessions);
    let r = call(&app, "GET", "/", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await, "false");
}

/// Clones of one request's handle that create its session at once, from
/// tasks on two workers: one session results (a loser hands its data back
/// and ends its own), and no update is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_creating_at_once_make_one_session_and_lose_no_update() {
    async fn race(s: Session<u32>) -> Result<String, Error> {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.update(|n| *n += 1).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("no panic")?;
        }
        Ok(format!("{:?}", s.get().await?))
    }
    for _ in 0..50 {
        let sessions = Sessions::<u32>::new();
        let app = Router::new()
            .route("/", get(race))
            .session_layer(SessionLayer::new(sessions.clone()))
            .with_state(sessions.clone());
        let r = call(&app, "GET", "/", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        let token = token_of(&r);
        assert_eq!(body(r).await, "Some(8)");
        assert_eq!(sessions.len(), 1, "one session for one request");
        assert_eq!(sessions.get(token.as_str()), Some(8), "the cookie's");
    }
}
