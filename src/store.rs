//! The backend seam: what the HTTP adapters need from a session store, in
//! a form both an in-process engine and a remote backend can answer.
//!
//! Every operation returns a future. The in-process [`crate::Sessions`]
//! answers with ready futures (the work is done when the method is called;
//! awaiting costs nothing); a remote backend awaits its I/O, so an adapter
//! never blocks a runtime worker on the network. Every operation returns
//! `Result` so that a remote backend can say it cannot answer
//! ([`crate::ErrorKind::Unavailable`]); `Ok(None)` (or
//! [`crate::ErrorKind::NotFound`] for operations that need a session) means
//! no live session answers to the token.
//!
//! The futures are `Send`, so handlers that await them can run on a
//! multi-threaded runtime.

use std::future::{Future, ready};

use crossbeam_channel::Receiver;

use crate::error::Error;
use crate::{Device, Event, Handle, Principal, SessionInfo, SessionToken, Stats};

/// A session store: the in-process [`crate::Sessions`] or, with the
/// `redis` feature, `sesame::redis::RedisSessions`.
pub trait Store: Clone + Send + Sync + 'static {
    /// The session data.
    type Data: Send + 'static;
    /// Who a session can be logged in as.
    type Principal: Principal;

    /// The session's handle if the token is live; records a use.
    fn validate(
        &self,
        token: &SessionToken,
    ) -> impl Future<Output = Result<Option<Handle>, Error>> + Send;

    /// Whether `token` is its session's current token: live, and not an
    /// alias kept for a rotation's grace window. Records no use.
    fn is_current(&self, token: &SessionToken) -> impl Future<Output = Result<bool, Error>> + Send;

    /// The session's metadata if the token is live.
    fn info(
        &self,
        token: &SessionToken,
    ) -> impl Future<Output = Result<Option<SessionInfo<Self::Principal>>, Error>> + Send;

    /// Reads the session's data through `f`.
    fn with<R, F>(
        &self,
        token: &SessionToken,
        f: F,
    ) -> impl Future<Output = Result<Option<R>, Error>> + Send
    where
        R: Send,
        F: FnOnce(&Self::Data) -> R + Send;

    /// Changes the session's data atomically. `f` may run more than once on
    /// a remote backend (once per attempt against concurrent writers).
    fn update<R, F>(
        &self,
        token: &SessionToken,
        f: F,
    ) -> impl Future<Output = Result<R, Error>> + Send
    where
        R: Send,
        F: FnMut(&mut Self::Data) -> R + Send;

    /// Creates an anonymous session holding `data`.
    fn create(&self, data: Self::Data) -> impl Future<Output = Result<SessionToken, Error>> + Send;

    /// Gives the session a new token; the old one stops working (after the
    /// backend's grace window, if it has one).
    fn rotate(
        &self,
        token: &SessionToken,
    ) -> impl Future<Output = Result<SessionToken, Error>> + Send;

    /// Rotates the token and binds `principal`; a change of principal
    /// starts from fresh data (see [`crate::Sessions::login`]).
    fn login(
        &self,
        token: &SessionToken,
        principal: Self::Principal,
    ) -> impl Future<Output = Result<SessionToken, Error>> + Send;

    /// Destroys the session; whether a live one ended.
    fn logout(&self, token: &SessionToken) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Ends every session of `principal`; how many ended.
    fn revoke_user(
        &self,
        principal: &Self::Principal,
    ) -> impl Future<Output = Result<usize, Error>> + Send;

    /// Ends one of `principal`'s sessions by its handle.
    fn revoke(
        &self,
        principal: &Self::Principal,
        handle: Handle,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// The live sessions of `principal` (metadata, never tokens).
    fn sessions_of(
        &self,
        principal: &Self::Principal,
    ) -> impl Future<Output = Result<Vec<SessionInfo<Self::Principal>>, Error>> + Send;

    /// The store's counters ([`crate::Stats`], the same meaning per field on
    /// every store; see each store's `stats` for what it cannot count).
    fn stats(&self) -> impl Future<Output = Result<Stats, Error>> + Send;

    /// Subscribes to the store's events through a channel of `capacity`
    /// (never a token in them). A full channel drops events, counted in
    /// [`crate::Stats::events_dropped`]. Synchronous: no I/O.
    fn subscribe(&self, capacity: usize) -> Receiver<Event<Self::Principal>>;

    /// Records the device of the session `token` names, for
    /// [`SessionInfo::device`] (see [`crate::Sessions::set_device`]).
    /// [`crate::ErrorKind::NotFound`] when no live session answers to the
    /// token.
    ///
    /// By default the device is dropped (`Ok(())`): a store that keeps no
    /// device metadata lists `device: None`. Both of sesame's stores keep it.
    fn set_device(
        &self,
        token: &SessionToken,
        device: Device,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (token, device);
        ready(Ok(()))
    }

    /// Ends every session of the principal `token` is logged in as, except
    /// that one ("sign out of all other devices"); how many ended. `Ok(0)`
    /// for an anonymous session, [`crate::ErrorKind::NotFound`] when no
    /// live session answers to the token (see
    /// [`crate::Sessions::logout_others`]).
    ///
    /// The default composes [`Store::info`], [`Store::sessions_of`] and
    /// [`Store::revoke`]: correct, but a session that logs in meanwhile may
    /// escape it. Both of sesame's stores do it in one step.
    fn logout_others(
        &self,
        token: &SessionToken,
    ) -> impl Future<Output = Result<usize, Error>> + Send {
        async move {
            let Some(me) = self.info(token).await? else {
                return Err(Error::new(crate::ErrorKind::NotFound));
            };
            let Some(principal) = me.principal else {
                return Ok(0);
            };
            let mut ended = 0;
            for other in self.sessions_of(&principal).await? {
                if other.handle != me.handle && self.revoke(&principal, other.handle).await? {
                    ended += 1;
                }
            }
            Ok(ended)
        }
    }

    /// A client presented a value that is not a well-formed token, so no
    /// other method saw it: a store that keeps statistics counts it among
    /// its rejected lookups (as [`crate::Stats::rejected`] does). Does
    /// nothing by default. Synchronous: it must not do I/O.
    fn note_malformed(&self) {}
}

/// The in-process engine: every future is [`std::future::ready`], built
/// after the engine call returned. Nothing is boxed or allocated beyond
/// what the engine call itself does (validation allocates nothing;
/// `tests/hot_path.rs` counts it through this trait), and awaiting the
/// future costs one poll. No engine lock is ever held across an `await`.
impl<T, P> Store for crate::Sessions<T, P>
where
    T: Default + Send + 'static,
    P: Principal,
{
    type Data = T;
    type Principal = P;

    #[inline]
    fn validate(
        &self,
        token: &SessionToken,
    ) -> impl Future<Output = Result<Option<Handle>, Error>> + Send {
        ready(Ok(crate::Sessions::validate(self, token)))
    }

    #[inline]
    fn is_current(&self, token: &SessionToken) -> impl Future<Output = Result<bool, Error>> + Send {
        ready(Ok(crate::Sessions::is_current(self, token)))
    }

    #[inline]
    fn info(
        &self,
        token: &SessionToken,
    ) -> impl Future<Output = Result<Option<SessionInfo<P>>, Error>> + Send {
        ready(Ok(crate::Sessions::info(self, token)))
    }

    #[inline]
    fn with<R, F>(
        &self,
        token: &SessionToken,
        f: F,
    ) -> impl Future<Output = Result<Option<R>, Error>> + Send
    where
        R: Send,
        F: FnOnce(&T) -> R + Send,
    {
        ready(Ok(crate::Sessions::with(self, token, f)))
    }

    #[inline]
    fn update<R, F>(
        &self,
        token: &SessionToken,
        f: F,
    ) -> impl Future<Output = Result<R, Error>> + Send
    where
        R: Send,
        F: FnMut(&mut T) -> R + Send,
    {
        ready(crate::Sessions::update(self, token, f))
    }

    #[inline]
    fn create(&self, data: T) -> impl Future<Output = Result<SessionToken, Error>> + Send {
        ready(crate::Sessions::create(self, data).map(|(token, _)| token))
    }

    #[inline]
    fn rotate(
        &self,
        token: &SessionToken,
    ) -> impl Future<Output = Result<SessionToken, Error>> + Send {
        ready(crate::Sessions::rotate(self, token))
    }

    #[inline]
    fn login(
        &self,
        token: &SessionToken,
        principal: P,
    ) -> impl Future<Output = Result<SessionToken, Error>> + Send {
        ready(crate::Sessions::login(self, token, principal))
    }

    #[inline]
    fn logout(&self, token: &SessionToken) -> impl Future<Output = Result<bool, Error>> + Send {
        ready(Ok(crate::Sessions::logout(self, token)))
    }

    #[inline]
    fn revoke_user(&self, principal: &P) -> impl Future<Output = Result<usize, Error>> + Send {
        ready(Ok(crate::Sessions::revoke_user(self, principal)))
    }

    #[inline]
    fn revoke(
        &self,
        principal: &P,
        handle: Handle,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        ready(Ok(crate::Sessions::revoke(self, principal, handle)))
    }

    #[inline]
    fn sessions_of(
        &self,
        principal: &P,
    ) -> impl Future<Output = Result<Vec<SessionInfo<P>>, Error>> + Send {
        ready(Ok(crate::Sessions::sessions_of(self, principal)))
    }

    #[inline]
    fn stats(&self) -> impl Future<Output = Result<Stats, Error>> + Send {
        ready(Ok(crate::Sessions::stats(self)))
    }

    #[inline]
    fn subscribe(&self, capacity: usize) -> Receiver<Event<P>> {
        crate::Sessions::subscribe(self, capacity)
    }

    #[inline]
    fn set_device(
        &self,
        token: &SessionToken,
        device: Device,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        ready(crate::Sessions::set_device(self, token, device))
    }

    #[inline]
    fn logout_others(
        &self,
        token: &SessionToken,
    ) -> impl Future<Output = Result<usize, Error>> + Send {
        ready(crate::Sessions::logout_others(self, token))
    }

    #[inline]
    fn note_malformed(&self) {
        // The engine counts a malformed value when it is asked about one;
        // an empty one is (no lock, no allocation).
        let _ = crate::Sessions::validate(self, &b""[..]);
    }
}
