//! Creating sessions: capacity (reclaim expired sessions, then evict an
//! anonymous one), the wheel and the eviction ring.

use super::*;
use crate::error::{Error, ErrorKind};
use crate::events::{EventKind, EvictionReason};
use crate::key::Tag;
use crate::shard::{Entry, Line, Shard, TICK_MS, tick_of};
use crate::stats::bump;
use crate::token::SessionToken;
use crate::{Handle, Principal};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// An eviction candidate: its tag, its entry, its last use.
type Candidate<T, P> = (Tag, Arc<Entry<T, P>>, u64);

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
        let entry = Arc::new(Entry::new(Handle::generate(), now, data));
        let (token, tag) = loop {
            let token = SessionToken::generate();
            let tag = inner.secret.digest(token.as_bytes()).tag();
            // Not shared yet: the tag is set before the line is visible.
            entry.set_tag(tag);
            let line = Line::live(tag, Arc::clone(&entry), now, abs);
            // Never overwrite: two 128-bit tags will not collide, but if
            // they did, the new session takes another token.
            if self.shard(&tag).map.write().insert(line).is_ok() {
                break (token, tag);
            }
        };
        inner.anonymous.fetch_add(1, Ordering::Relaxed);
        let shard = self.shard(&tag);
        self.schedule(shard, tag, now.saturating_add(self.idle_ms()).min(abs));
        self.push_ring(shard, tag);
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
                let sample: Vec<Tag> = {
                    let mut ring = shard.ring.lock();
                    let k = EVICT_SAMPLE.min(ring.len());
                    ring.drain(..k).collect()
                };
                if sample.is_empty() {
                    break;
                }
                // Anonymous live lines of the sample, with their last use:
                // the line has it, the entry only the principal.
                let candidates: Vec<Candidate<T, P>> = {
                    let map = shard.map.read();
                    sample
                        .iter()
                        .filter_map(|t| {
                            let l = map.get(t)?;
                            (l.is_live_line() && l.entry.principal.read().is_none())
                                .then(|| (*t, Arc::clone(&l.entry), l.last_seen()))
                        })
                        .collect()
                };
                let Some(victim) = candidates
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (_, _, seen))| *seen)
                    .map(|(i, _)| i)
                else {
                    continue; // all stale: dropped from the ring
                };
                let (_, ventry, _) = &candidates[victim];
                // Still anonymous, checked under the map's write lock with
                // the kill (a login takes the map lock first).
                let killed = self
                    .kill_entry(ventry, |l| l.entry.principal.read().is_none().then_some(()))
                    .is_some();
                {
                    let mut ring = shard.ring.lock();
                    for (i, (t, _, _)) in candidates.iter().enumerate() {
                        if i != victim || !killed {
                            ring.push_back(*t);
                        }
                    }
                }
                if killed {
                    self.retire(ventry, EventKind::Evicted(EvictionReason::Capacity));
                    return true;
                }
            }
        }
        false
    }

    pub(super) fn schedule(&self, shard: &Shard<T, P>, tag: Tag, deadline: u64) {
        let mut wheel = shard.wheel.lock();
        wheel.insert(tick_of(deadline), tag);
        let len = wheel.len();
        if len % PURGE_CHECK_EVERY == 0 {
            let map = shard.map.read();
            if len > 2 * map.len() + PURGE_CHECK_EVERY {
                wheel.retain(|t| map.contains(t));
            }
        }
    }

    pub(super) fn push_ring(&self, shard: &Shard<T, P>, tag: Tag) {
        let mut ring = shard.ring.lock();
        ring.push_back(tag);
        let len = ring.len();
        if len % PURGE_CHECK_EVERY == 0 {
            let map = shard.map.read();
            if len > 2 * map.len() + PURGE_CHECK_EVERY {
                // Tags whose line is gone or a grace alias. The line only:
                // reading each entry (its principal lock) would add a cache
                // miss and two atomics per tag, and eviction checks it
                // anyway. A logged-in session's tag is never here: login
                // rotates to a tag that is not pushed.
                ring.retain(|t| map.get(t).is_some_and(Line::is_live_line));
                ring.shrink_to_fit();
            }
        }
    }
}
