//! Ending sessions early: logout, revocation, and the bookkeeping every
//! end shares.

use super::*;
use crate::events::{EventKind, EvictionReason, ExpiryReason};
use crate::shard::Entry;
use crate::stats::bump;
use crate::token::TokenInput;
use crate::users::Member;
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

    pub(super) fn end_member(&self, m: &Member<T, P>, kind: EventKind) -> bool {
        if !m.entry.try_kill() {
            return false;
        }
        self.shard(&m.key).remove_if(&m.key, &m.entry);
        self.retire(&m.entry, kind);
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
        let inner = &*self.inner;
        let Some(bytes) = token.token_bytes() else {
            return false;
        };
        let key = inner.secret.digest(&bytes);
        let Some((entry, _)) = self.find_entry(token) else {
            return false;
        };
        if !entry.try_kill() {
            return false;
        }
        // When the token was a grace alias, the live key's slot stays until the
        // reaper meets it; the entry is dead, so it answers no lookup.
        self.shard(&key).remove_if(&key, &entry);
        self.retire(&entry, EventKind::Destroyed);
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
    fn revoke_member(&self, m: &Member<T, P>, now: u64) -> bool {
        let idle_at = m.entry.idle_deadline(self.idle_ms());
        let abs_at = m.entry.abs_deadline.load(Ordering::Relaxed);
        if now < idle_at.min(abs_at) {
            return self.end_member(m, EventKind::Revoked);
        }
        let reason = if abs_at <= idle_at {
            ExpiryReason::Absolute
        } else {
            ExpiryReason::Idle
        };
        self.end_member(m, EventKind::Expired(reason));
        false
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
            .find(|m| m.entry.handle == handle)
            .is_some_and(|m| self.revoke_member(m, now))
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
        let mut members = self.inner.users.members(principal);
        members.retain(|m| m.entry.is_live(now, self.idle_ms()));
        members.sort_by_key(|m| m.entry.created);
        members
            .iter()
            .map(|m| {
                let mut info = self.info_of(&m.entry);
                info.device = self.device_of(m.entry.handle);
                info
            })
            .collect()
    }
}
