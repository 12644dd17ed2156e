//! The near cache: this server's copies of sessions read from Redis.
//!
//! # Implementation
//!
//! Shards of `RwLock<HashMap<SessionKey, Arc<Copy>>>` with the identity
//! hasher, as in the engine. A copy is immutable: a change in Redis drops
//! it and the next read fetches a new one.
//!
//! # Ground rules (why a stale copy is never served)
//!
//! - `state` is `2 * epoch + trusted`. It is odd only while the
//!   invalidation subscription is up. Losing the subscription makes it even
//!   (every copy is then ignored and the map cleared), and subscribing again
//!   makes it odd with a new epoch. A copy is served only if it was stored
//!   under the current, odd state: nothing cached before a gap in the
//!   invalidation stream survives the gap.
//! - An invalidation bumps the key's stripe counter and removes the key,
//!   both under the key's shard write lock. A reader notes the stripe counter
//!   and the state *before* its Redis read; after it, it takes the same
//!   shard write lock and inserts its copy only if neither moved. So a copy
//!   is never visible, not even for an instant, once an invalidation of its
//!   key has returned: either the invalidation held the lock first (the
//!   reader sees the bump and does not insert) or the insert did (the
//!   invalidation removes the copy). An earlier design inserted first and
//!   withdrew on a moved counter; between the two, other threads (the
//!   writer itself) could be served the stale copy.
//! - An insert never replaces a copy of the same epoch with a higher
//!   version: a slow reader cannot take a server's reads back in time.
//! - A server's own write bumps the stripe too (it calls `invalidate`), so
//!   a read in flight from before the write cannot cache the old copy.
//! - A reader whose copy was not cached (an invalidation came since its
//!   ticket) serves the cached copy instead if that one is newer (the
//!   caller's `fetch`): every copy a server hands out was current at some
//!   moment after the reader started, and none is older than a copy already
//!   served from the cache.
//! - The subscriber task is the only one that moves `state`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::RwLock;

use crate::Handle;
use crate::key::{BuildIdentity, SessionKey};

/// Invalidation stripes: 4096 counters (32 KiB). More stripes, fewer
/// fetches thrown away because another key of the stripe was invalidated.
const STRIPES: usize = 4096;
/// Cache shards (a power of two).
const SHARDS: usize = 64;
/// Copies examined for an expired one before evicting an arbitrary copy.
const EVICT_SCAN: usize = 8;

/// One cached session, as read from Redis.
pub(crate) struct Copy<T, P> {
    /// The cache state it was read under.
    pub(crate) epoch: u64,
    pub(crate) handle: Handle,
    pub(crate) version: u64,
    pub(crate) principal: Option<P>,
    /// Unix ms on Redis's clock.
    pub(crate) created: u64,
    pub(crate) issued: u64,
    pub(crate) abs: u64,
    /// Redis ms minus local ms at the read, to report times.
    pub(crate) skew: i64,
    pub(crate) data: T,
    /// Local ms after which the copy is not served: the earlier of the
    /// absolute deadline and the cache's own time-to-live.
    pub(crate) hard_until: u64,
    /// Local ms of the idle deadline this server knows Redis to hold (others
    /// may have pushed it later: a lower bound).
    pub(crate) idle_until: AtomicU64,
    /// One thread at a time refreshes the idle deadline in Redis.
    pub(crate) touching: AtomicBool,
    /// `Some(current key)` when the copy was read through a grace alias
    /// (a token replaced by a rotation): such a copy is never cached, since
    /// invalidations name sessions by their current key only.
    pub(crate) target: Option<SessionKey>,
}

impl<T, P> Copy<T, P> {
    /// Servable at local ms `now` (the state check is the caller's).
    #[inline]
    pub(crate) fn fresh(&self, now: u64) -> bool {
        now < self.hard_until && now < self.idle_until.load(Ordering::Relaxed)
    }
}

type Map<T, P> = HashMap<SessionKey, Arc<Copy<T, P>>, BuildIdentity>;
type CacheShard<T, P> = CachePadded<RwLock<Map<T, P>>>;

pub(crate) struct Cache<T, P> {
    shards: Box<[CacheShard<T, P>]>,
    per_shard: usize,
    stripes: Box<[AtomicU64]>,
    state: CachePadded<AtomicU64>,
}

/// What a reader noted before its Redis read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    state: u64,
    stripe: u64,
}

impl<T, P> Cache<T, P> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(RwLock::new(Map::default())))
                .collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            state: CachePadded::new(AtomicU64::new(0)),
        }
    }

    fn shard(&self, key: &SessionKey) -> &RwLock<Map<T, P>> {
        &self.shards[(key.shard_bits() as usize) & (SHARDS - 1)]
    }

    fn stripe(&self, key: &SessionKey) -> &AtomicU64 {
        let b = key.as_bytes();
        let i = (usize::from(b[16]) | usize::from(b[17]) << 8) % STRIPES;
        &self.stripes[i]
    }

    /// The current state (`2 * epoch + trusted`).
    pub(crate) fn state(&self) -> u64 {
        self.state.load(Ordering::SeqCst)
    }

    /// Whether copies may be served now.
    pub(crate) fn trusted(&self) -> bool {
        self.state() & 1 == 1
    }

    /// Runs `f` on the servable copy for `key`, under the shard read lock.
    #[inline]
    pub(crate) fn peek<R>(
        &self,
        key: &SessionKey,
        now: u64,
        f: impl FnOnce(&Arc<Copy<T, P>>) -> R,
    ) -> Option<R> {
        let state = self.state.load(Ordering::SeqCst);
        if state & 1 == 0 {
            return None;
        }
        let map = self.shard(key).read();
        match map.get(key) {
            Some(c) if c.epoch == state && c.fresh(now) => Some(f(c)),
            _ => None,
        }
    }

    /// Notes the state and the key's stripe before a Redis read.
    pub(crate) fn ticket(&self, key: &SessionKey) -> Ticket {
        Ticket {
            state: self.state.load(Ordering::SeqCst),
            stripe: self.stripe(key).load(Ordering::SeqCst),
        }
    }

    /// The state a copy read after `ticket` must carry.
    pub(crate) fn epoch_of(ticket: Ticket) -> u64 {
        ticket.state
    }

    /// Caches `copy` (read from Redis after `ticket` was taken) unless the
    /// cache is untrusted or an invalidation or a gap happened since the
    /// ticket. Returns whether the copy was cached.
    ///
    /// **Locking:** the key's shard write lock, with the check inside.
    pub(crate) fn insert(
        &self,
        key: SessionKey,
        copy: &Arc<Copy<T, P>>,
        ticket: Ticket,
        now: u64,
    ) -> bool {
        if ticket.state & 1 == 0 || copy.epoch != ticket.state {
            return false;
        }
        let mut map = self.shard(&key).write();
        // Under the lock that `invalidate` holds while it bumps the stripe:
        // a copy read before an invalidation never becomes visible.
        if self.stripe(&key).load(Ordering::SeqCst) != ticket.stripe
            || self.state.load(Ordering::SeqCst) != ticket.state
        {
            return false;
        }
        // A slow reader must not replace a newer copy with its older one
        // (reads on one server never go back in time).
        if map
            .get(&key)
            .is_some_and(|old| old.epoch == copy.epoch && old.version > copy.version)
        {
            return false;
        }
        if map.len() >= self.per_shard && !map.contains_key(&key) {
            Self::evict(&mut map, ticket.state, now);
        }
        map.insert(key, Arc::clone(copy));
        true
    }

    /// Makes room: an unservable copy among the first few, else the first
    /// (the keys are random digests, so the first is an arbitrary one).
    fn evict(map: &mut Map<T, P>, state: u64, now: u64) {
        let victim = map
            .iter()
            .take(EVICT_SCAN)
            .find(|(_, c)| c.epoch != state || !c.fresh(now))
            .or_else(|| map.iter().next())
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            map.remove(&k);
        }
    }

    fn remove_if(&self, key: &SessionKey, copy: &Arc<Copy<T, P>>) {
        let mut map = self.shard(key).write();
        if map.get(key).is_some_and(|c| Arc::ptr_eq(c, copy)) {
            map.remove(key);
        }
    }

    /// Drops a copy that turned out stale (gone in Redis).
    pub(crate) fn discard(&self, key: &SessionKey, copy: &Arc<Copy<T, P>>) {
        self.remove_if(key, copy);
    }

    /// An invalidation message named `key`, or this server wrote it: a read
    /// in flight from before the write must not cache what it got.
    ///
    /// **Locking:** the key's shard write lock, held across the bump and the
    /// removal (see the module's ground rules).
    pub(crate) fn invalidate(&self, key: &SessionKey) {
        let mut map = self.shard(key).write();
        self.stripe(key).fetch_add(1, Ordering::SeqCst);
        map.remove(key);
    }

    /// The invalidation stream is down: trust nothing.
    pub(crate) fn distrust(&self) {
        let s = self.state.load(Ordering::SeqCst);
        if s & 1 == 1 {
            self.state.store(s + 1, Ordering::SeqCst);
        }
        for shard in self.shards.iter() {
            let old = std::mem::take(&mut *shard.write());
            drop(old);
        }
    }

    /// The invalidation stream is up again: a new epoch starts.
    pub(crate) fn trust(&self) {
        let s = self.state.load(Ordering::SeqCst);
        if s & 1 == 0 {
            self.state.store(s + 1, Ordering::SeqCst);
        }
    }

    /// Copies held (servable or not).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(epoch: u64) -> Arc<Copy<u32, String>> {
        versioned(epoch, 1)
    }

    fn versioned(epoch: u64, version: u64) -> Arc<Copy<u32, String>> {
        Arc::new(Copy {
            epoch,
            handle: Handle::from_u64(1),
            version,
            principal: None,
            created: 0,
            issued: 0,
            abs: 0,
            skew: 0,
            data: 7,
            hard_until: 1_000,
            idle_until: AtomicU64::new(1_000),
            touching: AtomicBool::new(false),
            target: None,
        })
    }

    fn key(b: u8) -> SessionKey {
        SessionKey::from_bytes([b; 32])
    }

    #[test]
    fn untrusted_cache_serves_nothing() {
        let c = Cache::new(100);
        let t = c.ticket(&key(1));
        assert!(!c.insert(key(1), &copy(Cache::<u32, String>::epoch_of(t)), t, 0));
        assert!(c.peek(&key(1), 0, |_| ()).is_none());
    }

    #[test]
    fn copy_survives_only_within_its_epoch() {
        let c = Cache::new(100);
        c.trust();
        let t = c.ticket(&key(1));
        assert!(c.insert(key(1), &copy(t.state), t, 0));
        assert_eq!(c.peek(&key(1), 10, |c| c.data), Some(7));
        assert!(
            c.peek(&key(1), 1_000, |_| ()).is_none(),
            "past its deadline"
        );
        c.distrust();
        assert!(c.peek(&key(1), 10, |_| ()).is_none());
        c.trust();
        assert!(c.peek(&key(1), 10, |_| ()).is_none(), "a new epoch");
    }

    #[test]
    fn invalidation_between_read_and_insert_wins() {
        let c = Cache::new(100);
        c.trust();
        let t = c.ticket(&key(1));
        c.invalidate(&key(1)); // arrives while the reader waits for Redis
        assert!(!c.insert(key(1), &copy(t.state), t, 0));
        assert!(c.peek(&key(1), 10, |_| ()).is_none());
    }

    #[test]
    fn gap_between_read_and_insert_wins() {
        let c = Cache::new(100);
        c.trust();
        let t = c.ticket(&key(1));
        c.distrust();
        c.trust();
        assert!(!c.insert(key(1), &copy(t.state), t, 0));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn an_older_copy_never_replaces_a_newer_one() {
        let c = Cache::new(100);
        c.trust();
        let slow = c.ticket(&key(1));
        let fast = c.ticket(&key(1));
        assert!(c.insert(key(1), &versioned(fast.state, 5), fast, 0));
        assert!(!c.insert(key(1), &versioned(slow.state, 4), slow, 0));
        assert_eq!(c.peek(&key(1), 0, |c| c.version), Some(5));
    }

    #[test]
    fn capacity_is_bounded() {
        let c = Cache::new(SHARDS); // one per shard
        c.trust();
        for b in 0..=255u8 {
            let t = c.ticket(&key(b));
            c.insert(key(b), &copy(t.state), t, 0);
        }
        assert!(c.len() <= SHARDS);
    }
}
