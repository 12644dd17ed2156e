//! One shard of the session map: the entries, their timing wheel and their
//! eviction ring, each behind its own lock.
//!
//! # Ground rules
//!
//! - `map` is the only lock on the validate path, taken for reading.
//! - `wheel` and `ring` are leaf locks: nothing else is locked while one is
//!   held, except that purging stale wheel or ring entries reads `map`
//!   (order: wheel/ring → map; no path holds `map` and then takes either).
//! - An entry is killed exactly once, by whoever clears its alive bit ([`Entry::try_kill`]); that thread does the bookkeeping. Removing
//!   the entry's slots from maps is separate and may come later (the reaper
//!   drops dead entries it meets).
//! - User code (the closures of `update`/`with`) runs under the entry's data
//!   mutex only, never under a shard lock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::Handle;
use crate::key::{BuildIdentity, SessionKey};
use crate::wheel::Wheel;

/// The alive bit of [`Entry::state`].
const ALIVE: u32 = 1;

/// One session's state, shared by its map slots (live key, grace aliases)
/// and the principal index.
pub(crate) struct Entry<T, P> {
    pub(crate) handle: Handle,
    /// Engine ms at creation.
    pub(crate) created: u64,
    /// Engine ms of the last successful lookup (lazy touch: a plain store).
    pub(crate) last_seen: AtomicU64,
    /// Engine ms when the current token was issued (creation or rotation).
    pub(crate) issued: AtomicU64,
    /// Engine ms of the absolute deadline (restarted by login).
    pub(crate) abs_deadline: AtomicU64,
    /// Bit 0: alive. Bits 1..: the epoch, bumped when the session changes
    /// hands (login as another principal). A lookup notes the epoch;
    /// `update`/`with` refuse to run when it moved in between, so a request
    /// of the previous principal that was already in flight can neither read
    /// nor write the new principal's data. One word for both keeps the entry
    /// at its size (31 bits of epoch: a lookup would have to straddle 2^31
    /// logins of one session to miss one).
    state: AtomicU32,
    /// Leaf lock: nothing is locked while holding it except the principal
    /// index (login adds the entry there under it).
    pub(crate) principal: RwLock<Option<P>>,
    pub(crate) data: Mutex<T>,
}

impl<T, P> Entry<T, P> {
    pub(crate) fn new(handle: Handle, now: u64, abs_deadline: u64, data: T) -> Self {
        Self {
            handle,
            created: now,
            last_seen: AtomicU64::new(now),
            issued: AtomicU64::new(now),
            abs_deadline: AtomicU64::new(abs_deadline),
            state: AtomicU32::new(ALIVE),
            principal: RwLock::new(None),
            data: Mutex::new(data),
        }
    }

    #[inline]
    pub(crate) fn is_alive(&self) -> bool {
        self.state.load(Ordering::Acquire) & ALIVE != 0
    }

    /// Marks the entry dead. Returns true for the one caller that did it.
    pub(crate) fn try_kill(&self) -> bool {
        self.state.fetch_and(!ALIVE, Ordering::AcqRel) & ALIVE != 0
    }

    /// See the field: which holder of the session this is.
    #[inline]
    pub(crate) fn epoch(&self) -> u32 {
        self.state.load(Ordering::Acquire) >> 1
    }

    /// Marks a change of hands (under the principal lock).
    pub(crate) fn bump_epoch(&self) {
        // Adds one to the epoch and leaves the alive bit as it is (a wrap
        // carries out of the word, not into bit 0).
        self.state.fetch_add(2, Ordering::AcqRel);
    }

    /// The idle deadline in engine ms.
    #[inline]
    pub(crate) fn idle_deadline(&self, idle_ms: u64) -> u64 {
        self.last_seen
            .load(Ordering::Relaxed)
            .saturating_add(idle_ms)
    }

    /// The earlier of the idle and absolute deadlines.
    #[inline]
    pub(crate) fn deadline(&self, idle_ms: u64) -> u64 {
        self.idle_deadline(idle_ms)
            .min(self.abs_deadline.load(Ordering::Relaxed))
    }

    /// Alive and not past a deadline at `now`.
    #[inline]
    pub(crate) fn is_live(&self, now: u64, idle_ms: u64) -> bool {
        self.is_alive() && now < self.deadline(idle_ms)
    }

    /// Records a use. Skips the store when nothing changed, so a hot session
    /// read from several cores does not bounce its cache line every request.
    #[inline]
    pub(crate) fn touch(&self, now: u64) {
        if self.last_seen.load(Ordering::Relaxed) < now {
            self.last_seen.store(now, Ordering::Relaxed);
        }
    }
}

/// What a map key points at.
pub(crate) enum Slot<T, P> {
    /// The session's current token.
    Live(Arc<Entry<T, P>>),
    /// A token replaced by rotation, still accepted until `until` (engine ms).
    Grace { entry: Arc<Entry<T, P>>, until: u64 },
}

impl<T, P> Slot<T, P> {
    pub(crate) fn entry(&self) -> &Arc<Entry<T, P>> {
        match self {
            Slot::Live(e) | Slot::Grace { entry: e, .. } => e,
        }
    }

    /// The entry if this slot accepts lookups at `now`.
    #[inline]
    pub(crate) fn resolve(&self, now: u64, idle_ms: u64) -> Option<&Arc<Entry<T, P>>> {
        match self {
            Slot::Live(e) => e.is_live(now, idle_ms).then_some(e),
            Slot::Grace { entry, until } => {
                (now < *until && entry.is_live(now, idle_ms)).then_some(entry)
            }
        }
    }
}

pub(crate) type Map<T, P> = HashMap<SessionKey, Slot<T, P>, BuildIdentity>;

pub(crate) struct Shard<T, P> {
    pub(crate) map: RwLock<Map<T, P>>,
    /// Deadlines of the keys in `map` (ticks), stale keys included.
    pub(crate) wheel: Mutex<Wheel<SessionKey>>,
    /// Keys of anonymous sessions, oldest first: the eviction order.
    pub(crate) ring: Mutex<VecDeque<SessionKey>>,
    /// Lookups that found nothing live (kept per shard: no shared counter on
    /// the miss path).
    pub(crate) rejected: AtomicU64,
}

impl<T, P> Shard<T, P> {
    pub(crate) fn new(now_tick: u64) -> Self {
        Self {
            map: RwLock::new(HashMap::default()),
            wheel: Mutex::new(Wheel::new(now_tick)),
            ring: Mutex::new(VecDeque::new()),
            rejected: AtomicU64::new(0),
        }
    }

    /// Removes `key` if it still points at `entry`. Returns whether it did.
    pub(crate) fn remove_if(&self, key: &SessionKey, entry: &Arc<Entry<T, P>>) -> bool {
        let mut map = self.map.write();
        match map.get(key) {
            Some(slot) if Arc::ptr_eq(slot.entry(), entry) => {
                map.remove(key);
                true
            }
            _ => false,
        }
    }

    /// Removes `key` if it is a grace alias of `entry`.
    pub(crate) fn remove_alias_if(&self, key: &SessionKey, entry: &Arc<Entry<T, P>>) {
        let mut map = self.map.write();
        if let Some(Slot::Grace { entry: e, .. }) = map.get(key)
            && Arc::ptr_eq(e, entry)
        {
            map.remove(key);
        }
    }
}

/// Wheel resolution: one tick is a second. Expiry is exact regardless (every
/// lookup checks the real deadline); the tick only bounds how late memory is
/// reclaimed.
pub(crate) const TICK_MS: u64 = 1_000;

/// The first tick at or after engine ms `ms` (deadlines round up: never reap
/// early).
pub(crate) fn tick_of(ms: u64) -> u64 {
    ms.div_ceil(TICK_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lifecycle fixes (epoch, one alias per session) cost no memory
    /// per session: the entry stays at its size before them.
    #[test]
    fn an_entry_stays_at_80_bytes() {
        assert_eq!(std::mem::size_of::<Entry<(), String>>(), 80);
    }

    #[test]
    fn the_epoch_moves_without_touching_liveness() {
        let e = Entry::<(), String>::new(Handle::from_u64(1), 0, 10, ());
        e.state.store(u32::MAX, Ordering::Relaxed); // epoch at its top, alive
        e.bump_epoch();
        assert!(e.is_alive());
        assert_eq!(e.epoch(), 0, "wraps");
        assert!(e.try_kill());
        assert!(!e.try_kill(), "killed once");
        e.bump_epoch();
        assert!(!e.is_alive());
    }
}
