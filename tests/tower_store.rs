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
use axum::response::IntoResponse;
use axum::routing::{get, post};
use sesame::tower::{Session, SessionLayer, Store};
use sesame::{Error, ErrorKind, Handle, SessionInfo, SessionToken, Sessions, TokenInput};
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

impl Store for Flaky {
    type Data = u32;
    type Principal = String;

    fn validate(&self, token: &(impl TokenInput + ?Sized)) -> Result<Option<Handle>, Error> {
        self.gate()?;
        Ok(self.inner.validate(token))
    }
    fn is_current(&self, token: &(impl TokenInput + ?Sized)) -> Result<bool, Error> {
        self.gate()?;
        Ok(self.inner.is_current(token))
    }
    fn info(
        &self,
        token: &(impl TokenInput + ?Sized),
    ) -> Result<Option<SessionInfo<String>>, Error> {
        self.gate()?;
        Ok(self.inner.info(token))
    }
    fn with<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        f: impl FnOnce(&u32) -> R,
    ) -> Result<Option<R>, Error> {
        self.gate()?;
        Ok(self.inner.with(token, f))
    }
    fn update<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        f: impl FnMut(&mut u32) -> R,
    ) -> Result<R, Error> {
        self.gate()?;
        self.inner.update(token, f)
    }
    fn create(&self, data: u32) -> Result<SessionToken, Error> {
        self.gate()?;
        self.inner.create(data).map(|(t, _)| t)
    }
    fn rotate(&self, token: &(impl TokenInput + ?Sized)) -> Result<SessionToken, Error> {
        self.gate()?;
        self.inner.rotate(token)
    }
    fn login(
        &self,
        token: &(impl TokenInput + ?Sized),
        principal: String,
    ) -> Result<SessionToken, Error> {
        self.gate()?;
        self.inner.login(token, principal)
    }
    fn logout(&self, token: &(impl TokenInput + ?Sized)) -> Result<bool, Error> {
        self.gate()?;
        Ok(self.inner.logout(token))
    }
    fn revoke_user(&self, principal: &String) -> Result<usize, Error> {
        self.gate()?;
        Ok(self.inner.revoke_user(principal))
    }
    fn revoke(&self, principal: &String, handle: Handle) -> Result<bool, Error> {
        self.gate()?;
        Ok(self.inner.revoke(principal, handle))
    }
    fn sessions_of(&self, principal: &String) -> Result<Vec<SessionInfo<String>>, Error> {
        self.gate()?;
        Ok(self.inner.sessions_of(principal))
    }
}

type S = Session<u32, String, Flaky>;

fn answer<T: ToString>(r: Result<T, Error>) -> axum::response::Response {
    match r {
        Ok(v) => v.to_string().into_response(),
        Err(e) if e.kind() == ErrorKind::Unavailable => {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn count(s: S) -> axum::response::Response {
    answer(s.try_update(|n| {
        *n += 1;
        *n
    }))
}

async fn read(s: S) -> axum::response::Response {
    answer(s.try_get().map(|v| format!("{v:?}")))
}

async fn login(s: S) -> axum::response::Response {
    answer(s.try_login("alice".to_owned()).map(|()| "in"))
}

async fn who(s: S) -> axum::response::Response {
    answer(s.try_principal().map(|p| format!("{p:?}")))
}

async fn logout(s: S) -> axum::response::Response {
    answer(s.try_logout())
}

async fn everywhere(s: S) -> axum::response::Response {
    answer(s.try_logout_everywhere())
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
        .layer(SessionLayer::new(store.clone()));
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
