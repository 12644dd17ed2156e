//! `Sessions<T, P>`: the engine.
//!
//! This file holds the type, its construction and the lookups (the hot
//! path); `create`, `rotate` (and login), `revoke` (and logout), `reap` and,
//! with the `snapshot` feature, `restore` hold the rest, one concern each.
//!
//! # Locking
//!
//! Locks, in the only order they may nest:
//! shard maps (two at most, lower index first) → an entry's principal lock
//! → a principal-index shard. Wheel and ring locks are leaves (they may read
//! a map when purging stale keys, and nothing takes them while holding a
//! map). The data mutex of an entry is taken with nothing else held, and is
//! the only lock user code runs under. Finding a session's live line from
//! its entry ([`Sessions::locate`], [`Sessions::kill_entry`]) takes a map
//! lock and is only done with no lock held.
//!
//! See `shard.rs` for the table and its one rule: a session is alive
//! exactly while its live line is in the table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use crossbeam_channel::Receiver;
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::clock::{Clock, EngineClock};
use crate::config::{Builder, Config};
use crate::error::{Error, ErrorKind};
use crate::events::{Bus, Event};
use crate::key::{SecretKey, Tag};
use crate::reaper::Reaper;
use crate::shard::{Entry, Line, Shard, TICK_MS};
use crate::stats::{Counters, Stats};
use crate::token::TokenInput;
use crate::users::Users;
use crate::{Handle, Principal, SessionInfo};

mod create;
mod device;
mod external;
mod reap;
pub(crate) mod reaper;
#[cfg(feature = "snapshot")]
mod restore;
mod revoke;
mod rotate;
pub(crate) mod shard;
pub(crate) mod users;
pub(crate) mod wheel;
pub use external::{MAX_ID_LEN, MIN_ID_LEN};
#[cfg(feature = "snapshot")]
pub(crate) use restore::Restored;

// Restored sessions need engine ms before the engine started; the offset
// must not shift tick boundaries.
const _: () = assert!(crate::clock::ENGINE_EPOCH_MS % TICK_MS == 0);

/// Keys handed out by one wheel poll; bounds the work between two lock
/// acquisitions of the reaper.
const REAP_BATCH: usize = 256;
/// Keys examined under one hold of a shard's write lock while reaping:
/// bounds how long a validation on that shard can wait (a few µs).
const REAP_LOCK_CHUNK: usize = 32;
/// Eviction candidates examined per attempt (sampled from the front of the
/// shard's ring of anonymous sessions).
const EVICT_SAMPLE: usize = 8;
/// How often (in pushes) a ring or wheel checks whether stale keys should be purged.
const PURGE_CHECK_EVERY: usize = 1024;

/// An in-process session store: sessions with data `T`, logged in as
/// principals `P`.
///
/// Cloning is cheap (an `Arc`); clones share one store. See the
/// [crate docs](crate) for the policies (timeouts, capacity, rotation).
pub struct Sessions<T, P = String> {
    /// The background reaper, shared by the user's clones (not by the reaper
    /// thread's own temporary handle). Declared first so it drops first: the
    /// last clone stops and joins the thread, then frees the engine, so the
    /// engine is gone when that `drop` returns.
    reaper: Option<Arc<Reaper>>,
    inner: Arc<Inner<T, P>>,
}

impl<T, P> Clone for Sessions<T, P> {
    fn clone(&self) -> Self {
        Self {
            reaper: self.reaper.clone(),
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T, P> std::fmt::Debug for Sessions<T, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("live", &self.inner.live.load(Ordering::Relaxed))
            .field("max_sessions", &self.inner.config.max_sessions)
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner<T, P> {
    pub(crate) config: Config,
    pub(crate) clock: EngineClock,
    wall_origin: SystemTime,
    pub(crate) secret: SecretKey,
    shards: Box<[CachePadded<Shard<T, P>>]>,
    users: Users<T, P>,
    live: CachePadded<AtomicUsize>,
    anonymous: CachePadded<AtomicUsize>,
    rejected_malformed: CachePadded<AtomicU64>,
    counters: Counters,
    bus: Bus<P>,
    evict_cursor: AtomicUsize,
    /// Told synchronously of every session that ends before its deadline
    /// (the snapshot's revocation journal). Set at most once.
    end_hook: OnceLock<Box<dyn EndHook>>,
    /// The wheel tick the last `run_pending` covered.
    reaped_tick: AtomicU64,
    /// Each session's one grace alias (the key its last plain rotation
    /// replaced), by handle, for the sessions that have one: kept beside the
    /// entries rather than in them, so a session without an alias pays no
    /// memory for the feature. Leaf locks. Empty when `grace_ms` is zero.
    aliases: Box<[AliasShard]>,
    /// Each session's recorded device, by handle, for the sessions that
    /// have one (see `device.rs`): allocated by the first
    /// [`Sessions::set_device`], so an engine that records none pays one
    /// pointer for the feature and each session pays nothing. Leaf locks.
    devices: OnceLock<Box<[DeviceShard]>>,
}

/// One shard of the grace-alias table: handle → the alias's tag.
type AliasShard = CachePadded<Mutex<HashMap<Handle, Tag>>>;

/// One shard of the device table: handle → the session's device.
type DeviceShard = CachePadded<Mutex<HashMap<Handle, crate::Device>>>;

/// A synchronous observer of sessions that end before their deadlines
/// (logout, revocation, eviction): called once per session, after it is
/// dead and before the call that ended it returns, with no lock held.
/// Expiry is not reported: a restored deadline is never extended, so an
/// expired session cannot come back.
pub(crate) trait EndHook: Send + Sync + 'static {
    /// `handle` ended; `logged_in` says whether a principal was bound.
    fn ended(&self, handle: Handle, logged_in: bool);
}

impl<T, P> Sessions<T, P>
where
    T: Send + 'static,
    P: Principal,
{
    /// A builder with the safe defaults (see [`Builder`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let sessions = sesame::Sessions::<u32>::builder()
    ///     .idle_timeout(Duration::from_secs(15 * 60))
    ///     .max_sessions(10_000)
    ///     .build()?;
    /// assert!(sessions.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> Builder<T, P> {
        Builder::default()
    }

    /// A store with every default.
    ///
    /// # Panics
    ///
    /// Never: the defaults are valid.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<u32>::new();
    /// let (token, _) = sessions.create(7)?;
    /// assert_eq!(sessions.get(&token), Some(7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Self {
        match Self::builder().build() {
            Ok(s) => s,
            Err(e) => unreachable!("defaults are valid: {e}"),
        }
    }

    pub(crate) fn from_parts(config: Config, clock: Arc<dyn Clock>, secret: SecretKey) -> Self {
        let clock = EngineClock::new(clock);
        let now = clock.now();
        // The wall time of engine ms zero (`now` counts from an epoch offset,
        // see `ENGINE_EPOCH_MS`, so this lies decades back).
        let wall_origin = SystemTime::now()
            .checked_sub(Duration::from_millis(now))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let shards = (0..config.shards)
            .map(|_| CachePadded::new(Shard::new(now / TICK_MS)))
            .collect();
        let users = Users::new(config.shards);
        let interval = config.reaper_interval;
        let alias_shards = if config.grace_ms > 0 {
            config.shards
        } else {
            0
        };
        let inner = Arc::new(Inner {
            config,
            clock,
            wall_origin,
            secret,
            shards,
            users,
            live: CachePadded::new(AtomicUsize::new(0)),
            anonymous: CachePadded::new(AtomicUsize::new(0)),
            rejected_malformed: CachePadded::new(AtomicU64::new(0)),
            counters: Counters::default(),
            bus: Bus::new(),
            evict_cursor: AtomicUsize::new(0),
            end_hook: OnceLock::new(),
            reaped_tick: AtomicU64::new(0),
            aliases: (0..alias_shards)
                .map(|_| CachePadded::new(Mutex::new(HashMap::new())))
                .collect(),
            devices: OnceLock::new(),
        });
        let reaper = interval.map(|every| {
            let weak = Arc::downgrade(&inner);
            Arc::new(Reaper::spawn(every, move || match weak.upgrade() {
                Some(inner) => {
                    Sessions {
                        reaper: None,
                        inner,
                    }
                    .run_pending();
                    true
                }
                None => false,
            }))
        });
        Self { reaper, inner }
    }

    fn shard_of(&self, tag: &Tag) -> usize {
        (tag.shard_bits() as usize) & (self.inner.shards.len() - 1)
    }

    fn shard(&self, tag: &Tag) -> &Shard<T, P> {
        &self.inner.shards[self.shard_of(tag)]
    }

    fn idle_ms(&self) -> u64 {
        self.inner.config.idle_ms
    }

    fn wall(&self, ms: u64) -> SystemTime {
        self.inner.wall_origin + Duration::from_millis(ms)
    }

    /// Installs the observer of sessions that end early. False if one is
    /// already installed (it stays).
    #[cfg_attr(not(feature = "snapshot"), allow(dead_code))]
    pub(crate) fn set_end_hook(&self, hook: Box<dyn EndHook>) -> bool {
        self.inner.end_hook.set(hook).is_ok()
    }

    /// Finds the live session for a token and touches it. The hot path.
    ///
    /// `f` sees the session's live line (for a grace alias, the live line it
    /// stands for).
    ///
    /// **Locking:** one shard read lock (a grace alias: then the live line's
    /// shard's). Allocates nothing.
    #[inline]
    fn find<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        f: impl FnOnce(&Line<T, P>) -> R,
    ) -> Option<R> {
        let inner = &*self.inner;
        let Some(bytes) = token.token_bytes() else {
            inner.rejected_malformed.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let tag = inner.secret.digest(&bytes).tag();
        let shard = self.shard(&tag);
        // Every well-formed lookup reads the clock (a coarse clock: a few
        // ns), so the engine's time moves with each request, hit or miss,
        // and a clock that later jumps back finds that time already kept.
        let now = inner.clock.now();
        let idle = inner.config.idle_ms;
        let map = shard.map.read();
        let alias = match map.get(&tag) {
            Some(line) if line.is_live_line() => {
                if line.live_at(now, idle) {
                    line.touch(now);
                    return Some(f(line));
                }
                None
            }
            Some(line) if now < line.until => Some(Arc::clone(&line.entry)),
            _ => None,
        };
        drop(map);
        // A grace alias (rare: the window after a rotation): the session's
        // state is on its live line, in whatever shard its tag picks.
        let found = alias.and_then(|entry| {
            self.locate(&entry, |line| {
                line.live_at(now, idle).then(|| {
                    line.touch(now);
                    f(line)
                })
            })
            .flatten()
        });
        if found.is_none() {
            shard.rejected.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Calls `attempt` with `entry`'s tag until it finds the live line
    /// there (`Some`) or the session has ended (`None`): a rotation may move
    /// the line between the tag's read and the attempt's lock, and then the
    /// tag is read again (it holds both shards' write locks while it writes
    /// the tag, so the next read finds the new one).
    fn chase<R>(
        &self,
        entry: &Arc<Entry<T, P>>,
        mut attempt: impl FnMut(Tag) -> Option<R>,
    ) -> Option<R> {
        let mut spins = 0u32;
        loop {
            if !entry.is_alive() {
                return None;
            }
            if let Some(found) = attempt(entry.tag()) {
                return Some(found);
            }
            backoff(&mut spins);
        }
    }

    /// Runs `f` on `entry`'s live line under its shard's read lock; `None`
    /// when the session has ended. Call with no lock held.
    pub(crate) fn locate<R>(
        &self,
        entry: &Arc<Entry<T, P>>,
        f: impl FnOnce(&Line<T, P>) -> R,
    ) -> Option<R> {
        let mut f = Some(f);
        self.chase(entry, |tag| {
            let map = self.shard(&tag).map.read();
            let line = map.get(&tag).filter(|l| l.is_live_line_of(entry))?;
            f.take().map(|f| f(line))
        })
    }

    /// Ends `entry`'s session if `decide` says so: under the write lock of
    /// the shard holding its live line, `decide` sees the line and returns
    /// how the session ends (or `None`: it stays); then the alive bit is
    /// cleared and the line removed in the same critical section. `None`
    /// when the session had already ended or `decide` declined. The caller
    /// then runs the bookkeeping ([`Sessions::retire`]). Call with no lock
    /// held; `decide` may take the entry's principal lock.
    pub(crate) fn kill_entry<R>(
        &self,
        entry: &Arc<Entry<T, P>>,
        decide: impl FnOnce(&Line<T, P>) -> Option<R>,
    ) -> Option<R> {
        let mut decide = Some(decide);
        self.chase(entry, |tag| {
            let mut map = self.shard(&tag).map.write();
            let i = map.find(&tag)?;
            let line = map.at(i).filter(|l| l.is_live_line_of(entry))?;
            // Found: from here on the answer is final (`Some`).
            let how = decide.take().and_then(|d| d(line));
            if how.is_some() {
                let killed = entry.try_kill();
                debug_assert!(killed, "a live line's entry is alive");
                // The entry outlives the lock: the caller holds it.
                map.remove_at(i);
            }
            Some(how)
        })
        .flatten()
    }

    /// The live session and its epoch at lookup (see `Entry::epoch`).
    fn find_entry(&self, token: &(impl TokenInput + ?Sized)) -> Option<(Arc<Entry<T, P>>, u32)> {
        self.find(token, |l| (Arc::clone(&l.entry), l.entry.epoch()))
    }

    /// Validates a token and records the use: the session's handle if it is
    /// live, `None` if the token is malformed, unknown, expired or revoked
    /// (the reasons are not told apart).
    ///
    /// **Locking:** one shard read lock. Allocates nothing, does no wheel work.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let (token, handle) = sessions.create(())?;
    /// assert_eq!(sessions.validate(&token), Some(handle));
    /// assert_eq!(sessions.validate(token.as_str()), Some(handle)); // the cookie's text
    /// assert_eq!(sessions.validate("not a token"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn validate(&self, token: &(impl TokenInput + ?Sized)) -> Option<Handle> {
        self.find(token, |l| l.handle)
    }

    /// Whether `token` is its session's current token: live, and not an
    /// alias kept for a rotation's grace window. Records no use (no touch).
    /// An HTTP layer asks this before writing a token back to the client, so
    /// it never re-sends a token that is about to stop working.
    ///
    /// **Locking:** one shard read lock. Allocates nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// let sessions = sesame::Sessions::<()>::builder()
    ///     .rotation_grace(Duration::from_secs(5))
    ///     .build()?;
    /// let (old, _) = sessions.create(())?;
    /// let new = sessions.rotate(&old)?;
    /// assert!(sessions.validate(&old).is_some()); // in its grace window
    /// assert!(!sessions.is_current(&old));
    /// assert!(sessions.is_current(&new));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_current(&self, token: &(impl TokenInput + ?Sized)) -> bool {
        let inner = &*self.inner;
        let Some(bytes) = token.token_bytes() else {
            return false;
        };
        let tag = inner.secret.digest(&bytes).tag();
        let now = inner.clock.now();
        let map = self.shard(&tag).map.read();
        map.get(&tag)
            .is_some_and(|l| l.is_live_line() && l.live_at(now, inner.config.idle_ms))
    }

    /// Validates a token and returns the session's metadata.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let (token, handle) = sessions.create(())?;
    /// let token = sessions.login(&token, "alice".to_string())?;
    /// let info = sessions.info(&token).unwrap();
    /// assert_eq!(info.handle, handle);
    /// assert_eq!(info.principal.as_deref(), Some("alice"));
    /// assert!(info.expires <= info.absolute_expires);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn info(&self, token: &(impl TokenInput + ?Sized)) -> Option<SessionInfo<P>> {
        self.find(token, |l| self.info_of(l))
    }

    /// A live line's metadata. Takes the entry's principal lock (inside a
    /// map lock: the engine's order).
    fn info_of(&self, l: &Line<T, P>) -> SessionInfo<P> {
        let e = &l.entry;
        SessionInfo {
            handle: l.handle,
            principal: e.principal.read().clone(),
            created: self.wall(e.created),
            last_seen: self.wall(l.last_seen()),
            token_issued: self.wall(e.issued.load(Ordering::Relaxed)),
            expires: self.wall(l.deadline(self.idle_ms())),
            absolute_expires: self.wall(l.abs_deadline),
            // Filled in by `sessions_of`: a lookup on the request path pays
            // nothing for device lists.
            device: None,
        }
    }

    /// Validates a token and returns a copy of the session's data.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<Vec<u32>>::new();
    /// let (token, _) = sessions.create(vec![1, 2])?;
    /// assert_eq!(sessions.get(&token), Some(vec![1, 2]));
    /// sessions.logout(&token);
    /// assert_eq!(sessions.get(&token), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, token: &(impl TokenInput + ?Sized)) -> Option<T>
    where
        T: Clone,
    {
        self.with(token, T::clone)
    }

    /// Validates a token and reads the session's data through `f`.
    ///
    /// **Locking:** the shard read lock only to find the session; `f` runs
    /// under the session's data mutex alone. `f` must not access the same
    /// session (it would deadlock).
    ///
    /// ```
    /// let sessions = sesame::Sessions::<Vec<u32>>::new();
    /// let (token, _) = sessions.create(vec![1, 2, 3])?;
    /// // Reads in place, without cloning the data.
    /// assert_eq!(sessions.with(&token, |items| items.len()), Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        f: impl FnOnce(&T) -> R,
    ) -> Option<R> {
        let (entry, epoch) = self.find_entry(token)?;
        let data = entry.data.lock();
        // Alive, and still in the hands the token was presented for: a
        // request of a principal the session since moved away from sees
        // nothing of the new one's data.
        (entry.is_alive() && entry.epoch() == epoch).then(|| f(&data))
    }

    /// Validates a token and changes the session's data in place.
    ///
    /// Atomic per session: concurrent updates of one session run one after
    /// the other, so none is lost (every peer we know is last-write-wins
    /// here). The change survives rotation and login.
    ///
    /// **Locking:** as [`Sessions::with`]; `f` must not access the same session.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<u32>::new();
    /// let (token, _) = sessions.create(0)?;
    /// let n = sessions.update(&token, |n| { *n += 1; *n })?;
    /// assert_eq!(n, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R, Error> {
        let Some((entry, epoch)) = self.find_entry(token) else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        let mut data = entry.data.lock();
        if !entry.is_alive() || entry.epoch() != epoch {
            return Err(Error::new(ErrorKind::NotFound));
        }
        Ok(f(&mut data))
    }

    /// Live sessions: created and not yet expired-and-reaped, destroyed,
    /// revoked or evicted. An expired session counts until the reaper takes
    /// it, though no lookup returns it.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let (token, _) = sessions.create(())?;
    /// sessions.create(())?;
    /// assert_eq!(sessions.len(), 2);
    /// sessions.logout(&token);
    /// assert_eq!(sessions.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Table lines held: live tokens plus grace aliases (reaped or not).
    /// For tests of memory bounds; not a stable API.
    #[doc(hidden)]
    pub fn map_slots(&self) -> usize {
        self.inner.shards.iter().map(|s| s.map.read().len()).sum()
    }

    /// True when [`Sessions::len`] is zero.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// assert!(sessions.is_empty());
    /// sessions.create(())?;
    /// assert!(!sessions.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The engine's counters.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let (token, _) = sessions.create(())?;
    /// sessions.validate("forged-or-malformed");
    /// sessions.logout(&token);
    /// let stats = sessions.stats();
    /// assert_eq!((stats.created, stats.destroyed, stats.live), (1, 1, 0));
    /// assert_eq!(stats.rejected, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let inner = &*self.inner;
        let mut s = Stats {
            live: inner.live.load(Ordering::Relaxed) as u64,
            anonymous: inner.anonymous.load(Ordering::Relaxed) as u64,
            rejected: inner.rejected_malformed.load(Ordering::Relaxed)
                + inner
                    .shards
                    .iter()
                    .map(|s| s.rejected.load(Ordering::Relaxed))
                    .sum::<u64>(),
            events_dropped: inner.bus.dropped.load(Ordering::Relaxed),
            ..Stats::default()
        };
        inner.counters.snapshot(&mut s);
        s
    }

    /// Subscribes to events through a channel of `capacity`. A full channel
    /// drops events (counted in [`Stats::events_dropped`]); the engine never
    /// waits for a subscriber.
    ///
    /// ```
    /// use sesame::EventKind;
    /// let sessions = sesame::Sessions::<()>::new();
    /// let events = sessions.subscribe(16);
    /// let (token, handle) = sessions.create(())?;
    /// sessions.logout(&token);
    /// let kinds: Vec<_> = events.try_iter().map(|e| (e.kind, e.handle)).collect();
    /// assert_eq!(kinds, [(EventKind::Created, handle), (EventKind::Destroyed, handle)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn subscribe(&self, capacity: usize) -> Receiver<Event<P>> {
        self.inner.bus.subscribe(capacity)
    }
}

/// Waits a little before reading an entry's tag again (a rotation holds
/// the two shard locks for a few hundred ns).
#[inline]
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

impl<T, P> Default for Sessions<T, P>
where
    T: Send + 'static,
    P: Principal,
{
    fn default() -> Self {
        Self::new()
    }
}
