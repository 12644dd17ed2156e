//! Reaping: what the wheel hands out is expired or re-scheduled, in
//! bounded batches.

use super::*;
use crate::events::{EventKind, ExpiryReason};
use crate::key::Tag;
use crate::shard::{Entry, Shard, TICK_MS, tick_of};
use crate::{Handle, Principal};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A grace alias whose window ended: its session's handle, its tag, its
/// entry (released after the lock).
type Lapsed<T, P> = (Handle, Tag, Arc<Entry<T, P>>);

impl<T, P> Sessions<T, P>
where
    T: Send + 'static,
    P: Principal,
{
    /// Reaps what is due at the clock's current time: expired sessions and
    /// lapsed grace aliases. Returns how many sessions expired.
    ///
    /// Works in bounded batches, shard by shard, so no lock is held long. The
    /// background reaper calls this; call it yourself when built with
    /// `reaper_interval(None)`. Reaping is only about memory: an expired
    /// session is refused whether or not it has been reaped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::ManualClock;
    /// let clock = ManualClock::new();
    /// let sessions = sesame::Sessions::<()>::builder()
    ///     .clock(clock.clone())
    ///     .idle_timeout(Duration::from_secs(60))
    ///     .reaper_interval(None)
    ///     .build()?;
    /// let (token, _) = sessions.create(())?;
    /// clock.advance(Duration::from_secs(61));
    /// assert!(sessions.validate(&token).is_none()); // refused at once
    /// assert_eq!(sessions.len(), 1);                // still held...
    /// assert_eq!(sessions.run_pending(), 1);        // ...until reaped
    /// assert_eq!(sessions.len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_pending(&self) -> usize {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let tick = now / TICK_MS;
        inner.reaped_tick.fetch_max(tick, Ordering::AcqRel);
        let mut due = Vec::with_capacity(REAP_BATCH);
        let mut expired = 0;
        for shard in inner.shards.iter() {
            loop {
                due.clear();
                let done = shard.wheel.lock().poll(tick, REAP_BATCH, &mut due);
                expired += self.reap(shard, &due, now);
                if done {
                    break;
                }
            }
        }
        expired
    }

    pub(super) fn reap(&self, shard: &Shard<T, P>, tags: &[Tag], now: u64) -> usize {
        let idle = self.idle_ms();
        let mut again: Vec<(Tag, u64)> = Vec::new();
        let mut killed: Vec<(Arc<Entry<T, P>>, ExpiryReason)> = Vec::new();
        // Grace aliases whose window ended (or whose session died), with
        // their entry (not freed under the lock).
        let mut lapsed: Vec<Lapsed<T, P>> = Vec::new();
        // What to do with each tag of a chunk: `None` keep (or gone),
        // `Some(None)` drop a lapsed alias, `Some(Some(r))` expire.
        let mut verdicts: Vec<Option<Option<ExpiryReason>>> = Vec::with_capacity(REAP_LOCK_CHUNK);
        for chunk in tags.chunks(REAP_LOCK_CHUNK) {
            let mut map = shard.map.write();
            // Pass 1, plain loads only: with no atomic read-modify-write in
            // the loop (each is a full fence on x86), the cache misses of
            // the chunk's lines overlap instead of queueing. A live line
            // holds its deadlines: no entry is read.
            verdicts.clear();
            verdicts.extend(chunk.iter().map(|tag| {
                let line = map.get(tag)?;
                if line.is_live_line() {
                    let idle_at = line.idle_deadline(idle);
                    let abs_at = line.abs_deadline;
                    if now < idle_at.min(abs_at) {
                        again.push((*tag, idle_at.min(abs_at)));
                        return None;
                    }
                    // The entry's two cache lines (its state word, its
                    // reference count), loaded now with plain loads so that
                    // their misses overlap across the chunk; the kill and the
                    // release below then find them in cache.
                    std::hint::black_box((line.entry.is_alive(), Arc::strong_count(&line.entry)));
                    Some(Some(if abs_at <= idle_at {
                        ExpiryReason::Absolute
                    } else {
                        ExpiryReason::Idle
                    }))
                } else {
                    if now < line.until && line.entry.is_alive() {
                        again.push((*tag, line.until));
                        return None;
                    }
                    Some(None)
                }
            }));
            // Pass 2: remove and kill, on lines now in cache. The line's own
            // reference moves into `killed`: no extra count traffic, and no
            // entry is freed under the lock.
            for (tag, verdict) in chunk.iter().zip(&verdicts) {
                let Some(expiry) = verdict else { continue };
                let Some(line) = map.remove(tag) else {
                    continue;
                };
                match expiry {
                    Some(reason) => {
                        let first = line.entry.try_kill();
                        debug_assert!(first, "a live line's entry is alive");
                        if first {
                            killed.push((line.entry, *reason));
                        }
                    }
                    None => lapsed.push((line.handle, *tag, line.entry)),
                }
            }
        }
        for (handle, tag, _) in &lapsed {
            self.forget_alias(*handle, tag);
        }
        if !again.is_empty() {
            let mut wheel = shard.wheel.lock();
            for (tag, at) in again {
                wheel.insert(tick_of(at), tag);
            }
        }
        self.retire_expired(&killed);
        killed.len()
    }

    /// [`Sessions::retire`] for a batch of expired entries: the shared
    /// counters move once per batch, not once per session (each atomic
    /// read-modify-write also stalls the reaper's cache misses).
    pub(super) fn retire_expired(&self, killed: &[(Arc<Entry<T, P>>, ExpiryReason)]) {
        if killed.is_empty() {
            return;
        }
        let inner = &*self.inner;
        // Counters first, from plain reads; user code (the principal's
        // `Hash`/`Eq`/`Clone`) only afterwards, so a panic there cannot
        // leave them wrong.
        // The bound bit, not the principal's lock: a plain load per entry
        // (these entries are dead, so no login can change it any more).
        let anonymous = killed.iter().filter(|(e, _)| !e.is_bound()).count();
        let absolute = killed
            .iter()
            .filter(|(_, r)| *r == ExpiryReason::Absolute)
            .count() as u64;
        inner.live.fetch_sub(killed.len(), Ordering::AcqRel);
        if anonymous > 0 {
            inner.anonymous.fetch_sub(anonymous, Ordering::AcqRel);
        }
        let c = &inner.counters;
        if absolute > 0 {
            c.expired_absolute.fetch_add(absolute, Ordering::Relaxed);
        }
        if killed.len() as u64 > absolute {
            c.expired_idle
                .fetch_add(killed.len() as u64 - absolute, Ordering::Relaxed);
        }
        let events = inner.bus.active();
        for (entry, reason) in killed {
            self.drop_alias(entry);
            self.drop_device(entry.handle);
            if !events && !entry.is_bound() {
                continue; // nothing to tell, no index to leave
            }
            let principal = entry.principal.read();
            if let Some(p) = &*principal {
                inner.users.remove(p, entry);
            }
            if events {
                inner.bus.emit(
                    EventKind::Expired(*reason),
                    entry.handle,
                    principal.as_ref(),
                );
            }
        }
    }
}
