//! A tower layer that gives every request a [`Session`], created lazily.
//!
//! ```
//! use axum::{Router, body::Body, http::{Request, header}, routing::get};
//! use sesame::Sessions;
//! use sesame::tower::{Session, SessionLayer};
//! use tower::ServiceExt as _;
//!
//! async fn visit(session: Session<u32>) -> String {
//!     session.update(|n| { *n += 1; n.to_string() }).unwrap_or_default()
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let sessions = Sessions::<u32>::new();
//! let app = Router::new()
//!     .route("/", get(visit))
//!     .layer(SessionLayer::new(sessions.clone()));
//!
//! // The first write creates the session and sets the cookie.
//! let first = app.clone().oneshot(Request::get("/").body(Body::empty())?).await?;
//! let set_cookie = first.headers()[header::SET_COOKIE].to_str()?;
//! assert!(set_cookie.starts_with("__Host-id="));
//! assert_eq!(first.headers()[header::CACHE_CONTROL], "no-store");
//!
//! // The client sends it back: same session, no new cookie.
//! let cookie = set_cookie.split(';').next().unwrap_or_default();
//! let again = Request::get("/").header(header::COOKIE, cookie).body(Body::empty())?;
//! let second = app.oneshot(again).await?;
//! assert!(second.headers().get(header::SET_COOKIE).is_none());
//! assert_eq!(sessions.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What the layer does
//!
//! On the way in, it looks for the session cookie (see
//! [`crate::cookie::CookieConfig::find_session`]: the first value that
//! validates wins) and puts a [`Session`] handle in the request's
//! extensions. Nothing is created yet.
//!
//! On the way out, it writes `Set-Cookie` only when something changed:
//!
//! | during the request | response |
//! |---|---|
//! | nothing written, or data read and updated in place | no cookie |
//! | first write of a client without a session: session created | new cookie |
//! | [`Session::login`], [`Session::rotate`], or renewal (`renew_after`) | new cookie |
//! | [`Session::logout`], or the presented cookie named no live session | clearing cookie |
//! | `rolling` on and the session still live | the same cookie again (fresh `Max-Age`) |
//!
//! Every response that carries the session cookie also carries
//! `Cache-Control: no-store`, so that no shared cache keeps it and hands it
//! to another user (OWASP session management cheat sheet, "Web Content
//! Caching"). Rejected cookies (unknown, expired, forged, malformed) are
//! counted by the engine in [`crate::Stats::rejected`].
//!
//! # Concurrency
//!
//! The engine is synchronous and in memory: every engine call the layer
//! and the handle make returns before the next `await`, so no engine lock is
//! ever held across an `await`. [`Session::update`] runs on the engine's
//! atomic update: concurrent requests on one session each see the others'
//! changes, none is lost.
//!
//! Rotation (login, renewal) invalidates the old token at once unless the
//! engine has a [`crate::Builder::rotation_grace`]: a request in flight
//! with the old token then finds no session, and its response clears the
//! cookie, which can race with the response that carries the new one. With
//! `renew_after`, which rotates while the client may have requests in
//! flight, set a short grace window.

mod session;
mod store;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{CACHE_CONTROL, HeaderValue, SET_COOKIE};
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::cookie::{CookieConfig, cookie_headers};
use crate::{Principal, Sessions};

pub use session::Session;
pub use store::Store;

use session::{Outcome, Shared, State};

/// Options shared by a layer's services and their requests.
#[derive(Clone, Debug)]
struct Options {
    cookie: CookieConfig,
    rolling: bool,
    renew_after: Option<Duration>,
}

/// The tower layer: wraps a service so that each request gets a
/// [`Session`] backed by `sessions`: the in-process [`Sessions`] by
/// default, or any other [`Store`] (with the `redis` feature,
/// [`crate::redis::RedisSessions`]).
///
/// When a remote store cannot say whether the presented cookie is live,
/// the request goes on with a handle whose `try_*` methods all return the
/// store's error ([`crate::ErrorKind::Unavailable`]: answer `503`), and the
/// response leaves the cookie alone: never a session that was not checked,
/// never a cookie cleared because the store was down.
pub struct SessionLayer<T, P = String, S = Sessions<T, P>> {
    sessions: S,
    options: Options,
    types: PhantomData<fn() -> (T, P)>,
}

impl<T, P, S: Clone> Clone for SessionLayer<T, P, S> {
    fn clone(&self) -> Self {
        Self {
            sessions: self.sessions.clone(),
            options: self.options.clone(),
            types: PhantomData,
        }
    }
}

impl<T, P, S> std::fmt::Debug for SessionLayer<T, P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<T, P, S> SessionLayer<T, P, S>
where
    T: Send + 'static,
    P: Principal,
    S: Store<Data = T, Principal = P>,
{
    /// A layer over `sessions` with the secure cookie defaults
    /// ([`CookieConfig::default`]), no rolling and no renewal.
    pub fn new(sessions: S) -> Self {
        Self {
            sessions,
            options: Options {
                cookie: CookieConfig::default(),
                rolling: false,
                renew_after: None,
            },
            types: PhantomData,
        }
    }

    /// The cookie's name and attributes (see [`crate::cookie`]).
    pub fn cookie(mut self, config: CookieConfig) -> Self {
        self.options.cookie = config;
        self
    }

    /// Re-send the cookie on every response of a request that has a live
    /// session (express-session's `rolling`). Default off. With a
    /// persistent cookie this keeps the browser's `Max-Age` in step with the
    /// server's idle timeout; the cost is a `Set-Cookie` (and
    /// `Cache-Control: no-store`) on every such response.
    pub fn rolling(mut self, rolling: bool) -> Self {
        self.options.rolling = rolling;
        self
    }

    /// Rotate a session's token when it is older than `every` (OWASP's
    /// "renewal timeout"): a stolen token then stops working soon even if
    /// the session stays in use. Default off. Checked at the start of each
    /// request that presents a live session; the age is counted from the
    /// token's issue ([`crate::SessionInfo::token_issued`]), so a login or
    /// rotation restarts it.
    ///
    /// Pair it with a short [`crate::Builder::rotation_grace`] (see the
    /// [module docs](self)).
    pub fn renew_after(mut self, every: Duration) -> Self {
        self.options.renew_after = Some(every);
        self
    }
}

impl<S, T, P, St: Clone> Layer<S> for SessionLayer<T, P, St> {
    type Service = SessionService<S, T, P, St>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            sessions: self.sessions.clone(),
            options: Arc::new(self.options.clone()),
            types: PhantomData,
        }
    }
}

/// The service [`SessionLayer`] wraps around an inner service.
pub struct SessionService<S, T, P = String, St = Sessions<T, P>> {
    inner: S,
    sessions: St,
    options: Arc<Options>,
    types: PhantomData<fn() -> (T, P)>,
}

impl<S: Clone, T, P, St: Clone> Clone for SessionService<S, T, P, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            sessions: self.sessions.clone(),
            options: Arc::clone(&self.options),
            types: PhantomData,
        }
    }
}

impl<S, T, P, St> std::fmt::Debug for SessionService<S, T, P, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<S, T, P, St, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S, T, P, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    T: Send + 'static,
    P: Principal,
    St: Store<Data = T, Principal = P>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, T, P, St>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = Arc::new(self.open(req.headers()));
        req.extensions_mut()
            .insert(Session::new(Arc::clone(&shared)));
        ResponseFuture {
            inner: self.inner.call(req),
            shared: Some(shared),
            types: PhantomData,
        }
    }
}

impl<S, T, P, St> SessionService<S, T, P, St>
where
    T: Send + 'static,
    P: Principal,
    St: Store<Data = T, Principal = P>,
{
    /// Finds the request's session (and renews its token if due).
    fn open(&self, headers: &http::HeaderMap) -> Shared<St> {
        let options = &self.options;
        let sessions = &self.sessions;
        let presented = options
            .cookie
            .cookie_values(cookie_headers(headers))
            .next()
            .is_some();
        // A store error on one cookie value is kept; a later value that
        // validates still wins.
        let mut failed = None;
        let mut note = |r: Result<_, crate::Error>| match r {
            Ok(found) => found,
            Err(e) => {
                failed = Some(e);
                None
            }
        };
        let found = match options.renew_after {
            None => options.cookie.find_session(cookie_headers(headers), |v| {
                note(sessions.validate(v).map(|h| h.map(|_| None)))
            }),
            Some(_) => options.cookie.find_session(cookie_headers(headers), |v| {
                note(sessions.info(v).map(|i| i.map(Some)))
            }),
        };
        let mut state = State {
            token: None,
            presented,
            outcome: Outcome::Unchanged,
            failed: None,
        };
        match found {
            // The store could not check the cookie: neither a session nor
            // proof that there is none.
            None if failed.is_some() => state.failed = failed,
            None if presented => state.outcome = Outcome::Ended,
            None => {}
            Some((token, info)) => {
                let due = match (options.renew_after, info) {
                    (Some(every), Some(info)) => info
                        .last_seen
                        .duration_since(info.token_issued)
                        .is_ok_and(|age| age >= every),
                    _ => false,
                };
                state.token = Some(token);
                if due {
                    renew(sessions, &mut state);
                }
            }
        }
        Shared::new(sessions.clone(), Arc::clone(options), state)
    }
}

/// Rotates the state's token. When another request rotated it first, the
/// old token is either still in its grace window (kept) or dead: then this
/// request goes on without a session and without clearing the cookie, since
/// the other response carries the new one.
///
/// A store that cannot answer leaves the session as it was (renewal is
/// retried by the next request).
fn renew<St: Store>(sessions: &St, state: &mut State) {
    let Some(old) = state.token.as_ref() else {
        return;
    };
    match sessions.rotate(old) {
        Ok(new) => {
            state.token = Some(new);
            state.outcome = Outcome::Issued;
        }
        Err(e) if e.kind() != crate::ErrorKind::NotFound => {}
        Err(_) if !matches!(sessions.validate(old), Ok(None)) => {}
        Err(_) => {
            state.token = None;
            state.presented = false;
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`SessionService`]: the inner response, with the
    /// session cookie set or cleared as needed.
    pub struct ResponseFuture<F, T, P, St = Sessions<T, P>> {
        #[pin]
        inner: F,
        shared: Option<Arc<Shared<St>>>,
        types: PhantomData<fn() -> (T, P)>,
    }
}

impl<F, T, P, St, ResBody, E> Future for ResponseFuture<F, T, P, St>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    T: Send + 'static,
    P: Principal,
    St: Store<Data = T, Principal = P>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            other => return other,
        };
        if let Some(shared) = this.shared.take() {
            finish(&shared, response.headers_mut());
        }
        Poll::Ready(Ok(response))
    }
}

/// Writes the cookie the request's outcome calls for.
///
/// A store that cannot answer (for the layer, or for the `Max-Age` of a
/// persistent cookie) leaves the client's cookie as it is.
fn finish<St: Store>(shared: &Shared<St>, headers: &mut http::HeaderMap) {
    if shared.failed() {
        return;
    }
    let (token, outcome, presented) = shared.outcome();
    let options = shared.options();
    let cookie = &options.cookie;
    // `Err`: the store cannot say; `Ok(None)`: the session is gone.
    let set = |token: &crate::SessionToken| {
        let max_age = if cookie.is_persistent() {
            shared
                .sessions()
                .info(token)
                .map(|info| info.map(|info| crate::cookie::max_age(&info)))
        } else {
            Ok(Some(Duration::ZERO))
        };
        max_age.map(|m| m.map(|m| cookie.set_cookie(token, m)))
    };
    let clear = || presented.then(|| cookie.clear_cookie());
    let value = match (outcome, token) {
        (Outcome::Unchanged, None) => None,
        (Outcome::Unchanged, Some(_)) if !options.rolling => None,
        // A token issued but already gone (ended by a concurrent request)
        // is not worth sending: clear the client's cookie instead.
        (_, Some(token)) => match set(&token) {
            Ok(Some(value)) => Some(value),
            Ok(None) => clear(),
            Err(_) => None,
        },
        (_, None) => clear(),
    };
    if let Some(value) = value {
        headers.append(SET_COOKIE, value);
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
