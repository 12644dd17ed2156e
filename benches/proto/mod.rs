//! Prototypes of a cache-line session table (issue 15), measured beside
//! the engine and its peers in `benches/sessions.rs`, `benches/hit_loop.rs`
//! and `benches/memory.rs`, and checked by `tests/proto_table.rs`.
//! BENCHMARKS.md ("The cache-line table") has the figures and what moving
//! the engine onto the chosen layout (`fpline`) takes.
//!
//! Everything a validation reads sits in one 64-byte [`Line`]: a 16-byte
//! prefix of the keyed digest, the state word (alive bit, epoch), the idle
//! and absolute deadlines' inputs (`last_seen`, `abs_deadline`, engine ms),
//! the grace window's end, the handle, and the pointer to the cold part
//! (data, principal, creation times), which a validation does not follow.
//!
//! Three ways to hold the lines, with the same line, the same decode, digest,
//! clock read and checks as the engine's `validate`:
//!
//! - [`LineTable`] (`line`): an own open-addressing table per shard, a
//!   power-of-two `Vec<Line>` probed linearly from the digest's bits, under
//!   a per-shard `parking_lot::RwLock`. A hit reads the shard's lock word
//!   and the line (and the next line when the probe moves on).
//! - [`HashTableLines`] (`htable`): hashbrown's `HashTable<Line>` per shard
//!   (what `dashmap`'s raw shard API hands out: hashbrown's table under a
//!   `RwLock`). A hit reads the lock word, the control group and the line.
//! - [`FpLineTable`] (`fpline`): the own table with a fingerprint byte per
//!   line beside the lines (hashbrown's control bytes without the groups):
//!   a miss walks bytes, not lines; a hit loads its home line before the
//!   byte, so the two cache misses overlap.
//!
//! All are safe Rust: the fields a reader writes (`last_seen`) and the ones
//! a killer writes (`state`) are atomics; everything else changes only under
//! the shard's write lock.

#![allow(dead_code)] // each bench binary uses part of this module

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};
use sesame::{Clock, SecretKey, SessionToken, SystemClock};

use crate::common::{IDLE, Store};

/// Shards per table: the engine's default on these 2-core machines (16 per
/// core), so both split 1M sessions alike.
const SHARDS: usize = 32;
/// The alive bit of [`Line::state`] (the epoch would sit above it, as in
/// the engine's `Entry`).
const ALIVE: u32 = 1;

/// What a validation does not read: the session's data and principal.
pub struct Cold {
    pub created: u64,
    pub issued: AtomicU64,
    pub principal: RwLock<Option<u64>>,
    pub data: Mutex<u64>,
}

/// Occupancy of a line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
enum Kind {
    Empty = 0,
    Live = 1,
    Grace = 2,
    /// A removed line that a probe must walk past.
    Tomb = 3,
}

/// One session's hot state: one cache line.
#[repr(C, align(64))]
pub struct Line {
    tag: [u64; 2],
    kind: Kind,
    state: AtomicU32,
    last_seen: AtomicU64,
    abs_deadline: AtomicU64,
    /// End of the grace window (engine ms) of a `Grace` line.
    until: u64,
    handle: u64,
    cold: Option<Arc<Cold>>,
}

const _: () = assert!(std::mem::size_of::<Line>() == 64);

impl Line {
    fn empty() -> Self {
        Self {
            tag: [0; 2],
            kind: Kind::Empty,
            state: AtomicU32::new(0),
            last_seen: AtomicU64::new(0),
            abs_deadline: AtomicU64::new(0),
            until: 0,
            handle: 0,
            cold: None,
        }
    }

    /// Constant time in the tag's content: both words XORed and ORed, one
    /// barrier.
    #[inline]
    fn matches(&self, tag: &[u64; 2]) -> bool {
        let diff = (self.tag[0] ^ tag[0]) | (self.tag[1] ^ tag[1]);
        std::hint::black_box(diff) == 0
    }

    /// The handle if this line accepts a lookup at `now`; touches it.
    #[inline]
    fn resolve(&self, now: u64, idle_ms: u64) -> Option<u64> {
        let alive = self.state.load(Ordering::Acquire) & ALIVE != 0;
        let last = self.last_seen.load(Ordering::Relaxed);
        let deadline = last
            .saturating_add(idle_ms)
            .min(self.abs_deadline.load(Ordering::Relaxed));
        let ok = alive && now < deadline && (self.kind == Kind::Live || now < self.until);
        if !ok {
            return None;
        }
        if last < now {
            self.last_seen.store(now, Ordering::Relaxed);
        }
        Some(self.handle)
    }
}

/// The digest's prefix as two words, and the shard and probe bits.
#[inline]
fn tag_of(secret: &[u8; 32], token: &str) -> Option<[u64; 2]> {
    let mut raw = [0u8; 32];
    match URL_SAFE_NO_PAD.decode_slice(token.as_bytes(), &mut raw) {
        Ok(32) if token.len() == 43 => Some(tag_of_raw(secret, &raw)),
        _ => None,
    }
}

#[inline]
fn tag_of_raw(secret: &[u8; 32], raw: &[u8; 32]) -> [u64; 2] {
    let d = blake3::keyed_hash(secret, raw);
    let b = d.as_bytes();
    let w = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_le_bytes(x)
    };
    [w(0), w(1)]
}

#[inline]
fn shard_index(tag: &[u64; 2]) -> usize {
    (tag[1] as usize) & (SHARDS - 1)
}

// ------------------------------------------------------------ own table

/// One shard: a power-of-two array of lines, linear probing, tombstones.
pub struct LineShard {
    lines: Vec<Line>,
    /// Live and grace lines.
    len: usize,
    /// Lines not empty (tombstones included): bounds probe lengths.
    used: usize,
}

impl LineShard {
    fn with_capacity(n: usize) -> Self {
        // At most 7/8 of the lines used.
        let cap = (n * 8 / 7 + 1).next_power_of_two().max(16);
        Self {
            lines: (0..cap).map(|_| Line::empty()).collect(),
            len: 0,
            used: 0,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.lines.len() - 1
    }

    /// The index of the line holding `tag`, if any.
    #[inline]
    fn find(&self, tag: &[u64; 2]) -> Option<usize> {
        let mask = self.mask();
        let mut i = (tag[0] as usize) & mask;
        loop {
            let line = &self.lines[i];
            match line.kind {
                Kind::Empty => return None,
                Kind::Tomb => {}
                _ => {
                    if line.matches(tag) {
                        return Some(i);
                    }
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts a new line; false if the tag is already present.
    fn insert(&mut self, line: Line) -> bool {
        if self.find(&line.tag).is_some() {
            return false;
        }
        if (self.used + 1) * 8 > self.lines.len() * 7 {
            self.rehash(if (self.len + 1) * 2 > self.lines.len() {
                self.lines.len() * 2
            } else {
                self.lines.len()
            });
        }
        let mask = self.mask();
        let mut i = (line.tag[0] as usize) & mask;
        loop {
            match self.lines[i].kind {
                Kind::Empty => {
                    self.used += 1;
                    break;
                }
                Kind::Tomb => break,
                _ => i = (i + 1) & mask,
            }
        }
        self.lines[i] = line;
        self.len += 1;
        true
    }

    fn remove(&mut self, tag: &[u64; 2]) -> Option<Line> {
        let i = self.find(tag)?;
        let mut out = std::mem::replace(&mut self.lines[i], Line::empty());
        self.lines[i].kind = Kind::Tomb;
        self.len -= 1;
        out.kind = Kind::Live;
        Some(out)
    }

    fn rehash(&mut self, cap: usize) {
        let old = std::mem::replace(&mut self.lines, (0..cap).map(|_| Line::empty()).collect());
        self.len = 0;
        self.used = 0;
        for line in old {
            if matches!(line.kind, Kind::Live | Kind::Grace) {
                let mask = self.mask();
                let mut i = (line.tag[0] as usize) & mask;
                while self.lines[i].kind != Kind::Empty {
                    i = (i + 1) & mask;
                }
                self.lines[i] = line;
                self.len += 1;
                self.used += 1;
            }
        }
    }
}

/// The own open-addressing table: the `line` store of the benches.
pub struct LineTable {
    secret: [u8; 32],
    clock: Arc<dyn Clock>,
    idle_ms: u64,
    abs_ms: u64,
    shards: Box<[CachePadded<RwLock<LineShard>>]>,
}

impl LineTable {
    fn new_line(&self, tag: [u64; 2], cold: Arc<Cold>, handle: u64, now: u64) -> Line {
        Line {
            tag,
            kind: Kind::Live,
            state: AtomicU32::new(ALIVE),
            last_seen: AtomicU64::new(now),
            abs_deadline: AtomicU64::new(now + self.abs_ms),
            until: 0,
            handle,
            cold: Some(cold),
        }
    }

    fn insert_new(&self, mut line: Line) -> String {
        loop {
            let t = SessionToken::generate();
            let tag = tag_of_raw(&self.secret, t.as_bytes());
            line.tag = tag;
            let mut shard = self.shards[shard_index(&tag)].write();
            if shard.find(&tag).is_none() {
                shard.insert(line);
                return t.as_str().to_owned();
            }
        }
    }

    fn cold_of(&self, token: &str) -> Option<Arc<Cold>> {
        let tag = tag_of(&self.secret, token)?;
        let now = self.clock.now_millis();
        let shard = self.shards[shard_index(&tag)].read();
        let line = &shard.lines[shard.find(&tag)?];
        line.resolve(now, self.idle_ms)?;
        line.cold.clone()
    }

    fn take(&self, token: &str) -> Option<Line> {
        let tag = tag_of(&self.secret, token)?;
        let now = self.clock.now_millis();
        let mut shard = self.shards[shard_index(&tag)].write();
        let i = shard.find(&tag)?;
        shard.lines[i].resolve(now, self.idle_ms)?;
        shard.remove(&tag)
    }

    /// Lines in use and lines allocated, over all shards (load factor).
    pub fn occupancy(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(a, b), s| {
            let s = s.read();
            (a + s.len, b + s.lines.len())
        })
    }
}

impl Store for LineTable {
    const NAME: &'static str = "line";
    fn with_capacity(n: usize) -> Self {
        Self {
            secret: *SecretKey::generate().as_bytes(),
            clock: Arc::new(SystemClock::new()),
            idle_ms: IDLE.as_millis() as u64,
            abs_ms: 12 * 3600 * 1000,
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(RwLock::new(LineShard::with_capacity(n / SHARDS))))
                .collect(),
        }
    }
    fn create(&self) -> String {
        let now = self.clock.now_millis();
        let cold = Arc::new(Cold {
            created: now,
            issued: AtomicU64::new(now),
            principal: RwLock::new(None),
            data: Mutex::new(0),
        });
        let line = self.new_line([0; 2], cold, rand::random(), now);
        self.insert_new(line)
    }
    #[inline]
    fn validate(&self, token: &str) -> Option<u64> {
        let tag = tag_of(&self.secret, token)?;
        let now = self.clock.now_millis();
        let shard = self.shards[shard_index(&tag)].read();
        let i = shard.find(&tag)?;
        shard.lines[i].resolve(now, self.idle_ms)
    }
    fn update(&self, token: &str) -> bool {
        self.cold_of(token).map(|c| *c.data.lock() += 1).is_some()
    }
    fn rotate(&self, token: &str) -> Option<String> {
        let line = self.take(token)?;
        Some(self.insert_new(line))
    }
    fn login(&self, token: &str, user: u64) -> Option<String> {
        let line = self.take(token)?;
        *line.cold.as_ref()?.principal.write() = Some(user);
        Some(self.insert_new(line))
    }
    fn logout(&self, token: &str) -> bool {
        self.take(token).is_some()
    }
}

// ------------------------------------------------------------ own table + fingerprints

/// Fingerprint byte of an empty line.
const FP_EMPTY: u8 = 0;
/// Fingerprint byte of a removed line (probes walk past it).
const FP_TOMB: u8 = 1;

/// 2..=255 from the tag's top bits (bits the probe start does not use).
#[inline]
fn fp_of(tag: &[u64; 2]) -> u8 {
    let b = (tag[0] >> 56) as u8;
    if b < 2 { b + 2 } else { b }
}

/// [`LineShard`] with a byte per line beside the lines, as hashbrown's
/// control bytes: a miss walks the bytes (2 MB at 1M sessions, mostly in
/// cache) instead of the lines; a hit loads its home line before it reads
/// the byte, so the two misses overlap.
pub struct FpShard {
    fp: Vec<u8>,
    lines: Vec<Line>,
    len: usize,
    used: usize,
}

impl FpShard {
    fn with_capacity(n: usize) -> Self {
        let cap = (n * 8 / 7 + 1).next_power_of_two().max(16);
        Self {
            fp: vec![FP_EMPTY; cap],
            lines: (0..cap).map(|_| Line::empty()).collect(),
            len: 0,
            used: 0,
        }
    }

    #[inline]
    fn find(&self, tag: &[u64; 2]) -> Option<usize> {
        let mask = self.fp.len() - 1;
        let mut i = (tag[0] as usize) & mask;
        // The home line's first word, loaded now (the load cannot be sunk
        // into the branch below): its cache miss overlaps the byte's.
        let home = std::hint::black_box(self.lines[i].tag[0]);
        let want = fp_of(tag);
        let start = i;
        loop {
            match self.fp[i] {
                FP_EMPTY => return None,
                b if b == want => {
                    let first = if i == start {
                        home
                    } else {
                        self.lines[i].tag[0]
                    };
                    let diff = (first ^ tag[0]) | (self.lines[i].tag[1] ^ tag[1]);
                    if std::hint::black_box(diff) == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
            i = (i + 1) & mask;
        }
    }

    fn insert(&mut self, line: Line) -> bool {
        if self.find(&line.tag).is_some() {
            return false;
        }
        if (self.used + 1) * 8 > self.fp.len() * 7 {
            let cap = if (self.len + 1) * 2 > self.fp.len() {
                self.fp.len() * 2
            } else {
                self.fp.len()
            };
            let old = std::mem::replace(&mut self.lines, (0..cap).map(|_| Line::empty()).collect());
            let old_fp = std::mem::replace(&mut self.fp, vec![FP_EMPTY; cap]);
            self.len = 0;
            self.used = 0;
            for (l, f) in old.into_iter().zip(old_fp) {
                if f > FP_TOMB {
                    self.place(l);
                }
            }
        }
        self.place(line);
        true
    }

    fn place(&mut self, line: Line) {
        let mask = self.fp.len() - 1;
        let mut i = (line.tag[0] as usize) & mask;
        while self.fp[i] > FP_TOMB {
            i = (i + 1) & mask;
        }
        if self.fp[i] == FP_EMPTY {
            self.used += 1;
        }
        self.fp[i] = fp_of(&line.tag);
        self.lines[i] = line;
        self.len += 1;
    }

    fn remove(&mut self, tag: &[u64; 2]) -> Option<Line> {
        let i = self.find(tag)?;
        self.fp[i] = FP_TOMB;
        self.len -= 1;
        Some(std::mem::replace(&mut self.lines[i], Line::empty()))
    }
}

/// Lines examined under one hold of a shard's write lock while sweeping
/// (the engine's reaper holds its lock for 32 keys).
const SWEEP_CHUNK: usize = 1024;

impl FpLineTable {
    /// Expires every line past its deadline at `now` (engine ms): a linear
    /// sweep of each shard's lines in chunks of [`SWEEP_CHUNK`] under the
    /// write lock; the cold parts are freed after the lock is released.
    /// Returns how many lines expired. What a reaper does when the hot state
    /// is in the table: no wheel lookup per key, no pointer chase.
    pub fn sweep(&self, now: u64) -> usize {
        let mut expired = 0;
        let mut cold: Vec<Option<Arc<Cold>>> = Vec::with_capacity(SWEEP_CHUNK);
        for shard in self.shards.iter() {
            let mut at = 0;
            loop {
                {
                    let mut g = shard.write();
                    let sh = &mut *g;
                    let end = (at + SWEEP_CHUNK).min(sh.fp.len());
                    for i in at..end {
                        if sh.fp[i] <= FP_TOMB {
                            continue;
                        }
                        let l = &sh.lines[i];
                        let deadline = l
                            .last_seen
                            .load(Ordering::Relaxed)
                            .saturating_add(self.idle_ms)
                            .min(l.abs_deadline.load(Ordering::Relaxed));
                        if now >= deadline {
                            sh.fp[i] = FP_TOMB;
                            sh.len -= 1;
                            cold.push(sh.lines[i].cold.take());
                            expired += 1;
                        }
                    }
                    at = end;
                    if at == sh.fp.len() {
                        cold.clear();
                        break;
                    }
                }
                cold.clear();
            }
        }
        expired
    }

    /// Now on the table's clock (engine ms).
    pub fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    /// The idle timeout in ms.
    pub fn idle_ms(&self) -> u64 {
        self.idle_ms
    }
}

/// The own table with fingerprint bytes: the `fpline` store.
pub struct FpLineTable {
    secret: [u8; 32],
    clock: Arc<dyn Clock>,
    idle_ms: u64,
    abs_ms: u64,
    shards: Box<[CachePadded<RwLock<FpShard>>]>,
}

impl FpLineTable {
    fn insert_new(&self, mut line: Line) -> String {
        loop {
            let t = SessionToken::generate();
            let tag = tag_of_raw(&self.secret, t.as_bytes());
            line.tag = tag;
            let mut shard = self.shards[shard_index(&tag)].write();
            if shard.find(&tag).is_none() {
                shard.insert(line);
                return t.as_str().to_owned();
            }
        }
    }

    fn take(&self, token: &str) -> Option<Line> {
        let tag = tag_of(&self.secret, token)?;
        let now = self.clock.now_millis();
        let mut shard = self.shards[shard_index(&tag)].write();
        let i = shard.find(&tag)?;
        shard.lines[i].resolve(now, self.idle_ms)?;
        shard.remove(&tag)
    }
}

impl Store for FpLineTable {
    const NAME: &'static str = "fpline";
    fn with_capacity(n: usize) -> Self {
        Self {
            secret: *SecretKey::generate().as_bytes(),
            clock: Arc::new(SystemClock::new()),
            idle_ms: IDLE.as_millis() as u64,
            abs_ms: 12 * 3600 * 1000,
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(RwLock::new(FpShard::with_capacity(n / SHARDS))))
                .collect(),
        }
    }
    fn create(&self) -> String {
        let now = self.clock.now_millis();
        let cold = Arc::new(Cold {
            created: now,
            issued: AtomicU64::new(now),
            principal: RwLock::new(None),
            data: Mutex::new(0),
        });
        self.insert_new(Line {
            tag: [0; 2],
            kind: Kind::Live,
            state: AtomicU32::new(ALIVE),
            last_seen: AtomicU64::new(now),
            abs_deadline: AtomicU64::new(now + self.abs_ms),
            until: 0,
            handle: rand::random(),
            cold: Some(cold),
        })
    }
    #[inline]
    fn validate(&self, token: &str) -> Option<u64> {
        let tag = tag_of(&self.secret, token)?;
        let now = self.clock.now_millis();
        let shard = self.shards[shard_index(&tag)].read();
        let i = shard.find(&tag)?;
        shard.lines[i].resolve(now, self.idle_ms)
    }
    fn update(&self, token: &str) -> bool {
        let Some(tag) = tag_of(&self.secret, token) else {
            return false;
        };
        let now = self.clock.now_millis();
        let cold = {
            let shard = self.shards[shard_index(&tag)].read();
            let Some(i) = shard.find(&tag) else {
                return false;
            };
            if shard.lines[i].resolve(now, self.idle_ms).is_none() {
                return false;
            }
            shard.lines[i].cold.clone()
        };
        cold.map(|c| *c.data.lock() += 1).is_some()
    }
    fn rotate(&self, token: &str) -> Option<String> {
        let line = self.take(token)?;
        Some(self.insert_new(line))
    }
    fn login(&self, token: &str, user: u64) -> Option<String> {
        let line = self.take(token)?;
        *line.cold.as_ref()?.principal.write() = Some(user);
        Some(self.insert_new(line))
    }
    fn logout(&self, token: &str) -> bool {
        self.take(token).is_some()
    }
}

// ------------------------------------------------------------ hashbrown

/// hashbrown's `HashTable<Line>` per shard: the `htable` store.
pub struct HashTableLines {
    secret: [u8; 32],
    clock: Arc<dyn Clock>,
    idle_ms: u64,
    abs_ms: u64,
    shards: Box<[CachePadded<RwLock<hashbrown::HashTable<Line>>>]>,
}

#[inline]
fn hash_of(l: &Line) -> u64 {
    l.tag[0]
}

impl HashTableLines {
    fn insert_new(&self, mut line: Line) -> String {
        loop {
            let t = SessionToken::generate();
            let tag = tag_of_raw(&self.secret, t.as_bytes());
            line.tag = tag;
            let mut shard = self.shards[shard_index(&tag)].write();
            if shard.find(tag[0], |l| l.matches(&tag)).is_none() {
                shard.insert_unique(tag[0], line, hash_of);
                return t.as_str().to_owned();
            }
        }
    }

    fn take(&self, token: &str) -> Option<Line> {
        let tag = tag_of(&self.secret, token)?;
        let now = self.clock.now_millis();
        let mut shard = self.shards[shard_index(&tag)].write();
        let e = shard.find_entry(tag[0], |l| l.matches(&tag)).ok()?;
        e.get().resolve(now, self.idle_ms)?;
        Some(e.remove().0)
    }
}

impl Store for HashTableLines {
    const NAME: &'static str = "htable";
    fn with_capacity(n: usize) -> Self {
        Self {
            secret: *SecretKey::generate().as_bytes(),
            clock: Arc::new(SystemClock::new()),
            idle_ms: IDLE.as_millis() as u64,
            abs_ms: 12 * 3600 * 1000,
            shards: (0..SHARDS)
                .map(|_| {
                    CachePadded::new(RwLock::new(hashbrown::HashTable::with_capacity(n / SHARDS)))
                })
                .collect(),
        }
    }
    fn create(&self) -> String {
        let now = self.clock.now_millis();
        let cold = Arc::new(Cold {
            created: now,
            issued: AtomicU64::new(now),
            principal: RwLock::new(None),
            data: Mutex::new(0),
        });
        self.insert_new(Line {
            tag: [0; 2],
            kind: Kind::Live,
            state: AtomicU32::new(ALIVE),
            last_seen: AtomicU64::new(now),
            abs_deadline: AtomicU64::new(now + self.abs_ms),
            until: 0,
            handle: rand::random(),
            cold: Some(cold),
        })
    }
    #[inline]
    fn validate(&self, token: &str) -> Option<u64> {
        let tag = tag_of(&self.secret, token)?;
        let now = self.clock.now_millis();
        let shard = self.shards[shard_index(&tag)].read();
        shard
            .find(tag[0], |l| l.matches(&tag))?
            .resolve(now, self.idle_ms)
    }
    fn update(&self, token: &str) -> bool {
        let Some(tag) = tag_of(&self.secret, token) else {
            return false;
        };
        let now = self.clock.now_millis();
        let cold = {
            let shard = self.shards[shard_index(&tag)].read();
            let Some(l) = shard.find(tag[0], |l| l.matches(&tag)) else {
                return false;
            };
            if l.resolve(now, self.idle_ms).is_none() {
                return false;
            }
            l.cold.clone()
        };
        cold.map(|c| *c.data.lock() += 1).is_some()
    }
    fn rotate(&self, token: &str) -> Option<String> {
        let line = self.take(token)?;
        Some(self.insert_new(line))
    }
    fn login(&self, token: &str, user: u64) -> Option<String> {
        let line = self.take(token)?;
        *line.cold.as_ref()?.principal.write() = Some(user);
        Some(self.insert_new(line))
    }
    fn logout(&self, token: &str) -> bool {
        self.take(token).is_some()
    }
}

/// Checks the own table's probing, tombstones and growth against a
/// `HashMap` (the bench binaries run it before measuring `line`): a table
/// that lost or invented a line would make its figures meaningless.
pub fn self_check() {
    use std::collections::HashMap;
    let mut shard = LineShard::with_capacity(8);
    let mut fp = FpShard::with_capacity(8);
    let mut model: HashMap<[u64; 2], u64> = HashMap::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        // xorshift: deterministic tags, some sharing probe starts.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..20_000u64 {
        let tag = [next() & 0xff, next() % 64];
        if next() % 3 == 0 {
            let gone = model.remove(&tag).is_some();
            assert_eq!(shard.remove(&tag).is_some(), gone);
            assert_eq!(fp.remove(&tag).is_some(), gone);
        } else {
            let mut line = Line::empty();
            line.tag = tag;
            line.kind = Kind::Live;
            line.handle = round;
            let fresh = !model.contains_key(&tag);
            let mut copy = Line::empty();
            copy.tag = tag;
            copy.kind = Kind::Live;
            copy.handle = round;
            assert_eq!(fp.insert(copy), fresh, "insert reports a duplicate");
            assert_eq!(shard.insert(line), fresh, "insert reports a duplicate");
            model.entry(tag).or_insert(round);
        }
        assert_eq!(shard.len, model.len());
        assert_eq!(fp.len, model.len());
    }
    for (tag, handle) in &model {
        let i = shard.find(tag).expect("every model tag is found");
        assert_eq!(shard.lines[i].handle, *handle);
        let i = fp.find(tag).expect("every model tag is found");
        assert_eq!(fp.lines[i].handle, *handle);
    }
    let used = shard.lines.iter().filter(|l| l.kind != Kind::Empty).count();
    assert_eq!(used, shard.used);
    assert!(
        shard.used * 8 <= shard.lines.len() * 7,
        "probes end at an empty line"
    );
}
