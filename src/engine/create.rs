//! Creating sessions: capacity (reclaim expired sessions, then evict an
//! anonymous one), the wheel and the eviction ring.

use super::*;
use crate::error::{Error, ErrorKind};
use crate::events::{EventKind, EvictionReason};
use crate::key::SessionKey;
use crate::shard::{Entry, Shard, Slot, TICK_MS, tick_of};
use crate::stats::bump;
use crate::token::SessionToken;
use crate::{Handle, Principal};
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl<T, P> Sessions<T, P>
where
    T: Send + 'static,
    P: Principal,
{
    /// Creates an anonymous session holding `data`.
    ///
    /// Returns the new token (give it to the client, for example with
    /// cookie helpers of the `cookie` feature) and the session's public handle.
    ///
    /// **Locking:** one shard write lock, then that shard's wheel and ring
    /// locks, one after the other.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Full`] when the store is at `max_sessions` and holds no
    /// anonymous session to evict.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<Vec<u32>>::new();
    /// let (token, handle) = sessions.create(vec![1, 2])?;
    /// assert_eq!(sessions.get(&token), Some(vec![1, 2]));
    /// assert_eq!(sessions.validate(token.as_str()), Some(handle));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(&self, data: T) -> Result<(SessionToken, Handle), Error> {
        self.reserve()?;
        let inner = &*self.inner;
        let now = inner.clock.now();
        let abs = now.saturating_add(inner.config.absolute_ms);
        let entry = Arc::new(Entry::new(Handle::generate(), now, abs, data));
        let (token, key) = loop {
            let token = SessionToken::generate();
            let key = inner.secret.digest(token.as_bytes());
            let mut map = self.shard(&key).map.write();
            // Never overwrite: a collision of 256-bit digests will not happen,
            // but if it did, the new session takes another token.
            if let std::collections::hash_map::Entry::Vacant(v) = map.entry(key) {
                v.insert(Slot::Live(Arc::clone(&entry)));
                break (token, key);
            }
        };
        inner.anonymous.fetch_add(1, Ordering::Relaxed);
        let shard = self.shard(&key);
        self.schedule(shard, key, entry.deadline(self.idle_ms()));
        self.push_ring(shard, key);
        bump(&inner.counters.created);
        inner.bus.emit(EventKind::Created, entry.handle, None);
        Ok((token, entry.handle))
    }

    /// Counts one more live session, evicting an anonymous one if full.
    pub(super) fn reserve(&self) -> Result<(), Error> {
        let inner = &*self.inner;
        let max = inner.config.max_sessions;
        loop {
            let n = inner.live.load(Ordering::Acquire);
            if n < max {
                if inner
                    .live
                    .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            // Full. First reclaim what has expired (the reaper may be
            // late, or off), at most once per wheel tick: a pass finds
            // nothing new within the tick it already covered.
            let tick = inner.clock.now() / TICK_MS;
            if inner.reaped_tick.load(Ordering::Acquire) < tick && self.run_pending() > 0 {
                continue;
            }
            if !self.evict_one() {
                bump(&inner.counters.refused_full);
                return Err(Error::new(ErrorKind::Full));
            }
        }
    }

    /// Evicts one anonymous session, the least recently seen of a small
    /// sample from the front of a shard's ring. False when there is none.
    pub(super) fn evict_one(&self) -> bool {
        let inner = &*self.inner;
        let n = inner.shards.len();
        let start = inner.evict_cursor.fetch_add(1, Ordering::Relaxed);
        for step in 0..n {
            if inner.anonymous.load(Ordering::Acquire) == 0 {
                return false;
            }
            let shard = &inner.shards[(start + step) & (n - 1)];
            loop {
                let sample: Vec<SessionKey> = {
                    let mut ring = shard.ring.lock();
                    let k = EVICT_SAMPLE.min(ring.len());
                    ring.drain(..k).collect()
                };
                if sample.is_empty() {
                    break;
                }
                let candidates: Vec<(SessionKey, Arc<Entry<T, P>>)> = {
                    let map = shard.map.read();
                    sample
                        .iter()
                        .filter_map(|k| match map.get(k) {
                            Some(Slot::Live(e)) if e.is_alive() && e.principal.read().is_none() => {
                                Some((*k, Arc::clone(e)))
                            }
                            _ => None,
                        })
                        .collect()
                };
                let Some(victim) = candidates
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (_, e))| e.last_seen.load(Ordering::Relaxed))
                    .map(|(i, _)| i)
                else {
                    continue; // all stale: dropped from the ring
                };
                let (vkey, ventry) = &candidates[victim];
                let killed = {
                    let principal = ventry.principal.read();
                    principal.is_none() && ventry.try_kill()
                };
                {
                    let mut ring = shard.ring.lock();
                    for (i, (k, _)) in candidates.iter().enumerate() {
                        if i != victim || !killed {
                            ring.push_back(*k);
                        }
                    }
                }
                if killed {
                    shard.remove_if(vkey, ventry);
                    self.retire(ventry, EventKind::Evicted(EvictionReason::Capacity));
                    return true;
                }
            }
        }
        false
    }

    pub(super) fn schedule(&self, shard: &Shard<T, P>, key: SessionKey, deadline: u64) {
        let mut wheel = shard.wheel.lock();
        wheel.insert(tick_of(deadline), key);
        let len = wheel.len();
        if len % PURGE_CHECK_EVERY == 0 {
            let map = shard.map.read();
            if len > 2 * map.len() + PURGE_CHECK_EVERY {
                wheel.retain(|k| map.contains_key(k));
            }
        }
    }

    pub(super) fn push_ring(&self, shard: &Shard<T, P>, key: SessionKey) {
        let mut ring = shard.ring.lock();
        ring.push_back(key);
        let len = ring.len();
        if len % PURGE_CHECK_EVERY == 0 {
            let map = shard.map.read();
            if len > 2 * map.len() + PURGE_CHECK_EVERY {
                // Keys whose slot is gone or a grace alias. A slot only:
                // reading each entry (its liveness, its principal lock) would
                // add a cache miss and two atomics per key, and eviction
                // checks both anyway. A logged-in session's key is never
                // here: login rotates to a key that is not pushed.
                ring.retain(|k| matches!(map.get(k), Some(Slot::Live(_))));
                ring.shrink_to_fit();
            }
        }
    }
}
