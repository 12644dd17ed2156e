//! actix-web: a middleware that gives every request a lazily created
//! [`Session`], and the extractor handlers take it with.
//!
//! ```
//! use actix_web::{App, test, web};
//! use actix_web::http::header;
//! use sesame::{Error, Sessions};
//! use sesame::actix::{Session, SessionMiddleware};
//!
//! /// Declare the session type once; use it in every handler.
//! type AppSession = Session<Sessions<u32>>;
//!
//! async fn visit(session: AppSession) -> Result<String, Error> {
//!     let n = session.update(|n| { *n += 1; *n }).await?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let sessions = Sessions::<u32>::new();
//! let app = App::new()
//!     .wrap(SessionMiddleware::new(sessions.clone()))
//!     .route("/", web::get().to(visit));
//! let app = test::init_service(app).await;
//!
//! // The first write creates the session and sets the cookie.
//! let first = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
//! let set_cookie = first.headers().get(header::SET_COOKIE).ok_or("a cookie")?;
//! let set_cookie = set_cookie.to_str()?.to_owned();
//! assert!(set_cookie.starts_with("__Host-id="));
//! assert_eq!(first.headers().get(header::CACHE_CONTROL).ok_or("no-store")?, "no-store");
//!
//! // The client sends it back: same session, no new cookie.
//! let cookie = set_cookie.split(';').next().unwrap_or_default();
//! let again = test::TestRequest::get().uri("/").insert_header((header::COOKIE, cookie));
//! let second = test::call_service(&app, again.to_request()).await;
//! assert!(second.headers().get(header::SET_COOKIE).is_none());
//! assert_eq!(test::read_body(second).await, "visit 2");
//! assert_eq!(sessions.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The same session as the tower layer's
//!
//! [`SessionMiddleware`] is the actix-web counterpart of
//! [`crate::tower::SessionLayer`], and [`Session`] wraps the very handle
//! [`crate::tower::Session`] is: the cookie policy ([`crate::cookie`]:
//! `__Host-id`, `HttpOnly`, `Secure`, `SameSite=Lax`, `Path=/`), lazy
//! creation, when a response sets, re-sends or clears the cookie,
//! `Cache-Control: no-store`, renewal, cancellation and concurrency are
//! those described in [`crate::tower`]'s module docs, on any
//! [`Store`]: the in-process [`Sessions`](crate::Sessions) or, with the `redis` feature,
//! `sesame::redis::RedisSessions`. The store's futures are awaited on the
//! actix worker, never blocking it.
//!
//! [`crate::Error`] is an actix-web [`ResponseError`], so handlers use
//! `?`: `503 Service Unavailable` with `Retry-After: 1` when the store
//! cannot answer or is full, `409 Conflict` when the session ended or
//! changed hands while the request ran (or an update lost to concurrent
//! writers), `500` for stored data that does not decode. Bodies are short
//! fixed texts (no token, no detail), and every such response is
//! `Cache-Control: no-store`.
//!
//! # Wiring errors
//!
//! The extractor reads the handle the middleware put in the request's
//! extensions; actix-web cannot tie a handler's argument type to a
//! middleware's at compile time. When a request has no session of the
//! handler's type, the extractor tells two wiring bugs apart, at no cost
//! per request (each middleware records its session type once, when it is
//! built):
//!
//! - a handler whose session type no middleware in the process was built
//!   with (say `Session<Sessions<Cart>>` while the only middleware is a
//!   `SessionMiddleware<Sessions<User>>`): [`SessionRejection::TypeMismatch`],
//!   naming both types;
//! - otherwise (no middleware on the route): [`SessionRejection::MissingMiddleware`].
//!
//! Both are bugs of the program, not of the request: each prints one line
//! to stderr, once per process, naming the types, and answers `500
//! Internal Server Error` with a fixed body that names none. Never a panic.
//! A type alias for the session type, used in every handler and in the
//! middleware's construction, rules the mismatch out.

mod csrf;
mod session;

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpMessage as _, HttpResponse, ResponseError};

use crate::cookie::CookieConfig;
use crate::error::{Error, RETRY_AFTER_SECS};
use crate::store::Store;
use crate::tower::{Options, Shared, State, open, response_cookie};

pub use csrf::{CsrfMiddleware, CsrfService};
pub use session::{Session, SessionRejection};

use session::record_middleware_type;

/// The actix-web middleware: wrap an `App` (or a scope) with it so that
/// each request gets a [`Session`] backed by `store`: the in-process
/// [`Sessions`](crate::Sessions), or any other [`Store`] (with the `redis` feature,
/// `sesame::redis::RedisSessions`).
///
/// On the way in it looks for the session cookie (the first value that
/// validates wins, see [`CookieConfig::find_session`]) and puts the
/// request's handle in its extensions; nothing is created. On the way out
/// it writes `Set-Cookie` when the handler created, rotated or ended the
/// session (see [`crate::tower`]'s table), with `Cache-Control: no-store`.
/// When a remote store cannot say whether the cookie is live, every method
/// of the handle returns its error (a `503`), and the response leaves the
/// cookie alone.
pub struct SessionMiddleware<S> {
    store: S,
    options: Options,
}

impl<S: Clone> Clone for SessionMiddleware<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            options: self.options.clone(),
        }
    }
}

impl<S> std::fmt::Debug for SessionMiddleware<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<S: Store> SessionMiddleware<S> {
    /// A middleware over `store` with the secure cookie defaults
    /// ([`CookieConfig::default`]), no rolling, no renewal and
    /// `Cache-Control: no-store` on the responses that used a session.
    ///
    /// ```
    /// use actix_web::{App, test, web};
    /// use sesame::{Error, Sessions};
    /// use sesame::actix::{Session, SessionMiddleware};
    ///
    /// async fn read(session: Session<Sessions<u32>>) -> Result<String, Error> {
    ///     Ok(format!("{:?}", session.get().await?))
    /// }
    ///
    /// # actix_web::rt::System::new().block_on(async {
    /// let sessions = Sessions::<u32>::new();
    /// let app = App::new()
    ///     .wrap(SessionMiddleware::new(sessions.clone()))
    ///     .route("/", web::get().to(read));
    /// let app = test::init_service(app).await;
    /// let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// assert!(response.headers().get("set-cookie").is_none(), "reads create nothing");
    /// assert_eq!(test::read_body(response).await, "None");
    /// assert!(sessions.is_empty());
    /// # });
    /// ```
    pub fn new(store: S) -> Self {
        record_middleware_type(std::any::type_name::<Session<S>>());
        Self {
            store,
            options: Options::default(),
        }
    }

    /// The cookie's name and attributes (see [`crate::cookie`]).
    ///
    /// ```
    /// use actix_web::{App, test, web};
    /// use sesame::{Error, Sessions};
    /// use sesame::actix::{Session, SessionMiddleware};
    /// use sesame::cookie::CookieConfig;
    ///
    /// async fn write(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     session.set(1).await?;
    ///     Ok("ok")
    /// }
    ///
    /// # actix_web::rt::System::new().block_on(async {
    /// let config = CookieConfig::builder().name("__Host-shop").build()?;
    /// let middleware = SessionMiddleware::new(Sessions::<u32>::new()).cookie(config);
    /// let app = test::init_service(App::new().wrap(middleware).route("/", web::get().to(write))).await;
    /// let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// let cookie = response.headers().get("set-cookie").ok_or("a cookie")?.to_str()?;
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
    /// session (see [`crate::tower::SessionLayer::rolling`]). Default off.
    ///
    /// ```
    /// use actix_web::{App, test, web};
    /// use sesame::{Error, Sessions};
    /// use sesame::actix::{Session, SessionMiddleware};
    ///
    /// async fn read(session: Session<Sessions<u32>>) -> Result<String, Error> {
    ///     Ok(session.get().await?.unwrap_or_default().to_string())
    /// }
    ///
    /// # actix_web::rt::System::new().block_on(async {
    /// let sessions = Sessions::<u32>::new();
    /// let (token, _) = sessions.create(7)?;
    /// let cookie = format!("__Host-id={}", token.as_str());
    /// for (rolling, resent) in [(false, false), (true, true)] {
    ///     let middleware = SessionMiddleware::new(sessions.clone()).rolling(rolling);
    ///     let app = App::new().wrap(middleware).route("/", web::get().to(read));
    ///     let app = test::init_service(app).await;
    ///     let request = test::TestRequest::get().insert_header(("cookie", cookie.as_str()));
    ///     let response = test::call_service(&app, request.to_request()).await;
    ///     assert_eq!(response.headers().contains_key("set-cookie"), resent);
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
    /// "renewal timeout"), when the response is produced (see
    /// [`crate::tower::SessionLayer::renew_after`]). Default off. Pair it
    /// with a short [`crate::Builder::rotation_grace`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use actix_web::{App, test, web};
    /// use sesame::{Error, ManualClock, Sessions};
    /// use sesame::actix::{Session, SessionMiddleware};
    ///
    /// async fn read(session: Session<Sessions<u32>>) -> Result<String, Error> {
    ///     Ok(session.get().await?.unwrap_or_default().to_string())
    /// }
    ///
    /// # actix_web::rt::System::new().block_on(async {
    /// let clock = ManualClock::new();
    /// let sessions = Sessions::<u32>::builder().clock(clock.clone()).build()?;
    /// let (token, _) = sessions.create(7)?;
    /// let middleware = SessionMiddleware::new(sessions.clone()).renew_after(Duration::from_secs(300));
    /// let app = test::init_service(App::new().wrap(middleware).route("/", web::get().to(read))).await;
    /// clock.advance(Duration::from_secs(301)); // the token is older than 5 minutes
    /// let cookie = format!("__Host-id={}", token.as_str());
    /// let request = test::TestRequest::get().insert_header(("cookie", cookie));
    /// let response = test::call_service(&app, request.to_request()).await;
    /// assert!(response.headers().contains_key("set-cookie"), "a new token");
    /// assert!(sessions.validate(&token).is_none(), "the old one is refused");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn renew_after(mut self, every: Duration) -> Self {
        self.options.renew_after = Some(every);
        self
    }

    /// Mark the responses of requests whose handler used the live session
    /// `Cache-Control: no-store`, unless the handler set its own
    /// `Cache-Control` (see [`crate::tower::SessionLayer::no_store`]).
    /// Default on. Responses that carry the session cookie are always
    /// `no-store`.
    ///
    /// # Warning
    ///
    /// Off, a shared cache (CDN, proxy) may store one user's page and serve
    /// it to others, unless every handler that reads the session sets
    /// `Cache-Control` itself (OWASP session management cheat sheet, "Web
    /// Content Caching").
    ///
    /// ```
    /// use actix_web::{App, test, web};
    /// use sesame::{Error, Sessions};
    /// use sesame::actix::{Session, SessionMiddleware};
    ///
    /// async fn read(session: Session<Sessions<u32>>) -> Result<String, Error> {
    ///     Ok(session.get().await?.unwrap_or_default().to_string())
    /// }
    ///
    /// # actix_web::rt::System::new().block_on(async {
    /// let sessions = Sessions::<u32>::new();
    /// let (token, _) = sessions.create(7)?;
    /// let cookie = format!("__Host-id={}", token.as_str());
    /// for (on, expected) in [(true, Some("no-store")), (false, None)] {
    ///     let middleware = SessionMiddleware::new(sessions.clone()).no_store(on);
    ///     let app = test::init_service(App::new().wrap(middleware).route("/", web::get().to(read))).await;
    ///     let request = test::TestRequest::get().insert_header(("cookie", cookie.as_str()));
    ///     let response = test::call_service(&app, request.to_request()).await;
    ///     let cache = response.headers().get("cache-control");
    ///     assert_eq!(cache.map(|v| v.to_str()).transpose()?, expected);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn no_store(mut self, on: bool) -> Self {
        self.options.no_store = on;
        self
    }
}

impl<Svc, B, S> Transform<Svc, ServiceRequest> for SessionMiddleware<S>
where
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
    S: Store,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = SessionService<Svc, S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: Svc) -> Self::Future {
        ready(Ok(SessionService {
            service: Rc::new(service),
            store: self.store.clone(),
            options: Arc::new(self.options.clone()),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around the inner one (one per
/// actix worker).
pub struct SessionService<Svc, S> {
    service: Rc<Svc>,
    store: S,
    options: Arc<Options>,
}

impl<Svc, S> std::fmt::Debug for SessionService<Svc, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<Svc, B, S> Service<ServiceRequest> for SessionService<Svc, S>
where
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
    S: Store,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    /// One boxed future per request (the store's futures have no nameable
    /// type), as actix-web's own middleware do.
    type Future = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, actix_web::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let store = self.store.clone();
        let options = Arc::clone(&self.options);
        Box::pin(async move {
            let cookies = req.headers().get_all(header::COOKIE);
            let state: State = open(&store, &options, cookies.map(HeaderValue::as_bytes)).await;
            let shared = Arc::new(Shared::new(store, options, state));
            req.extensions_mut()
                .insert(Session::<S>::new(Arc::clone(&shared)));
            let mut response = service.call(req).await?;
            let value = response_cookie(&shared).await;
            apply(&shared, value, response.headers_mut());
            Ok(response)
        })
    }
}

/// Writes the session cookie `value` and `Cache-Control: no-store` where it
/// belongs (as the tower layer does: see [`crate::tower`], "Caching").
fn apply<S>(shared: &Shared<S>, value: Option<http::HeaderValue>, headers: &mut HeaderMap) {
    let no_store = HeaderValue::from_static("no-store");
    match value.map(|v| HeaderValue::from_bytes(v.as_bytes())) {
        Some(Ok(value)) => {
            headers.append(header::SET_COOKIE, value);
            headers.insert(header::CACHE_CONTROL, no_store);
        }
        Some(Err(_)) => {
            // `sesame::cookie` builds valid header values only.
            debug_assert!(
                false,
                "a Set-Cookie built by sesame::cookie is a header value"
            );
        }
        None => {
            let used = shared.finished().used;
            if used && shared.options().no_store && !headers.contains_key(header::CACHE_CONTROL) {
                headers.insert(header::CACHE_CONTROL, no_store);
            }
        }
    }
}

/// The response for a session operation that failed (feature `actix`), so
/// handlers use `?` on [`Session`]'s methods: the statuses and fixed bodies
/// of the axum adapter (`503` + `Retry-After: 1` for
/// [`crate::ErrorKind::Unavailable`] and [`crate::ErrorKind::Full`], `409`
/// for [`crate::ErrorKind::NotFound`] and [`crate::ErrorKind::Conflict`],
/// `500` for [`crate::ErrorKind::Encoding`]), always `no-store`.
///
/// ```
/// use actix_web::ResponseError as _;
/// use sesame::{Error, ErrorKind};
///
/// let response = Error::from(ErrorKind::Full).error_response();
/// assert_eq!(response.status(), 503);
/// assert_eq!(response.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
/// assert_eq!(Error::from(ErrorKind::NotFound).error_response().status(), 409);
/// ```
impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        let (code, _) = self.http_response();
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let (_, body) = self.http_response();
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        response
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("text/plain; charset=utf-8")
            .body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind's status, `Retry-After` exactly on `503`, `no-store`.
    #[test]
    fn each_error_kind_maps_to_its_status() {
        use crate::ErrorKind;
        let cases = [
            (ErrorKind::Unavailable, 503, Some("1")),
            (ErrorKind::Full, 503, Some("1")),
            (ErrorKind::NotFound, 409, None),
            (ErrorKind::Conflict, 409, None),
            (ErrorKind::Encoding, 500, None),
        ];
        for (kind, status, retry) in cases {
            let response = Error::from(kind).error_response();
            assert_eq!(response.status().as_u16(), status, "{kind:?}");
            let retry_after = response.headers().get(header::RETRY_AFTER);
            assert_eq!(retry_after.map(|v| v.to_str().unwrap()), retry, "{kind:?}");
            assert_eq!(
                response.headers().get(header::CACHE_CONTROL).unwrap(),
                "no-store"
            );
        }
    }
}
