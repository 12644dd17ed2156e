//! The backends a [`super::SessionLayer`] can run on.

use crate::error::Error;
use crate::{Handle, Principal, SessionInfo, SessionToken, Sessions, TokenInput};

/// A session store the layer, its [`super::Session`] handle and the axum
/// extractor run on: the in-process [`Sessions`], and with the `redis`
/// feature [`crate::redis::RedisSessions`].
///
/// Every operation returns `Result` so that a remote backend can report
/// that it cannot answer ([`crate::ErrorKind::Unavailable`]): the layer
/// then never treats the request as having no session, and the handle's
/// `try_*` methods hand the error to the handler (typically a `503`). For
/// [`Sessions`] the operations that cannot fail always return `Ok`; the
/// wrapping costs nothing.
///
/// `Ok(None)` (or [`crate::ErrorKind::NotFound`] for the operations that
/// need a session) means no live session answers to the token.
pub trait Store: Clone + Send + Sync + 'static {
    /// The session data.
    type Data: Send + 'static;
    /// Who a session can be logged in as.
    type Principal: Principal;

    /// The session's handle if the token is live.
    ///
    /// # Errors
    ///
    /// When the backend cannot answer.
    fn validate(&self, token: &(impl TokenInput + ?Sized)) -> Result<Option<Handle>, Error>;

    /// Whether `token` is its session's current token: live, and not an
    /// alias kept for a rotation's grace window. Records no use.
    ///
    /// # Errors
    ///
    /// When the backend cannot answer.
    fn is_current(&self, token: &(impl TokenInput + ?Sized)) -> Result<bool, Error>;

    /// The session's metadata if the token is live.
    ///
    /// # Errors
    ///
    /// When the backend cannot answer.
    fn info(
        &self,
        token: &(impl TokenInput + ?Sized),
    ) -> Result<Option<SessionInfo<Self::Principal>>, Error>;

    /// Reads the session's data through `f`.
    ///
    /// # Errors
    ///
    /// When the backend cannot answer.
    fn with<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        f: impl FnOnce(&Self::Data) -> R,
    ) -> Result<Option<R>, Error>;

    /// Changes the session's data atomically. `f` may run more than once
    /// on a remote backend (once per attempt against concurrent writers).
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::NotFound`] without a live session, or when the
    /// backend cannot answer.
    fn update<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        f: impl FnMut(&mut Self::Data) -> R,
    ) -> Result<R, Error>;

    /// Creates an anonymous session holding `data`.
    ///
    /// # Errors
    ///
    /// When the store is full or the backend cannot answer.
    fn create(&self, data: Self::Data) -> Result<SessionToken, Error>;

    /// Gives the session a new token; the old one stops working.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::NotFound`] without a live session, or when the
    /// backend cannot answer.
    fn rotate(&self, token: &(impl TokenInput + ?Sized)) -> Result<SessionToken, Error>;

    /// Rotates the token and binds `principal`.
    ///
    /// # Errors
    ///
    /// As [`Store::rotate`].
    fn login(
        &self,
        token: &(impl TokenInput + ?Sized),
        principal: Self::Principal,
    ) -> Result<SessionToken, Error>;

    /// Destroys the session; whether a live one ended.
    ///
    /// # Errors
    ///
    /// When the backend cannot answer.
    fn logout(&self, token: &(impl TokenInput + ?Sized)) -> Result<bool, Error>;

    /// Ends every session of `principal`; how many ended.
    ///
    /// # Errors
    ///
    /// When the backend cannot answer.
    fn revoke_user(&self, principal: &Self::Principal) -> Result<usize, Error>;

    /// Ends one of `principal`'s sessions by its handle.
    ///
    /// # Errors
    ///
    /// When the backend cannot answer.
    fn revoke(&self, principal: &Self::Principal, handle: Handle) -> Result<bool, Error>;

    /// The live sessions of `principal` (metadata, never tokens).
    ///
    /// # Errors
    ///
    /// When the backend cannot answer.
    fn sessions_of(
        &self,
        principal: &Self::Principal,
    ) -> Result<Vec<SessionInfo<Self::Principal>>, Error>;
}

impl<T, P> Store for Sessions<T, P>
where
    T: Default + Send + 'static,
    P: Principal,
{
    type Data = T;
    type Principal = P;

    #[inline]
    fn validate(&self, token: &(impl TokenInput + ?Sized)) -> Result<Option<Handle>, Error> {
        Ok(Sessions::validate(self, token))
    }

    #[inline]
    fn is_current(&self, token: &(impl TokenInput + ?Sized)) -> Result<bool, Error> {
        Ok(Sessions::is_current(self, token))
    }

    #[inline]
    fn info(&self, token: &(impl TokenInput + ?Sized)) -> Result<Option<SessionInfo<P>>, Error> {
        Ok(Sessions::info(self, token))
    }

    #[inline]
    fn with<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        f: impl FnOnce(&T) -> R,
    ) -> Result<Option<R>, Error> {
        Ok(Sessions::with(self, token, f))
    }

    #[inline]
    fn update<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        f: impl FnMut(&mut T) -> R,
    ) -> Result<R, Error> {
        Sessions::update(self, token, f)
    }

    #[inline]
    fn create(&self, data: T) -> Result<SessionToken, Error> {
        Sessions::create(self, data).map(|(token, _)| token)
    }

    #[inline]
    fn rotate(&self, token: &(impl TokenInput + ?Sized)) -> Result<SessionToken, Error> {
        Sessions::rotate(self, token)
    }

    #[inline]
    fn login(
        &self,
        token: &(impl TokenInput + ?Sized),
        principal: P,
    ) -> Result<SessionToken, Error> {
        Sessions::login(self, token, principal)
    }

    #[inline]
    fn logout(&self, token: &(impl TokenInput + ?Sized)) -> Result<bool, Error> {
        Ok(Sessions::logout(self, token))
    }

    #[inline]
    fn revoke_user(&self, principal: &P) -> Result<usize, Error> {
        Ok(Sessions::revoke_user(self, principal))
    }

    #[inline]
    fn revoke(&self, principal: &P, handle: Handle) -> Result<bool, Error> {
        Ok(Sessions::revoke(self, principal, handle))
    }

    #[inline]
    fn sessions_of(&self, principal: &P) -> Result<Vec<SessionInfo<P>>, Error> {
        Ok(Sessions::sessions_of(self, principal))
    }
}
