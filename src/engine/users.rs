//! The principal index: principal → that principal's live sessions.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::key::SessionKey;
use crate::shard::Entry;

/// One session of a principal.
pub(crate) struct Member<T, P> {
    /// The session's current map key (kept in step by rotation; a racing
    /// rotation may leave it stale, which only delays the map clean-up).
    pub(crate) key: SessionKey,
    pub(crate) entry: Arc<Entry<T, P>>,
}

impl<T, P> Clone for Member<T, P> {
    fn clone(&self) -> Self {
        Self {
            key: self.key,
            entry: Arc::clone(&self.entry),
        }
    }
}

type UserMap<T, P> = HashMap<P, Vec<Member<T, P>>>;
type UserShard<T, P> = CachePadded<Mutex<UserMap<T, P>>>;

/// Sharded index. Each shard lock is a leaf: held only for the map operation.
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

    /// Adds a session and, beyond `limit` live sessions, picks the
    /// principal's earliest-bound live sessions as victims: they leave the
    /// index here, under the same lock as the addition, so two concurrent
    /// logins never pick each other's new session (the newest member is
    /// never a victim). The caller ends the victims.
    ///
    /// `live` tells which members count (expired but unreaped ones do not).
    /// Runs the principal's `Hash`/`Eq` (user code) before it changes
    /// anything: a panic there leaves the index as it was.
    pub(crate) fn add(
        &self,
        p: P,
        member: Member<T, P>,
        limit: Option<usize>,
        live: impl Fn(&Entry<T, P>) -> bool,
    ) -> Vec<Member<T, P>> {
        let mut shard = self.shard(&p).lock();
        let list = shard.entry(p).or_default();
        list.push(member);
        let Some(limit) = limit else {
            return Vec::new();
        };
        let mut excess = list
            .iter()
            .filter(|m| live(&m.entry))
            .count()
            .saturating_sub(limit);
        if excess == 0 {
            return Vec::new();
        }
        let mut victims = Vec::with_capacity(excess);
        let mut i = 0;
        // `i + 1 < len`: the newest member, last in the list, is spared.
        while excess > 0 && i + 1 < list.len() {
            if live(&list[i].entry) {
                victims.push(list.remove(i));
                excess -= 1;
            } else {
                i += 1;
            }
        }
        victims
    }

    /// Points the member for `entry` at its new key.
    pub(crate) fn rekey(&self, p: &P, entry: &Arc<Entry<T, P>>, key: SessionKey) {
        let mut shard = self.shard(p).lock();
        if let Some(m) = shard
            .get_mut(p)
            .and_then(|l| l.iter_mut().find(|m| Arc::ptr_eq(&m.entry, entry)))
        {
            m.key = key;
        }
    }

    /// Removes the member for `entry`.
    pub(crate) fn remove(&self, p: &P, entry: &Arc<Entry<T, P>>) {
        let mut shard = self.shard(p).lock();
        if let Some(list) = shard.get_mut(p) {
            list.retain(|m| !Arc::ptr_eq(&m.entry, entry));
            if list.is_empty() {
                shard.remove(p);
            }
        }
    }

    /// Removes and returns all of a principal's members.
    pub(crate) fn take(&self, p: &P) -> Vec<Member<T, P>> {
        self.shard(p).lock().remove(p).unwrap_or_default()
    }

    /// A copy of a principal's members.
    pub(crate) fn members(&self, p: &P) -> Vec<Member<T, P>> {
        self.shard(p).lock().get(p).cloned().unwrap_or_default()
    }
}
