//! Rotation and login: a new token, the one grace alias of a plain
//! rotation, the hand-over of the data to a new principal.

use super::*;
use crate::error::{Error, ErrorKind};
use crate::events::{EventKind, EvictionReason};
use crate::key::Tag;
use crate::shard::{Entry, Line};
use crate::stats::bump;
use crate::token::{SessionToken, TokenInput};
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
    pub(super) fn set_alias(&self, handle: Handle, key: Option<Tag>) -> Option<Tag> {
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
    pub(super) fn forget_alias(&self, handle: Handle, key: &Tag) {
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
        let old_tag = inner.secret.digest(&bytes).tag();
        let i = self.shard_of(&old_tag);
        let (new_token, new_tag, j) = loop {
            let t = SessionToken::generate();
            let k = inner.secret.digest(t.as_bytes()).tag();
            if k != old_tag {
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
        let mut bound_to = None;
        let mut switched = false;
        let entry;
        let stale_alias;
        let deadline;
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
            let Some(at) = old_map.find(&old_tag) else {
                drop((old_map, new_map));
                return Err(not_found());
            };
            let mut abs = match old_map.at(at) {
                Some(l) if l.is_live_line() && l.live_at(now, idle) => {
                    entry = Arc::clone(&l.entry);
                    l.abs_deadline
                }
                _ => {
                    drop((old_map, new_map));
                    return Err(not_found());
                }
            };
            let target = new_map.as_deref().unwrap_or(&*old_map);
            if target.contains(&new_tag) {
                // 2^-128: not worth a retry path; the caller may simply retry.
                return Err(Error::new(ErrorKind::NotFound));
            }
            if let Some((p, bound)) = login {
                let limit = inner.config.max_per_user;
                let mut principal = entry.principal.write();
                // The index first (it runs the principal's `Hash`/`Eq`,
                // user code) and nothing else until it is done. The
                // per-user limit is enforced after the locks are released
                // (`enforce_limit`: it reads other sessions' lines).
                match principal.as_ref() {
                    // A panic in `add` leaves everything as it was.
                    None => {
                        bound_to = inner.users.add(p, Arc::clone(&entry), limit);
                        inner.anonymous.fetch_sub(1, Ordering::AcqRel);
                    }
                    Some(q) if *q == p => {}
                    Some(q) => {
                        // Two index updates: a panic between them would
                        // leave the session listed under neither or both
                        // principals, where "log out everywhere" could miss
                        // it. Fail closed: the session ends.
                        let moved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            inner.users.remove(q, &entry);
                            inner.users.add(p, Arc::clone(&entry), limit)
                        }));
                        let moved = moved.map(|over| bound_to = over);
                        if let Err(panic) = moved {
                            let killed = entry.try_kill();
                            drop(principal);
                            old_map.remove_at(at);
                            drop((old_map, new_map));
                            if killed {
                                self.retire(&entry, EventKind::Destroyed);
                            }
                            std::panic::resume_unwind(panic);
                        }
                        entry.bump_epoch();
                        switched = true;
                    }
                }
                entry.set_bound(true);
                *principal = Some(bound);
                abs = now.saturating_add(inner.config.absolute_ms);
            }
            entry.issued.store(now, Ordering::Relaxed);
            // The line moves: its last use is now (the rotation is a use),
            // its absolute deadline stays (or restarts, on login).
            let line = Line::live(new_tag, Arc::clone(&entry), now, abs);
            deadline = line.deadline(idle);
            if grace > 0 {
                let alias = Line::alias(old_tag, Arc::clone(&entry), now.saturating_add(grace));
                old_map.remove_at(at);
                // The slot just freed takes it: cannot fail.
                let _ = old_map.insert(alias);
                stale_alias = self.set_alias(entry.handle, Some(old_tag));
            } else {
                old_map.remove_at(at);
                stale_alias = self.set_alias(entry.handle, None);
            }
            let placed = match new_map.as_mut() {
                Some(m) => m.insert(line),
                None => old_map.insert(line),
            };
            debug_assert!(placed.is_ok(), "checked absent above");
            entry.set_tag(new_tag);
        }
        if let Some(k) = stale_alias {
            self.shard(&k).remove_alias_if(&k, &entry);
        }
        if switched && let Some(f) = on_switch {
            self.hand_over(&entry, f);
        }
        let shard = &inner.shards[j];
        self.schedule(shard, new_tag, deadline);
        if grace > 0 {
            self.schedule(&inner.shards[i], old_tag, now.saturating_add(grace));
        }
        bump(&inner.counters.rotated);
        let kind = if is_login {
            EventKind::LoggedIn
        } else {
            EventKind::Rotated
        };
        // No clone of the principal: the event clones it only when someone
        // listens (user code under the principal's read lock alone, as in
        // `retire`).
        let anonymous = {
            let principal = entry.principal.read();
            inner.bus.emit(kind, entry.handle, principal.as_ref());
            principal.is_none()
        };
        if anonymous {
            self.push_ring(shard, new_tag);
        }
        if let Some(p) = bound_to {
            self.enforce_limit(&p, &entry, now);
        }
        Ok(new_token)
    }

    /// Ends `principal`'s sessions bound before `own` beyond the per-user
    /// limit, earliest-bound first; `own` and sessions bound after it are
    /// never ended here (their own call judges them). Call with no lock
    /// held: liveness is read from each session's line.
    pub(super) fn enforce_limit(&self, principal: &P, own: &Arc<Entry<T, P>>, now: u64) {
        let Some(limit) = self.inner.config.max_per_user else {
            return;
        };
        let idle = self.idle_ms();
        let live = |e: &Arc<Entry<T, P>>| self.locate(e, |l| l.live_at(now, idle)) == Some(true);
        for victim in self.inner.users.over_limit(principal, own, limit, live) {
            self.end_member(&victim, EventKind::Evicted(EvictionReason::PerUser));
        }
    }

    /// Runs the caller's hand-over of the data to a new principal. If it
    /// panics, the session ends before the panic goes on: the previous
    /// principal's data must never reach the new one.
    pub(super) fn hand_over(&self, entry: &Arc<Entry<T, P>>, f: impl FnOnce(&mut T)) {
        let mut data = entry.data.lock();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut data)));
        drop(data);
        if let Err(panic) = outcome {
            if self.kill_entry(entry, |_| Some(())).is_some() {
                self.retire(entry, EventKind::Destroyed);
            }
            std::panic::resume_unwind(panic);
        }
    }
}
