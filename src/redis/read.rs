//! Reads: validation, the session's data and metadata through the near
//! cache, and the fetch from Redis behind a miss (following a grace alias).

use super::*;

impl<T, P> RedisSessions<T, P>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    P: Principal + Serialize + DeserializeOwned,
{
    /// Validates a token: the session's handle if it is live, `Ok(None)` if
    /// the token is malformed, unknown, expired or revoked.
    ///
    /// A hit in the near cache takes one shard read lock and no round trip.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] when the answer needs Redis and Redis
    /// cannot be reached (fail closed: never a session that was not
    /// checked); [`ErrorKind::Encoding`] when the stored data does not decode.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, handle) = sessions.create(Vec::new()).await?;
    /// assert_eq!(sessions.validate(token.as_str()).await?, Some(handle));
    /// assert_eq!(sessions.validate("forged").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn validate(
        &self,
        token: &(impl TokenInput + ?Sized),
    ) -> Result<Option<Handle>, Error> {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            s.reject();
            return Ok(None);
        };
        let key = s.secret.digest(&bytes);
        let now = s.clock.now();
        let fast = s
            .cache
            .peek(&key, now, |c| (!s.touch_due(c, now)).then_some(c.handle));
        if let Some(Some(handle)) = fast {
            return Ok(Some(handle));
        }
        let handle = s.load(&key, now).await?.map(|c| c.handle);
        if handle.is_none() {
            s.reject();
        }
        Ok(handle)
    }

    /// Whether `token` is its session's current token: live, and not an
    /// alias kept for a rotation's grace window (as
    /// [`crate::Sessions::is_current`]). Records no use.
    ///
    /// # Errors
    ///
    /// As [`RedisSessions::validate`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/")
    ///     .secret_key(sesame::SecretKey::generate())
    ///     .rotation_grace(Duration::from_secs(5))
    ///     .build()?;
    /// let (old, _) = sessions.create(Vec::new()).await?;
    /// let new = sessions.rotate(&old).await?;
    /// assert!(sessions.validate(&old).await?.is_some()); // in its grace window
    /// assert!(!sessions.is_current(&old).await?);
    /// assert!(sessions.is_current(&new).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn is_current(&self, token: &(impl TokenInput + ?Sized)) -> Result<bool, Error> {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            return Ok(false);
        };
        let key = s.secret.digest(&bytes);
        let now = s.clock.now();
        // A cached copy is never one read through an alias.
        if s.cache.peek(&key, now, |_| ()).is_some() {
            return Ok(true);
        }
        Ok(s.fetch(&key, now, false)
            .await?
            .is_some_and(|c| c.target.is_none()))
    }

    /// Validates a token and reads the session's data through `f`, which
    /// runs with no lock held.
    ///
    /// # Errors
    ///
    /// As [`RedisSessions::validate`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, _) = sessions.create(vec![1, 2, 3]).await?;
    /// assert_eq!(sessions.with(&token, |items| items.len()).await?, Some(3));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn with<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        f: impl FnOnce(&T) -> R,
    ) -> Result<Option<R>, Error> {
        Ok(self.copy_of(token).await?.map(|c| f(&c.data)))
    }

    /// Validates a token and returns a copy of the session's data.
    ///
    /// # Errors
    ///
    /// As [`RedisSessions::validate`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, _) = sessions.create(vec![1, 2]).await?;
    /// assert_eq!(sessions.get(&token).await?, Some(vec![1, 2]));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self, token: &(impl TokenInput + ?Sized)) -> Result<Option<T>, Error>
    where
        T: Clone,
    {
        self.with(token, T::clone).await
    }

    /// Validates a token and returns the session's metadata.
    ///
    /// # Errors
    ///
    /// As [`RedisSessions::validate`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, handle) = sessions.create(Vec::new()).await?;
    /// let token = sessions.login(&token, "alice".to_string()).await?;
    /// let info = sessions.info(&token).await?.unwrap();
    /// assert_eq!((info.handle, info.principal.as_deref()), (handle, Some("alice")));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn info(
        &self,
        token: &(impl TokenInput + ?Sized),
    ) -> Result<Option<SessionInfo<P>>, Error> {
        let s = &*self.shared;
        let now = s.clock.now();
        Ok(self.copy_of(token).await?.map(|c| {
            let seen = shift(now, c.skew);
            SessionInfo {
                handle: c.handle,
                principal: c.principal.clone(),
                created: wall(c.created),
                last_seen: wall(seen),
                token_issued: wall(c.issued),
                expires: wall(seen.saturating_add(s.idle_ms).min(c.abs)),
                absolute_expires: wall(c.abs),
                // As on the engine: filled in by `sessions_of` only.
                device: None,
            }
        }))
    }

    pub(super) async fn copy_of(
        &self,
        token: &(impl TokenInput + ?Sized),
    ) -> Result<Option<Arc<Copy<T, P>>>, Error> {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            s.reject();
            return Ok(None);
        };
        let key = s.secret.digest(&bytes);
        let copy = s.load(&key, s.clock.now()).await?;
        if copy.is_none() {
            s.reject();
        }
        Ok(copy)
    }
}

impl<T, P> Shared<T, P>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    P: Principal + Serialize + DeserializeOwned,
{
    /// Whether a hit at `now` should refresh the idle deadline in Redis.
    #[inline]
    pub(super) fn touch_due(&self, c: &Copy<T, P>, now: u64) -> bool {
        now.saturating_add(self.idle_ms / TOUCH_DIVISOR) >= c.idle_until.load(Ordering::Relaxed)
    }

    /// The live session for `key`: the local copy, refreshed in Redis if its
    /// idle deadline is getting close, or a read from Redis.
    pub(super) async fn load(
        &self,
        key: &SessionKey,
        now: u64,
    ) -> Result<Option<Arc<Copy<T, P>>>, Error> {
        if let Some(c) = self.cache.peek(key, now, Arc::clone) {
            if self.touch_due(&c, now) && !c.touching.swap(true, Ordering::AcqRel) {
                let touched = self.touch(key, now).await;
                match touched {
                    Ok(Some(())) => {
                        c.idle_until
                            .store(now.saturating_add(self.idle_ms), Ordering::Relaxed);
                        c.touching.store(false, Ordering::Release);
                    }
                    Ok(None) => {
                        self.cache.discard(key, &c);
                        return Ok(None);
                    }
                    Err(e) => {
                        c.touching.store(false, Ordering::Release);
                        return Err(e);
                    }
                }
            }
            return Ok(Some(c));
        }
        self.fetch(key, now, true).await
    }

    pub(super) async fn touch(&self, key: &SessionKey, _now: u64) -> Result<Option<()>, Error> {
        self.stats.touches.fetch_add(1, Ordering::Relaxed);
        let (all, anon) = self.scope(tag(key));
        let reply: i64 = self
            .invoke(
                scripts::TOUCH
                    .key(self.session_key(key))
                    .key(all)
                    .key(anon)
                    .arg(self.idle_ms)
                    .arg(hex_key(key)),
            )
            .await?;
        Ok((reply >= 0).then_some(()))
    }

    /// Reads the session from Redis (following a grace alias) and caches
    /// the copy unless it was read through an alias. `use_it`: the read
    /// records a use in Redis (rate limited, see `FETCH`).
    pub(super) async fn fetch(
        &self,
        key: &SessionKey,
        now: u64,
        use_it: bool,
    ) -> Result<Option<Arc<Copy<T, P>>>, Error> {
        let ticket = self.cache.ticket(key);
        self.stats.fetches.fetch_add(1, Ordering::Relaxed);
        let (all, anon) = self.scope(tag(key));
        let rec: Option<Vec<Vec<u8>>> = self
            .invoke(
                scripts::FETCH
                    .key(self.session_key(key))
                    .key(self.alias_key(key))
                    .key(all)
                    .key(anon)
                    .arg(self.idle_ms)
                    .arg(&self.prefix)
                    .arg(hex_key(key))
                    .arg(u8::from(use_it)),
            )
            .await?;
        let Some(rec) = rec else { return Ok(None) };
        let bad = || Error::new(ErrorKind::Encoding);
        let field = |i: usize| rec.get(i).map(Vec::as_slice).ok_or_else(bad);
        let num = |i: usize| -> Result<u64, Error> {
            std::str::from_utf8(field(i)?)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(bad)
        };
        let version = num(0)?;
        let data: T = decode(field(1)?)?;
        let principal = match field(2)? {
            [] => None,
            p => Some(serde_json::from_slice(p).map_err(|_| bad())?),
        };
        let handle: Handle = std::str::from_utf8(field(3)?)
            .ok()
            .and_then(|h| h.parse().ok())
            .ok_or_else(bad)?;
        let (created, issued, seen, abs, redis_now) = (num(4)?, num(5)?, num(6)?, num(7)?, num(8)?);
        let target = match field(9)? {
            [] => None,
            hex => Some(unhex_key(hex).ok_or_else(bad)?),
        };
        let idle_left = seen.saturating_add(self.idle_ms).saturating_sub(redis_now);
        let abs_left = abs.saturating_sub(redis_now);
        let copy = Arc::new(Copy {
            epoch: Cache::<T, P>::epoch_of(ticket),
            handle,
            version,
            principal,
            created,
            issued,
            abs,
            skew: skew(redis_now, now),
            data,
            hard_until: now.saturating_add(abs_left.min(self.ttl_ms())),
            idle_until: AtomicU64::new(now.saturating_add(idle_left)),
            touching: AtomicBool::new(false),
            target,
        });
        if target.is_some() {
            return Ok(Some(copy));
        }
        if !self.cache.insert(*key, &copy, ticket, now) {
            // Not cached (an invalidation since the ticket, or a newer copy
            // there): serve the cached copy if it is newer, so that no
            // reader on this server is handed a version older than one
            // another reader here may already have been served.
            let newer = self.cache.peek(key, now, |c| {
                (c.version > copy.version).then(|| Arc::clone(c))
            });
            if let Some(Some(newer)) = newer {
                return Ok(Some(newer));
            }
        }
        Ok(Some(copy))
    }
}
