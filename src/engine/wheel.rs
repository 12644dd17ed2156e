//! A hierarchical timing wheel: O(1) schedule, O(due) reaping.
//!
//! # Implementation
//!
//! The design of tokio's and Kafka's timer wheels. [`LEVELS`] levels of
//! [`SLOTS`] slots each; a slot of level `l` spans `64^l` ticks, so level 0
//! holds what is due within the current 64 ticks, level 1 within the current
//! 64² ticks, and so on up to [`MAX_TICKS`] (`64^4` ticks: about 194 days at
//! the engine's one-second tick). A deadline further out is clamped to the
//! end of that range: it fires early and its owner re-schedules it, which the
//! engine does anyway because it re-checks every firing against the session's
//! real deadline.
//!
//! Each level keeps a 64-bit occupancy mask, so finding the next slot to
//! process is a rotate and a trailing-zeros count. When a slot of level
//! `l > 0` comes due, its entries cascade into lower levels; when a level-0
//! slot comes due, its entries are handed out. Hand-outs are bounded by the
//! caller's batch size: a partly drained slot stays marked and is finished by
//! the next call.
//!
//! # Ground rules
//!
//! - The wheel is pure data on `u64` ticks: no locks, no clock. Its owner (a
//!   shard) keeps it behind its own mutex, separate from the session map, so
//!   validating a session never touches it.
//! - Entries are not removed when their session goes away (destroyed,
//!   rotated, evicted): the stale entry is dropped when it fires, or by
//!   [`Wheel::retain`] when its owner decides stale entries are too many.
//! - `elapsed` only moves forward. Anything scheduled at or before it is due
//!   at once.

/// Number of levels. `64^4` ticks at 1 s ≈ 194 days of range.
pub(crate) const LEVELS: usize = 4;
/// Slots per level: one bit each in a `u64` occupancy mask.
pub(crate) const SLOTS: usize = 64;
const SLOT_BITS: u32 = 6;
const SLOT_MASK: u64 = (SLOTS as u64) - 1;
/// Ticks the wheel can see ahead; later deadlines are clamped to this.
pub(crate) const MAX_TICKS: u64 = 1 << (SLOT_BITS as usize * LEVELS);

const _: () = assert!(SLOTS == 1 << SLOT_BITS);
const _: () = assert!(SLOT_BITS as usize * LEVELS < 64);

/// A timing wheel of items `K`, each scheduled at a tick.
pub(crate) struct Wheel<K> {
    /// Ticks processed so far: everything due at or before this was handed out
    /// or sits in `pending`.
    elapsed: u64,
    levels: Box<[Level<K>; LEVELS]>,
    /// Due items not yet handed out.
    pending: Vec<K>,
    len: usize,
}

struct Level<K> {
    occupied: u64,
    slots: [Vec<(u64, K)>; SLOTS],
}

impl<K> Level<K> {
    fn new() -> Self {
        Self {
            occupied: 0,
            slots: std::array::from_fn(|_| Vec::new()),
        }
    }
}

/// Where the next due slot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expiration {
    level: usize,
    slot: usize,
    deadline: u64,
}

/// Ticks spanned by one slot of `level`.
fn slot_range(level: usize) -> u64 {
    1 << (SLOT_BITS as usize * level)
}

/// Ticks spanned by all of `level`.
fn level_range(level: usize) -> u64 {
    1 << (SLOT_BITS as usize * (level + 1))
}

/// The level for a deadline `when > elapsed`: the highest 6-bit digit where
/// the two differ.
fn level_for(elapsed: u64, when: u64) -> usize {
    let mut masked = (elapsed ^ when) | SLOT_MASK;
    if masked >= MAX_TICKS {
        masked = MAX_TICKS - 1;
    }
    let significant = 63 - masked.leading_zeros() as usize;
    significant / SLOT_BITS as usize
}

fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (SLOT_BITS as usize * level)) & SLOT_MASK) as usize
}

impl<K> Wheel<K> {
    /// An empty wheel whose time starts at `now`.
    pub(crate) fn new(now: u64) -> Self {
        Self {
            elapsed: now,
            levels: Box::new(std::array::from_fn(|_| Level::new())),
            pending: Vec::new(),
            len: 0,
        }
    }

    /// Entries held, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Schedules `item` at tick `when`. O(1).
    pub(crate) fn insert(&mut self, when: u64, item: K) {
        self.len += 1;
        self.place(when, item);
    }

    fn place(&mut self, when: u64, item: K) {
        if when <= self.elapsed {
            self.pending.push(item);
            return;
        }
        // Saturating: a deadline beyond the wheel's range fires at the range's
        // end and is re-scheduled by its owner.
        let when = when.min(self.elapsed.saturating_add(MAX_TICKS - 1));
        let level = level_for(self.elapsed, when);
        let slot = slot_for(when, level);
        let lvl = &mut self.levels[level];
        lvl.slots[slot].push((when, item));
        lvl.occupied |= 1 << slot;
    }

    /// Moves time to `now` and hands out up to `max` due items into `out`.
    ///
    /// Returns `true` when nothing due is left, `false` when the batch filled
    /// first (call again). A `now` earlier than the wheel's time hands out only
    /// what was already due.
    pub(crate) fn poll(&mut self, now: u64, max: usize, out: &mut Vec<K>) -> bool {
        let mut budget = max;
        loop {
            while budget > 0 {
                match self.pending.pop() {
                    Some(item) => {
                        out.push(item);
                        self.len -= 1;
                        budget -= 1;
                    }
                    None => break,
                }
            }
            if budget == 0 {
                return self.pending.is_empty()
                    && self.next_expiration().is_none_or(|e| e.deadline > now);
            }
            let Some(exp) = self.next_expiration().filter(|e| e.deadline <= now) else {
                self.elapsed = self.elapsed.max(now);
                return true;
            };
            debug_assert!(exp.deadline >= self.elapsed, "the wheel never goes back");
            self.elapsed = exp.deadline;
            let lvl = &mut self.levels[exp.level];
            let entries = std::mem::take(&mut lvl.slots[exp.slot]);
            lvl.occupied &= !(1 << exp.slot);
            for (when, item) in entries {
                // Due now, or cascades to a lower level relative to the new
                // `elapsed`.
                self.place(when, item);
            }
        }
    }

    /// The earliest slot that holds anything. Lower levels always come
    /// first: a level-`l` slot never holds a deadline before the end of the
    /// current level-`(l-1)` range.
    fn next_expiration(&self) -> Option<Expiration> {
        self.levels.iter().enumerate().find_map(|(level, lvl)| {
            if lvl.occupied == 0 {
                return None;
            }
            let now_slot = ((self.elapsed / slot_range(level)) & SLOT_MASK) as u32;
            let zeros = lvl.occupied.rotate_right(now_slot).trailing_zeros();
            let slot = ((zeros + now_slot) as u64 & SLOT_MASK) as usize;
            let range = level_range(level);
            let level_start = self.elapsed & !(range - 1);
            let mut deadline = level_start + slot as u64 * slot_range(level);
            if deadline < self.elapsed || (deadline == self.elapsed && level == LEVELS - 1) {
                // Only the top level wraps: a clamped far deadline sits in a
                // slot "behind" the current one, a full rotation ahead.
                debug_assert_eq!(level, LEVELS - 1, "only the top level wraps");
                deadline += range;
            }
            Some(Expiration {
                level,
                slot,
                deadline,
            })
        })
    }

    /// Keeps only the items for which `keep` is true (for purging stale
    /// entries). O(len).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let mut len = 0;
        self.pending.retain(|k| keep(k));
        len += self.pending.len();
        for lvl in self.levels.iter_mut() {
            for (i, slot) in lvl.slots.iter_mut().enumerate() {
                slot.retain(|(_, k)| keep(k));
                if slot.is_empty() {
                    lvl.occupied &= !(1 << i);
                    // Give back the memory of a slot that once held a flood.
                    slot.shrink_to_fit();
                }
                len += slot.len();
            }
        }
        self.len = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(w: &mut Wheel<u32>, now: u64) -> Vec<u32> {
        let mut out = Vec::new();
        while !w.poll(now, 7, &mut out) {}
        out.sort_unstable();
        out
    }

    #[test]
    fn level_and_slot_math_is_exhaustively_consistent() {
        // For every elapsed in a window crossing level boundaries and every
        // delay up to two level-2 ranges, the chosen level's slot covers `when`
        // and lower levels could not have held it.
        for elapsed in (0..5000u64).step_by(37).chain([4095, 4096, 262_143]) {
            for delay in 1..(2 * level_range(2)) {
                let when = elapsed + delay;
                let level = level_for(elapsed, when);
                assert!(level < LEVELS);
                if level > 0 {
                    assert!(
                        when >> (SLOT_BITS as usize * level)
                            != elapsed >> (SLOT_BITS as usize * level)
                            || when / level_range(level - 1) != elapsed / level_range(level - 1),
                    );
                }
                // Same block at the chosen level's range.
                assert_eq!(when / level_range(level), elapsed / level_range(level));
            }
        }
    }

    #[test]
    fn fires_exactly_at_deadline_not_before() {
        for when in [1u64, 2, 63, 64, 65, 4095, 4096, 4097, 300_000] {
            let mut w = Wheel::new(0);
            w.insert(when, 1u32);
            assert!(drain(&mut w, when - 1).is_empty(), "early at {when}");
            assert_eq!(drain(&mut w, when), vec![1], "late at {when}");
            assert_eq!(w.len(), 0);
        }
    }

    #[test]
    fn past_deadlines_are_due_at_once() {
        let mut w = Wheel::new(100);
        w.insert(50, 1u32);
        w.insert(100, 2);
        assert_eq!(drain(&mut w, 100), vec![1, 2]);
    }

    #[test]
    fn far_deadlines_clamp_and_fire_at_range_end() {
        // A deadline beyond the range is clamped to the last tick the wheel
        // sees, `elapsed + MAX_TICKS - 1`, and fires exactly then: not
        // before (the old check here, `.. || w.len() == 0`, also passed
        // when it fired early), and not later.
        for start in [0u64, 5, 4096 + 7, MAX_TICKS / 2 + 3] {
            let mut w = Wheel::new(start);
            w.insert(u64::MAX, 9u32);
            let end = start + MAX_TICKS - 1;
            assert!(drain(&mut w, end - 1).is_empty(), "early from {start}");
            assert_eq!(w.len(), 1, "lost from {start}");
            assert_eq!(drain(&mut w, end), vec![9], "late from {start}");
            assert_eq!(w.len(), 0);
        }
    }

    #[test]
    fn batches_are_bounded_and_resume() {
        let mut w = Wheel::new(0);
        for i in 0..100u32 {
            w.insert(10, i);
        }
        let mut out = Vec::new();
        assert!(!w.poll(10, 30, &mut out));
        assert_eq!(out.len(), 30);
        assert!(!w.poll(10, 30, &mut out));
        assert!(!w.poll(10, 30, &mut out));
        assert!(w.poll(10, 30, &mut out));
        assert_eq!(out.len(), 100);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn retain_drops_and_recounts() {
        let mut w = Wheel::new(0);
        for i in 0..200u32 {
            w.insert(u64::from(i) * 97, i);
        }
        w.retain(|&i| i % 2 == 0);
        assert_eq!(w.len(), 100);
        let got = drain(&mut w, 200 * 97);
        assert_eq!(got, (0..200).filter(|i| i % 2 == 0).collect::<Vec<_>>());
    }

    proptest! {
        /// Against a naive model: every item comes out at the first poll whose
        /// time reaches its deadline (clamped to the wheel's range), never before.
        #[test]
        fn agrees_with_naive_model(
            start in 0u64..1_000_000,
            ops in prop::collection::vec((any::<bool>(), 0u64..400_000, 1usize..50), 1..200)
        ) {
            let mut w = Wheel::new(start);
            let mut model: Vec<(u64, u32)> = Vec::new();
            let mut now = start;
            let mut next = 0u32;
            for (is_insert, amount, batch) in ops {
                if is_insert {
                    let when = now + amount;
                    w.insert(when, next);
                    model.push((when.min(now + MAX_TICKS - 1), next));
                    next += 1;
                } else {
                    now += amount % 70_000;
                    let mut out = Vec::new();
                    while !w.poll(now, batch, &mut out) {}
                    out.sort_unstable();
                    let mut due: Vec<u32> = model.iter().filter(|(t, _)| *t <= now).map(|(_, i)| *i).collect();
                    due.sort_unstable();
                    model.retain(|(t, _)| *t > now);
                    prop_assert_eq!(out, due);
                    prop_assert_eq!(w.len(), model.len());
                }
            }
        }
    }
}
