//! The per-request session handle.
//!
//! # Ground rules
//!
//! A request's [`State`] (its current token and what happened to it) sits
//! behind a small mutex, held only for a few instructions and never while
//! user code runs (the closures of [`Session::update`] and
//! [`Session::with`], `T::default()`), nor across an `await`: clones of a
//! handle can be used from several tasks. No store call runs under it:
//! two clones of one handle that both create the request's session race,
//! and the loser hands its data back and ends its own (see
//! `Session::create`), so one request never holds two sessions.
//!
//! The handle works on any [`Store`] and its methods are `async`: the
//! in-process [`Sessions`] answers with ready futures, a remote backend
//! awaits its I/O, so no runtime worker blocks on the network. Every
//! method returns the backend's errors (a remote store may be
//! unreachable); for the in-process engine only the ones its own
//! operations can meet ([`ErrorKind::Full`], [`ErrorKind::NotFound`]).

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;

use super::Options;
use crate::error::{Error, ErrorKind};
use crate::http::device::Seen;
use crate::store::Store;
use crate::{Handle, Principal, SessionInfo, SessionToken, Sessions};

/// What the request did to its session, for the response's cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Nothing that changes the cookie.
    Unchanged,
    /// A token was issued (creation, rotation, login): send it.
    Issued,
    /// The request ended the session (logout): clear the cookie.
    Ended,
}

pub(crate) struct State {
    /// The request's live token, as far as it knows.
    pub(super) token: Option<SessionToken>,
    /// The request carried a cookie with the session cookie's name.
    pub(super) presented: bool,
    pub(super) outcome: Outcome,
    /// `renew_after` found the presented token due: rotate it when the
    /// response is produced, if the request still holds it.
    pub(super) renew_due: bool,
    /// The handler consulted the live session (read or wrote it): the
    /// response depends on it.
    pub(super) used: bool,
    /// A session this request held vanished under it (another request
    /// ended it or rotated its token away): a write does not start a new
    /// one in its place.
    pub(super) vanished: bool,
    /// The store could not say whether the presented cookie names a live
    /// session (a remote backend is down): every `try_*` call fails with
    /// this error, and the response leaves the cookie alone.
    pub(super) failed: Option<Error>,
    /// The request's token travels in `Authorization: Bearer`: no cookie
    /// is read or written; a token issued is handed to the handler
    /// ([`Session::token_for_response`]).
    pub(super) bearer: bool,
}

impl State {
    /// A request's state before the layer looked for its session.
    pub(crate) fn new(presented: bool) -> Self {
        Self {
            token: None,
            presented,
            outcome: Outcome::Unchanged,
            renew_due: false,
            used: false,
            vanished: false,
            failed: None,
            bearer: false,
        }
    }
}

/// What a request's handles share with the response future.
pub(crate) struct Shared<S> {
    sessions: S,
    options: Arc<Options>,
    state: Mutex<State>,
    /// The request's device, when the layer records devices.
    device: Option<Seen>,
}

impl<S> Shared<S> {
    pub(crate) fn new(sessions: S, options: Arc<Options>, state: State) -> Self {
        Self {
            sessions,
            options,
            state: Mutex::new(state),
            device: None,
        }
    }

    /// The request's device, to record at creation and login.
    pub(super) fn with_device(mut self, device: Option<Seen>) -> Self {
        self.device = device;
        self
    }

    pub(super) fn sessions(&self) -> &S {
        &self.sessions
    }

    pub(super) fn failed(&self) -> bool {
        self.state.lock().failed.is_some()
    }

    pub(crate) fn options(&self) -> &Options {
        &self.options
    }

    /// The state as the response finds it.
    pub(crate) fn finished(&self) -> Finished {
        let state = self.state.lock();
        Finished {
            token: state.token.clone(),
            outcome: state.outcome,
            presented: state.presented,
            renew_due: state.renew_due,
            used: state.used,
            bearer: state.bearer,
        }
    }
}

/// A copy of a request's [`State`] when its response is produced.
pub(crate) struct Finished {
    pub(super) token: Option<SessionToken>,
    pub(super) outcome: Outcome,
    pub(super) presented: bool,
    pub(super) renew_due: bool,
    pub(crate) used: bool,
    pub(crate) bearer: bool,
}

/// A request's session, given to handlers by [`super::SessionLayer`] (as
/// a request extension, and with the `axum` feature as an extractor).
///
/// The session is created lazily: reads of a request without a session
/// return `Ok(None)` and create nothing; the first write
/// ([`Session::update`], [`Session::set`], [`Session::login`]) creates it,
/// and the response then sets the cookie. Cloning is cheap; clones act on
/// the same session.
///
/// One API for every [`Store`]: the methods that reach the store are
/// `async` and return `Result`. On the in-process [`Sessions`] the futures
/// are ready ones (the engine call is done when the method is called) and
/// the only errors are the engine's own ([`ErrorKind::Full`],
/// [`ErrorKind::NotFound`]); on a remote store a call awaits its I/O, never
/// blocking a runtime worker, and fails with [`ErrorKind::Unavailable`]
/// when the store cannot answer, including when the layer could not check
/// the request's cookie. With the `axum` feature, [`Error`] is a response
/// (`503` for an unavailable store), so handlers can use `?`.
pub struct Session<T, P = String, S = Sessions<T, P>> {
    shared: Arc<Shared<S>>,
    types: PhantomData<fn() -> (T, P)>,
}

impl<T, P, S> Clone for Session<T, P, S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            types: PhantomData,
        }
    }
}

impl<T, P, S> std::fmt::Debug for Session<T, P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.state.lock();
        f.debug_struct("Session")
            .field("active", &state.token.is_some())
            .field("outcome", &state.outcome)
            .finish_non_exhaustive()
    }
}

impl<T, P, S> Session<T, P, S>
where
    T: Send + 'static,
    P: Principal,
    S: Store<Data = T, Principal = P>,
{
    pub(crate) fn new(shared: Arc<Shared<S>>) -> Self {
        Self {
            shared,
            types: PhantomData,
        }
    }

    /// The current token, for an operation on the session: from here on
    /// the response depends on the session (see `used`).
    fn token(&self) -> Option<SessionToken> {
        let mut state = self.shared.state.lock();
        state.used |= state.token.is_some();
        state.token.clone()
    }

    /// The store found no live session for `token` (ended by another
    /// request, expired, or rotated away by a concurrent login): forget it.
    /// The cookie is left alone: if another request rotated the token, its
    /// response carries the new cookie, which a clearing one must not
    /// overwrite.
    fn lost(&self, token: &SessionToken) {
        let mut state = self.shared.state.lock();
        if state.token.as_ref() == Some(token) {
            state.token = None;
            state.renew_due = false;
            state.vanished = true;
        }
    }

    fn issued(&self, token: SessionToken) {
        let mut state = self.shared.state.lock();
        state.token = Some(token);
        state.outcome = Outcome::Issued;
        state.renew_due = false;
    }

    /// The error the layer met checking the request's cookie, if any.
    fn check(&self) -> Result<(), Error> {
        match self.shared.state.lock().failed.clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Creates a session holding `data` unless a clone of this handle
    /// holds one, in which case `data` is given back.
    ///
    /// Refused (`NotFound`) when the request's session vanished under it,
    /// unless `replace`: if a concurrent login rotated the token away, the
    /// new session's cookie would overwrite the login's. A login replaces
    /// it (the user just authenticated); a plain write does not.
    ///
    /// The store call runs without the state lock (it may await I/O). If a
    /// clone created a session meanwhile, that one stays the request's:
    /// ours gives its data back and ends, so the request never holds two.
    async fn create(&self, data: T, replace: bool) -> Result<Result<(), T>, Error>
    where
        T: Default,
    {
        {
            let state = self.shared.state.lock();
            if state.token.is_some() {
                return Ok(Err(data));
            }
            if state.vanished && !replace {
                return Err(Error::new(ErrorKind::NotFound));
            }
        }
        let token = self.shared.sessions.create(data).await?;
        // Recorded before the race below is settled: if this session turns
        // out an orphan, its logout drops the device with it. A login
        // (`replace`) records it once, after its rotation.
        if !replace {
            self.record_device(&token).await;
        }
        let orphan = {
            let mut state = self.shared.state.lock();
            if state.token.is_none() {
                state.token = Some(token);
                state.outcome = Outcome::Issued;
                return Ok(Ok(()));
            }
            token
        };
        let data = self
            .shared
            .sessions
            .update(&orphan, |data| std::mem::take(data))
            .await;
        // Anonymous and cookie-less: if this fails it expires at the idle
        // timeout (or is evicted first).
        let _ = self.shared.sessions.logout(&orphan).await;
        Ok(Err(data?))
    }

    /// Records the request's device on the session `token` names, when the
    /// layer records devices. Best effort: the session is what matters, and
    /// it exists whether or not its device could be recorded.
    async fn record_device(&self, token: &SessionToken) {
        if let (Some(seen), Some(config)) = (&self.shared.device, &self.shared.options.devices) {
            let _ = self
                .shared
                .sessions
                .set_device(token, seen.device(config))
                .await;
        }
    }

    /// Runs `op` on the current token; `Ok(None)` when there is no session
    /// or it is gone (then forgotten).
    async fn on_token<R, F>(&self, op: impl FnOnce(SessionToken) -> F) -> Result<Option<R>, Error>
    where
        F: Future<Output = Result<Option<R>, Error>>,
    {
        self.check()?;
        let Some(token) = self.token() else {
            return Ok(None);
        };
        let r = op(token.clone()).await?;
        if r.is_none() {
            self.lost(&token);
        }
        Ok(r)
    }

    /// The store this session lives in: for [`Store::sessions_of`],
    /// [`Store::revoke`] and, on the in-process [`Sessions`], its stats
    /// and the like.
    ///
    /// ```
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// async fn handler(session: Session<u32>) -> Result<(), Error> {
    ///     session.login("alice".to_owned()).await?;
    ///     // `Sessions`' own (synchronous) method; generic code calls
    ///     // `sesame::store::Store::sessions_of` and awaits it.
    ///     let mine = session.store().sessions_of(&"alice".to_owned());
    ///     assert_eq!(mine.len(), 1);
    ///     assert_eq!(session.store().stats().live, 1);
    ///     Ok(())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn store(&self) -> &S {
        &self.shared.sessions
    }

    /// Whether the request has a live session, as far as it knows (another
    /// request may end it at any moment; the next operation will tell).
    /// Asks the store nothing: the layer already did.
    ///
    /// # Errors
    ///
    /// When the layer could not check the request's cookie (the store was
    /// unavailable): whether there is a session is unknown.
    ///
    /// ```
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// async fn handler(session: Session<u32>) -> Result<(), Error> {
    ///     assert!(!session.is_active()?, "no cookie, no session");
    ///     session.set(1).await?;
    ///     assert!(session.is_active()?);
    ///     Ok(())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_active(&self) -> Result<bool, Error> {
        self.check()?;
        Ok(self.token().is_some())
    }

    /// A copy of the session's data; `Ok(None)` without a session.
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    ///
    /// ```
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// async fn handler(session: Session<u32>) -> Result<(), Error> {
    ///     assert_eq!(session.get().await?, None, "reads create nothing");
    ///     session.set(7).await?;
    ///     assert_eq!(session.get().await?, Some(7));
    ///     Ok(())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn get(&self) -> Result<Option<T>, Error>
    where
        T: Clone,
    {
        self.with(T::clone).await
    }

    /// Reads the session's data through `f`; `Ok(None)` without a session.
    /// `f` must not use this session again (on the in-process engine it
    /// runs under the session's data lock).
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    ///
    /// ```
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// async fn handler(session: Session<u32>) -> Result<(), Error> {
    ///     session.set(20).await?;
    ///     assert_eq!(session.with(|n| n * 2).await?, Some(40));
    ///     Ok(())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn with<R: Send>(&self, f: impl FnOnce(&T) -> R + Send) -> Result<Option<R>, Error> {
        let sessions = &self.shared.sessions;
        self.on_token(|token| async move { sessions.with(&token, f).await })
            .await
    }

    /// The session's metadata (handle, principal, times); `Ok(None)`
    /// without a session. Never holds the token.
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    ///
    /// ```
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// async fn handler(session: Session<u32>) -> Result<(), Error> {
    ///     assert!(session.info().await?.is_none());
    ///     session.login("alice".to_owned()).await?;
    ///     let info = session.info().await?.expect("logged in");
    ///     assert_eq!(info.principal.as_deref(), Some("alice"));
    ///     Ok(())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn info(&self) -> Result<Option<SessionInfo<P>>, Error> {
        let sessions = &self.shared.sessions;
        self.on_token(|token| async move { sessions.info(&token).await })
            .await
    }

    /// The session's public handle (safe to show, for "end this session"
    /// buttons); `Ok(None)` without a session.
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    ///
    /// ```
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// async fn handler(session: Session<u32>) -> Result<(), Error> {
    ///     session.set(1).await?;
    ///     let handle = session.handle().await?.expect("a session");
    ///     assert_eq!(session.info().await?.map(|i| i.handle), Some(handle));
    ///     Ok(())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn handle(&self) -> Result<Option<Handle>, Error> {
        let sessions = &self.shared.sessions;
        self.on_token(|token| async move { sessions.validate(&token).await })
            .await
    }

    /// Who is logged in; `Ok(None)` when nobody is, or without a session.
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    ///
    /// ```
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// async fn handler(session: Session<u32>) -> Result<(), Error> {
    ///     assert_eq!(session.principal().await?, None);
    ///     session.login("alice".to_owned()).await?;
    ///     assert_eq!(session.principal().await?.as_deref(), Some("alice"));
    ///     Ok(())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn principal(&self) -> Result<Option<P>, Error> {
        Ok(self.info().await?.and_then(|info| info.principal))
    }

    /// Changes the session's data in place, atomically (concurrent updates
    /// of one session from several requests all apply), and returns what
    /// `f` returns. Without a session, creates one from `T::default()`
    /// with `f` applied. `f` must not use this session again, and may run
    /// more than once (a remote store retries it against concurrent
    /// writers; a clone of this handle may create the session first): keep
    /// it free of side effects beyond the data.
    ///
    /// A session the request had that vanished while the handler ran
    /// (another request logged it out, or rotated its token away with a
    /// login) is not replaced by a new one: that one's cookie could land
    /// after the login's and log the user out.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Full`] when a session had to be created and the store
    /// is full; [`ErrorKind::NotFound`] when the request's session vanished
    /// while the handler ran; when the store cannot answer.
    ///
    /// ```
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// async fn handler(session: Session<u32>) -> Result<String, Error> {
    ///     let n = session.update(|n| { *n += 1; *n }).await?;
    ///     assert_eq!(n, 1, "created from the default, then changed");
    ///     assert_eq!(session.update(|n| { *n += 1; *n }).await?, 2);
    ///     Ok(format!("visit {n}"))
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn update<R: Send>(&self, mut f: impl FnMut(&mut T) -> R + Send) -> Result<R, Error>
    where
        T: Default,
    {
        self.check()?;
        // Bounded: each round either writes, or loses a race to a clone or
        // a concurrent logout.
        for _ in 0..3 {
            if let Some(token) = self.token() {
                match self.shared.sessions.update(&token, &mut f).await {
                    Ok(r) => return Ok(r),
                    Err(e) if e.kind() == ErrorKind::NotFound => self.lost(&token),
                    Err(e) => return Err(e),
                }
            }
            // No session (or it just ended): start one with the change
            // applied, unless a clone of this handle started one meanwhile
            // (then change that one).
            let mut data = T::default();
            let r = f(&mut data);
            if self.create(data, false).await?.is_ok() {
                return Ok(r);
            }
        }
        Err(Error::new(ErrorKind::NotFound))
    }

    /// Replaces the session's data. Without a session, creates one holding
    /// `value` (not in place of one that vanished while the handler ran:
    /// see [`Session::update`]).
    ///
    /// # Errors
    ///
    /// As [`Session::update`].
    ///
    /// ```
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// async fn handler(session: Session<u32>) -> Result<(), Error> {
    ///     session.set(3).await?;
    ///     session.set(4).await?;
    ///     assert_eq!(session.get().await?, Some(4));
    ///     assert_eq!(session.store().len(), 1, "one session");
    ///     Ok(())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn set(&self, value: T) -> Result<(), Error>
    where
        T: Default,
    {
        self.check()?;
        let mut value = Some(value);
        for _ in 0..3 {
            if let Some(token) = self.token() {
                let r = self
                    .shared
                    .sessions
                    .update(&token, |data| {
                        if let Some(v) = value.take() {
                            *data = v;
                        }
                    })
                    .await;
                match r {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == ErrorKind::NotFound => self.lost(&token),
                    Err(e) => return Err(e),
                }
            }
            let Some(v) = value.take() else {
                // A remote store took the value and then lost it to a
                // concurrent logout.
                return Err(Error::new(ErrorKind::NotFound));
            };
            match self.create(v, false).await? {
                Ok(()) => return Ok(()),
                Err(v) => value = Some(v),
            }
        }
        Err(Error::new(ErrorKind::NotFound))
    }

    /// Logs the session in as `principal`: rotates its token (the old one
    /// stops working; the response sets the new cookie, or for a bearer
    /// request [`Session::token_for_response`] gives it) and binds the
    /// principal (see [`Sessions::login`]: a change of principal starts
    /// from fresh data). Without a session, creates one from
    /// `T::default()` first.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Full`] when a session had to be created and the store
    /// is full; [`ErrorKind::NotFound`] if the session keeps vanishing
    /// under concurrent logouts; when the store cannot answer.
    ///
    /// ```
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// async fn handler(session: Session<u32>) -> Result<(), Error> {
    ///     session.set(1).await?;
    ///     let before = session.handle().await?;
    ///     session.login("alice".to_owned()).await?;
    ///     assert_eq!(session.principal().await?.as_deref(), Some("alice"));
    ///     assert_eq!(session.handle().await?, before, "same session, new token");
    ///     Ok(())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn login(&self, principal: P) -> Result<(), Error>
    where
        T: Default,
    {
        self.check()?;
        // Two rounds: the session may be ended by another request between
        // our lookup and the rotation; the second round starts a fresh one.
        for _ in 0..2 {
            let token = match self.token() {
                Some(token) => token,
                None => {
                    let _ = self.create(T::default(), true).await?;
                    match self.token() {
                        Some(token) => token,
                        None => continue,
                    }
                }
            };
            match self.shared.sessions.login(&token, principal.clone()).await {
                Ok(new) => {
                    self.record_device(&new).await;
                    self.issued(new);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::NotFound => self.lost(&token),
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(ErrorKind::NotFound))
    }

    /// Gives the session a new token (the old one stops working; the
    /// response sets the new cookie, or for a bearer request
    /// [`Session::token_for_response`] gives it). Rotate when privilege changes;
    /// [`Session::login`] already does.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] without a live session; when the store
    /// cannot answer.
    ///
    /// ```
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// use sesame::ErrorKind;
    ///
    /// async fn handler(session: Session<u32>) -> Result<(), Error> {
    ///     let none = session.rotate().await.unwrap_err();
    ///     assert_eq!(none.kind(), ErrorKind::NotFound, "nothing to rotate");
    ///     session.set(5).await?;
    ///     session.rotate().await?;
    ///     assert_eq!(session.get().await?, Some(5), "the data stays");
    ///     Ok(())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn rotate(&self) -> Result<(), Error> {
        self.check()?;
        let Some(token) = self.token() else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        match self.shared.sessions.rotate(&token).await {
            Ok(new) => {
                self.issued(new);
                Ok(())
            }
            Err(e) => {
                if e.kind() == ErrorKind::NotFound {
                    self.lost(&token);
                }
                Err(e)
            }
        }
    }

    /// The token this request issued (its session was created, logged in
    /// or rotated) when the request is a bearer one
    /// ([`super::TokenSource::Bearer`], or `CookieOrBearer` with an
    /// `Authorization` header): the handler returns it in the response's
    /// body, for the client to present as `Authorization: Bearer` from
    /// then on; no cookie carries it, and the token the client presented
    /// no longer works after a login or rotation. The layer marks that
    /// response `Cache-Control: no-store`.
    ///
    /// `None` when the request issued no token, and always for a cookie
    /// request: its cookie is `HttpOnly` so that page scripts never see the
    /// token, and a body that carried it would undo that.
    ///
    /// ```
    /// # use axum::{Router, body::Body, http::{Request, header}, routing::post};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer, TokenSource}};
    /// # use tower::ServiceExt as _;
    /// async fn login(session: Session<u32>) -> Result<String, Error> {
    ///     session.login("alice".to_owned()).await?;
    ///     Ok(session.token_for_response().map(|t| t.as_str().to_owned()).unwrap_or_default())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let sessions = Sessions::<u32>::new();
    /// let layer = SessionLayer::new(sessions.clone()).token_source(TokenSource::Bearer);
    /// let app = Router::new().route("/login", post(login)).with_state(sessions).layer(layer);
    /// let response = app.oneshot(Request::post("/login").body(Body::empty())?).await?;
    /// assert!(response.headers().get(header::SET_COOKIE).is_none());
    /// assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    /// let body = axum::body::to_bytes(response.into_body(), 1024).await?;
    /// assert_eq!(body.len(), 43, "the new token");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token_for_response(&self) -> Option<SessionToken> {
        let state = self.shared.state.lock();
        if state.bearer && state.outcome == Outcome::Issued {
            state.token.clone()
        } else {
            None
        }
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
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// async fn handler(session: Session<u32>) -> Result<(), Error> {
    ///     assert!(!session.logout().await?, "no session to end");
    ///     session.set(1).await?;
    ///     assert!(session.logout().await?);
    ///     assert_eq!(session.get().await?, None);
    ///     Ok(())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn logout(&self) -> Result<bool, Error> {
        self.check()?;
        let Some(token) = self.token() else {
            let mut state = self.shared.state.lock();
            if state.presented {
                state.outcome = Outcome::Ended;
            }
            return Ok(false);
        };
        let ended = self.shared.sessions.logout(&token).await?;
        let mut state = self.shared.state.lock();
        if state.token.as_ref() == Some(&token) {
            state.token = None;
        }
        state.outcome = Outcome::Ended;
        Ok(ended)
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
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// async fn handler(session: Session<u32>) -> Result<(), Error> {
    ///     assert_eq!(session.logout_everywhere().await?, 0, "nobody logged in");
    ///     let elsewhere = session.store().create(0)?.0;
    ///     session.store().login(&elsewhere, "alice".to_owned())?;
    ///     session.login("alice".to_owned()).await?;
    ///     assert_eq!(session.logout_everywhere().await?, 2);
    ///     assert!(session.store().is_empty());
    ///     Ok(())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn logout_everywhere(&self) -> Result<usize, Error> {
        self.logout_everywhere_inner().await
    }

    /// Ends every other session of the logged-in principal ("sign out of
    /// all other devices", as GitHub and Google offer) and keeps this one,
    /// cookie and all. Returns how many ended: 0 without a session, or when
    /// it is anonymous (see [`Sessions::logout_others`]). Pair it with
    /// [`super::SessionLayer::record_devices`] so users can see what they
    /// sign out of.
    ///
    /// # Errors
    ///
    /// When the store cannot answer (nothing is known to have ended).
    ///
    /// ```
    /// # use axum::{Router, body::Body, http::Request, routing::get};
    /// # use sesame::{Error, Sessions, tower::{Session, SessionLayer}};
    /// # use tower::ServiceExt as _;
    /// async fn handler(session: Session<u32>) -> Result<(), Error> {
    ///     assert_eq!(session.logout_others().await?, 0, "no session");
    ///     let phone = session.store().create(0)?.0;
    ///     let phone = session.store().login(&phone, "alice".to_owned())?;
    ///     session.login("alice".to_owned()).await?;
    ///     assert_eq!(session.logout_others().await?, 1);
    ///     assert!(session.store().validate(&phone).is_none());
    ///     assert!(session.is_active()?, "this one stays");
    ///     Ok(())
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// # let sessions = Sessions::<u32>::new();
    /// # let layer = SessionLayer::new(sessions.clone());
    /// # let app = Router::new().route("/", get(handler)).with_state(sessions).layer(layer);
    /// # let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
    /// # assert!(response.status().is_success(), "{}", response.status());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn logout_others(&self) -> Result<usize, Error> {
        self.check()?;
        let Some(token) = self.token() else {
            return Ok(0);
        };
        match self.shared.sessions.logout_others(&token).await {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.lost(&token);
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    async fn logout_everywhere_inner(&self) -> Result<usize, Error> {
        let Some(principal) = self.principal().await? else {
            return Ok(0);
        };
        let n = self.shared.sessions.revoke_user(&principal).await?;
        let mut state = self.shared.state.lock();
        state.token = None;
        state.outcome = Outcome::Ended;
        Ok(n)
    }
}

// Handles move into spawned tasks and axum's extensions: keep them
// `Send + Sync` whatever the data type (as long as it is `Send`).
const _: fn() = || {
    fn assert_send_sync<X: Send + Sync + 'static>() {}
    assert_send_sync::<Session<std::cell::Cell<u8>, u64>>();
};
