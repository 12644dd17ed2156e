//! [`crate::store::Store`] for [`RedisSessions`]: every operation awaits
//! the store's own async method; errors ([`crate::ErrorKind::Unavailable`],
//! [`crate::ErrorKind::Encoding`], ...) pass through unchanged.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::RedisSessions;
use crate::error::Error;
use crate::store::Store;
use crate::{Device, Event, Handle, Principal, SessionInfo, SessionToken, Stats};
use crossbeam_channel::Receiver;

impl<T, P> Store for RedisSessions<T, P>
where
    T: Clone + Default + Serialize + DeserializeOwned + Send + Sync + 'static,
    P: Principal + Serialize + DeserializeOwned,
{
    type Data = T;
    type Principal = P;

    async fn validate(&self, token: &SessionToken) -> Result<Option<Handle>, Error> {
        RedisSessions::validate(self, token).await
    }

    async fn is_current(&self, token: &SessionToken) -> Result<bool, Error> {
        RedisSessions::is_current(self, token).await
    }

    async fn info(&self, token: &SessionToken) -> Result<Option<SessionInfo<P>>, Error> {
        RedisSessions::info(self, token).await
    }

    async fn with<R, F>(&self, token: &SessionToken, f: F) -> Result<Option<R>, Error>
    where
        R: Send,
        F: FnOnce(&T) -> R + Send,
    {
        RedisSessions::with(self, token, f).await
    }

    async fn update<R, F>(&self, token: &SessionToken, f: F) -> Result<R, Error>
    where
        R: Send,
        F: FnMut(&mut T) -> R + Send,
    {
        RedisSessions::update(self, token, f).await
    }

    async fn create(&self, data: T) -> Result<SessionToken, Error> {
        RedisSessions::create(self, data)
            .await
            .map(|(token, _)| token)
    }

    async fn rotate(&self, token: &SessionToken) -> Result<SessionToken, Error> {
        RedisSessions::rotate(self, token).await
    }

    async fn login(&self, token: &SessionToken, principal: P) -> Result<SessionToken, Error> {
        RedisSessions::login(self, token, principal).await
    }

    async fn logout(&self, token: &SessionToken) -> Result<bool, Error> {
        RedisSessions::logout(self, token).await
    }

    async fn revoke_user(&self, principal: &P) -> Result<usize, Error> {
        RedisSessions::revoke_user(self, principal).await
    }

    async fn revoke(&self, principal: &P, handle: Handle) -> Result<bool, Error> {
        RedisSessions::revoke(self, principal, handle).await
    }

    async fn sessions_of(&self, principal: &P) -> Result<Vec<SessionInfo<P>>, Error> {
        RedisSessions::sessions_of(self, principal).await
    }

    async fn stats(&self) -> Result<Stats, Error> {
        RedisSessions::stats(self).await
    }

    fn subscribe(&self, capacity: usize) -> Receiver<Event<P>> {
        RedisSessions::subscribe(self, capacity)
    }

    fn note_malformed(&self) {
        RedisSessions::note_malformed(self);
    }

    async fn set_device(&self, token: &SessionToken, device: Device) -> Result<(), Error> {
        RedisSessions::set_device(self, token, device).await
    }

    async fn logout_others(&self, token: &SessionToken) -> Result<usize, Error> {
        RedisSessions::logout_others(self, token).await
    }
}
