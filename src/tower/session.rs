//! The per-request session handle.
//!
//! # Ground rules
//!
//! A request's [`State`] (its current token and what happened to it) sits
//! behind a small mutex, held only for a few instructions and never while
//! user code runs (the closures of [`Session::update`] and
//! [`Session::with`], `T::default()`), nor across an `await`: clones of a
//! handle can be used from several tasks. Of the engine's calls, only
//! [`Store::create`] runs under it, so that two clones of one handle
//! cannot create two sessions for one request.
//!
//! The handle works on any [`Store`]. Its `try_*` methods return the
//! backend's errors (a remote store may be unreachable); the methods
//! without `try_` exist for the in-process [`Sessions`], which cannot be.

use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;

use super::Options;
use super::store::Store;
use crate::error::{Error, ErrorKind};
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

pub(super) struct State {
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
}

/// What a request's handles share with the response future.
pub(super) struct Shared<S> {
    sessions: S,
    options: Arc<Options>,
    state: Mutex<State>,
}

impl<S> Shared<S> {
    pub(super) fn new(sessions: S, options: Arc<Options>, state: State) -> Self {
        Self {
            sessions,
            options,
            state: Mutex::new(state),
        }
    }

    pub(super) fn sessions(&self) -> &S {
        &self.sessions
    }

    pub(super) fn failed(&self) -> bool {
        self.state.lock().failed.is_some()
    }

    pub(super) fn options(&self) -> &Options {
        &self.options
    }

    /// The state as the response finds it.
    pub(super) fn finished(&self) -> Finished {
        let state = self.state.lock();
        Finished {
            token: state.token.clone(),
            outcome: state.outcome,
            presented: state.presented,
            renew_due: state.renew_due,
            used: state.used,
        }
    }
}

/// A copy of a request's [`State`] when its response is produced.
pub(super) struct Finished {
    pub(super) token: Option<SessionToken>,
    pub(super) outcome: Outcome,
    pub(super) presented: bool,
    pub(super) renew_due: bool,
    pub(super) used: bool,
}

/// A request's session, given to handlers by [`super::SessionLayer`] (as
/// a request extension, and with the `axum` feature as an extractor).
///
/// The session is created lazily: reads of a request without a session
/// return `None` and create nothing; the first write ([`Session::update`],
/// [`Session::set`], [`Session::login`]) creates it, and the response then
/// sets the cookie. Cloning is cheap; clones act on the same session.
///
/// Methods are synchronous: the in-process engine never blocks on I/O, so
/// no lock is held across an `await`. On a remote [`Store`] (Redis) a call
/// may block for one round trip, bounded by the store's I/O timeout; the
/// `try_*` methods then report [`ErrorKind::Unavailable`] when it cannot
/// answer, including when the layer could not check the request's cookie.
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
    pub(super) fn new(shared: Arc<Shared<S>>) -> Self {
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

    /// The engine found no live session for `token` (ended by another
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

    /// Runs `op` on the current token; `None` when there is no session or
    /// it is gone (then forgotten).
    fn on_token<R>(&self, op: impl FnOnce(&SessionToken) -> Option<R>) -> Option<R> {
        let token = self.token()?;
        let r = op(&token);
        if r.is_none() {
            self.lost(&token);
        }
        r
    }

    /// Creates a session holding `data` unless a clone of this handle
    /// created one meanwhile, in which case `data` is given back.
    ///
    /// Refused (`NotFound`) when the request's session vanished under it,
    /// unless `replace`: if a concurrent login rotated the token away, the
    /// new session's cookie would overwrite the login's. A login replaces
    /// it (the user just authenticated); a plain write does not.
    fn create(&self, data: T, replace: bool) -> Result<Result<(), T>, Error> {
        let mut state = self.shared.state.lock();
        if state.token.is_some() {
            return Ok(Err(data));
        }
        if state.vanished && !replace {
            return Err(Error::new(ErrorKind::NotFound));
        }
        let token = self.shared.sessions.create(data)?;
        state.token = Some(token);
        state.outcome = Outcome::Issued;
        Ok(Ok(()))
    }

    /// The error the layer met checking the request's cookie, if any.
    fn check(&self) -> Result<(), Error> {
        match self.shared.state.lock().failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs `op` on the current token; `Ok(None)` when there is no session
    /// or it is gone (then forgotten).
    fn try_on_token<R>(
        &self,
        op: impl FnOnce(&SessionToken) -> Result<Option<R>, Error>,
    ) -> Result<Option<R>, Error> {
        self.check()?;
        let Some(token) = self.token() else {
            return Ok(None);
        };
        let r = op(&token)?;
        if r.is_none() {
            self.lost(&token);
        }
        Ok(r)
    }

    /// The store this session lives in: for [`Store::sessions_of`],
    /// [`Store::revoke`] and the like.
    pub fn store(&self) -> &S {
        &self.shared.sessions
    }

    /// Whether the request has a live session, as far as it knows (another
    /// request may end it at any moment; the next operation will tell).
    pub fn is_active(&self) -> bool {
        self.token().is_some()
    }

    /// A copy of the session's data; `Ok(None)` without a session.
    ///
    /// # Errors
    ///
    /// When the store cannot answer (see [`Store`]).
    pub fn try_get(&self) -> Result<Option<T>, Error>
    where
        T: Clone,
    {
        self.try_with(T::clone)
    }

    /// Reads the session's data through `f`; `Ok(None)` without a session.
    /// `f` must not use this session again.
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    pub fn try_with<R>(&self, f: impl FnOnce(&T) -> R) -> Result<Option<R>, Error> {
        self.try_on_token(|token| self.shared.sessions.with(token, f))
    }

    /// The session's metadata; `Ok(None)` without a session.
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    pub fn try_info(&self) -> Result<Option<SessionInfo<P>>, Error> {
        self.try_on_token(|token| self.shared.sessions.info(token))
    }

    /// The session's public handle; `Ok(None)` without a session.
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    pub fn try_handle(&self) -> Result<Option<Handle>, Error> {
        self.try_on_token(|token| self.shared.sessions.validate(token))
    }

    /// Who is logged in; `Ok(None)` when nobody is, or without a session.
    ///
    /// # Errors
    ///
    /// When the store cannot answer.
    pub fn try_principal(&self) -> Result<Option<P>, Error> {
        Ok(self.try_info()?.and_then(|info| info.principal))
    }

    /// [`Session::update`] on any store: changes the session's data
    /// atomically and returns what `f` returns; without a session, creates
    /// one from `T::default()` with `f` applied. `f` may run more than once
    /// (a remote store retries it against concurrent writers): keep it free
    /// of side effects beyond the data.
    ///
    /// # Errors
    ///
    /// When the store is full or cannot answer; [`ErrorKind::NotFound`]
    /// when the request's session vanished while the handler ran (see
    /// [`Session::update`]).
    pub fn try_update<R>(&self, mut f: impl FnMut(&mut T) -> R) -> Result<R, Error>
    where
        T: Default,
    {
        self.check()?;
        if let Some(token) = self.token() {
            match self.shared.sessions.update(&token, &mut f) {
                Ok(r) => return Ok(r),
                Err(e) if e.kind() == ErrorKind::NotFound => self.lost(&token),
                Err(e) => return Err(e),
            }
        }
        let mut data = T::default();
        let r = f(&mut data);
        if let Err(data) = self.create(data, false)? {
            // A clone of this handle created the session meanwhile: the
            // fresh value replaces the clone's (as in `update`).
            self.try_set(data)?;
        }
        Ok(r)
    }

    /// [`Session::set`] on any store.
    ///
    /// # Errors
    ///
    /// When the store is full or cannot answer; [`ErrorKind::NotFound`]
    /// when the request's session vanished while the handler ran (see
    /// [`Session::update`]).
    pub fn try_set(&self, value: T) -> Result<(), Error> {
        self.check()?;
        let mut value = Some(value);
        // Bounded: each round either writes, or loses a race to a clone or
        // a concurrent logout.
        for _ in 0..3 {
            if let Some(token) = self.token() {
                let r = self.shared.sessions.update(&token, |data| {
                    if let Some(v) = value.take() {
                        *data = v;
                    }
                });
                match r {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == ErrorKind::NotFound => self.lost(&token),
                    Err(e) => return Err(e),
                }
            }
            let Some(v) = value.take() else {
                return Ok(());
            };
            match self.create(v, false)? {
                Ok(()) => return Ok(()),
                Err(v) => value = Some(v),
            }
        }
        Err(Error::new(ErrorKind::NotFound))
    }

    /// [`Session::login`] on any store.
    ///
    /// # Errors
    ///
    /// When the store is full or cannot answer; [`ErrorKind::NotFound`] if
    /// the session keeps vanishing under concurrent logouts.
    pub fn try_login(&self, principal: P) -> Result<(), Error>
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
                    let _ = self.create(T::default(), true)?;
                    match self.token() {
                        Some(token) => token,
                        None => continue,
                    }
                }
            };
            match self.shared.sessions.login(&token, principal.clone()) {
                Ok(new) => {
                    self.issued(new);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::NotFound => self.lost(&token),
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(ErrorKind::NotFound))
    }

    /// [`Session::rotate`] on any store.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] without a live session; when the store
    /// cannot answer.
    pub fn try_rotate(&self) -> Result<(), Error> {
        self.check()?;
        let Some(token) = self.token() else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        match self.shared.sessions.rotate(&token) {
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

    /// [`Session::logout`] on any store: destroys the session; the response
    /// clears the cookie. Returns whether a live session ended.
    ///
    /// # Errors
    ///
    /// When the store cannot answer; the session may then live on, and the
    /// cookie is kept.
    pub fn try_logout(&self) -> Result<bool, Error> {
        self.check()?;
        let Some(token) = self.token() else {
            let mut state = self.shared.state.lock();
            if state.presented {
                state.outcome = Outcome::Ended;
            }
            return Ok(false);
        };
        let ended = self.shared.sessions.logout(&token)?;
        let mut state = self.shared.state.lock();
        if state.token.as_ref() == Some(&token) {
            state.token = None;
        }
        state.outcome = Outcome::Ended;
        Ok(ended)
    }

    /// [`Session::logout_everywhere`] on any store.
    ///
    /// # Errors
    ///
    /// When the store cannot answer (nothing is known to have ended).
    pub fn try_logout_everywhere(&self) -> Result<usize, Error> {
        let Some(principal) = self.try_principal()? else {
            return Ok(0);
        };
        let n = self.shared.sessions.revoke_user(&principal)?;
        let mut state = self.shared.state.lock();
        state.token = None;
        state.outcome = Outcome::Ended;
        Ok(n)
    }
}

/// The in-process engine's methods, which cannot meet a backend error.
impl<T, P> Session<T, P, Sessions<T, P>>
where
    T: Default + Send + 'static,
    P: Principal,
{
    /// The engine this session lives in: for [`Sessions::sessions_of`],
    /// [`Sessions::revoke`], [`Sessions::stats`] and the like.
    pub fn sessions(&self) -> &Sessions<T, P> {
        &self.shared.sessions
    }

    /// A copy of the session's data; `None` without a session.
    pub fn get(&self) -> Option<T>
    where
        T: Clone,
    {
        self.with(T::clone)
    }

    /// Reads the session's data through `f`; `None` without a session.
    /// `f` runs under the session's data mutex: it must not use this
    /// session again.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.on_token(|token| self.shared.sessions.with(token, f))
    }

    /// The session's metadata (handle, principal, times); `None` without a
    /// session. Never holds the token.
    pub fn info(&self) -> Option<SessionInfo<P>> {
        self.on_token(|token| self.shared.sessions.info(token))
    }

    /// The session's public handle; `None` without a session.
    pub fn handle(&self) -> Option<Handle> {
        self.on_token(|token| self.shared.sessions.validate(token))
    }

    /// Who is logged in; `None` when nobody is, or without a session.
    pub fn principal(&self) -> Option<P> {
        self.info().and_then(|info| info.principal)
    }

    /// Changes the session's data in place, atomically (concurrent updates
    /// of one session from several requests all apply), and returns what
    /// `f` returns. Without a session, creates one from `T::default()`
    /// with `f` applied. `f` must not use this session again.
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
    /// while the handler ran.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, Error>
    where
        T: Default,
    {
        let mut f = Some(f);
        if let Some(token) = self.token() {
            let r = self
                .shared
                .sessions
                .update(&token, |data| f.take().map(|f| f(data)));
            if let Ok(Some(r)) = r {
                return Ok(r);
            }
            self.lost(&token);
        }
        // No session (or it just ended): start one with the change applied.
        let Some(f) = f.take() else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        let mut data = T::default();
        let r = f(&mut data);
        if let Err(data) = self.create(data, false)? {
            // A clone of this handle created the session meanwhile. The
            // closure already ran, on a fresh value, and cannot run again:
            // that value replaces the clone's.
            self.set(data)?;
        }
        Ok(r)
    }

    /// Replaces the session's data. Without a session, creates one holding
    /// `value` (not in place of one that vanished while the handler ran:
    /// see [`Session::update`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Full`] when a session had to be created and the store
    /// is full; [`ErrorKind::NotFound`] when the request's session vanished
    /// while the handler ran.
    pub fn set(&self, value: T) -> Result<(), Error> {
        // The in-process engine never fails to answer: `try_set` is the
        // whole behaviour.
        self.try_set(value)
    }

    /// Logs the session in as `principal`: rotates its token (the old one
    /// stops working; the response sets the new cookie) and binds the
    /// principal (see [`Sessions::login`]). Without a session, creates one
    /// from `T::default()` first.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Full`] when a session had to be created and the store
    /// is full; [`ErrorKind::NotFound`] if the session keeps vanishing
    /// under concurrent logouts.
    pub fn login(&self, principal: P) -> Result<(), Error>
    where
        T: Default,
    {
        // The in-process engine never fails to answer: `try_login` is the
        // whole behaviour.
        self.try_login(principal)
    }

    /// Gives the session a new token (the old one stops working; the
    /// response sets the new cookie). Rotate when privilege changes;
    /// [`Session::login`] already does.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] without a live session.
    pub fn rotate(&self) -> Result<(), Error> {
        self.try_rotate()
    }

    /// Destroys the session; the response clears the cookie. Returns
    /// whether a live session ended.
    pub fn logout(&self) -> bool {
        let token = {
            let mut state = self.shared.state.lock();
            let token = state.token.take();
            if token.is_some() || state.presented {
                state.outcome = Outcome::Ended;
            }
            token
        };
        token.is_some_and(|t| self.shared.sessions.logout(&t))
    }

    /// Ends every session of the logged-in principal, this one included
    /// ("log out everywhere"); the response clears the cookie. Returns how
    /// many sessions ended: 0 when nobody is logged in (then nothing
    /// changes).
    pub fn logout_everywhere(&self) -> usize {
        let Some(principal) = self.principal() else {
            return 0;
        };
        let n = self.shared.sessions.revoke_user(&principal);
        let mut state = self.shared.state.lock();
        state.token = None;
        state.outcome = Outcome::Ended;
        n
    }
}

// Handles move into spawned tasks and axum's extensions: keep them
// `Send + Sync` whatever the data type (as long as it is `Send`).
const _: fn() = || {
    fn assert_send_sync<X: Send + Sync + 'static>() {}
    assert_send_sync::<Session<std::cell::Cell<u8>, u64>>();
};
