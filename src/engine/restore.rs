//! Hooks for the snapshot module: read shards, insert restored entries.

use super::*;
use crate::Principal;
use crate::config::Config;
use crate::events::{EventKind, EvictionReason};
use crate::key::{SecretKey, SessionKey};
use crate::shard::{Entry, Line, Table};
use crate::stats::bump;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

/// What [`Sessions::restore_entry`] did with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Restored {
    /// Inserted and scheduled.
    Inserted,
    /// A session with this key is already live: nothing changed.
    Duplicate,
    /// At `max_sessions` with no room (an anonymous entry never evicts).
    Full,
}

/// Hooks for the snapshot module: read shards, insert restored entries.
impl<T, P> Sessions<T, P>
where
    T: Send + 'static,
    P: Principal,
{
    pub(crate) fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    /// Runs `f` on shard `i`'s map under its read lock. `f` may take entry
    /// principal locks (they nest inside a map lock) but no data mutex, and
    /// must not call into the engine.
    pub(crate) fn read_shard<R>(&self, i: usize, f: impl FnOnce(&Table<T, P>) -> R) -> R {
        f(&self.inner.shards[i].map.read())
    }

    /// Now, in engine ms.
    pub(crate) fn engine_now(&self) -> u64 {
        self.inner.clock.now()
    }

    /// The wall time of engine ms zero.
    pub(crate) fn wall_origin(&self) -> SystemTime {
        self.inner.wall_origin
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn secret(&self) -> &SecretKey {
        &self.inner.secret
    }

    /// Inserts a restored session under its digest: counted live (and
    /// anonymous), scheduled in the wheel, put in the eviction ring or the
    /// principal index. Respects `max_sessions` as `create` does, except that
    /// an anonymous entry evicts nothing to make room; an authenticated one
    /// may evict an anonymous session. Beyond `max_sessions_per_user`, the
    /// principal's earliest restored sessions end. Emits no `Created` event.
    ///
    /// `last_seen` and `abs` are the session's last use and absolute
    /// deadline in engine ms.
    ///
    /// **Locking:** as `create`; the principal index is updated under the
    /// shard's write lock, as login does.
    pub(crate) fn restore_entry(
        &self,
        key: SessionKey,
        mut entry: Entry<T, P>,
        last_seen: u64,
        abs: u64,
    ) -> Restored {
        let inner = &*self.inner;
        let principal = entry.principal.get_mut().clone();
        entry.set_bound(principal.is_some());
        if principal.is_some() {
            if self.reserve().is_err() {
                return Restored::Full;
            }
        } else if !self.try_reserve() {
            bump(&inner.counters.refused_full);
            return Restored::Full;
        }
        let tag = key.tag();
        entry.set_tag(tag);
        let entry = Arc::new(entry);
        let line = Line::live(tag, Arc::clone(&entry), last_seen, abs);
        let deadline = line.deadline(self.idle_ms());
        let shard = self.shard(&tag);
        let mut victims = Vec::new();
        {
            let mut map = shard.map.write();
            if map.insert(line).is_err() {
                drop(map);
                inner.live.fetch_sub(1, Ordering::AcqRel);
                return Restored::Duplicate;
            }
            match &principal {
                None => {
                    inner.anonymous.fetch_add(1, Ordering::Relaxed);
                }
                Some(p) => {
                    // No limit here: restored in no particular order, the
                    // oldest are chosen below.
                    inner.users.add(p.clone(), Arc::clone(&entry), None);
                }
            }
        }
        self.schedule(shard, tag, deadline);
        match (&principal, inner.config.max_per_user) {
            (None, _) => self.push_ring(shard, tag),
            // Restored in no particular order: the oldest sessions go.
            (Some(p), Some(limit)) => {
                let mut members = inner.users.members(p);
                members.retain(|e| e.is_alive());
                members.sort_by_key(|e| e.created);
                let excess = members.len().saturating_sub(limit);
                victims.extend(members.into_iter().take(excess));
            }
            (Some(_), None) => {}
        }
        for e in &victims {
            self.end_member(e, EventKind::Evicted(EvictionReason::PerUser));
        }
        Restored::Inserted
    }

    /// Counts one more live session if there is room; never evicts.
    pub(super) fn try_reserve(&self) -> bool {
        let live = &self.inner.live;
        let max = self.inner.config.max_sessions;
        live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
    }
}
