//! Writes: each one Lua script (see `scripts`), then the local copies
//! dropped, the counters moved and the events emitted by this server.

use super::*;

impl<T, P> RedisSessions<T, P>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    P: Principal + Serialize + DeserializeOwned,
{
    /// Creates an anonymous session holding `data`, in Redis first, then in
    /// the near cache.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached,
    /// [`ErrorKind::Encoding`] when `data` does not serialize.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, handle) = sessions.create(vec![7]).await?;
    /// assert_eq!(sessions.validate(&token).await?, Some(handle));
    /// // Send `token.as_str()` to the client in a cookie.
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create(&self, data: T) -> Result<(SessionToken, Handle), Error> {
        let s = &*self.shared;
        let bytes = encode(&data)?;
        let handle = Handle::generate();
        let handle_hex = handle.to_string();
        // On a cluster, a tag full of logged-in sessions is not the whole
        // store: a few more draws try other tags (see `scripts`).
        let full_tries = if s.pool.clustered() { FULL_TRIES } else { 1 };
        let mut full = 0;
        for _ in 0..MAX_KEY_ATTEMPTS + full_tries {
            let token = SessionToken::generate();
            let key = s.secret.digest(token.as_bytes());
            let ticket = s.cache.ticket(&key);
            let now = s.clock.now();
            let (all, anon) = s.scope(tag(&key));
            let reply: Value = s
                .write(
                    scripts::CREATE
                        .key(s.session_key(&key))
                        .key(all)
                        .key(anon)
                        .arg(&handle_hex)
                        .arg(&bytes)
                        .arg(s.idle_ms)
                        .arg(s.abs_ms)
                        .arg(&s.prefix)
                        .arg(s.scope_max())
                        .arg(&s.channel)
                        .arg(hex_key(&key)),
                    tag(&key),
                )
                .await?;
            let reply = array(&reply);
            match reply.first().and_then(int) {
                Some(1) => {}
                Some(-1) => {
                    full += 1;
                    if full < full_tries {
                        continue;
                    }
                    bump(&s.counted.refused_full);
                    return Err(Error::new(ErrorKind::Full));
                }
                _ => continue,
            }
            // Evicted to make room: `{hex, handle}` pairs.
            for pair in reply.get(2..).unwrap_or_default().chunks_exact(2) {
                s.ended(
                    &pair[0],
                    &pair[1],
                    None,
                    EventKind::Evicted(EvictionReason::Capacity),
                );
            }
            let redis_now = reply.get(1).and_then(uint).unwrap_or(0);
            let copy = Arc::new(Copy {
                epoch: Cache::<T, P>::epoch_of(ticket),
                handle,
                version: 1,
                principal: None,
                created: redis_now,
                issued: redis_now,
                abs: redis_now.saturating_add(s.abs_ms),
                skew: skew(redis_now, now),
                data,
                hard_until: now.saturating_add(s.abs_ms.min(s.ttl_ms())),
                idle_until: AtomicU64::new(now.saturating_add(s.idle_ms)),
                touching: AtomicBool::new(false),
                target: None,
            });
            s.cache.insert(key, &copy, ticket, now);
            bump(&s.counted.created);
            s.bus.emit(EventKind::Created, handle, None);
            return Ok((token, handle));
        }
        Err(Error::new(ErrorKind::Conflict))
    }

    /// Changes the session's data: `f` runs on a copy, and the result is
    /// written to Redis only if no other write landed since the copy was
    /// read (a version check in the script). On a conflict the script hands
    /// back the current data and `f` runs again on it, so concurrent updates
    /// from any number of servers all land, in some order.
    ///
    /// `f` may run more than once: keep it free of side effects beyond the
    /// data. Every server's copy is invalidated.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token,
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached (nothing or
    /// everything of this update was written: a reply lost after the write
    /// looks the same), [`ErrorKind::Conflict`] after 256 lost attempts,
    /// [`ErrorKind::Encoding`] when the data does not (de)serialize.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, _) = sessions.create(Vec::new()).await?;
    /// let len = sessions.update(&token, |items| { items.push(7); items.len() }).await?;
    /// assert_eq!(len, 1);
    /// assert_eq!(sessions.get(&token).await?, Some(vec![7]));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        mut f: impl FnMut(&mut T) -> R,
    ) -> Result<R, Error>
    where
        T: Clone,
    {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            s.reject();
            return Err(Error::new(ErrorKind::NotFound));
        };
        let key = s.secret.digest(&bytes);
        let Some(copy) = s.load(&key, s.clock.now()).await? else {
            s.reject();
            return Err(Error::new(ErrorKind::NotFound));
        };
        let mut version = copy.version;
        let mut data = copy.data.clone();
        // A token in its grace window writes to the session it leads to.
        let key = copy.target.unwrap_or(key);
        drop(copy);
        let skey = s.session_key(&key);
        let hex = hex_key(&key);
        let (all, anon) = s.scope(tag(&key));
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let r = f(&mut data);
            let encoded = encode(&data)?;
            let reply: Value = s
                .write(
                    scripts::UPDATE
                        .key(&skey)
                        .key(&all)
                        .key(&anon)
                        .arg(version)
                        .arg(&encoded)
                        .arg(s.idle_ms)
                        .arg(&s.channel)
                        .arg(&hex),
                    tag(&key),
                )
                .await?;
            let items = array(&reply);
            match items.first().and_then(int) {
                Some(1) => {
                    s.cache.invalidate(&key);
                    return Ok(r);
                }
                Some(0) => {
                    s.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                    version = items
                        .get(1)
                        .and_then(int)
                        .and_then(|v| u64::try_from(v).ok())
                        .ok_or(Error::new(ErrorKind::Unavailable))?;
                    data = decode(items.get(2).and_then(bulk).unwrap_or_default())?;
                }
                _ => {
                    s.cache.invalidate(&key);
                    return Err(Error::new(ErrorKind::NotFound));
                }
            }
        }
        Err(Error::new(ErrorKind::Conflict))
    }

    /// Gives the session a new token; the old one stops working on every
    /// server (after [`RedisBuilder::rotation_grace`], if set: until then it
    /// is the session's one alias). Data, principal and handle stay.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token (a
    /// token in its grace window cannot rotate again),
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (old, handle) = sessions.create(Vec::new()).await?;
    /// let new = sessions.rotate(&old).await?;
    /// assert_eq!(sessions.validate(&old).await?, None);
    /// assert_eq!(sessions.validate(&new).await?, Some(handle));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rotate(&self, token: &(impl TokenInput + ?Sized)) -> Result<SessionToken, Error> {
        self.rotate_inner(token, None).await
    }

    /// Logs a session in: a new token, bound to `principal`, absolute
    /// timeout restarted; the pre-login token stops working on every server.
    /// Logging in as another principal than the one bound resets the data
    /// to `T::default()`, as [`crate::Sessions::login`] does. Data, principal
    /// index and invalidation change in one script.
    ///
    /// # Errors
    ///
    /// As [`RedisSessions::rotate`], and [`ErrorKind::Encoding`] when the
    /// principal does not serialize.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (anonymous, _) = sessions.create(vec![7]).await?; // the cart
    /// let token = sessions.login(&anonymous, "alice".to_string()).await?;
    /// assert_eq!(sessions.validate(&anonymous).await?, None); // fixation defeated
    /// assert_eq!(sessions.get(&token).await?, Some(vec![7])); // the cart survives
    /// # Ok(())
    /// # }
    /// ```
    pub async fn login(
        &self,
        token: &(impl TokenInput + ?Sized),
        principal: P,
    ) -> Result<SessionToken, Error>
    where
        T: Default,
    {
        let fresh = encode(&T::default())?;
        self.rotate_inner(token, Some((principal, fresh))).await
    }

    pub(super) async fn rotate_inner(
        &self,
        token: &(impl TokenInput + ?Sized),
        login: Option<(P, Vec<u8>)>,
    ) -> Result<SessionToken, Error> {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            s.reject();
            return Err(Error::new(ErrorKind::NotFound));
        };
        let old = s.secret.digest(&bytes);
        let (principal, fresh, index) = match &login {
            Some((p, fresh)) => {
                let json = principal_json(p)?;
                let index = s.index_key(&json);
                (json, fresh.as_slice(), Some(index))
            }
            None => (String::new(), &[][..], None),
        };
        // On a cluster, the new token's tag: the old one's for a rotation,
        // the principal's for a login (see `scripts`). A single instance
        // has no slots: any token does, so it draws one.
        let want = index.as_ref().map_or(tag(&old), |i| i.1);
        let clustered = s.pool.clustered();
        if clustered && want != tag(&old) {
            let (index, _) = index.unwrap_or_default();
            return self
                .login_across(
                    old,
                    &principal,
                    &index,
                    want,
                    fresh,
                    login.as_ref().map(|l| &l.0),
                )
                .await;
        }
        let (all, anon) = s.scope(tag(&old));
        let principal_tag = index
            .as_ref()
            .map(|i| format!("{:02x}", i.1))
            .unwrap_or_default();
        for _ in 0..MAX_KEY_ATTEMPTS {
            let (new_token, new) = s.draw(clustered.then_some(want))?;
            if new == old {
                continue;
            }
            let mut invocation = scripts::ROTATE.key(s.session_key(&old));
            invocation
                .key(s.session_key(&new))
                .key(s.alias_key(&old))
                .key(&all)
                .key(&anon);
            if let Some((index, _)) = &index {
                invocation.key(index);
            }
            invocation
                .arg(&s.prefix)
                .arg(hex_key(&old))
                .arg(hex_key(&new))
                .arg(s.idle_ms)
                .arg(s.abs_ms)
                .arg(&principal)
                .arg(&s.channel)
                .arg(fresh)
                .arg(if login.is_some() { 0 } else { s.grace_ms })
                .arg(s.per_user)
                .arg(&principal_tag);
            let reply: Value = s.write(&invocation, tag(&old)).await?;
            let reply = array(&reply);
            match reply.first().and_then(int) {
                Some(1) => {
                    s.cache.invalidate(&old);
                    let bound = match &login {
                        Some((p, _)) => Some(p.clone()),
                        None => s.event_principal(reply.get(2)),
                    };
                    let handle = reply.get(1).and_then(bulk).and_then(parse_handle);
                    s.moved(handle, bound.as_ref(), login.is_some(), reply.get(3..));
                    return Ok(new_token);
                }
                Some(-1) => continue,
                _ => {
                    s.cache.invalidate(&old);
                    s.reject();
                    return Err(Error::new(ErrorKind::NotFound));
                }
            }
        }
        Err(Error::new(ErrorKind::Conflict))
    }

    /// A login on a cluster that moves the session to the principal's tag:
    /// `TAKE` in the old slot, then `PLACE` in the principal's (see
    /// `scripts`). If `PLACE` fails the session is gone: the user is
    /// logged out, never left with a usable pre-login token.
    async fn login_across(
        &self,
        old: SessionKey,
        principal: &str,
        index: &str,
        want: u8,
        fresh: &[u8],
        bound: Option<&P>,
    ) -> Result<SessionToken, Error> {
        let s = &*self.shared;
        let (all, anon) = s.scope(tag(&old));
        let taken: Value = s
            .write(
                scripts::TAKE
                    .key(s.session_key(&old))
                    .key(all)
                    .key(anon)
                    .arg(&s.prefix)
                    .arg(hex_key(&old))
                    .arg(&s.channel)
                    .arg(s.idle_ms),
                tag(&old),
            )
            .await?;
        s.cache.invalidate(&old);
        let taken = array(&taken);
        let [one, handle, oldp, version, data, created, ..] = taken.as_slice() else {
            s.reject();
            return Err(Error::new(ErrorKind::NotFound));
        };
        let bad = || Error::new(ErrorKind::Encoding);
        if int(one) != Some(1) {
            s.reject();
            return Err(Error::new(ErrorKind::NotFound));
        }
        let oldp = bulk(oldp).ok_or_else(bad)?;
        let renew = oldp != principal.as_bytes();
        // A new principal on a session starts from fresh data.
        let (data, version) = if !oldp.is_empty() && renew {
            (fresh, uint(version).ok_or_else(bad)? + 1)
        } else {
            (bulk(data).ok_or_else(bad)?, uint(version).ok_or_else(bad)?)
        };
        let handle_text = bulk(handle).ok_or_else(bad)?;
        let created = uint(created).ok_or_else(bad)?;
        let (all, anon) = s.scope(want);
        for _ in 0..MAX_KEY_ATTEMPTS {
            let (new_token, new) = s.draw(Some(want))?;
            let reply: Value = s
                .write(
                    scripts::PLACE
                        .key(s.session_key(&new))
                        .key(&all)
                        .key(&anon)
                        .key(index)
                        .arg(&s.prefix)
                        .arg(hex_key(&new))
                        .arg(s.idle_ms)
                        .arg(s.abs_ms)
                        .arg(principal)
                        .arg(&s.channel)
                        .arg(data)
                        .arg(handle_text)
                        .arg(created)
                        .arg(version)
                        .arg(s.per_user)
                        .arg(u8::from(renew))
                        .arg(format!("{want:02x}")),
                    want,
                )
                .await?;
            let reply = array(&reply);
            if reply.first().and_then(int) == Some(1) {
                s.cache.invalidate(&new);
                s.moved(parse_handle(handle_text), bound, true, reply.get(1..));
                return Ok(new_token);
            }
        }
        Err(Error::new(ErrorKind::Conflict))
    }

    /// Destroys the session (logout) on every server. Returns whether a live
    /// session ended.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, _) = sessions.create(Vec::new()).await?;
    /// assert!(sessions.logout(&token).await?);
    /// assert!(!sessions.logout(&token).await?); // already ended
    /// assert_eq!(sessions.validate(&token).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn logout(&self, token: &(impl TokenInput + ?Sized)) -> Result<bool, Error> {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            return Ok(false);
        };
        let key = s.secret.digest(&bytes);
        let (all, anon) = s.scope(tag(&key));
        let reply: Value = s
            .write(
                scripts::DESTROY
                    .key(s.session_key(&key))
                    .key(s.alias_key(&key))
                    .key(all)
                    .key(anon)
                    .arg(&s.prefix)
                    .arg(hex_key(&key))
                    .arg(&s.channel),
                tag(&key),
            )
            .await?;
        s.cache.invalidate(&key);
        let reply = array(&reply);
        if reply.first().and_then(int) != Some(1) {
            s.reject();
            return Ok(false);
        }
        // `{1, hex, handle, principal}`; the hex differs from the token's
        // when it was a grace alias.
        if let [_, hex, handle, principal, ..] = reply.as_slice() {
            let principal = s.event_principal(Some(principal));
            s.ended(hex, handle, principal.as_ref(), EventKind::Destroyed);
        }
        Ok(true)
    }

    /// Ends every session of `principal` on every server ("log out
    /// everywhere"). Returns how many ended.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached,
    /// [`ErrorKind::Encoding`] when the principal does not serialize.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let alice = "alice".to_string();
    /// let (phone, _) = sessions.create(Vec::new()).await?;
    /// let phone = sessions.login(&phone, alice.clone()).await?;
    /// assert_eq!(sessions.revoke_user(&alice).await?, 1);
    /// assert_eq!(sessions.validate(&phone).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn revoke_user(&self, principal: &P) -> Result<usize, Error> {
        self.revoke_inner(principal, None).await
    }

    /// Ends one of `principal`'s sessions by its handle. False if the handle
    /// is not one of theirs.
    ///
    /// # Errors
    ///
    /// As [`RedisSessions::revoke_user`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let alice = "alice".to_string();
    /// let (token, handle) = sessions.create(Vec::new()).await?;
    /// let token = sessions.login(&token, alice.clone()).await?;
    /// assert!(!sessions.revoke(&"bob".to_string(), handle).await?); // not bob's
    /// assert!(sessions.revoke(&alice, handle).await?);
    /// assert_eq!(sessions.validate(&token).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn revoke(&self, principal: &P, handle: Handle) -> Result<bool, Error> {
        Ok(self.revoke_inner(principal, Some(handle)).await? > 0)
    }

    pub(super) async fn revoke_inner(
        &self,
        principal: &P,
        handle: Option<Handle>,
    ) -> Result<usize, Error> {
        let s = &*self.shared;
        let (set, t) = s.user_key(principal)?;
        let (all, _) = s.scope(t);
        let handle = handle.map(|h| h.to_string()).unwrap_or_default();
        // `{hex, handle}` pairs of the sessions ended.
        let gone: Vec<Vec<u8>> = s
            .write(
                scripts::REVOKE
                    .key(&set)
                    .key(all)
                    .arg(&s.prefix)
                    .arg(&s.channel)
                    .arg(&handle),
                t,
            )
            .await?;
        let mut ended = 0;
        for pair in gone.chunks_exact(2) {
            ended += 1;
            s.ended_raw(&pair[0], &pair[1], Some(principal), EventKind::Revoked);
        }
        Ok(ended)
    }

    /// The live sessions of `principal`, oldest first: metadata, never
    /// tokens. Prunes the index of expired sessions.
    ///
    /// # Errors
    ///
    /// As [`RedisSessions::revoke_user`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let alice = "alice".to_string();
    /// let (token, handle) = sessions.create(Vec::new()).await?;
    /// sessions.login(&token, alice.clone()).await?;
    /// let listed: Vec<_> = sessions.sessions_of(&alice).await?.iter().map(|i| i.handle).collect();
    /// assert!(listed.contains(&handle));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn sessions_of(&self, principal: &P) -> Result<Vec<SessionInfo<P>>, Error> {
        let s = &*self.shared;
        let (set, _) = s.user_key(principal)?;
        let reply: Value = s.invoke(scripts::LIST.key(&set).arg(&s.prefix)).await?;
        let items = array(&reply);
        let now = items.first().and_then(uint).unwrap_or(0);
        let mut out: Vec<SessionInfo<P>> = items
            .get(1)
            .map(array)
            .unwrap_or_default()
            .iter()
            .filter_map(|row| {
                let f = array(row);
                let handle: Handle = std::str::from_utf8(bulk(f.first()?)?).ok()?.parse().ok()?;
                let (c, i, seen, a) = (
                    uint(f.get(1)?)?,
                    uint(f.get(2)?)?,
                    uint(f.get(3)?)?,
                    uint(f.get(4)?)?,
                );
                let expires = seen.saturating_add(s.idle_ms).min(a);
                (now < expires).then(|| SessionInfo {
                    handle,
                    principal: Some(principal.clone()),
                    created: wall(c),
                    last_seen: wall(seen),
                    token_issued: wall(i),
                    expires: wall(expires),
                    absolute_expires: wall(a),
                    device: None,
                })
            })
            .collect();
        if !out.is_empty() {
            let devices: Value = s.invoke(scripts::DEVICES.key(&set).arg(&s.prefix)).await?;
            for row in array(&devices) {
                if let Some((handle, device)) = device_row(&array(&row))
                    && let Some(info) = out.iter_mut().find(|i| i.handle == handle)
                {
                    info.device = Some(device);
                }
            }
        }
        out.sort_by_key(|i| i.created);
        Ok(out)
    }
}

impl<T, P> Shared<T, P>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    P: Principal + Serialize + DeserializeOwned,
{
    /// A fresh token and its digest: with `want`, one whose digest has
    /// that tag (a cluster's rotation or login, see `scripts`: about 256
    /// draws); without, the first one drawn (a single instance).
    pub(super) fn draw(&self, want: Option<u8>) -> Result<(SessionToken, SessionKey), Error> {
        let Some(want) = want else {
            let token = SessionToken::generate();
            let key = self.secret.digest(token.as_bytes());
            return Ok((token, key));
        };
        for _ in 0..MAX_TAG_DRAWS {
            let token = SessionToken::generate();
            let key = self.secret.digest(token.as_bytes());
            if tag(&key) == want {
                return Ok((token, key));
            }
        }
        Err(Error::new(ErrorKind::Conflict))
    }

    /// A rotation or login landed: counts it, tells subscribers, and
    /// reports the sessions the per-user limit ended (`{hex, handle}`
    /// pairs in `victims`).
    fn moved(
        &self,
        handle: Option<Handle>,
        bound: Option<&P>,
        login: bool,
        victims: Option<&[Value]>,
    ) {
        bump(&self.counted.rotated);
        if let Some(handle) = handle {
            let kind = if login {
                EventKind::LoggedIn
            } else {
                EventKind::Rotated
            };
            self.bus.emit(kind, handle, bound);
        }
        for pair in victims.unwrap_or_default().chunks_exact(2) {
            self.ended(
                &pair[0],
                &pair[1],
                bound,
                EventKind::Evicted(EvictionReason::PerUser),
            );
        }
    }

    /// Counts a lookup that found no live session.
    pub(super) fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// The principal a script reported (JSON, `''` for none), decoded only
    /// when someone listens for events.
    pub(super) fn event_principal(&self, json: Option<&Value>) -> Option<P> {
        if !self.bus.active() {
            return None;
        }
        match json.and_then(bulk) {
            None | Some([]) => None,
            Some(bytes) => serde_json::from_slice(bytes).ok(),
        }
    }

    /// A script ended the session with hex digest `hex` and handle
    /// `handle` (both as Redis values): drops the local copy, counts it,
    /// tells subscribers.
    pub(super) fn ended(
        &self,
        hex: &Value,
        handle: &Value,
        principal: Option<&P>,
        kind: EventKind,
    ) {
        if let (Some(hex), Some(handle)) = (bulk(hex), bulk(handle)) {
            self.ended_raw(hex, handle, principal, kind);
        }
    }

    /// [`Shared::ended`] on raw bytes.
    pub(super) fn ended_raw(
        &self,
        hex: &[u8],
        handle: &[u8],
        principal: Option<&P>,
        kind: EventKind,
    ) {
        if let Some(k) = unhex_key(hex) {
            self.cache.invalidate(&k);
        }
        let c = &self.counted;
        bump(match kind {
            EventKind::Evicted(EvictionReason::Capacity) => &c.evicted_capacity,
            EventKind::Evicted(EvictionReason::PerUser) => &c.evicted_per_user,
            EventKind::Revoked => &c.revoked,
            _ => &c.destroyed,
        });
        if let Some(handle) = parse_handle(handle) {
            self.bus.emit(kind, handle, principal);
        }
    }
}
