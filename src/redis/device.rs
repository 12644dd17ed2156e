//! Device lists on Redis: the device recorded in the session's hash, and
//! "sign out of all other devices" in one script.

use super::*;

impl<T, P> RedisSessions<T, P>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    P: Principal + Serialize + DeserializeOwned,
{
    /// Records the device of the session `token` names, listed by
    /// [`RedisSessions::sessions_of`] (as [`crate::Sessions::set_device`]:
    /// kept in the session's hash, gone with it, never logged; not in the
    /// copies servers cache, so reads pay nothing for it).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token,
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, _) = sessions.create(Vec::new()).await?;
    /// let token = sessions.login(&token, "alice".to_string()).await?;
    /// sessions.set_device(&token, sesame::Device::new().with_user_agent("curl/8.5.0", 256)).await?;
    /// let listed = sessions.sessions_of(&"alice".to_string()).await?;
    /// let agent = listed[0].device.as_ref().and_then(|d| d.user_agent.as_deref());
    /// assert_eq!(agent, Some("curl/8.5.0"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_device(
        &self,
        token: &(impl TokenInput + ?Sized),
        device: crate::Device,
    ) -> Result<(), Error> {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        let key = s.secret.digest(&bytes);
        let device = device.bounded();
        let address = device.address.map(|a| a.to_string()).unwrap_or_default();
        let written: i64 = s
            .write(
                scripts::SET_DEVICE
                    .key(s.session_key(&key))
                    .arg(device.user_agent.as_deref().unwrap_or_default())
                    .arg(address)
                    .arg(s.idle_ms),
                tag(&key),
            )
            .await?;
        if written == 1 {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::NotFound))
        }
    }

    /// Ends every session of the principal `token` is logged in as, except
    /// that one, on every server ("sign out of all other devices"), in one
    /// script. Returns how many ended: 0 for an anonymous session. Each
    /// ended session is a [`crate::EventKind::Revoked`] event.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token,
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let alice = "alice".to_string();
    /// let (phone, _) = sessions.create(Vec::new()).await?;
    /// let phone = sessions.login(&phone, alice.clone()).await?;
    /// let (laptop, _) = sessions.create(Vec::new()).await?;
    /// let laptop = sessions.login(&laptop, alice.clone()).await?;
    /// assert_eq!(sessions.logout_others(&laptop).await?, 1);
    /// assert_eq!(sessions.validate(&phone).await?, None);
    /// assert!(sessions.validate(&laptop).await?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn logout_others(&self, token: &(impl TokenInput + ?Sized)) -> Result<usize, Error> {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        let key = s.secret.digest(&bytes);
        // The principal's JSON, then `{hex, handle}` of each session ended.
        let t = tag(&key);
        let (all, _) = s.scope(t);
        let gone: Option<Vec<Vec<u8>>> = s
            .write(
                scripts::REVOKE_OTHERS
                    .key(s.session_key(&key))
                    .key(s.alias_key(&key))
                    .key(all)
                    .arg(&s.prefix)
                    .arg(&s.channel)
                    .arg(hex_key(&key))
                    .arg(s.idle_ms),
                t,
            )
            .await?;
        let Some(gone) = gone else {
            s.cache.invalidate(&key);
            return Err(Error::new(ErrorKind::NotFound));
        };
        let Some((principal, gone)) = gone.split_first() else {
            return Err(Error::new(ErrorKind::Encoding));
        };
        let principal: Option<P> = match principal.as_slice() {
            [] => None,
            json => Some(
                serde_json::from_slice(json)
                    .map_err(|e| Error::with_source(ErrorKind::Encoding, e))?,
            ),
        };
        let mut ended = 0;
        for pair in gone.chunks_exact(2) {
            ended += 1;
            s.ended_raw(&pair[0], &pair[1], principal.as_ref(), EventKind::Revoked);
        }
        Ok(ended)
    }
}
