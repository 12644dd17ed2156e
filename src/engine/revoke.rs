//! Ending sessions early: logout, revocation, and the bookkeeping every
//! end shares.

use super::*;
use crate::events::{EventKind, EvictionReason, ExpiryReason};
use crate::shard::Entry;
use crate::stats::bump;
use crate::token::TokenInput;
use crate::{Handle, Principal, SessionInfo};
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl<T, P> Sessions<T, P>
where
    T: Send + 'static,
    P: Principal,
{
    /// Bookkeeping after a kill: counters, index, alias, device, event, end hook.
    ///
    /// The counters move first: the index update runs the principal's
    /// `Hash`/`Eq` and the event its `Clone` (user code), and a panic there
    /// must not leave them wrong. A dead member left in the index is
    /// harmless (every reader checks liveness).
    pub(super) fn retire(&self, entry: &Arc<Entry<T, P>>, kind: EventKind) {
        let inner = &*self.inner;
        let principal = entry.principal.read();
        inner.live.fetch_sub(1, Ordering::AcqRel);
        if principal.is_none() {
            inner.anonymous.fetch_sub(1, Ordering::AcqRel);
        }
        let c = &inner.counters;
        bump(match kind {
            EventKind::Expired(ExpiryReason::Idle) => &c.expired_idle,
            EventKind::Expired(ExpiryReason::Absolute) => &c.expired_absolute,
            EventKind::Evicted(EvictionReason::Capacity) => &c.evicted_capacity,
            EventKind::Evicted(EvictionReason::PerUser) => &c.evicted_per_user,
            EventKind::Revoked => &c.revoked,
            _ => &c.destroyed,
        });
        let logged_in = principal.is_some();
        drop(principal);
        // Before any user code: the journal must hear of the end even if
        // the principal's `Hash` panics below.
        if let Some(hook) = inner.end_hook.get() {
            hook.ended(entry.handle, logged_in);
        }
        let principal = entry.principal.read();
        if let Some(p) = &*principal {
            inner.users.remove(p, entry);
        }
        inner.bus.emit(kind, entry.handle, principal.as_ref());
        drop(principal);
        self.drop_alias(entry);
        self.drop_device(entry.handle);
    }

    /// Ends a session held by its entry (whatever its deadlines say), with
    /// the bookkeeping. False if it had already ended.
    pub(super) fn end_member(&self, entry: &Arc<Entry<T, P>>, kind: EventKind) -> bool {
        if self.kill_entry(entry, |_| Some(())).is_none() {
            return false;
        }
        self.retire(entry, kind);
        true
    }

    /// Destroys the session (logout). Returns whether a live session ended.
    ///
    /// **Locking:** one shard read lock, then that shard's write lock.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let (token, _) = sessions.create(())?;
    /// assert!(sessions.logout(&token));
    /// assert!(sessions.validate(&token).is_none());
    /// assert!(!sessions.logout(&token)); // already ended
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn logout(&self, token: &(impl TokenInput + ?Sized)) -> bool {
        // A malformed token is no rejected lookup here (no lookup is made).
        if token.token_bytes().is_none() {
            return false;
        }
        // A grace alias ends its session too: the live line goes, and the
        // alias's line with the bookkeeping.
        self.find_entry(token)
            .is_some_and(|(entry, _)| self.destroy(&entry))
    }

    /// Ends a session found by a lookup (logout) if it is still live now:
    /// whether it ended here.
    pub(super) fn destroy(&self, entry: &Arc<Entry<T, P>>) -> bool {
        let now = self.inner.clock.now();
        let idle = self.idle_ms();
        if self
            .kill_entry(entry, |l| l.live_at(now, idle).then_some(()))
            .is_none()
        {
            return false;
        }
        self.retire(entry, EventKind::Destroyed);
        true
    }

    /// Ends every session of `principal` ("log out everywhere"). Returns how
    /// many ended.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let alice = "alice".to_string();
    /// let (phone, _) = sessions.create(())?;
    /// let phone = sessions.login(&phone, alice.clone())?;
    /// let (laptop, _) = sessions.create(())?;
    /// let laptop = sessions.login(&laptop, alice.clone())?;
    /// assert_eq!(sessions.revoke_user(&alice), 2);
    /// assert!(sessions.validate(&phone).is_none() && sessions.validate(&laptop).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn revoke_user(&self, principal: &P) -> usize {
        let now = self.inner.clock.now();
        let members = self.inner.users.take(principal);
        members
            .iter()
            .filter(|m| self.revoke_member(m, now))
            .count()
    }

    /// Ends a member for `revoke`/`revoke_user`; whether a live session was
    /// revoked. One already past a deadline at `now` (the reaper had not
    /// reached it yet) ends as expired, the way the reaper would end it,
    /// and does not count: it granted nothing, so nothing was revoked.
    fn revoke_member(&self, entry: &Arc<Entry<T, P>>, now: u64) -> bool {
        let idle = self.idle_ms();
        let ended = self.kill_entry(entry, |l| {
            let (idle_at, abs_at) = (l.idle_deadline(idle), l.abs_deadline);
            Some(if now < idle_at.min(abs_at) {
                EventKind::Revoked
            } else if abs_at <= idle_at {
                EventKind::Expired(ExpiryReason::Absolute)
            } else {
                EventKind::Expired(ExpiryReason::Idle)
            })
        });
        match ended {
            Some(kind) => {
                self.retire(entry, kind);
                kind == EventKind::Revoked
            }
            None => false,
        }
    }

    /// Ends one of `principal`'s sessions by its handle (an "end that
    /// session" button). False if the handle is not one of theirs.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let alice = "alice".to_string();
    /// let (token, handle) = sessions.create(())?;
    /// let token = sessions.login(&token, alice.clone())?;
    /// assert!(!sessions.revoke(&"bob".to_string(), handle)); // not bob's
    /// assert!(sessions.revoke(&alice, handle));
    /// assert!(sessions.validate(&token).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn revoke(&self, principal: &P, handle: Handle) -> bool {
        let now = self.inner.clock.now();
        self.inner
            .users
            .members(principal)
            .iter()
            .find(|e| e.handle == handle)
            .is_some_and(|e| self.revoke_member(e, now))
    }

    /// The live sessions of `principal`, oldest first: metadata, never
    /// tokens, each with its recorded device ([`SessionInfo::device`]).
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let alice = "alice".to_string();
    /// let (first, a) = sessions.create(())?;
    /// sessions.login(&first, alice.clone())?;
    /// let (second, b) = sessions.create(())?;
    /// sessions.login(&second, alice.clone())?;
    /// let handles: Vec<_> = sessions.sessions_of(&alice).iter().map(|i| i.handle).collect();
    /// assert_eq!(handles, [a, b]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sessions_of(&self, principal: &P) -> Vec<SessionInfo<P>> {
        let now = self.inner.clock.now();
        let idle = self.idle_ms();
        let mut infos: Vec<(u64, SessionInfo<P>)> = self
            .inner
            .users
            .members(principal)
            .iter()
            .filter_map(|e| {
                self.locate(e, |l| l.live_at(now, idle).then(|| self.info_of(l)))
                    .flatten()
                    .map(|info| (e.created, info))
            })
            .collect();
        infos.sort_by_key(|(created, _)| *created);
        infos
            .into_iter()
            .map(|(_, mut info)| {
                info.device = self.device_of(info.handle);
                info
            })
            .collect()
    }
}
