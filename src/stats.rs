//! Counters: what the engine has done since it was built.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A point-in-time copy of the engine's counters.
///
/// Counters are read one by one without a global lock, so under load a copy
/// may be a few operations out of step with itself. It never holds a token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Live sessions (as [`crate::Sessions::len`]).
    pub live: u64,
    /// Live sessions with no principal.
    pub anonymous: u64,
    /// Sessions created.
    pub created: u64,
    /// Sessions expired for idleness.
    pub expired_idle: u64,
    /// Sessions expired at their absolute deadline.
    pub expired_absolute: u64,
    /// Anonymous sessions evicted to make room (capacity).
    pub evicted_capacity: u64,
    /// Sessions evicted by the per-principal limit.
    pub evicted_per_user: u64,
    /// Token rotations (logins included).
    pub rotated: u64,
    /// Sessions destroyed (logout).
    pub destroyed: u64,
    /// Sessions revoked (a principal's "log out everywhere", or one by handle).
    pub revoked: u64,
    /// Lookups that found no live session: malformed, unknown, expired or
    /// revoked tokens. A steady rise can mean someone is guessing IDs.
    pub rejected: u64,
    /// Creations refused because the store was full.
    pub refused_full: u64,
    /// Events dropped because a subscriber's channel was full.
    pub events_dropped: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) created: AtomicU64,
    pub(crate) expired_idle: AtomicU64,
    pub(crate) expired_absolute: AtomicU64,
    pub(crate) evicted_capacity: AtomicU64,
    pub(crate) evicted_per_user: AtomicU64,
    pub(crate) rotated: AtomicU64,
    pub(crate) destroyed: AtomicU64,
    pub(crate) revoked: AtomicU64,
    pub(crate) refused_full: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self, into: &mut Stats) {
        into.created = self.created.load(Relaxed);
        into.expired_idle = self.expired_idle.load(Relaxed);
        into.expired_absolute = self.expired_absolute.load(Relaxed);
        into.evicted_capacity = self.evicted_capacity.load(Relaxed);
        into.evicted_per_user = self.evicted_per_user.load(Relaxed);
        into.rotated = self.rotated.load(Relaxed);
        into.destroyed = self.destroyed.load(Relaxed);
        into.revoked = self.revoked.load(Relaxed);
        into.refused_full = self.refused_full.load(Relaxed);
    }
}
