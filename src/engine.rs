//! `Sessions<T, P>`: the engine.
//!
//! # Locking
//!
//! Locks, in the only order they may nest:
//! shard maps (two at most, lower index first) → an entry's principal lock
//! → a principal-index shard. Wheel and ring locks are leaves (they may read
//! a map when purging stale keys, and nothing takes them while holding a
//! map). The data mutex of an entry is taken with nothing else held, and is
//! the only lock user code runs under.

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
use crate::events::{Bus, Event, EventKind, EvictionReason, ExpiryReason};
use crate::key::{SecretKey, SessionKey};
use crate::reaper::Reaper;
use crate::shard::{Entry, Shard, Slot, TICK_MS, tick_of};
use crate::stats::{Counters, Stats, bump};
use crate::token::{SessionToken, TokenInput};
use crate::users::{Member, Users};
use crate::{Handle, Principal, SessionInfo};

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
}

/// One shard of the grace-alias table: handle → the alias key.
type AliasShard = CachePadded<Mutex<HashMap<Handle, SessionKey>>>;

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

    fn shard_of(&self, key: &SessionKey) -> usize {
        (key.shard_bits() as usize) & (self.inner.shards.len() - 1)
    }

    fn shard(&self, key: &SessionKey) -> &Shard<T, P> {
        &self.inner.shards[self.shard_of(key)]
    }

    fn idle_ms(&self) -> u64 {
        self.inner.config.idle_ms
    }

    fn wall(&self, ms: u64) -> SystemTime {
        self.inner.wall_origin + Duration::from_millis(ms)
    }

    /// Records (`Some`) or forgets (`None`) the grace alias of the session
    /// with `handle`; returns the alias it had. A no-op without a grace
    /// window.
    ///
    /// **Locking:** one alias-table leaf lock.
    fn set_alias(&self, handle: Handle, key: Option<SessionKey>) -> Option<SessionKey> {
        let table = &self.inner.aliases;
        if table.is_empty() {
            return None;
        }
        let mut map = table[(handle.as_u64() as usize) & (table.len() - 1)].lock();
        match key {
            Some(k) => map.insert(handle, k),
            None => map.remove(&handle),
        }
    }

    /// Forgets `key` as the alias of `handle` if it still is (its window
    /// ended and the reaper dropped its slot).
    fn forget_alias(&self, handle: Handle, key: &SessionKey) {
        let table = &self.inner.aliases;
        if table.is_empty() {
            return;
        }
        let mut map = table[(handle.as_u64() as usize) & (table.len() - 1)].lock();
        if map.get(&handle) == Some(key) {
            map.remove(&handle);
        }
    }

    /// Drops the session's alias slot, if it has one (it ended, or logged in).
    fn drop_alias(&self, entry: &Arc<Entry<T, P>>) {
        if let Some(k) = self.set_alias(entry.handle, None) {
            self.shard(&k).remove_alias_if(&k, entry);
        }
    }

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
    fn reserve(&self) -> Result<(), Error> {
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
    fn evict_one(&self) -> bool {
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

    fn schedule(&self, shard: &Shard<T, P>, key: SessionKey, deadline: u64) {
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

    fn push_ring(&self, shard: &Shard<T, P>, key: SessionKey) {
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

    /// Bookkeeping after a kill: counters, index, alias, event, end hook.
    ///
    /// The counters move first: the index update runs the principal's
    /// `Hash`/`Eq` and the event its `Clone` (user code), and a panic there
    /// must not leave them wrong. A dead member left in the index is
    /// harmless (every reader checks liveness).
    fn retire(&self, entry: &Arc<Entry<T, P>>, kind: EventKind) {
        let inner = &*self.inner;
        let principal = entry.principal.read();
        inner.live.fetch_sub(1, Ordering::AcqRel);
        if principal.is_none() {
            inner.anonymous.fetch_sub(1, Ordering::AcqRel);
        }
        let c = &inner.counters;
        bump(match kind {
            EventKind::Expired(ExpiryReason::Idle) => &c.expired_idle,
            EventKind::Expired(ExpiryReason::Absolute) => &c.expired_absolute,
            EventKind::Evicted(EvictionReason::Capacity) => &c.evicted_capacity,
            EventKind::Evicted(EvictionReason::PerUser) => &c.evicted_per_user,
            EventKind::Revoked => &c.revoked,
            _ => &c.destroyed,
        });
        let logged_in = principal.is_some();
        drop(principal);
        // Before any user code: the journal must hear of the end even if
        // the principal's `Hash` panics below.
        if let Some(hook) = inner.end_hook.get() {
            hook.ended(entry.handle, logged_in);
        }
        let principal = entry.principal.read();
        if let Some(p) = &*principal {
            inner.users.remove(p, entry);
        }
        inner.bus.emit(kind, entry.handle, principal.as_ref());
        drop(principal);
        self.drop_alias(entry);
    }

    /// Installs the observer of sessions that end early. False if one is
    /// already installed (it stays).
    #[cfg_attr(not(feature = "snapshot"), allow(dead_code))]
    pub(crate) fn set_end_hook(&self, hook: Box<dyn EndHook>) -> bool {
        self.inner.end_hook.set(hook).is_ok()
    }

    /// Finds the live session for a token and touches it. The hot path.
    ///
    /// **Locking:** one shard read lock. Allocates nothing.
    #[inline]
    fn find<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        f: impl FnOnce(&Arc<Entry<T, P>>) -> R,
    ) -> Option<R> {
        let inner = &*self.inner;
        let Some(bytes) = token.token_bytes() else {
            inner.rejected_malformed.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let key = inner.secret.digest(&bytes);
        let shard = self.shard(&key);
        // Every well-formed lookup reads the clock (a coarse clock: a few
        // ns), so the engine's time moves with each request, hit or miss,
        // and a clock that later jumps back finds that time already kept.
        let now = inner.clock.now();
        let map = shard.map.read();
        match map
            .get(&key)
            .and_then(|s| s.resolve(now, inner.config.idle_ms))
        {
            Some(e) => {
                e.touch(now);
                Some(f(e))
            }
            None => {
                drop(map);
                shard.rejected.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// The live session and its epoch at lookup (see `Entry::epoch`).
    fn find_entry(&self, token: &(impl TokenInput + ?Sized)) -> Option<(Arc<Entry<T, P>>, u32)> {
        self.find(token, |e| (Arc::clone(e), e.epoch()))
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
        self.find(token, |e| e.handle)
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
        let key = inner.secret.digest(&bytes);
        let now = inner.clock.now();
        let map = self.shard(&key).map.read();
        matches!(map.get(&key), Some(Slot::Live(e)) if e.is_live(now, inner.config.idle_ms))
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
        self.find(token, |e| self.info_of(e))
    }

    fn info_of(&self, e: &Entry<T, P>) -> SessionInfo<P> {
        let abs = e.abs_deadline.load(Ordering::Relaxed);
        SessionInfo {
            handle: e.handle,
            principal: e.principal.read().clone(),
            created: self.wall(e.created),
            last_seen: self.wall(e.last_seen.load(Ordering::Relaxed)),
            token_issued: self.wall(e.issued.load(Ordering::Relaxed)),
            expires: self.wall(e.deadline(self.idle_ms())),
            absolute_expires: self.wall(abs),
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

    /// Gives the session a new token; the old one stops working (after the
    /// rotation grace window, if one is set). Data, principal and handle stay.
    ///
    /// Rotate whenever privilege changes; [`Sessions::login`] does it for you.
    /// A session has at most one grace alias: rotating again ends the alias
    /// of the previous rotation at once, and an alias is reaped when its
    /// window ends.
    ///
    /// **Locking:** the write locks of the old and new tokens' shards (lower
    /// index first), then that of the principal index; afterwards, the write
    /// lock of the previous alias's shard.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token
    /// (a token still in its grace window cannot rotate again).
    ///
    /// ```
    /// let sessions = sesame::Sessions::<u32>::new();
    /// let (old, _) = sessions.create(7)?;
    /// let new = sessions.rotate(&old)?;
    /// assert!(sessions.validate(&old).is_none()); // no grace window by default
    /// assert_eq!(sessions.get(&new), Some(7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rotate(&self, token: &(impl TokenInput + ?Sized)) -> Result<SessionToken, Error> {
        self.rotate_inner(token, None::<(P, fn(&mut T))>)
    }

    /// Logs a session in: rotates its token (the session fixation defence),
    /// binds `principal` and restarts the absolute timeout (re-authentication,
    /// NIST SP 800-63B). Returns the new token.
    ///
    /// The pre-login token stops working at once, **grace window or not**:
    /// it is the token an attacker may have planted (session fixation), so
    /// no alias of it may ever carry the logged-in principal. Any alias left
    /// by an earlier plain rotation ends too. Requests still in flight with
    /// the pre-login token find no session.
    ///
    /// Logging in as the principal already bound keeps the data. Logging in
    /// as *another* principal (bob on a browser alice left logged in) moves
    /// the session to them and resets the data to `T::default()`: a new
    /// principal starts from fresh data, and requests of the previous one
    /// still in flight can neither read nor write it. To carry something
    /// over (a cart), use [`Sessions::login_with`]. Logging in an anonymous
    /// session keeps its data.
    ///
    /// With a per-user limit (by default [`crate::config::DEFAULT_MAX_SESSIONS_PER_USER`]),
    /// the principal's sessions that logged in longest ago are ended, so that
    /// at most the limit stay; the new session is never one of them.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<Vec<u32>>::new();
    /// let (anon, _) = sessions.create(vec![1])?;
    /// let alice = sessions.login(&anon, "alice".to_string())?;
    /// assert!(sessions.validate(&anon).is_none());
    /// assert_eq!(sessions.get(&alice), Some(vec![1])); // anonymous data kept
    /// let info = sessions.info(&alice).unwrap();
    /// assert_eq!(info.principal.as_deref(), Some("alice"));
    /// let bob = sessions.login(&alice, "bob".to_string())?;
    /// assert_eq!(sessions.get(&bob), Some(vec![])); // a new principal starts fresh
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn login(
        &self,
        token: &(impl TokenInput + ?Sized),
        principal: P,
    ) -> Result<SessionToken, Error>
    where
        T: Default,
    {
        self.login_with(token, principal, |data: &mut T| *data = T::default())
    }

    /// [`Sessions::login`] with the hand-over of the data chosen by the
    /// caller: when the session was logged in as another principal,
    /// `on_switch` turns the previous principal's data into the new one's
    /// (keep the cart, drop everything else). It is not called when the
    /// session was anonymous or already bound to `principal`.
    ///
    /// `on_switch` runs under the session's data mutex, after the session
    /// changed hands and before the new token is returned; it must not touch
    /// the same session. If it panics, the session is ended (the previous
    /// principal's data must not reach the new one) and the panic goes on.
    ///
    /// # Errors
    ///
    /// As [`Sessions::login`].
    ///
    /// ```
    /// #[derive(Clone, Debug, Default, PartialEq)]
    /// struct Data { cart: Vec<u32>, theme: Option<String> }
    ///
    /// let sessions = sesame::Sessions::<Data>::new();
    /// let (anon, _) = sessions.create(Data::default())?;
    /// let alice = sessions.login(&anon, "alice".to_string())?;
    /// sessions.update(&alice, |d| { d.cart.push(3); d.theme = Some("dark".into()) })?;
    /// let bob = sessions.login_with(&alice, "bob".to_string(), |d| {
    ///     *d = Data { cart: std::mem::take(&mut d.cart), ..Data::default() }
    /// })?;
    /// assert_eq!(sessions.get(&bob), Some(Data { cart: vec![3], theme: None }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn login_with(
        &self,
        token: &(impl TokenInput + ?Sized),
        principal: P,
        on_switch: impl FnOnce(&mut T),
    ) -> Result<SessionToken, Error> {
        self.rotate_inner(token, Some((principal, on_switch)))
    }

    fn rotate_inner(
        &self,
        token: &(impl TokenInput + ?Sized),
        login: Option<(P, impl FnOnce(&mut T))>,
    ) -> Result<SessionToken, Error> {
        let inner = &*self.inner;
        let not_found = || {
            inner.rejected_malformed.fetch_add(1, Ordering::Relaxed);
            Error::new(ErrorKind::NotFound)
        };
        let bytes = token.token_bytes().ok_or_else(not_found)?;
        let old_key = inner.secret.digest(&bytes);
        let i = self.shard_of(&old_key);
        let (new_token, new_key, j) = loop {
            let t = SessionToken::generate();
            let k = inner.secret.digest(t.as_bytes());
            if k != old_key {
                let j = self.shard_of(&k);
                break (t, k, j);
            }
        };
        // User code first (the principal's `Clone`), before anything changes:
        // a panic here leaves the engine as it was.
        let (login, on_switch) = match login {
            Some((p, f)) => {
                let bound = p.clone();
                (Some((p, bound)), Some(f))
            }
            None => (None, None),
        };
        let is_login = login.is_some();
        let now = inner.clock.now();
        let idle = inner.config.idle_ms;
        let grace = if is_login { 0 } else { inner.config.grace_ms };
        let mut victims = Vec::new();
        let mut switched = false;
        let entry;
        let stale_alias;
        {
            // Two shard locks at most, lower index first: no deadlock.
            let (mut old_map, mut new_map) = if i == j {
                (inner.shards[i].map.write(), None)
            } else if i < j {
                let a = inner.shards[i].map.write();
                (a, Some(inner.shards[j].map.write()))
            } else {
                let b = inner.shards[j].map.write();
                (inner.shards[i].map.write(), Some(b))
            };
            entry = match old_map.get(&old_key) {
                Some(Slot::Live(e)) if e.is_live(now, idle) => Arc::clone(e),
                _ => {
                    drop((old_map, new_map));
                    return Err(not_found());
                }
            };
            let target = new_map.as_deref().unwrap_or(&*old_map);
            if target.contains_key(&new_key) {
                // 2^-256: not worth a retry path; the caller may simply retry.
                return Err(Error::new(ErrorKind::NotFound));
            }
            if let Some((p, bound)) = login {
                let mut principal = entry.principal.write();
                if !entry.is_alive() {
                    return Err(Error::new(ErrorKind::NotFound));
                }
                let member = Member {
                    key: new_key,
                    entry: Arc::clone(&entry),
                };
                let limit = inner.config.max_per_user;
                let live = |e: &Entry<T, P>| e.is_live(now, idle);
                // The index first (it runs the principal's `Hash`/`Eq`,
                // user code) and nothing else until it is done.
                match principal.as_ref() {
                    // A panic in `add` leaves everything as it was.
                    None => {
                        victims = inner.users.add(p, member, limit, live);
                        inner.anonymous.fetch_sub(1, Ordering::AcqRel);
                    }
                    Some(q) if *q == p => inner.users.rekey(&p, &entry, new_key),
                    Some(q) => {
                        // Two index updates: a panic between them would
                        // leave the session listed under neither or both
                        // principals, where "log out everywhere" could miss
                        // it. Fail closed: the session ends.
                        let moved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            inner.users.remove(q, &entry);
                            inner.users.add(p, member, limit, live)
                        }));
                        match moved {
                            Ok(v) => victims = v,
                            Err(panic) => {
                                let killed = entry.try_kill();
                                drop(principal);
                                drop((old_map, new_map));
                                if killed {
                                    self.shard(&old_key).remove_if(&old_key, &entry);
                                    self.retire(&entry, EventKind::Destroyed);
                                }
                                std::panic::resume_unwind(panic);
                            }
                        }
                        entry.bump_epoch();
                        switched = true;
                    }
                }
                *principal = Some(bound);
                entry.abs_deadline.store(
                    now.saturating_add(inner.config.absolute_ms),
                    Ordering::Relaxed,
                );
            } else if let Some(p) = entry.principal.read().as_ref() {
                inner.users.rekey(p, &entry, new_key);
            }
            entry.issued.store(now, Ordering::Relaxed);
            entry.touch(now);
            if grace > 0 {
                old_map.insert(
                    old_key,
                    Slot::Grace {
                        entry: Arc::clone(&entry),
                        until: now.saturating_add(grace),
                    },
                );
                stale_alias = self.set_alias(entry.handle, Some(old_key));
            } else {
                old_map.remove(&old_key);
                stale_alias = self.set_alias(entry.handle, None);
            }
            match new_map.as_mut() {
                Some(m) => m.insert(new_key, Slot::Live(Arc::clone(&entry))),
                None => old_map.insert(new_key, Slot::Live(Arc::clone(&entry))),
            };
        }
        if let Some(k) = stale_alias {
            self.shard(&k).remove_alias_if(&k, &entry);
        }
        if switched && let Some(f) = on_switch {
            self.hand_over(&entry, &new_key, f);
        }
        let shard = &inner.shards[j];
        self.schedule(shard, new_key, entry.deadline(idle));
        if grace > 0 {
            self.schedule(&inner.shards[i], old_key, now.saturating_add(grace));
        }
        let principal = entry.principal.read().clone();
        if principal.is_none() {
            self.push_ring(shard, new_key);
        }
        bump(&inner.counters.rotated);
        let kind = if is_login {
            EventKind::LoggedIn
        } else {
            EventKind::Rotated
        };
        inner.bus.emit(kind, entry.handle, principal.as_ref());
        for m in &victims {
            self.end_member(m, EventKind::Evicted(EvictionReason::PerUser));
        }
        Ok(new_token)
    }

    /// Runs the caller's hand-over of the data to a new principal. If it
    /// panics, the session ends before the panic goes on: the previous
    /// principal's data must never reach the new one.
    fn hand_over(&self, entry: &Arc<Entry<T, P>>, key: &SessionKey, f: impl FnOnce(&mut T)) {
        let mut data = entry.data.lock();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut data)));
        drop(data);
        if let Err(panic) = outcome {
            if entry.try_kill() {
                self.shard(key).remove_if(key, entry);
                self.retire(entry, EventKind::Destroyed);
            }
            std::panic::resume_unwind(panic);
        }
    }

    fn end_member(&self, m: &Member<T, P>, kind: EventKind) -> bool {
        if !m.entry.try_kill() {
            return false;
        }
        self.shard(&m.key).remove_if(&m.key, &m.entry);
        self.retire(&m.entry, kind);
        true
    }

    /// Destroys the session (logout). Returns whether a live session ended.
    ///
    /// **Locking:** one shard read lock, then that shard's write lock.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let (token, _) = sessions.create(())?;
    /// assert!(sessions.logout(&token));
    /// assert!(sessions.validate(&token).is_none());
    /// assert!(!sessions.logout(&token)); // already ended
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn logout(&self, token: &(impl TokenInput + ?Sized)) -> bool {
        let inner = &*self.inner;
        let Some(bytes) = token.token_bytes() else {
            return false;
        };
        let key = inner.secret.digest(&bytes);
        let Some((entry, _)) = self.find_entry(token) else {
            return false;
        };
        if !entry.try_kill() {
            return false;
        }
        // When the token was a grace alias, the live key's slot stays until the
        // reaper meets it; the entry is dead, so it answers no lookup.
        self.shard(&key).remove_if(&key, &entry);
        self.retire(&entry, EventKind::Destroyed);
        true
    }

    /// Ends every session of `principal` ("log out everywhere"). Returns how
    /// many ended.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let alice = "alice".to_string();
    /// let (phone, _) = sessions.create(())?;
    /// let phone = sessions.login(&phone, alice.clone())?;
    /// let (laptop, _) = sessions.create(())?;
    /// let laptop = sessions.login(&laptop, alice.clone())?;
    /// assert_eq!(sessions.revoke_user(&alice), 2);
    /// assert!(sessions.validate(&phone).is_none() && sessions.validate(&laptop).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn revoke_user(&self, principal: &P) -> usize {
        let members = self.inner.users.take(principal);
        members
            .iter()
            .filter(|m| self.end_member(m, EventKind::Revoked))
            .count()
    }

    /// Ends one of `principal`'s sessions by its handle (an "end that
    /// session" button). False if the handle is not one of theirs.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let alice = "alice".to_string();
    /// let (token, handle) = sessions.create(())?;
    /// let token = sessions.login(&token, alice.clone())?;
    /// assert!(!sessions.revoke(&"bob".to_string(), handle)); // not bob's
    /// assert!(sessions.revoke(&alice, handle));
    /// assert!(sessions.validate(&token).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn revoke(&self, principal: &P, handle: Handle) -> bool {
        self.inner
            .users
            .members(principal)
            .iter()
            .find(|m| m.entry.handle == handle)
            .is_some_and(|m| self.end_member(m, EventKind::Revoked))
    }

    /// The live sessions of `principal`, oldest first: metadata, never tokens.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let alice = "alice".to_string();
    /// let (first, a) = sessions.create(())?;
    /// sessions.login(&first, alice.clone())?;
    /// let (second, b) = sessions.create(())?;
    /// sessions.login(&second, alice.clone())?;
    /// let handles: Vec<_> = sessions.sessions_of(&alice).iter().map(|i| i.handle).collect();
    /// assert_eq!(handles, [a, b]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sessions_of(&self, principal: &P) -> Vec<SessionInfo<P>> {
        let now = self.inner.clock.now();
        let mut members = self.inner.users.members(principal);
        members.retain(|m| m.entry.is_live(now, self.idle_ms()));
        members.sort_by_key(|m| m.entry.created);
        members.iter().map(|m| self.info_of(&m.entry)).collect()
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

    /// Map slots held: live tokens plus grace aliases (reaped or not).
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

    fn reap(&self, shard: &Shard<T, P>, keys: &[SessionKey], now: u64) -> usize {
        let idle = self.idle_ms();
        let mut again: Vec<(SessionKey, u64)> = Vec::new();
        let mut killed: Vec<(Arc<Entry<T, P>>, ExpiryReason)> = Vec::new();
        // Grace aliases whose window ended (or whose session died).
        let mut lapsed: Vec<(Handle, SessionKey)> = Vec::new();
        // What to do with each key of a chunk: `None` keep (or gone),
        // `Some(None)` drop a dead or lapsed slot, `Some(Some(r))` expire.
        let mut verdicts: Vec<Option<Option<ExpiryReason>>> = Vec::with_capacity(REAP_LOCK_CHUNK);
        for chunk in keys.chunks(REAP_LOCK_CHUNK) {
            let mut map = shard.map.write();
            // Pass 1, plain loads only: with no atomic read-modify-write in
            // the loop (each is a full fence on x86), the cache misses of
            // the chunk's slots and entries overlap instead of queueing.
            verdicts.clear();
            verdicts.extend(chunk.iter().map(|key| match map.get(key) {
                None => None,
                Some(Slot::Live(e)) if !e.is_alive() => Some(None),
                Some(Slot::Live(e)) => {
                    let idle_at = e.idle_deadline(idle);
                    let abs_at = e.abs_deadline.load(Ordering::Relaxed);
                    if now < idle_at.min(abs_at) {
                        again.push((*key, idle_at.min(abs_at)));
                        return None;
                    }
                    Some(Some(if abs_at <= idle_at {
                        ExpiryReason::Absolute
                    } else {
                        ExpiryReason::Idle
                    }))
                }
                Some(Slot::Grace { entry, until }) => {
                    if now < *until && entry.is_alive() {
                        again.push((*key, *until));
                        return None;
                    }
                    Some(None)
                }
            }));
            // Pass 2: remove and kill, on lines now in cache. The slot's own
            // reference moves into `killed`: no extra count traffic.
            for (key, verdict) in chunk.iter().zip(&verdicts) {
                let Some(expiry) = verdict else { continue };
                match (map.remove(key), expiry) {
                    (Some(Slot::Live(e)), Some(reason)) if e.try_kill() => {
                        killed.push((e, *reason));
                    }
                    (Some(Slot::Grace { entry, .. }), _) => lapsed.push((entry.handle, *key)),
                    _ => {}
                }
            }
        }
        for (handle, key) in &lapsed {
            self.forget_alias(*handle, key);
        }
        if !again.is_empty() {
            let mut wheel = shard.wheel.lock();
            for (key, at) in again {
                wheel.insert(tick_of(at), key);
            }
        }
        self.retire_expired(&killed);
        killed.len()
    }

    /// [`Sessions::retire`] for a batch of expired entries: the shared
    /// counters move once per batch, not once per session (each atomic
    /// read-modify-write also stalls the reaper's cache misses).
    fn retire_expired(&self, killed: &[(Arc<Entry<T, P>>, ExpiryReason)]) {
        if killed.is_empty() {
            return;
        }
        let inner = &*self.inner;
        // Counters first, from plain reads; user code (the principal's
        // `Hash`/`Eq`/`Clone`) only afterwards, so a panic there cannot
        // leave them wrong.
        let anonymous = killed
            .iter()
            .filter(|(e, _)| e.principal.read().is_none())
            .count();
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

/// What [`Sessions::restore_entry`] did with an entry.
#[cfg(feature = "snapshot")]
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
#[cfg(feature = "snapshot")]
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
    pub(crate) fn read_shard<R>(
        &self,
        i: usize,
        f: impl FnOnce(&crate::shard::Map<T, P>) -> R,
    ) -> R {
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
    /// **Locking:** as `create`; the principal index is updated under the
    /// shard's write lock, as login does.
    pub(crate) fn restore_entry(&self, key: SessionKey, mut entry: Entry<T, P>) -> Restored {
        let inner = &*self.inner;
        let principal = entry.principal.get_mut().clone();
        if principal.is_some() {
            if self.reserve().is_err() {
                return Restored::Full;
            }
        } else if !self.try_reserve() {
            bump(&inner.counters.refused_full);
            return Restored::Full;
        }
        let entry = Arc::new(entry);
        let shard = self.shard(&key);
        let mut victims = Vec::new();
        {
            let mut map = shard.map.write();
            match map.entry(key) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    drop(map);
                    inner.live.fetch_sub(1, Ordering::AcqRel);
                    return Restored::Duplicate;
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Slot::Live(Arc::clone(&entry)));
                }
            }
            match &principal {
                None => {
                    inner.anonymous.fetch_add(1, Ordering::Relaxed);
                }
                Some(p) => {
                    let member = Member {
                        key,
                        entry: Arc::clone(&entry),
                    };
                    inner.users.add(p.clone(), member, None, |_| true);
                }
            }
        }
        self.schedule(shard, key, entry.deadline(self.idle_ms()));
        match (&principal, inner.config.max_per_user) {
            (None, _) => self.push_ring(shard, key),
            // Restored in no particular order: the oldest sessions go.
            (Some(p), Some(limit)) => {
                let mut members = inner.users.members(p);
                members.retain(|m| m.entry.is_alive());
                members.sort_by_key(|m| m.entry.created);
                let excess = members.len().saturating_sub(limit);
                victims.extend(members.into_iter().take(excess));
            }
            (Some(_), None) => {}
        }
        for m in &victims {
            self.end_member(m, EventKind::Evicted(EvictionReason::PerUser));
        }
        Restored::Inserted
    }

    /// Counts one more live session if there is room; never evicts.
    fn try_reserve(&self) -> bool {
        let live = &self.inner.live;
        let max = self.inner.config.max_sessions;
        live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
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
