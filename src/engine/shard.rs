//! One shard of the session table: its lines, its timing wheel and its
//! eviction ring, each behind its own lock.
//!
//! # The cache-line table (issue 15)
//!
//! Everything a validation reads sits in one 64-byte, 64-aligned [`Line`]:
//! the session's [`Tag`] (16 bytes of its keyed digest), its last use, its
//! absolute deadline, the end of a grace alias's window, its handle, and the
//! pointer to the cold part ([`Entry`]: data, principal, creation times),
//! which a validation does not follow. The shard holds its lines in an own
//! open-addressing [`Table`]: a power-of-two array of lines probed linearly
//! from the tag's first word, with a fingerprint byte per line beside them
//! (hashbrown's control bytes without the groups): a miss walks bytes, not
//! lines, and a hit loads its home line before the byte, so the two cache
//! misses overlap. A hit at a million sessions waits for one DRAM miss
//! (BENCHMARKS.md, "The cache-line table").
//!
//! # Ground rules
//!
//! - `map` is the only lock on the validate path, taken for reading; a
//!   validation writes one field of its line (`last_seen`, an atomic).
//! - Every other field of a line changes only under the shard's write lock.
//! - **A session is alive exactly while its live line is in the table.**
//!   Whoever ends a session does it under the write lock of the shard that
//!   holds the live line: it clears the entry's alive bit
//!   ([`Entry::try_kill`], which succeeds once) and removes the line in the
//!   same critical section. So a reader holding any lock of that shard sees
//!   both or neither. The entry's alive bit and epoch remain for the paths
//!   that hold the entry without the line (`update`/`with` under the data
//!   mutex).
//! - An entry knows its live line's tag ([`Entry::tag`]); a rotation moves
//!   the line and changes the tag under the write locks of both shards. A
//!   path that holds an entry finds its line by reading the tag, locking
//!   that shard and checking the line there is this entry's live line,
//!   reading the tag again if a rotation moved it in between.
//! - A grace alias is a line of its own (`until > 0`) pointing at the same
//!   entry; it carries no deadlines: a hit on it checks the live line.
//! - `wheel` and `ring` are leaf locks: nothing else is locked while one is
//!   held, except that purging stale wheel or ring entries reads `map`
//!   (order: wheel/ring → map; no path holds `map` and then takes either).
//! - User code (the closures of `update`/`with`) runs under the entry's data
//!   mutex only, never under a shard lock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::Handle;
use crate::key::Tag;
use crate::wheel::Wheel;

/// The alive bit of [`Entry::state`].
const ALIVE: u32 = 1;
/// The bound bit of [`Entry::state`]: a principal is bound (a copy of
/// `principal.is_some()`, written under the principal's write lock), read
/// with a plain load where taking the lock for it would cost an atomic
/// read-modify-write per session (the reaper's batches).
const BOUND: u32 = 2;
/// One epoch in [`Entry::state`], above the two flags.
const EPOCH: u32 = 4;

/// One session's cold state, shared by its lines (live, grace alias) and
/// the principal index. A validation never reads it.
pub(crate) struct Entry<T, P> {
    pub(crate) handle: Handle,
    /// Engine ms at creation.
    pub(crate) created: u64,
    /// Engine ms when the current token was issued (creation or rotation).
    pub(crate) issued: AtomicU64,
    /// Bit 0: alive. Bit 1: bound. Bits 2..: the epoch, bumped when the session changes
    /// hands (login as another principal). A lookup notes the epoch;
    /// `update`/`with` refuse to run when it moved in between, so a request
    /// of the previous principal that was already in flight can neither read
    /// nor write the new principal's data. The alive bit is cleared only
    /// together with the removal of the live line (see the module docs).
    state: AtomicU32,
    /// The tag of the live line, as two words: written only under the write
    /// lock of the shards of both the old and the new tag (a rotation), read
    /// anywhere and confirmed by finding the line (see the module docs).
    tag: [AtomicU64; 2],
    /// Leaf lock: nothing is locked while holding it except the principal
    /// index (login adds the entry there under it).
    pub(crate) principal: RwLock<Option<P>>,
    pub(crate) data: Mutex<T>,
}

impl<T, P> Entry<T, P> {
    pub(crate) fn new(handle: Handle, now: u64, data: T) -> Self {
        Self {
            handle,
            created: now,
            issued: AtomicU64::new(now),
            state: AtomicU32::new(ALIVE),
            tag: [AtomicU64::new(0), AtomicU64::new(0)],
            principal: RwLock::new(None),
            data: Mutex::new(data),
        }
    }

    #[inline]
    pub(crate) fn is_alive(&self) -> bool {
        self.state.load(Ordering::Acquire) & ALIVE != 0
    }

    /// Marks the entry dead. Returns true for the one caller that did it.
    /// Called only under the write lock of the shard holding the live line,
    /// by the caller that removes it.
    pub(crate) fn try_kill(&self) -> bool {
        self.state.fetch_and(!ALIVE, Ordering::AcqRel) & ALIVE != 0
    }

    /// See the field: which holder of the session this is.
    #[inline]
    pub(crate) fn epoch(&self) -> u32 {
        self.state.load(Ordering::Acquire) >> 2
    }

    /// Marks a change of hands (under the principal lock).
    pub(crate) fn bump_epoch(&self) {
        // Adds one to the epoch and leaves the flags as they are (a wrap
        // carries out of the word, not into the flags).
        self.state.fetch_add(EPOCH, Ordering::AcqRel);
    }

    /// Whether a principal is bound (see [`BOUND`]): exact for a caller
    /// that holds the principal lock or the entry alone, a recent value
    /// otherwise.
    #[inline]
    pub(crate) fn is_bound(&self) -> bool {
        self.state.load(Ordering::Acquire) & BOUND != 0
    }

    /// Records whether a principal is bound (under the principal's write
    /// lock, or before the entry is shared).
    pub(crate) fn set_bound(&self, bound: bool) {
        if bound {
            self.state.fetch_or(BOUND, Ordering::AcqRel);
        } else {
            self.state.fetch_and(!BOUND, Ordering::AcqRel);
        }
    }

    /// The live line's tag as last written (see the field).
    #[inline]
    pub(crate) fn tag(&self) -> Tag {
        Tag::from_words([
            self.tag[0].load(Ordering::Acquire),
            self.tag[1].load(Ordering::Acquire),
        ])
    }

    /// Records the live line's tag (under the write locks of its shard, and
    /// of the previous tag's shard on a rotation; or before the entry is
    /// shared).
    pub(crate) fn set_tag(&self, tag: Tag) {
        let [a, b] = tag.words();
        self.tag[0].store(a, Ordering::Release);
        self.tag[1].store(b, Ordering::Release);
    }
}

/// One line of the table: a session's live token, or a grace alias.
///
/// 56 bytes of fields, aligned to a 64-byte cache line; an empty slot is
/// `None` (the `Arc`'s niche: `Option<Line>` is 64 bytes too).
#[repr(C, align(64))]
pub(crate) struct Line<T, P> {
    pub(crate) tag: Tag,
    /// Engine ms of the last successful lookup (lazy touch: a plain store).
    /// On a grace alias, unused (the live line's counts).
    last_seen: AtomicU64,
    /// Engine ms of the absolute deadline (restarted by login, moved by an
    /// id's own deadline).
    pub(crate) abs_deadline: u64,
    /// 0 on a live line; on a grace alias, the end of its window (engine ms,
    /// never 0).
    pub(crate) until: u64,
    pub(crate) handle: Handle,
    pub(crate) entry: Arc<Entry<T, P>>,
}

impl<T, P> Line<T, P> {
    /// A live line.
    pub(crate) fn live(tag: Tag, entry: Arc<Entry<T, P>>, last_seen: u64, abs: u64) -> Self {
        Self {
            tag,
            last_seen: AtomicU64::new(last_seen),
            abs_deadline: abs,
            until: 0,
            handle: entry.handle,
            entry,
        }
    }

    /// A grace alias of `entry`, accepted until `until` (engine ms, > 0).
    pub(crate) fn alias(tag: Tag, entry: Arc<Entry<T, P>>, until: u64) -> Self {
        Self {
            tag,
            last_seen: AtomicU64::new(0),
            abs_deadline: 0,
            until: until.max(1),
            handle: entry.handle,
            entry,
        }
    }

    /// A live line (not a grace alias).
    #[inline]
    pub(crate) fn is_live_line(&self) -> bool {
        self.until == 0
    }

    /// This line is `entry`'s live line.
    #[inline]
    pub(crate) fn is_live_line_of(&self, entry: &Arc<Entry<T, P>>) -> bool {
        self.until == 0 && Arc::ptr_eq(&self.entry, entry)
    }

    #[inline]
    pub(crate) fn last_seen(&self) -> u64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// The idle deadline in engine ms.
    #[inline]
    pub(crate) fn idle_deadline(&self, idle_ms: u64) -> u64 {
        self.last_seen().saturating_add(idle_ms)
    }

    /// The earlier of the idle and absolute deadlines.
    #[inline]
    pub(crate) fn deadline(&self, idle_ms: u64) -> u64 {
        self.idle_deadline(idle_ms).min(self.abs_deadline)
    }

    /// Not past a deadline at `now` (a live line's session is alive: see
    /// the module docs).
    #[inline]
    pub(crate) fn live_at(&self, now: u64, idle_ms: u64) -> bool {
        now < self.deadline(idle_ms)
    }

    /// Records a use. Skips the store when nothing changed, so a hot session
    /// read from several cores does not bounce its cache line every request.
    #[inline]
    pub(crate) fn touch(&self, now: u64) {
        if self.last_seen() < now {
            self.last_seen.store(now, Ordering::Relaxed);
        }
    }
}

/// The fingerprint byte of an empty slot (occupied ones are 2..=255).
const FP_EMPTY: u8 = 0;
/// The smallest table.
const MIN_CAPACITY: usize = 16;

/// A shard's lines: open addressing, linear probing, at most 7/8 of the
/// slots occupied, and a fingerprint byte per slot. A removal shifts the
/// lines after it back into the hole (Knuth's algorithm R), so there are
/// no tombstones: probes stay as short as the load allows under churn, and
/// no rebuild is ever needed to clear them.
pub(crate) struct Table<T, P> {
    fp: Vec<u8>,
    lines: Vec<Option<Line<T, P>>>,
    /// Occupied slots.
    len: usize,
}

impl<T, P> Default for Table<T, P> {
    fn default() -> Self {
        Self::with_slots(MIN_CAPACITY)
    }
}

impl<T, P> Table<T, P> {
    fn with_slots(cap: usize) -> Self {
        debug_assert!(cap.is_power_of_two());
        Self {
            fp: vec![FP_EMPTY; cap],
            lines: std::iter::repeat_with(|| None).take(cap).collect(),
            len: 0,
        }
    }

    /// Occupied slots: live lines and grace aliases.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The slot holding `tag`, if any. Compares the tag in constant time on
    /// every slot whose fingerprint matches.
    #[inline]
    pub(crate) fn find(&self, tag: &Tag) -> Option<usize> {
        let mask = self.fp.len() - 1;
        let mut i = tag.probe_start() & mask;
        // The home line, loaded now: its cache miss overlaps the byte's.
        let home = std::hint::black_box(self.lines[i].as_ref().map(|l| l.tag));
        let want = tag.fingerprint();
        let start = i;
        loop {
            match self.fp[i] {
                FP_EMPTY => return None,
                b if b == want => {
                    let found = if i == start {
                        home
                    } else {
                        self.lines[i].as_ref().map(|l| l.tag)
                    };
                    if found.is_some_and(|t| t == *tag) {
                        return Some(i);
                    }
                }
                _ => {}
            }
            i = (i + 1) & mask;
        }
    }

    /// The line holding `tag`.
    #[inline]
    pub(crate) fn get(&self, tag: &Tag) -> Option<&Line<T, P>> {
        self.find(tag).and_then(|i| self.lines[i].as_ref())
    }

    /// The line holding `tag`, to change.
    pub(crate) fn get_mut(&mut self, tag: &Tag) -> Option<&mut Line<T, P>> {
        let i = self.find(tag)?;
        self.lines[i].as_mut()
    }

    /// The line in slot `i` (from [`Table::find`]).
    pub(crate) fn at(&self, i: usize) -> Option<&Line<T, P>> {
        self.lines.get(i).and_then(Option::as_ref)
    }

    /// Whether a line holds `tag`.
    pub(crate) fn contains(&self, tag: &Tag) -> bool {
        self.find(tag).is_some()
    }

    /// Inserts `line`; gives it back if its tag is already present (never
    /// overwrites).
    pub(crate) fn insert(&mut self, line: Line<T, P>) -> Result<(), Line<T, P>> {
        if self.find(&line.tag).is_some() {
            return Err(line);
        }
        if (self.len + 1) * 8 > self.fp.len() * 7 {
            self.rebuild(self.fp.len() * 2);
        }
        self.place(line);
        Ok(())
    }

    fn place(&mut self, line: Line<T, P>) {
        let mask = self.fp.len() - 1;
        let mut i = line.tag.probe_start() & mask;
        while self.fp[i] != FP_EMPTY {
            i = (i + 1) & mask;
        }
        self.fp[i] = line.tag.fingerprint();
        self.lines[i] = Some(line);
        self.len += 1;
    }

    fn rebuild(&mut self, cap: usize) {
        let mut old = std::mem::replace(self, Self::with_slots(cap));
        // Guided by the fingerprint bytes: only occupied lines are read (a
        // shard emptied by a mass expiry is mostly empty lines, megabytes
        // that need not come from memory).
        for (f, slot) in old.fp.iter().zip(old.lines.iter_mut()) {
            if *f != FP_EMPTY
                && let Some(line) = slot.take()
            {
                self.place(line);
            }
        }
    }

    /// Removes the line in slot `i` (from [`Table::find`]).
    pub(crate) fn remove_at(&mut self, i: usize) -> Option<Line<T, P>> {
        let line = self.lines.get_mut(i)?.take()?;
        // Backward shift: walk the cluster after the hole; a line whose
        // home slot is not cyclically in (hole, j] may move into the hole
        // (its probe passes the hole before reaching j), and leaves a new
        // hole behind. The cluster ends at the first empty slot.
        let mask = self.fp.len() - 1;
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            if self.fp[j] == FP_EMPTY {
                break;
            }
            let Some(home) = self.lines[j].as_ref().map(|l| l.tag.probe_start() & mask) else {
                break; // not reached: an occupied byte has a line
            };
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.lines[hole] = self.lines[j].take();
                self.fp[hole] = self.fp[j];
                hole = j;
            }
        }
        self.fp[hole] = FP_EMPTY;
        self.len -= 1;
        // Shrink after a mass expiry, so memory follows the sessions down.
        if self.fp.len() > MIN_CAPACITY && self.len * 8 < self.fp.len() {
            let cap = ((self.len + 1) * 4).next_power_of_two().max(MIN_CAPACITY);
            self.rebuild(cap);
        }
        Some(line)
    }

    /// Removes the line holding `tag`.
    pub(crate) fn remove(&mut self, tag: &Tag) -> Option<Line<T, P>> {
        let i = self.find(tag)?;
        self.remove_at(i)
    }

    /// Every line (live and aliases), in slot order.
    #[cfg_attr(not(feature = "snapshot"), allow(dead_code))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Line<T, P>> {
        self.lines.iter().flatten()
    }
}

pub(crate) struct Shard<T, P> {
    pub(crate) map: RwLock<Table<T, P>>,
    /// Deadlines of the tags in `map` (ticks), stale tags included.
    pub(crate) wheel: Mutex<Wheel<Tag>>,
    /// Tags of anonymous sessions, oldest first: the eviction order.
    pub(crate) ring: Mutex<VecDeque<Tag>>,
    /// Lookups that found nothing live (kept per shard: no shared counter on
    /// the miss path).
    pub(crate) rejected: AtomicU64,
}

impl<T, P> Shard<T, P> {
    pub(crate) fn new(now_tick: u64) -> Self {
        Self {
            map: RwLock::new(Table::default()),
            wheel: Mutex::new(Wheel::new(now_tick)),
            ring: Mutex::new(VecDeque::new()),
            rejected: AtomicU64::new(0),
        }
    }

    /// Removes `tag`'s line if it is a grace alias of `entry`.
    pub(crate) fn remove_alias_if(&self, tag: &Tag, entry: &Arc<Entry<T, P>>) {
        let mut map = self.map.write();
        if let Some(i) = map.find(tag)
            && map
                .at(i)
                .is_some_and(|l| !l.is_live_line() && Arc::ptr_eq(&l.entry, entry))
        {
            // The entry outlives the lock: the caller holds it.
            map.remove_at(i);
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
    use std::collections::HashMap;

    /// What a validation reads is one cache line.
    #[test]
    fn a_line_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Line<(), String>>(), 64);
        assert_eq!(std::mem::align_of::<Line<(), String>>(), 64);
        assert_eq!(std::mem::size_of::<Option<Line<(), String>>>(), 64);
    }

    #[test]
    fn the_epoch_moves_without_touching_liveness() {
        let e = Entry::<(), String>::new(Handle::from_u64(1), 0, ());
        e.state.store(u32::MAX, Ordering::Relaxed); // epoch at its top, alive, bound
        e.bump_epoch();
        assert!(e.is_alive() && e.is_bound());
        assert_eq!(e.epoch(), 0, "wraps");
        e.set_bound(false);
        assert!(e.is_alive() && !e.is_bound());
        assert!(e.try_kill());
        assert!(!e.try_kill(), "killed once");
        e.bump_epoch();
        assert!(!e.is_alive());
    }

    fn tag(n: u64, probe: u64) -> Tag {
        // `n` in the second word keeps tags apart; `probe` picks the start
        // (and the fingerprint, from its top byte).
        Tag::from_words([probe, n])
    }

    /// The table against a `HashMap` through random inserts and removals,
    /// with colliding probe starts and fingerprints, tombstones, growth and
    /// shrinking.
    #[test]
    fn the_table_agrees_with_a_hash_map() {
        let mut table = Table::<(), String>::default();
        let mut model: HashMap<u64, u64> = HashMap::new();
        let entry = Arc::new(Entry::new(Handle::from_u64(1), 0, ()));
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..40_000 {
            let r = next();
            let n = r % 3000;
            // Few distinct probe starts and fingerprints: long clusters,
            // at the start of the table and at its end (where a cluster
            // wraps around, and a backward shift crosses slot 0).
            let low = ((r >> 20) % 7) | (((r >> 40) % 3) << 56);
            let probe = if r & 1 == 0 { low } else { !low };
            let t = tag(n, probe);
            let grow = step < 20_000;
            if r % 3 != 0 || (grow && r % 5 != 0) {
                if let std::collections::hash_map::Entry::Vacant(v) = model.entry(n) {
                    if table
                        .insert(Line::live(t, Arc::clone(&entry), step, probe))
                        .is_ok()
                    {
                        v.insert(probe);
                    }
                }
            } else if let Some(p) = model.remove(&n) {
                let line = table.remove(&tag(n, p)).expect("present");
                assert_eq!(line.abs_deadline, p);
            }
            if step % 97 == 0 {
                assert_eq!(table.len(), model.len());
                for (&n, &p) in &model {
                    assert_eq!(table.get(&tag(n, p)).map(|l| l.abs_deadline), Some(p));
                }
                assert!(table.get(&tag(5000, 3)).is_none());
            }
        }
        for (n, p) in std::mem::take(&mut model) {
            assert!(table.remove(&tag(n, p)).is_some());
        }
        assert_eq!(table.len(), 0);
        assert!(table.fp.len() <= 64, "shrunk: {}", table.fp.len());
    }

    #[test]
    fn a_present_tag_is_never_overwritten() {
        let mut table = Table::<(), String>::default();
        let a = Arc::new(Entry::new(Handle::from_u64(1), 0, ()));
        let b = Arc::new(Entry::new(Handle::from_u64(2), 0, ()));
        let t = tag(1, 1);
        assert!(table.insert(Line::live(t, Arc::clone(&a), 0, 9)).is_ok());
        let back = table.insert(Line::live(t, Arc::clone(&b), 0, 9)).err();
        assert!(back.is_some_and(|l| Arc::ptr_eq(&l.entry, &b)));
        assert!(table.get(&t).is_some_and(|l| l.is_live_line_of(&a)));
    }
}
