//! The request's session handle, its actix-web extractor, and the
//! rejection for a handler the middleware did not serve.

use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::body::BoxBody;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, HttpResponse, ResponseError};

#[cfg(doc)]
use super::SessionMiddleware;
use crate::error::Error;
use crate::store::Store;
use crate::tower::Shared;
use crate::{Handle, SessionInfo, Sessions};

/// A request's session, given to handlers by
/// [`SessionMiddleware`] as an extractor, typed by its store:
/// `Session<Sessions<Cart>>`, `Session<Sessions<Cart, UserId>>`,
/// `Session<RedisSessions<Cart, UserId>>`.
///
/// The session is created lazily: reads of a request without a session
/// return `Ok(None)` and create nothing; the first write
/// ([`Session::update`], [`Session::set`], [`Session::login`]) creates it,
/// and the response then sets the cookie. Cloning is cheap; clones act on
/// the same session. The methods are those of [`crate::tower::Session`],
/// with the same semantics: `async`, returning [`Error`] when the store
/// cannot answer (on the in-process engine only its own errors,
/// [`crate::ErrorKind::Full`] and [`crate::ErrorKind::NotFound`]).
pub struct Session<S: Store> {
    inner: crate::tower::Session<S::Data, S::Principal, S>,
}

impl<S: Store> Clone for Session<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S: Store> std::fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<S: Store> Session<S> {
    pub(super) fn new(shared: Arc<Shared<S>>) -> Self {
        Self {
            inner: crate::tower::Session::new(shared),
        }
    }

    /// The store this session lives in: for [`Store::sessions_of`],
    /// [`Store::revoke`] and, on the in-process [`Sessions`], its stats.
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     session.login("alice".to_owned()).await?;
    ///     assert_eq!(session.store().sessions_of(&"alice".to_owned()).len(), 1);
    ///     assert_eq!(session.store().stats().live, 1);
    ///     Ok("ok")
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub fn store(&self) -> &S {
        self.inner.store()
    }

    /// Whether the request has a live session, as far as it knows. Asks
    /// the store nothing: the middleware already did.
    ///
    /// # Errors
    ///
    /// When the middleware could not check the request's cookie (the store
    /// was unavailable).
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     assert!(!session.is_active()?, "no cookie, no session");
    ///     session.set(1).await?;
    ///     assert!(session.is_active()?);
    ///     Ok("ok")
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub fn is_active(&self) -> Result<bool, Error> {
        self.inner.is_active()
    }

    /// A copy of the session's data; `Ok(None)` without a session.
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     assert_eq!(session.get().await?, None, "reads create nothing");
    ///     session.set(7).await?;
    ///     assert_eq!(session.get().await?, Some(7));
    ///     Ok("ok")
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub async fn get(&self) -> Result<Option<S::Data>, Error>
    where
        S::Data: Clone,
    {
        self.inner.get().await
    }

    /// Reads the session's data through `f`; `Ok(None)` without a session.
    /// `f` must not use this session again.
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     session.set(20).await?;
    ///     assert_eq!(session.with(|n| n * 2).await?, Some(40));
    ///     Ok("ok")
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub async fn with<R: Send>(
        &self,
        f: impl FnOnce(&S::Data) -> R + Send,
    ) -> Result<Option<R>, Error> {
        self.inner.with(f).await
    }

    /// The session's metadata (handle, principal, times); `Ok(None)`
    /// without a session. Never holds the token.
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     assert!(session.info().await?.is_none());
    ///     session.login("alice".to_owned()).await?;
    ///     let info = session.info().await?.expect("logged in");
    ///     assert_eq!(info.principal.as_deref(), Some("alice"));
    ///     Ok("ok")
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub async fn info(&self) -> Result<Option<SessionInfo<S::Principal>>, Error> {
        self.inner.info().await
    }

    /// The session's public handle (safe to show, for "end this session"
    /// buttons); `Ok(None)` without a session.
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     session.set(1).await?;
    ///     let handle = session.handle().await?.expect("a session");
    ///     assert_eq!(session.info().await?.map(|i| i.handle), Some(handle));
    ///     Ok("ok")
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub async fn handle(&self) -> Result<Option<Handle>, Error> {
        self.inner.handle().await
    }

    /// Who is logged in; `Ok(None)` when nobody is, or without a session.
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     assert_eq!(session.principal().await?, None);
    ///     session.login("alice".to_owned()).await?;
    ///     assert_eq!(session.principal().await?.as_deref(), Some("alice"));
    ///     Ok("ok")
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub async fn principal(&self) -> Result<Option<S::Principal>, Error> {
        self.inner.principal().await
    }

    /// Changes the session's data in place, atomically, and returns what
    /// `f` returns. Without a session, creates one from `Data::default()`
    /// with `f` applied. `f` must not use this session again and may run
    /// more than once (keep it free of side effects beyond the data). A
    /// session that vanished while the handler ran is not replaced (see
    /// [`crate::tower::Session::update`]).
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Full`] when a session had to be created and the
    /// store is full; [`crate::ErrorKind::NotFound`] when the request's
    /// session vanished while the handler ran; when the store cannot
    /// answer.
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<String, Error> {
    ///     let n = session.update(|n| { *n += 1; *n }).await?;
    ///     assert_eq!(n, 1, "created from the default, then changed");
    ///     assert_eq!(session.update(|n| { *n += 1; *n }).await?, 2);
    ///     Ok(format!("visit {n}"))
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub async fn update<R: Send>(&self, f: impl FnMut(&mut S::Data) -> R + Send) -> Result<R, Error>
    where
        S::Data: Default,
    {
        self.inner.update(f).await
    }

    /// Replaces the session's data. Without a session, creates one holding
    /// `value`.
    ///
    /// # Errors
    ///
    /// As [`Session::update`].
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     session.set(3).await?;
    ///     session.set(4).await?;
    ///     assert_eq!(session.get().await?, Some(4));
    ///     assert_eq!(session.store().len(), 1, "one session");
    ///     Ok("ok")
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub async fn set(&self, value: S::Data) -> Result<(), Error>
    where
        S::Data: Default,
    {
        self.inner.set(value).await
    }

    /// Logs the session in as `principal`: rotates its token (the old one
    /// stops working; the response sets the new cookie) and binds the
    /// principal (a change of principal starts from fresh data, see
    /// [`Sessions::login`]). Without a session, creates one first.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Full`] when a session had to be created and the
    /// store is full; [`crate::ErrorKind::NotFound`] if the session keeps
    /// vanishing under concurrent logouts; when the store cannot answer.
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     session.set(1).await?;
    ///     let before = session.handle().await?;
    ///     session.login("alice".to_owned()).await?;
    ///     assert_eq!(session.principal().await?.as_deref(), Some("alice"));
    ///     assert_eq!(session.handle().await?, before, "same session, new token");
    ///     Ok("ok")
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub async fn login(&self, principal: S::Principal) -> Result<(), Error>
    where
        S::Data: Default,
    {
        self.inner.login(principal).await
    }

    /// Gives the session a new token (the old one stops working; the
    /// response sets the new cookie).
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::NotFound`] without a live session; when the
    /// store cannot answer.
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, ErrorKind, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     let none = session.rotate().await.unwrap_err();
    ///     assert_eq!(none.kind(), ErrorKind::NotFound, "nothing to rotate");
    ///     session.set(5).await?;
    ///     session.rotate().await?;
    ///     assert_eq!(session.get().await?, Some(5), "the data stays");
    ///     Ok("ok")
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub async fn rotate(&self) -> Result<(), Error> {
        self.inner.rotate().await
    }

    /// Destroys the session; the response clears the cookie. Returns
    /// whether a live session ended.
    ///
    /// # Errors
    ///
    /// When the store cannot answer; the session may then live on, and the
    /// cookie is kept.
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     assert!(!session.logout().await?, "no session to end");
    ///     session.set(1).await?;
    ///     assert!(session.logout().await?);
    ///     assert_eq!(session.get().await?, None);
    ///     Ok("ok")
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub async fn logout(&self) -> Result<bool, Error> {
        self.inner.logout().await
    }

    /// Ends every session of the logged-in principal, this one included
    /// ("log out everywhere"); the response clears the cookie. Returns how
    /// many sessions ended: 0 when nobody is logged in (then nothing
    /// changes).
    ///
    /// # Errors
    ///
    /// When the store cannot answer (nothing is known to have ended).
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     assert_eq!(session.logout_everywhere().await?, 0, "nobody logged in");
    ///     let elsewhere = session.store().create(0)?.0;
    ///     session.store().login(&elsewhere, "alice".to_owned())?;
    ///     session.login("alice".to_owned()).await?;
    ///     assert_eq!(session.logout_everywhere().await?, 2);
    ///     assert!(session.store().is_empty());
    ///     Ok("ok")
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub async fn logout_everywhere(&self) -> Result<usize, Error> {
        self.inner.logout_everywhere().await
    }

    /// Ends every other session of the logged-in principal, this one kept
    /// ("sign out of all other devices"; see
    /// [`crate::tower::Session::logout_others`]). Returns how many ended: 0
    /// without a live session or when nobody is logged in.
    ///
    /// # Errors
    ///
    /// When the store cannot answer (nothing is known to have ended).
    ///
    /// ```
    /// # use actix_web::{App, test, web};
    /// # use sesame::{Error, Sessions, actix::{Session, SessionMiddleware}};
    /// async fn handler(session: Session<Sessions<u32>>) -> Result<&'static str, Error> {
    ///     let phone = session.store().create(0)?.0;
    ///     let phone = session.store().login(&phone, "alice".to_owned())?;
    ///     session.login("alice".to_owned()).await?;
    ///     assert_eq!(session.logout_others().await?, 1);
    ///     assert!(session.store().validate(&phone).is_none());
    ///     assert!(session.is_active()?, "this one stays");
    ///     Ok("ok")
    /// }
    /// # actix_web::rt::System::new().block_on(async {
    /// # let mw = SessionMiddleware::new(Sessions::<u32>::new());
    /// # let app = test::init_service(App::new().wrap(mw).route("/", web::get().to(handler))).await;
    /// # let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # });
    /// ```
    pub async fn logout_others(&self) -> Result<usize, Error> {
        self.inner.logout_others().await
    }
}

/// Takes the request's session from the extensions [`SessionMiddleware`]
/// filled; a [`SessionRejection`] (`500`) when there is none of this type.
impl<S: Store> FromRequest for Session<S> {
    type Error = SessionRejection;
    type Future = Ready<Result<Self, SessionRejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(session) = req.extensions().get::<Self>() {
            return ready(Ok(session.clone()));
        }
        // No session of this type on the request. If no middleware of this
        // type was ever built but one of another type was, the handler's
        // type is wrong; otherwise the route lacks the middleware.
        let handler = std::any::type_name::<Self>();
        let built = middleware_types();
        ready(Err(report(match built.iter().find(|&&t| t != handler) {
            Some(&middleware) if !built.contains(&handler) => SessionRejection::TypeMismatch {
                middleware,
                handler,
            },
            _ => SessionRejection::MissingMiddleware,
        })))
    }
}

/// A handler takes a [`Session`] the request's middleware did not provide:
/// a bug of the program (see the [module docs](super#wiring-errors)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionRejection {
    /// The request did not pass through a [`SessionMiddleware`] of the
    /// handler's store type, and one of that type exists (or none at all
    /// does): the route lacks it.
    MissingMiddleware,
    /// No middleware of the handler's session type was ever built; one of
    /// another type was.
    TypeMismatch {
        /// The session type a middleware gives.
        middleware: &'static str,
        /// The session type the handler asked for.
        handler: &'static str,
    },
}

impl std::fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingMiddleware => {
                f.write_str("no session: the route has no sesame::actix::SessionMiddleware")
            }
            Self::TypeMismatch {
                middleware,
                handler,
            } => write!(
                f,
                "session type mismatch: the handler takes {handler}, \
                 which no SessionMiddleware gives (one gives {middleware})"
            ),
        }
    }
}

impl std::error::Error for SessionRejection {}

/// `500 Internal Server Error` with a fixed body: the types are in the
/// log line, not in what the client sees.
///
/// ```
/// use actix_web::ResponseError as _;
/// use sesame::actix::SessionRejection;
///
/// let response = SessionRejection::MissingMiddleware.error_response();
/// assert_eq!(response.status(), 500);
/// ```
impl ResponseError for SessionRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let body = match self {
            Self::MissingMiddleware => {
                "no session: the route has no sesame::actix::SessionMiddleware"
            }
            Self::TypeMismatch { .. } => "no session: session type mismatch (see the server log)",
        };
        HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(body)
    }
}

/// The session types of the [`SessionMiddleware`]s built in this process
/// (few: one per application, as a rule), recorded once per middleware at
/// construction, never per request.
static MIDDLEWARE_TYPES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

pub(super) fn record_middleware_type(name: &'static str) {
    let mut types = MIDDLEWARE_TYPES.lock().unwrap_or_else(|e| e.into_inner());
    if !types.contains(&name) {
        types.push(name);
    }
}

fn middleware_types() -> Vec<&'static str> {
    MIDDLEWARE_TYPES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Whether each wiring error was printed already: once per process.
static REPORTED_MISSING: AtomicBool = AtomicBool::new(false);
static REPORTED_MISMATCH: AtomicBool = AtomicBool::new(false);

/// Prints a wiring bug once per process (one line, naming the types).
fn report(rejection: SessionRejection) -> SessionRejection {
    let reported = match rejection {
        SessionRejection::MissingMiddleware => &REPORTED_MISSING,
        SessionRejection::TypeMismatch { .. } => &REPORTED_MISMATCH,
    };
    if !reported.swap(true, Ordering::Relaxed) {
        eprintln!("sesame: {rejection} (answering 500)");
    }
    rejection
}

// The handle lives in actix's request extensions and may move into spawned
// tasks: keep it `Send + Sync` whatever the data type (if it is `Send`).
const _: fn() = || {
    fn assert_send_sync<X: Send + Sync + 'static>() {}
    assert_send_sync::<Session<Sessions<std::cell::Cell<u8>, u64>>>();
};

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;
    use crate::http::actix::SessionMiddleware;

    fn extract<S: Store>(req: &HttpRequest) -> Result<Session<S>, SessionRejection> {
        Session::<S>::from_request(req, &mut Payload::None).into_inner()
    }

    /// Wiring bugs are told apart by the middleware types built so far
    /// (process-wide: this is the only test of this binary that builds a
    /// `SessionMiddleware`), answer 500 and name no type in the body.
    #[test]
    fn wiring_errors_are_told_apart_and_answer_500() {
        let req = TestRequest::default().to_http_request();
        assert_eq!(
            extract::<Sessions<u8>>(&req).unwrap_err(),
            SessionRejection::MissingMiddleware,
            "no middleware built yet"
        );
        let _middleware = SessionMiddleware::new(Sessions::<u8>::new());
        assert_eq!(
            extract::<Sessions<u8>>(&req).unwrap_err(),
            SessionRejection::MissingMiddleware,
            "a middleware of this type exists, not on this route"
        );
        let mismatch = extract::<Sessions<u16>>(&req).unwrap_err();
        let SessionRejection::TypeMismatch {
            middleware,
            handler,
        } = mismatch
        else {
            panic!("{mismatch:?}");
        };
        assert!(middleware.contains("Sessions<u8"), "{middleware}");
        assert!(handler.contains("Sessions<u16"), "{handler}");
        assert!(mismatch.to_string().contains(middleware));
        for rejection in [SessionRejection::MissingMiddleware, mismatch] {
            let response = rejection.error_response();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
}
