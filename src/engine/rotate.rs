//! Rotation and login: a new token, the one grace alias of a plain
//! rotation, the hand-over of the data to a new principal.

use super::*;
use crate::error::{Error, ErrorKind};
use crate::events::{EventKind, EvictionReason};
use crate::key::SessionKey;
use crate::shard::{Entry, Slot};
use crate::stats::bump;
use crate::token::{SessionToken, TokenInput};
use crate::users::Member;
use crate::{Handle, Principal};
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl<T, P> Sessions<T, P>
where
    T: Send + 'static,
    P: Principal,
{
    /// Records (`Some`) or forgets (`None`) the grace alias of the session
    /// with `handle`; returns the alias it had. A no-op without a grace
    /// window.
    ///
    /// **Locking:** one alias-table leaf lock.
    pub(super) fn set_alias(&self, handle: Handle, key: Option<SessionKey>) -> Option<SessionKey> {
        let table = &self.inner.aliases;
        if table.is_empty() {
            return None;
        }
        let mut map = table[(handle.as_u64() as usize) & (table.len() - 1)].lock();
        match key {
            Some(k) => map.insert(handle, k),
            None => map.remove(&handle),
        }
    }

    /// Forgets `key` as the alias of `handle` if it still is (its window
    /// ended and the reaper dropped its slot).
    pub(super) fn forget_alias(&self, handle: Handle, key: &SessionKey) {
        let table = &self.inner.aliases;
        if table.is_empty() {
            return;
        }
        let mut map = table[(handle.as_u64() as usize) & (table.len() - 1)].lock();
        if map.get(&handle) == Some(key) {
            map.remove(&handle);
        }
    }

    /// Drops the session's alias slot, if it has one (it ended, or logged in).
    pub(super) fn drop_alias(&self, entry: &Arc<Entry<T, P>>) {
        if let Some(k) = self.set_alias(entry.handle, None) {
            self.shard(&k).remove_alias_if(&k, entry);
        }
    }

    /// Gives the session a new token; the old one stops working (after the
    /// rotation grace window, if one is set). Data, principal and handle stay.
    ///
    /// Rotate whenever privilege changes; [`Sessions::login`] does it for you.
    /// A session has at most one grace alias: rotating again ends the alias
    /// of the previous rotation at once, and an alias is reaped when its
    /// window ends.
    ///
    /// **Locking:** the write locks of the old and new tokens' shards (lower
    /// index first), then that of the principal index; afterwards, the write
    /// lock of the previous alias's shard.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token
    /// (a token still in its grace window cannot rotate again).
    ///
    /// ```
    /// let sessions = sesame::Sessions::<u32>::new();
    /// let (old, _) = sessions.create(7)?;
    /// let new = sessions.rotate(&old)?;
    /// assert!(sessions.validate(&old).is_none()); // no grace window by default
    /// assert_eq!(sessions.get(&new), Some(7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rotate(&self, token: &(impl TokenInput + ?Sized)) -> Result<SessionToken, Error> {
        self.rotate_inner(token, None::<(P, fn(&mut T))>)
    }

    /// Logs a session in: rotates its token (the session fixation defence),
    /// binds `principal` and restarts the absolute timeout (re-authentication,
    /// NIST SP 800-63B). Returns the new token.
    ///
    /// The pre-login token stops working at once, **grace window or not**:
    /// it is the token an attacker may have planted (session fixation), so
    /// no alias of it may ever carry the logged-in principal. Any alias left
    /// by an earlier plain rotation ends too. Requests still in flight with
    /// the pre-login token find no session.
    ///
    /// Logging in as the principal already bound keeps the data. Logging in
    /// as *another* principal (bob on a browser alice left logged in) moves
    /// the session to them and resets the data to `T::default()`: a new
    /// principal starts from fresh data, and requests of the previous one
    /// still in flight can neither read nor write it. To carry something
    /// over (a cart), use [`Sessions::login_with`]. Logging in an anonymous
    /// session keeps its data.
    ///
    /// With a per-user limit (by default [`crate::config::DEFAULT_MAX_SESSIONS_PER_USER`]),
    /// the principal's sessions that logged in longest ago are ended, so that
    /// at most the limit stay; the new session is never one of them.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<Vec<u32>>::new();
    /// let (anon, _) = sessions.create(vec![1])?;
    /// let alice = sessions.login(&anon, "alice".to_string())?;
    /// assert!(sessions.validate(&anon).is_none());
    /// assert_eq!(sessions.get(&alice), Some(vec![1])); // anonymous data kept
    /// let info = sessions.info(&alice).unwrap();
    /// assert_eq!(info.principal.as_deref(), Some("alice"));
    /// let bob = sessions.login(&alice, "bob".to_string())?;
    /// assert_eq!(sessions.get(&bob), Some(vec![])); // a new principal starts fresh
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn login(
        &self,
        token: &(impl TokenInput + ?Sized),
        principal: P,
    ) -> Result<SessionToken, Error>
    where
        T: Default,
    {
        self.login_with(token, principal, |data: &mut T| *data = T::default())
    }

    /// [`Sessions::login`] with the hand-over of the data chosen by the
    /// caller: when the session was logged in as another principal,
    /// `on_switch` turns the previous principal's data into the new one's
    /// (keep the cart, drop everything else). It is not called when the
    /// session was anonymous or already bound to `principal`.
    ///
    /// `on_switch` runs under the session's data mutex, after the session
    /// changed hands and before the new token is returned; it must not touch
    /// the same session. If it panics, the session is ended (the previous
    /// principal's data must not reach the new one) and the panic goes on.
    ///
    /// # Errors
    ///
    /// As [`Sessions::login`].
    ///
    /// ```
    /// #[derive(Clone, Debug, Default, PartialEq)]
    /// struct Data { cart: Vec<u32>, theme: Option<String> }
    ///
    /// let sessions = sesame::Sessions::<Data>::new();
    /// let (anon, _) = sessions.create(Data::default())?;
    /// let alice = sessions.login(&anon, "alice".to_string())?;
    /// sessions.update(&alice, |d| { d.cart.push(3); d.theme = Some("dark".into()) })?;
    /// let bob = sessions.login_with(&alice, "bob".to_string(), |d| {
    ///     *d = Data { cart: std::mem::take(&mut d.cart), ..Data::default() }
    /// })?;
    /// assert_eq!(sessions.get(&bob), Some(Data { cart: vec![3], theme: None }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn login_with(
        &self,
        token: &(impl TokenInput + ?Sized),
        principal: P,
        on_switch: impl FnOnce(&mut T),
    ) -> Result<SessionToken, Error> {
        self.rotate_inner(token, Some((principal, on_switch)))
    }

    pub(super) fn rotate_inner(
        &self,
        token: &(impl TokenInput + ?Sized),
        login: Option<(P, impl FnOnce(&mut T))>,
    ) -> Result<SessionToken, Error> {
        let inner = &*self.inner;
        let not_found = || {
            inner.rejected_malformed.fetch_add(1, Ordering::Relaxed);
            Error::new(ErrorKind::NotFound)
        };
        let bytes = token.token_bytes().ok_or_else(not_found)?;
        let old_key = inner.secret.digest(&bytes);
        let i = self.shard_of(&old_key);
        let (new_token, new_key, j) = loop {
            let t = SessionToken::generate();
            let k = inner.secret.digest(t.as_bytes());
            if k != old_key {
                let j = self.shard_of(&k);
                break (t, k, j);
            }
        };
        // User code first (the principal's `Clone`), before anything changes:
        // a panic here leaves the engine as it was.
        let (login, on_switch) = match login {
            Some((p, f)) => {
                let bound = p.clone();
                (Some((p, bound)), Some(f))
            }
            None => (None, None),
        };
        let is_login = login.is_some();
        let now = inner.clock.now();
        let idle = inner.config.idle_ms;
        let grace = if is_login { 0 } else { inner.config.grace_ms };
        let mut victims = Vec::new();
        let mut switched = false;
        let entry;
        let stale_alias;
        {
            // Two shard locks at most, lower index first: no deadlock.
            let (mut old_map, mut new_map) = if i == j {
                (inner.shards[i].map.write(), None)
            } else if i < j {
                let a = inner.shards[i].map.write();
                (a, Some(inner.shards[j].map.write()))
            } else {
                let b = inner.shards[j].map.write();
                (inner.shards[i].map.write(), Some(b))
            };
            entry = match old_map.get(&old_key) {
                Some(Slot::Live(e)) if e.is_live(now, idle) => Arc::clone(e),
                _ => {
                    drop((old_map, new_map));
                    return Err(not_found());
                }
            };
            let target = new_map.as_deref().unwrap_or(&*old_map);
            if target.contains_key(&new_key) {
                // 2^-256: not worth a retry path; the caller may simply retry.
                return Err(Error::new(ErrorKind::NotFound));
            }
            if let Some((p, bound)) = login {
                let mut principal = entry.principal.write();
                if !entry.is_alive() {
                    return Err(Error::new(ErrorKind::NotFound));
                }
                let member = Member {
                    key: new_key,
                    entry: Arc::clone(&entry),
                };
                let limit = inner.config.max_per_user;
                let live = |e: &Entry<T, P>| e.is_live(now, idle);
                // The index first (it runs the principal's `Hash`/`Eq`,
                // user code) and nothing else until it is done.
                match principal.as_ref() {
                    // A panic in `add` leaves everything as it was.
                    None => {
                        victims = inner.users.add(p, member, limit, live);
                        inner.anonymous.fetch_sub(1, Ordering::AcqRel);
                    }
                    Some(q) if *q == p => inner.users.rekey(&p, &entry, new_key),
                    Some(q) => {
                        // Two index updates: a panic between them would
                        // leave the session listed under neither or both
                        // principals, where "log out everywhere" could miss
                        // it. Fail closed: the session ends.
                        let moved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            inner.users.remove(q, &entry);
                            inner.users.add(p, member, limit, live)
                        }));
                        match moved {
                            Ok(v) => victims = v,
                            Err(panic) => {
                                let killed = entry.try_kill();
                                drop(principal);
                                drop((old_map, new_map));
                                if killed {
                                    self.shard(&old_key).remove_if(&old_key, &entry);
                                    self.retire(&entry, EventKind::Destroyed);
                                }
                                std::panic::resume_unwind(panic);
                            }
                        }
                        entry.bump_epoch();
                        switched = true;
                    }
                }
                *principal = Some(bound);
                entry.abs_deadline.store(
                    now.saturating_add(inner.config.absolute_ms),
                    Ordering::Relaxed,
                );
            } else if let Some(p) = entry.principal.read().as_ref() {
                inner.users.rekey(p, &entry, new_key);
            }
            entry.issued.store(now, Ordering::Relaxed);
            entry.touch(now);
            if grace > 0 {
                old_map.insert(
                    old_key,
                    Slot::Grace {
                        entry: Arc::clone(&entry),
                        until: now.saturating_add(grace),
                    },
                );
                stale_alias = self.set_alias(entry.handle, Some(old_key));
            } else {
                old_map.remove(&old_key);
                stale_alias = self.set_alias(entry.handle, None);
            }
            match new_map.as_mut() {
                Some(m) => m.insert(new_key, Slot::Live(Arc::clone(&entry))),
                None => old_map.insert(new_key, Slot::Live(Arc::clone(&entry))),
            };
        }
        if let Some(k) = stale_alias {
            self.shard(&k).remove_alias_if(&k, &entry);
        }
        if switched && let Some(f) = on_switch {
            self.hand_over(&entry, &new_key, f);
        }
        let shard = &inner.shards[j];
        self.schedule(shard, new_key, entry.deadline(idle));
        if grace > 0 {
            self.schedule(&inner.shards[i], old_key, now.saturating_add(grace));
        }
        let principal = entry.principal.read().clone();
        if principal.is_none() {
            self.push_ring(shard, new_key);
        }
        bump(&inner.counters.rotated);
        let kind = if is_login {
            EventKind::LoggedIn
        } else {
            EventKind::Rotated
        };
        inner.bus.emit(kind, entry.handle, principal.as_ref());
        for m in &victims {
            self.end_member(m, EventKind::Evicted(EvictionReason::PerUser));
        }
        Ok(new_token)
    }

    /// Runs the caller's hand-over of the data to a new principal. If it
    /// panics, the session ends before the panic goes on: the previous
    /// principal's data must never reach the new one.
    pub(super) fn hand_over(
        &self,
        entry: &Arc<Entry<T, P>>,
        key: &SessionKey,
        f: impl FnOnce(&mut T),
    ) {
        let mut data = entry.data.lock();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut data)));
        drop(data);
        if let Err(panic) = outcome {
            if entry.try_kill() {
                self.shard(key).remove_if(key, entry);
                self.retire(entry, EventKind::Destroyed);
            }
            std::panic::resume_unwind(panic);
        }
    }
}
