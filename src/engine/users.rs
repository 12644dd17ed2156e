//! The principal index: principal → that principal's live sessions.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::shard::Entry;

type UserMap<T, P> = HashMap<P, Vec<Arc<Entry<T, P>>>>;
type UserShard<T, P> = CachePadded<Mutex<UserMap<T, P>>>;

/// Sharded index: each principal's sessions in the order they were bound.
/// Each shard lock is a leaf: held only for the map operation.
pub(crate) struct Users<T, P> {
    hasher: RandomState,
    shards: Box<[UserShard<T, P>]>,
}

impl<T, P: Eq + std::hash::Hash> Users<T, P> {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..shards.max(1))
                .map(|_| CachePadded::new(Mutex::new(HashMap::new())))
                .collect(),
        }
    }

    fn shard(&self, p: &P) -> &Mutex<UserMap<T, P>> {
        let i = (self.hasher.hash_one(p) as usize) % self.shards.len();
        &self.shards[i]
    }

    /// Adds a session, the principal's newest. Gives `p` back when the
    /// principal now has more than `limit` sessions listed: only then can
    /// more than `limit` be live, and the caller enforces the limit
    /// ([`Users::over_limit`]) with it, with no clone of the principal.
    /// Runs the principal's `Hash`/`Eq` (user code) before it changes
    /// anything: a panic there leaves the index as it was.
    pub(crate) fn add(&self, p: P, entry: Arc<Entry<T, P>>, limit: Option<usize>) -> Option<P> {
        let mut shard = self.shard(&p).lock();
        if let Some(list) = shard.get_mut(&p) {
            list.push(entry);
            let over = limit.is_some_and(|l| list.len() > l);
            return over.then_some(p);
        }
        shard.insert(p, vec![entry]);
        None
    }

    /// The per-user limit for the session `own` just bound to `p`: beyond
    /// `limit` live sessions among those bound up to and including `own`,
    /// the earliest-bound live ones leave the index and are returned (the
    /// caller ends them). `own` is never one of them, nor is any session
    /// bound after it: when two logins race, each judges only the sessions
    /// bound before its own, so neither ends the other's new session and
    /// the later one leaves at most `limit`.
    ///
    /// `live` tells which sessions count (expired but unreaped ones do not);
    /// it is called with no index lock held (it reads the sessions' lines).
    pub(crate) fn over_limit(
        &self,
        p: &P,
        own: &Arc<Entry<T, P>>,
        limit: usize,
        live: impl Fn(&Arc<Entry<T, P>>) -> bool,
    ) -> Vec<Arc<Entry<T, P>>> {
        let mut before = self.members(p);
        let Some(at) = before.iter().position(|e| Arc::ptr_eq(e, own)) else {
            return Vec::new(); // already ended
        };
        before.truncate(at);
        // `own` counts as one live session.
        let live_before: Vec<_> = before.into_iter().filter(|e| live(e)).collect();
        let excess = (live_before.len() + 1).saturating_sub(limit);
        if excess == 0 {
            return Vec::new();
        }
        let chosen = &live_before[..excess.min(live_before.len())];
        let mut shard = self.shard(p).lock();
        let Some(list) = shard.get_mut(p) else {
            return Vec::new();
        };
        // Those still listed leave the index now (another call may have
        // taken some already: it ends them).
        let mut victims = Vec::with_capacity(chosen.len());
        list.retain(|e| {
            let pick = chosen.iter().any(|c| Arc::ptr_eq(c, e));
            if pick {
                victims.push(Arc::clone(e));
            }
            !pick
        });
        if list.is_empty() {
            shard.remove(p);
        }
        victims
    }

    /// Removes `entry`.
    pub(crate) fn remove(&self, p: &P, entry: &Arc<Entry<T, P>>) {
        let mut shard = self.shard(p).lock();
        if let Some(list) = shard.get_mut(p) {
            list.retain(|e| !Arc::ptr_eq(e, entry));
            if list.is_empty() {
                shard.remove(p);
            }
        }
    }

    /// Removes and returns all of a principal's sessions.
    pub(crate) fn take(&self, p: &P) -> Vec<Arc<Entry<T, P>>> {
        self.shard(p).lock().remove(p).unwrap_or_default()
    }

    /// A copy of a principal's sessions, earliest bound first.
    pub(crate) fn members(&self, p: &P) -> Vec<Arc<Entry<T, P>>> {
        self.shard(p).lock().get(p).cloned().unwrap_or_default()
    }
}
