//! A tower layer that gives every request a [`Session`], created lazily.
//!
//! ```
//! use axum::{Router, body::Body, http::{Request, header}, routing::get};
//! use sesame::Sessions;
//! use sesame::tower::{Session, SessionLayer};
//! use tower::ServiceExt as _;
//!
//! async fn visit(session: Session<u32>) -> Result<String, sesame::Error> {
//!     session.update(|n| { *n += 1; n.to_string() }).await
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let sessions = Sessions::<u32>::new();
//! let app = Router::new()
//!     .route("/", get(visit))
//!     .layer(SessionLayer::new(sessions.clone()))
//!     .with_state(sessions.clone()); // the handlers' store type (see `sesame::axum`)
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
//! extensions. Nothing is created, and nothing changes in the store.
//!
//! On the way out, when the inner service has produced its response, it
//! writes `Set-Cookie` only when something changed:
//!
//! | during the request | response |
//! |---|---|
//! | nothing written, or data read and updated in place | no cookie |
//! | first write of a client without a session: session created | new cookie |
//! | [`Session::login`] or [`Session::rotate`] | new cookie |
//! | the presented token is older than `renew_after` | renewed now: new cookie |
//! | [`Session::logout`] (or [`Session::logout_everywhere`]) | clearing cookie |
//! | `rolling` on and the presented token still the session's current one | the same cookie again (fresh `Max-Age`) |
//! | the presented cookie names no live session | no cookie |
//! | the session vanished during the request (ended, or rotated away by another request's login) | no cookie; a write fails with [`crate::ErrorKind::NotFound`] rather than start a new session |
//!
//! A cookie that names no live session is left alone rather than cleared:
//! the token may have been rotated away by a login that raced this request,
//! and a clearing cookie arriving after the login's response would log the
//! user out. A dead token grants nothing; the browser drops it when the
//! next write sets a new session's cookie or when it closes. Rejected
//! cookies (unknown, expired, forged, malformed) are counted by the engine
//! in [`crate::Stats::rejected`].
//!
//! # Bearer tokens
//!
//! With [`SessionLayer::token_source`], the layer reads the token from
//! `Authorization: Bearer <token>` instead of (or as well as) the cookie,
//! for API and mobile clients (see [`TokenSource`] for which wins when a
//! request has both). A bearer request never gets a cookie: what the table
//! above says of the cookie does not apply, and a token the request issues
//! reaches the handler through [`Session::token_for_response`], to return
//! in the body.
//!
//! # Caching
//!
//! Every response that carries the session cookie, set or cleared, also
//! carries `Cache-Control: no-store`, replacing any `Cache-Control` of the
//! handler's, so that no shared cache keeps it and hands it to another user
//! (OWASP session management cheat sheet, "Web Content Caching").
//!
//! With [`SessionLayer::no_store`] (on by default), so does every response
//! whose handler used the request's live session: read its data,
//! principal, handle or metadata, asked [`Session::is_active`], or wrote
//! it. Such content is one user's. A handler that sets its own
//! `Cache-Control` keeps it on such a response (it knows whether, say, a
//! `private, max-age=60` is safe for its content). Responses of requests
//! without a live session, and of handlers that never looked at it, are
//! left as they are.
//!
//! # Cancellation
//!
//! The layer itself changes nothing in the store until the response
//! exists: renewal (`renew_after`) rotates the token as the response is
//! produced. A request dropped before that (the client went away, a
//! timeout fired) leaves the session and its token as they were, so the
//! browser's cookie keeps working.
//!
//! What the handler did before it was dropped stays done: a session it
//! created lazily lives on with nobody holding its cookie (harmless: it is
//! anonymous, evictable and expires at the idle timeout); a login or
//! rotation it made has replaced the token the client still holds, which
//! then works only within the engine's grace window. Whether a login
//! handler should run to completion whatever the client does is the
//! application's call. A response produced and then lost in transit is
//! beyond any layer: TCP says nothing about delivery.
//!
//! # Concurrency
//!
//! The layer and the handle reach the store through
//! [`crate::store::Store`], whose operations are futures: the in-process
//! engine answers with ready ones (its call is done, and its locks
//! released, before the future is returned, so no engine lock is ever held
//! across an `await`), a remote backend awaits its I/O. No runtime worker
//! blocks on the network. [`Session::update`] runs on the store's atomic
//! update: concurrent requests on one session each see the others'
//! changes, none is lost.
//!
//! Rotation (login, renewal) invalidates the old token at once unless the
//! engine has a [`crate::Builder::rotation_grace`]; requests in flight
//! with the old token then find no session (and their responses leave the
//! cookie alone). With `renew_after`, which rotates while the client may
//! have requests in flight, set a short grace window. A request that
//! arrived with a token another request rotates before the response never
//! writes that token back with `rolling`: when the response is produced,
//! the layer asks the store whether the token is still the session's current
//! one ([`crate::store::Store::is_current`]; a grace alias is not).

mod session;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{AUTHORIZATION, CACHE_CONTROL, HeaderValue, SET_COOKIE};
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::bearer::bearer_token;
use crate::cookie::{CookieConfig, cookie_headers};
use crate::device::DeviceConfig;
use crate::store::Store;
use crate::{Principal, SessionToken, Sessions};

pub use crate::bearer::TokenSource;
pub use session::Session;

// The actix-web middleware (`crate::actix`) runs the same handle and the
// same decisions around its own request and response types.
pub(crate) use session::{Shared, State};

use session::{Finished, Outcome};

/// Options shared by a layer's services and their requests.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) cookie: CookieConfig,
    pub(crate) rolling: bool,
    pub(crate) renew_after: Option<Duration>,
    pub(crate) no_store: bool,
    pub(crate) source: TokenSource,
    /// Record each session's device at creation and login.
    pub(crate) devices: Option<DeviceConfig>,
}

/// The defaults of [`SessionLayer::new`] (and of the actix middleware).
impl Default for Options {
    fn default() -> Self {
        Self {
            cookie: CookieConfig::default(),
            rolling: false,
            renew_after: None,
            no_store: true,
            source: TokenSource::Cookie,
            devices: None,
        }
    }
}

/// The tower layer: wraps a service so that each request gets a
/// [`Session`] backed by `sessions`: the in-process [`Sessions`] by
/// default, or any other [`Store`] (with the `redis` feature,
/// `sesame::redis::RedisSessions`).
///
/// The layer awaits the store (ready futures for the in-process engine, I/O
/// for a remote one): it never blocks a runtime worker. When a remote store
/// cannot say whether the presented cookie is live, the request goes on
/// with a handle whose methods all return the store's error
/// ([`crate::ErrorKind::Unavailable`], which with the `axum` feature is a
/// `503` response), and the response leaves the cookie alone: never a
/// session that was not checked, never a cookie cleared because the store
/// was down.
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
    /// ([`CookieConfig::default`]), no rolling, no renewal and
    /// `Cache-Control: no-store` on the responses that used a session.
    ///
    /// ```
    /// use axum::{Router, body::Body, http::{Request, header}, routing::get};
    /// use sesame::Sessions;
    /// use sesame::tower::{Session, SessionLayer};
    /// use tower::ServiceExt as _;
    ///
    /// async fn visit(session: Session<u32>) -> Result<String, sesame::Error> {
    ///     Ok(session.update(|n| { *n += 1; *n }).await?.to_string())
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let sessions = Sessions::<u32>::new();
    /// let app = Router::new()
    ///     .route("/", get(visit))
    ///     .layer(SessionLayer::new(sessions.clone()))
    ///     .with_state(sessions.clone());
    /// let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// let cookie = response.headers()[header::SET_COOKIE].to_str()?;
    /// assert!(cookie.starts_with("__Host-id="), "{cookie}");
    /// assert_eq!(sessions.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(sessions: S) -> Self {
        #[cfg(feature = "axum")]
        record_layer_type(std::any::type_name::<Session<T, P, S>>());
        Self {
            sessions,
            options: Options::default(),
            types: PhantomData,
        }
    }

    /// The cookie's name and attributes (see [`crate::cookie`]).
    ///
    /// ```
    /// use axum::{Router, body::Body, http::{Request, header}, routing::get};
    /// use sesame::Sessions;
    /// use sesame::tower::{Session, SessionLayer};
    /// use tower::ServiceExt as _;
    /// use sesame::cookie::CookieConfig;
    ///
    /// async fn visit(session: Session<u32>) -> Result<(), sesame::Error> {
    ///     session.set(1).await
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let config = CookieConfig::builder().name("__Host-shop").build()?;
    /// let sessions = Sessions::<u32>::new();
    /// let layer = SessionLayer::new(sessions.clone()).cookie(config);
    /// let app = Router::new().route("/", get(visit)).with_state(sessions).layer(layer);
    /// let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// let cookie = response.headers()[header::SET_COOKIE].to_str()?;
    /// assert!(cookie.starts_with("__Host-shop="), "{cookie}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cookie(mut self, config: CookieConfig) -> Self {
        self.options.cookie = config;
        self
    }

    /// Re-send the cookie on every response of a request that has a live
    /// session (express-session's `rolling`). Default off. With a
    /// persistent cookie this keeps the browser's `Max-Age` in step with the
    /// server's idle timeout; the cost is a `Set-Cookie` (and
    /// `Cache-Control: no-store`) and one more store lookup on every such
    /// response. A token that another request rotated away meanwhile is
    /// not re-sent (see the [module docs](self)).
    ///
    /// ```
    /// use axum::{Router, body::Body, http::{Request, header}, routing::get};
    /// use sesame::Sessions;
    /// use sesame::tower::{Session, SessionLayer};
    /// use tower::ServiceExt as _;
    ///
    /// async fn read(session: Session<u32>) -> Result<String, sesame::Error> {
    ///     Ok(session.get().await?.unwrap_or_default().to_string())
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let sessions = Sessions::<u32>::new();
    /// let (token, _) = sessions.create(7)?;
    /// let cookie = format!("__Host-id={}", token.as_str());
    /// for (rolling, resent) in [(false, false), (true, true)] {
    ///     let layer = SessionLayer::new(sessions.clone()).rolling(rolling);
    ///     let app = Router::new().route("/", get(read)).with_state(sessions.clone()).layer(layer);
    ///     let request = Request::get("/").header(header::COOKIE, &cookie);
    ///     let response = app.oneshot(request.body(Body::empty())?).await?;
    ///     assert_eq!(response.headers().contains_key(header::SET_COOKIE), resent);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rolling(mut self, rolling: bool) -> Self {
        self.options.rolling = rolling;
        self
    }

    /// Rotate a session's token when it is older than `every` (OWASP's
    /// "renewal timeout"): a stolen token then stops working soon even if
    /// the session stays in use. Default off. The age is checked when a
    /// request presents a live session, counted from the token's issue
    /// ([`crate::SessionInfo::token_issued`], so a login or rotation
    /// restarts it); the rotation itself happens when the response is
    /// produced, so a request that never answers (client gone, timeout)
    /// renews nothing and the client's cookie keeps working.
    ///
    /// Pair it with a short [`crate::Builder::rotation_grace`] (see the
    /// [module docs](self)).
    ///
    /// ```
    /// use axum::{Router, body::Body, http::{Request, header}, routing::get};
    /// use sesame::Sessions;
    /// use sesame::tower::{Session, SessionLayer};
    /// use tower::ServiceExt as _;
    /// use std::time::Duration;
    /// use sesame::ManualClock;
    ///
    /// async fn read(session: Session<u32>) -> Result<String, sesame::Error> {
    ///     Ok(session.get().await?.unwrap_or_default().to_string())
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let clock = ManualClock::new();
    /// let sessions = Sessions::<u32>::builder().clock(clock.clone()).build()?;
    /// let (token, _) = sessions.create(7)?;
    /// let layer = SessionLayer::new(sessions.clone()).renew_after(Duration::from_secs(300));
    /// let app = Router::new().route("/", get(read)).with_state(sessions.clone()).layer(layer);
    /// clock.advance(Duration::from_secs(301)); // the token is older than 5 minutes
    /// let request = Request::get("/").header(header::COOKIE, format!("__Host-id={}", token.as_str()));
    /// let response = app.oneshot(request.body(Body::empty())?).await?;
    /// assert!(response.headers().contains_key(header::SET_COOKIE)); // a new token
    /// assert!(sessions.validate(&token).is_none());                // the old one is dead
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn renew_after(mut self, every: Duration) -> Self {
        self.options.renew_after = Some(every);
        self
    }

    /// Where requests carry the session token: the cookie (default),
    /// `Authorization: Bearer <token>` for API and mobile clients, or
    /// either (see [`TokenSource`] for which wins, and why).
    ///
    /// A bearer request never gets a cookie, set or cleared: a token it
    /// issues (creation, [`Session::login`], [`Session::rotate`]) reaches
    /// the handler through [`Session::token_for_response`], to return in
    /// the body. The header is parsed as strictly as the cookie (see
    /// [`crate::bearer`]); a malformed one is no session, counted in
    /// [`crate::Stats::rejected`]. `renew_after` and `rolling` do not apply
    /// to bearer requests (a renewed token would have no way back to the
    /// client): rotate in a handler that returns the new token.
    /// Bearer-only routes need no CSRF guard (see [`crate::bearer`]).
    ///
    /// ```
    /// use axum::{Router, body::Body, http::{Request, header}, routing::get};
    /// use sesame::Sessions;
    /// use sesame::tower::{Session, SessionLayer, TokenSource};
    /// use tower::ServiceExt as _;
    ///
    /// async fn read(session: Session<u32>) -> Result<String, sesame::Error> {
    ///     Ok(session.get().await?.unwrap_or_default().to_string())
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let sessions = Sessions::<u32>::new();
    /// let (token, _) = sessions.create(7)?;
    /// let layer = SessionLayer::new(sessions.clone()).token_source(TokenSource::Bearer);
    /// let app = Router::new().route("/", get(read)).with_state(sessions.clone()).layer(layer);
    /// let bearer = format!("Bearer {}", token.as_str());
    /// let request = Request::get("/").header(header::AUTHORIZATION, bearer);
    /// let response = app.oneshot(request.body(Body::empty())?).await?;
    /// assert!(response.headers().get(header::SET_COOKIE).is_none());
    /// let body = axum::body::to_bytes(response.into_body(), 64).await?;
    /// assert_eq!(&body[..], b"7");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token_source(mut self, source: TokenSource) -> Self {
        self.options.source = source;
        self
    }

    /// Mark the responses of requests whose handler used the live session
    /// (read or wrote it) `Cache-Control: no-store`, unless the handler set
    /// its own `Cache-Control`. Default on. Responses that carry the session
    /// cookie are always `no-store`, whatever this says (see the
    /// [module docs](self#caching)).
    ///
    /// ```
    /// use axum::{Router, body::Body, http::{Request, header}, routing::get};
    /// use sesame::Sessions;
    /// use sesame::tower::{Session, SessionLayer};
    /// use tower::ServiceExt as _;
    ///
    /// async fn read(session: Session<u32>) -> Result<String, sesame::Error> {
    ///     Ok(session.get().await?.unwrap_or_default().to_string())
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let sessions = Sessions::<u32>::new();
    /// let (token, _) = sessions.create(7)?;
    /// let cookie = format!("__Host-id={}", token.as_str());
    /// for (on, expected) in [(true, Some("no-store")), (false, None)] {
    ///     let layer = SessionLayer::new(sessions.clone()).no_store(on);
    ///     let app = Router::new().route("/", get(read)).with_state(sessions.clone()).layer(layer);
    ///     let request = Request::get("/").header(header::COOKIE, &cookie);
    ///     let response = app.oneshot(request.body(Body::empty())?).await?;
    ///     assert!(response.headers().get(header::SET_COOKIE).is_none());
    ///     let cache = response.headers().get(header::CACHE_CONTROL);
    ///     assert_eq!(cache.map(|v| v.to_str()).transpose()?, expected);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Warning
    ///
    /// Off, a shared cache (CDN, proxy) may store one user's page and serve
    /// it to others, unless every handler that reads the session sets
    /// `Cache-Control` itself (OWASP session management cheat sheet, "Web
    /// Content Caching").
    pub fn no_store(mut self, on: bool) -> Self {
        self.options.no_store = on;
        self
    }

    /// Record each session's device ([`crate::Device`]: user agent and
    /// client address, read as `config` says) when the layer creates the
    /// session and when [`Session::login`] logs it in, for device lists
    /// ([`crate::SessionInfo::device`] in `sessions_of`) and
    /// [`Session::logout_others`]. Default off: nothing is recorded.
    ///
    /// The device is personal data: it is kept only beside its session
    /// (dropped when the session ends), never logged, and not recorded
    /// unless this is on (see [`crate::device`]). Recording is best
    /// effort: a store that fails to record it fails no request. Each
    /// recording is one more store call (on Redis, a round trip).
    ///
    /// ```
    /// use axum::{Router, body::Body, http::{Request, header}, routing::post};
    /// use sesame::Sessions;
    /// use sesame::device::DeviceConfig;
    /// use sesame::tower::{Session, SessionLayer};
    /// use tower::ServiceExt as _;
    ///
    /// async fn login(session: Session<u32>) -> Result<(), sesame::Error> {
    ///     session.login("alice".to_owned()).await
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let sessions = Sessions::<u32>::new();
    /// let layer = SessionLayer::new(sessions.clone()).record_devices(DeviceConfig::new());
    /// let app = Router::new().route("/login", post(login)).with_state(sessions.clone()).layer(layer);
    /// let request = Request::post("/login").header(header::USER_AGENT, "Mozilla/5.0 (Phone)");
    /// app.oneshot(request.body(Body::empty())?).await?;
    /// let listed = sessions.sessions_of(&"alice".to_owned());
    /// let device = listed[0].device.as_ref().unwrap();
    /// assert_eq!(device.user_agent.as_deref(), Some("Mozilla/5.0 (Phone)"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_devices(mut self, config: DeviceConfig) -> Self {
        self.options.devices = Some(config);
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
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
    T: Send + 'static,
    P: Principal,
    St: Store<Data = T, Principal = P>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, St, Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let bearer = match self.options.source {
            TokenSource::Cookie => false,
            TokenSource::Bearer => true,
            TokenSource::CookieOrBearer => req.headers().contains_key(AUTHORIZATION),
        };
        // No token presented, and no cookie to write or one written without
        // the store (a browser-session cookie needs no `Max-Age`): neither
        // side of the handler needs the store, so nothing is boxed.
        let presented = if bearer {
            req.headers().contains_key(AUTHORIZATION)
        } else {
            self.options
                .cookie
                .cookie_values(cookie_headers(req.headers()))
                .next()
                .is_some()
        };
        let seen = self
            .options
            .devices
            .as_ref()
            .map(|d| d.seen(req.headers(), req.extensions()));
        if !presented && (bearer || !self.options.cookie.is_persistent()) {
            let mut state = State::new(false);
            state.bearer = bearer;
            let shared = Arc::new(
                Shared::new(self.sessions.clone(), Arc::clone(&self.options), state)
                    .with_device(seen),
            );
            req.extensions_mut()
                .insert(Session::<T, P, St>::new(Arc::clone(&shared)));
            return ResponseFuture {
                direct: Some(self.inner.call(req)),
                shared: Some(shared),
                boxed: None,
            };
        }
        // The service that was polled ready handles this request; a clone
        // takes its place for the next one (tower's usual pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let sessions = self.sessions.clone();
        let options = Arc::clone(&self.options);
        ResponseFuture {
            direct: None,
            shared: None,
            boxed: Some(Box::pin(async move {
                let state = if bearer {
                    open_bearer(&sessions, req.headers()).await
                } else {
                    open(&sessions, &options, cookie_headers(req.headers())).await
                };
                let shared = Arc::new(Shared::new(sessions, options, state).with_device(seen));
                req.extensions_mut()
                    .insert(Session::<T, P, St>::new(Arc::clone(&shared)));
                let mut response = inner.call(req).await?;
                finish(&shared, response.headers_mut()).await;
                Ok(response)
            })),
        }
    }
}

/// Finds the request's session and whether its token is due for renewal,
/// from the request's `Cookie` header values (raw bytes, in order).
/// Changes nothing in the store (beyond the lookup's touch).
///
/// Each cookie value with our name is tried in order (see
/// [`CookieConfig::cookie_values`]); one that is not a well-formed token
/// never reaches the store. A store error on one value is kept; a later
/// value that validates still wins.
pub(crate) async fn open<'h, St: Store>(
    sessions: &St,
    options: &Options,
    cookie_headers: impl IntoIterator<Item = &'h [u8]>,
) -> State {
    let mut state = State::new(false);
    // The metadata costs a principal clone: read only when an option needs
    // the token's issue time.
    let needs_info = options.rolling || options.renew_after.is_some();
    let mut failed = None;
    for value in options.cookie.cookie_values(cookie_headers) {
        state.presented = true;
        let Ok(token) = SessionToken::parse_bytes(value) else {
            sessions.note_malformed();
            continue;
        };
        let found = if needs_info {
            sessions.info(&token).await.map(|i| i.map(Some))
        } else {
            sessions.validate(&token).await.map(|h| h.map(|_| None))
        };
        match found {
            Ok(Some(info)) => {
                if let Some(info) = info {
                    state.renew_due = options.renew_after.is_some_and(|every| {
                        info.last_seen
                            .duration_since(info.token_issued)
                            .is_ok_and(|age| age >= every)
                    });
                }
                state.token = Some(token);
                return state;
            }
            Ok(None) => {}
            Err(e) => failed = Some(e),
        }
    }
    // The store could not check a cookie: neither a session nor proof that
    // there is none.
    state.failed = failed;
    state
}

/// Finds the session of a bearer request (one whose token travels in
/// `Authorization`). A header that is not exactly `Bearer <token>` is no
/// session, counted by [`Store::note_malformed`]. Renewal and rolling do
/// not apply: the response has no cookie to carry a token.
async fn open_bearer<St: Store>(sessions: &St, headers: &http::HeaderMap) -> State {
    let mut state = State::new(true);
    state.bearer = true;
    let token = match bearer_token(headers) {
        Ok(Some(token)) => token,
        Ok(None) => return state,
        Err(_) => {
            sessions.note_malformed();
            return state;
        }
    };
    match sessions.validate(&token).await {
        Ok(Some(_)) => state.token = Some(token),
        Ok(None) => {}
        Err(e) => state.failed = Some(e),
    }
    state
}

pin_project_lite::pin_project! {
    /// The future of [`SessionService`]: the inner response, with the
    /// session cookie set or cleared as needed.
    ///
    /// A request that presents no session cookie, under a browser-session
    /// cookie, needs the store on neither side of the handler: the inner
    /// future runs as it is. Any other request is one boxed future (the
    /// store's futures have no nameable type): one allocation, next to the
    /// request's shared state (`tests/layer_alloc.rs`, `benches/layer.rs`).
    pub struct ResponseFuture<F, St, R, E> {
        #[pin]
        direct: Option<F>,
        shared: Option<Arc<Shared<St>>>,
        boxed: Option<Pin<Box<dyn Future<Output = Result<R, E>> + Send>>>,
    }
}

impl<F, St, R, E> std::fmt::Debug for ResponseFuture<F, St, R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("boxed", &self.boxed.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, St, B, E> Future for ResponseFuture<F, St, Response<B>, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    St: Store,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(boxed) = this.boxed {
            return boxed.as_mut().poll(cx);
        }
        let Some(inner) = this.direct.as_pin_mut() else {
            unreachable!("a ResponseFuture is direct or boxed");
        };
        let mut response = match inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            other => return other,
        };
        if let Some(shared) = this.shared.take() {
            let decided = decide(&shared);
            debug_assert!(decided.is_some(), "a direct request needs no store");
            apply(&shared, decided.flatten(), response.headers_mut());
        }
        Poll::Ready(Ok(response))
    }
}

/// The `Set-Cookie` for `token`, known live; `None` if it is gone or the
/// store cannot say (a persistent cookie's `Max-Age` needs its metadata).
async fn set_cookie<St: Store>(
    sessions: &St,
    cookie: &CookieConfig,
    token: &SessionToken,
    info: Option<crate::SessionInfo<St::Principal>>,
) -> Option<HeaderValue> {
    if !cookie.is_persistent() {
        return Some(cookie.set_cookie(token, Duration::ZERO));
    }
    let info = match info {
        Some(info) => info,
        None => sessions.info(token).await.ok()??,
    };
    Some(cookie.set_cookie(token, crate::cookie::max_age(&info)))
}

/// Writes the cookie the request's outcome calls for, renewing the token
/// first if it is due, and `Cache-Control: no-store` where it belongs (see
/// the [module docs](self#caching)).
///
/// A store that cannot answer (for the layer, or for the `Max-Age` of a
/// persistent cookie) leaves the client's cookie as it is. So does a token
/// that is no longer the session's current one: another request rotated it
/// (its response carries the new cookie), or ended it.
async fn finish<St: Store>(shared: &Shared<St>, headers: &mut http::HeaderMap) {
    if shared.failed() {
        return;
    }
    let value = response_cookie(shared).await;
    apply(shared, value, headers);
}

/// The `Set-Cookie` the request's outcome calls for, renewing the token
/// first if it is due (see [`finish`]); `None`: no cookie.
pub(crate) async fn response_cookie<St: Store>(shared: &Shared<St>) -> Option<HeaderValue> {
    if shared.failed() {
        return None;
    }
    if let Some(value) = decide(shared) {
        return value;
    }
    let Finished {
        token,
        outcome,
        renew_due,
        ..
    } = shared.finished();
    let options = shared.options();
    let cookie = &options.cookie;
    let sessions = shared.sessions();
    match (outcome, token) {
        (Outcome::Issued, Some(token)) => set_cookie(sessions, cookie, &token, None).await,
        // Due for renewal and untouched by the handler: rotate now that
        // the response exists. Another request may have rotated or ended it
        // meanwhile: then its response has the say.
        (Outcome::Unchanged, Some(token)) if renew_due => match sessions.rotate(&token).await {
            Ok(new) => set_cookie(sessions, cookie, &new, None).await,
            Err(_) => None,
        },
        // Only the session's current token is ever written back: not one
        // another request rotated away meanwhile, nor one that arrived in
        // its grace window.
        (Outcome::Unchanged, Some(token)) if options.rolling => {
            match sessions.is_current(&token).await {
                Ok(true) => match sessions.info(&token).await {
                    Ok(Some(info)) => set_cookie(sessions, cookie, &token, Some(info)).await,
                    _ => None,
                },
                _ => None,
            }
        }
        (_, _) => None,
    }
}

/// The response's `Set-Cookie` when the store is not needed to decide it:
/// `Some(value)` (`Some(None)`: no cookie), or `None` when it is (a
/// persistent cookie's `Max-Age`, a renewal, a rolling re-send).
fn decide<St: Store>(shared: &Shared<St>) -> Option<Option<HeaderValue>> {
    let Finished {
        token,
        outcome,
        presented,
        renew_due,
        bearer,
        ..
    } = shared.finished();
    if bearer {
        // The token travels in the body the handler writes: no cookie.
        return Some(None);
    }
    let options = shared.options();
    let cookie = &options.cookie;
    match (outcome, token) {
        (Outcome::Ended, _) => Some(presented.then(|| cookie.clear_cookie())),
        (Outcome::Issued, Some(token)) if !cookie.is_persistent() => {
            Some(Some(cookie.set_cookie(&token, Duration::ZERO)))
        }
        (Outcome::Issued, Some(_)) => None,
        (Outcome::Unchanged, Some(_)) if renew_due || options.rolling => None,
        (_, _) => Some(None),
    }
}

/// Writes `value` and `Cache-Control: no-store` where it belongs.
fn apply<St>(shared: &Shared<St>, value: Option<HeaderValue>, headers: &mut http::HeaderMap) {
    let options = shared.options();
    let finished = shared.finished();
    // A bearer request that was issued a token returns it in the body
    // (RFC 6749 §5.1: a response with a token is `no-store`).
    let in_body = finished.bearer && finished.outcome == Outcome::Issued;
    // A response carrying a token is `no-store` whatever the handler said;
    // one that only used the session, unless the handler chose otherwise.
    let carries_token = value.is_some() || in_body;
    if let Some(value) = value {
        headers.append(SET_COOKIE, value);
    }
    if carries_token || (finished.used && options.no_store && !headers.contains_key(CACHE_CONTROL))
    {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// The session types of the [`SessionLayer`]s built in this process (few:
/// one per application, as a rule), recorded once per layer at
/// construction, never per request. The axum extractor reads them when a
/// request has no session of the handler's type, to tell a route without a
/// layer from a layer with other types, and name both.
#[cfg(feature = "axum")]
static LAYER_TYPES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

#[cfg(feature = "axum")]
fn record_layer_type(name: &'static str) {
    let mut types = LAYER_TYPES.lock().unwrap_or_else(|e| e.into_inner());
    if !types.contains(&name) {
        types.push(name);
    }
}

/// The session types of the layers built so far (see [`LAYER_TYPES`]).
#[cfg(feature = "axum")]
pub(crate) fn layer_types() -> Vec<&'static str> {
    LAYER_TYPES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}
