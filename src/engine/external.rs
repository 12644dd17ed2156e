//! Sessions keyed by a caller-chosen id, for stores whose framework draws
//! the ids itself (tower-sessions' `SessionStore`: `sesame::tower_sessions`).
//!
//! # Design
//!
//! The engine still stores only a keyed blake3 digest: of the id, under the
//! engine's secret, in a domain of its own. A token's digest input is its
//! 32 bytes; an id's is [`ID_DOMAIN`] (33 bytes) followed by the id, so the
//! two inputs never coincide and a token can never open a session made with
//! an id, nor an id one made with a token (short of a blake3 collision).
//!
//! A session made here is an ordinary entry: it counts against
//! `max_sessions`, is evicted first at capacity like every anonymous
//! session, expires on the engine's idle and absolute timeouts, is reaped
//! by the wheel and saved by snapshots. It has no token, so it cannot be
//! rotated (a caller that wants a new id removes the session and inserts
//! its data under the new id, as tower-sessions' `cycle_id` does). It can be
//! bound to a principal in place ([`Sessions::bind_by_id`]): then it is in
//! the principal index, counts against the per-user limit, ends with
//! [`Sessions::revoke_user`] and is no longer evicted for room.
//!
//! # Expiry
//!
//! Besides the engine's timeouts, such a session can carry its own
//! deadline, a wall-clock instant ([`Sessions::insert_with_id`],
//! [`Sessions::set_expiry_by_id`]). The **earliest** of the three wins:
//! the engine's idle timeout (since the last use), its absolute timeout
//! (since creation) and the session's own deadline. The own deadline can
//! move later again, never past the absolute timeout. Internally it is the
//! entry's absolute deadline, `min(created + absolute_timeout, own)`, so the
//! wheel reaps the session (and frees its memory) when it passes.

use super::*;
use crate::error::{Error, ErrorKind};
use crate::events::{EventKind, ExpiryReason};
use crate::key::{SecretKey, SessionKey, Tag};
use crate::shard::{Entry, Line};
use crate::stats::bump;
use crate::{Handle, Principal};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

/// The shortest id accepted, in bytes: 128 bits, the size of tower-sessions'
/// ids. An id is a bearer credential; OWASP asks for at least 64 bits of
/// entropy, and a shorter id is more likely a caller's mistake (a counter,
/// a user id) than a random value.
pub const MIN_ID_LEN: usize = 16;
/// The longest id accepted, in bytes (a 256-bit token's text form is 43).
pub const MAX_ID_LEN: usize = 64;

/// Prefix of an id's digest input. 33 bytes: an id's input is never 32 bytes
/// long like a token's, so the two can never be the same input.
const ID_DOMAIN: &[u8; 33] = b"sesame 2026 caller-chosen id v1\0\0";
const _: () = assert!(ID_DOMAIN.len() != crate::token::TOKEN_LEN);

/// The stored key of a caller-chosen id, or `None` when its length is out
/// of bounds.
fn id_key(secret: &SecretKey, id: &[u8]) -> Option<SessionKey> {
    if !(MIN_ID_LEN..=MAX_ID_LEN).contains(&id.len()) {
        return None;
    }
    let mut h = blake3::Hasher::new_keyed(secret.as_bytes());
    h.update(ID_DOMAIN);
    h.update(id);
    Some(SessionKey::from_bytes(*h.finalize().as_bytes()))
}

impl<T, P> Sessions<T, P>
where
    T: Send + 'static,
    P: Principal,
{
    /// Engine ms of a wall-clock instant (saturating at both ends).
    fn engine_ms_of(&self, at: SystemTime) -> u64 {
        match at.duration_since(self.inner.wall_origin) {
            Ok(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            Err(_) => 0,
        }
    }

    /// The engine's time now, as wall time (the scale of own deadlines).
    #[cfg_attr(not(all(test, feature = "tower-sessions")), allow(dead_code))]
    pub(crate) fn wall_now(&self) -> SystemTime {
        self.wall(self.inner.clock.now())
    }

    /// The entry's absolute deadline for its own deadline `expires`.
    fn own_deadline(&self, created: u64, expires: Option<SystemTime>) -> u64 {
        let abs = created.saturating_add(self.inner.config.absolute_ms);
        expires.map_or(abs, |at| abs.min(self.engine_ms_of(at)))
    }

    /// Creates an anonymous session under a caller-chosen `id` (stored only
    /// as its keyed digest), holding `data`, expiring at `expires` at the
    /// latest (see the module docs: the engine's own timeouts still apply,
    /// the earliest deadline wins).
    ///
    /// The id must be unpredictable (it is the credential): draw it from a
    /// CSPRNG, [`MIN_ID_LEN`] bytes at least.
    ///
    /// **Locking:** as [`Sessions::create`].
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::IdTaken`] when a live session already holds `id`
    ///   (draw another one); nothing changed.
    /// - [`ErrorKind::InvalidId`] when `id` is shorter than [`MIN_ID_LEN`]
    ///   or longer than [`MAX_ID_LEN`] bytes.
    /// - [`ErrorKind::Full`] as [`Sessions::create`].
    ///
    /// ```
    /// use sesame::ErrorKind;
    /// let sessions = sesame::Sessions::<u32>::new();
    /// let id = [7u8; 16]; // in real use: 16 random bytes
    /// sessions.insert_with_id(&id, 1, None)?;
    /// assert_eq!(sessions.get_by_id(&id), Some(1));
    /// let taken = sessions.insert_with_id(&id, 2, None).unwrap_err();
    /// assert_eq!(taken.kind(), ErrorKind::IdTaken);
    /// assert_eq!(sessions.insert_with_id(b"short", 3, None).unwrap_err().kind(), ErrorKind::InvalidId);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert_with_id(
        &self,
        id: &[u8],
        data: T,
        expires: Option<SystemTime>,
    ) -> Result<Handle, Error> {
        let inner = &*self.inner;
        let key = id_key(&inner.secret, id).ok_or_else(|| Error::new(ErrorKind::InvalidId))?;
        self.reserve()?;
        let now = inner.clock.now();
        let abs = self.own_deadline(now, expires);
        let entry = Arc::new(Entry::new(Handle::generate(), now, data));
        let tag = key.tag();
        entry.set_tag(tag);
        let idle = inner.config.idle_ms;
        let shard = self.shard(&tag);
        let expired = {
            let mut map = shard.map.write();
            // The id's previous session, dead or past a deadline but not
            // reaped yet, is ended here (as expired) to free the id; a live
            // one keeps it.
            let mut expired = None;
            if let Some(i) = map.find(&tag)
                && let Some(old) = map.at(i)
            {
                // (A grace alias cannot hold an id's tag, short of a 128-bit
                // collision across domains: refused like a live holder.)
                if !old.is_live_line() || old.live_at(now, idle) {
                    drop(map);
                    // Give back the place `reserve` counted.
                    inner.live.fetch_sub(1, Ordering::AcqRel);
                    return Err(Error::new(ErrorKind::IdTaken));
                }
                let reason = if old.abs_deadline <= old.idle_deadline(idle) {
                    ExpiryReason::Absolute
                } else {
                    ExpiryReason::Idle
                };
                let old_entry = Arc::clone(&old.entry);
                let first = old_entry.try_kill();
                debug_assert!(first, "a live line's entry is alive");
                map.remove_at(i);
                expired = first.then_some((old_entry, reason));
            }
            let placed = map.insert(Line::live(tag, Arc::clone(&entry), now, abs));
            debug_assert!(placed.is_ok(), "the id's line was just freed");
            expired
        };
        if let Some(old) = expired {
            self.retire_expired(&[old]);
        }
        inner.anonymous.fetch_add(1, Ordering::Relaxed);
        self.schedule(shard, tag, now.saturating_add(idle).min(abs));
        self.push_ring(shard, tag);
        bump(&inner.counters.created);
        inner.bus.emit(EventKind::Created, entry.handle, None);
        Ok(entry.handle)
    }

    /// Finds the live session for an id and touches it (records a use).
    ///
    /// **Locking:** one shard read lock. Allocates nothing.
    fn find_id(&self, id: &[u8]) -> Option<(Arc<Entry<T, P>>, Tag)> {
        let inner = &*self.inner;
        let Some(key) = id_key(&inner.secret, id) else {
            inner.rejected_malformed.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let tag = key.tag();
        let shard = self.shard(&tag);
        let now = inner.clock.now();
        let map = shard.map.read();
        // An id's line is always a live line: ids are never rotated.
        match map
            .get(&tag)
            .filter(|l| l.is_live_line() && l.live_at(now, inner.config.idle_ms))
        {
            Some(l) => {
                l.touch(now);
                Some((Arc::clone(&l.entry), tag))
            }
            None => {
                drop(map);
                shard.rejected.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Reads the data of the live session holding `id` through `f`, and
    /// records the use. `None` when no live session holds it (unknown,
    /// expired, removed, or an id of a wrong length: not told apart).
    ///
    /// **Locking:** as [`Sessions::with`]; `f` must not access the same
    /// session.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<Vec<u32>>::new();
    /// let id = [1u8; 16];
    /// sessions.insert_with_id(&id, vec![1, 2, 3], None)?;
    /// assert_eq!(sessions.with_by_id(&id, |v| v.len()), Some(3));
    /// assert_eq!(sessions.with_by_id(&[2u8; 16], |v| v.len()), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_by_id<R>(&self, id: &[u8], f: impl FnOnce(&T) -> R) -> Option<R> {
        let (entry, _) = self.find_id(id)?;
        let data = entry.data.lock();
        entry.is_alive().then(|| f(&data))
    }

    /// A copy of the data of the live session holding `id` (see
    /// [`Sessions::with_by_id`]).
    ///
    /// ```
    /// let sessions = sesame::Sessions::<u32>::new();
    /// sessions.insert_with_id(&[3u8; 16], 7, None)?;
    /// assert_eq!(sessions.get_by_id(&[3u8; 16]), Some(7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_by_id(&self, id: &[u8]) -> Option<T>
    where
        T: Clone,
    {
        self.with_by_id(id, T::clone)
    }

    /// Changes the data of the live session holding `id` in place, atomic
    /// per session as [`Sessions::update`], and records the use.
    ///
    /// **Locking:** as [`Sessions::with`]; `f` must not access the same
    /// session.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session holds `id`: an ended
    /// session is not brought back.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<u32>::new();
    /// let id = [4u8; 16];
    /// sessions.insert_with_id(&id, 1, None)?;
    /// assert_eq!(sessions.update_by_id(&id, |n| { *n += 1; *n })?, 2);
    /// sessions.remove_by_id(&id);
    /// assert!(sessions.update_by_id(&id, |n| *n += 1).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_by_id<R>(&self, id: &[u8], f: impl FnOnce(&mut T) -> R) -> Result<R, Error> {
        let Some((entry, _)) = self.find_id(id) else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        let mut data = entry.data.lock();
        if !entry.is_alive() {
            return Err(Error::new(ErrorKind::NotFound));
        }
        Ok(f(&mut data))
    }

    /// Sets the own deadline of the live session holding `id` (`None`:
    /// none, the engine's timeouts alone), and records the use. It may move
    /// earlier or later; the engine's absolute timeout (since creation)
    /// still bounds it, and the idle timeout still applies.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session holds `id`.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use sesame::ManualClock;
    /// let clock = ManualClock::new();
    /// let sessions = sesame::Sessions::<()>::builder().clock(clock.clone()).build()?;
    /// let id = [5u8; 16];
    /// sessions.insert_with_id(&id, (), None)?;
    /// let in_a_minute = sessions.info_by_id(&id).unwrap().last_seen + Duration::from_secs(60);
    /// sessions.set_expiry_by_id(&id, Some(in_a_minute))?;
    /// clock.advance(Duration::from_secs(61));
    /// assert!(sessions.get_by_id(&id).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_expiry_by_id(&self, id: &[u8], expires: Option<SystemTime>) -> Result<(), Error> {
        let Some((entry, tag)) = self.find_id(id) else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        let abs = self.own_deadline(entry.created, expires);
        let shard = self.shard(&tag);
        let moved = {
            let mut map = shard.map.write();
            match map.get_mut(&tag) {
                Some(l) if l.is_live_line_of(&entry) => {
                    let before = std::mem::replace(&mut l.abs_deadline, abs);
                    Some((before, l.deadline(self.idle_ms())))
                }
                // Ended since the lookup: not brought back.
                _ => None,
            }
        };
        let Some((before, deadline)) = moved else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        if abs < before {
            // Earlier than what the wheel holds for it: schedule the new
            // deadline, so memory is freed when it passes. (A later one
            // needs nothing: when the old slot fires, the reaper re-reads
            // the deadline and schedules it again.)
            self.schedule(shard, tag, deadline);
        }
        Ok(())
    }

    /// Ends the session holding `id` (logout). Returns whether a live
    /// session ended. An ended session stays ended: `update_by_id` and
    /// `set_expiry_by_id` do not bring it back.
    ///
    /// **Locking:** one shard read lock, then that shard's write lock.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let id = [6u8; 16];
    /// sessions.insert_with_id(&id, (), None)?;
    /// assert!(sessions.remove_by_id(&id));
    /// assert!(!sessions.remove_by_id(&id));
    /// assert!(sessions.get_by_id(&id).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove_by_id(&self, id: &[u8]) -> bool {
        self.find_id(id)
            .is_some_and(|(entry, _)| self.destroy(&entry))
    }

    /// Binds the live session holding `id` to `principal`, or makes it
    /// anonymous again (`None`), without changing its id (a caller-chosen
    /// id cannot be rotated here: the caller that wants a new one removes
    /// the session and inserts it again, which is what tower-sessions'
    /// `cycle_id` does). A bound session is in the principal index
    /// ([`Sessions::sessions_of`], [`Sessions::revoke_user`]), counts
    /// against the per-user limit (the principal's sessions bound longest
    /// ago are ended beyond it, never this one) and is never evicted for
    /// room. Binding to the principal already bound does nothing.
    ///
    /// Unlike [`Sessions::login`] this neither rotates nor resets the data
    /// nor restarts the absolute timeout: the caller chose the id and
    /// owns those decisions.
    ///
    /// **Locking:** one shard read lock; then that shard's write lock, the
    /// session's principal lock and, under it, one principal-index shard.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session holds `id`.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let id = [9u8; 16];
    /// sessions.insert_with_id(&id, (), None)?;
    /// sessions.bind_by_id(&id, Some("alice".to_string()))?;
    /// assert_eq!(sessions.sessions_of(&"alice".to_string()).len(), 1);
    /// assert_eq!(sessions.revoke_user(&"alice".to_string()), 1); // log out everywhere
    /// assert!(sessions.get_by_id(&id).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind_by_id(&self, id: &[u8], principal: Option<P>) -> Result<(), Error> {
        let inner = &*self.inner;
        let Some((entry, tag)) = self.find_id(id) else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        // User code (the principal's `Clone`) before anything changes.
        let bound = principal.clone();
        let limit = inner.config.max_per_user;
        let now = inner.clock.now();
        let member = || Arc::clone(&entry);
        let mut over_limit = None;
        let anonymous_again;
        {
            // The map's write lock, as login holds it: no session ends while
            // its principal changes (every end holds this lock), so the
            // reaper's reading of the bound bit is exact.
            let map = self.shard(&tag).map.write();
            if !map.get(&tag).is_some_and(|l| l.is_live_line_of(&entry)) {
                return Err(Error::new(ErrorKind::NotFound));
            }
            let mut current = entry.principal.write();
            match (current.as_ref(), principal) {
                (None, None) => return Ok(()),
                (Some(q), Some(p)) if *q == p => return Ok(()),
                // A panic in `add` (the principal's `Hash`/`Eq`) leaves
                // everything as it was.
                (None, Some(p)) => {
                    over_limit = inner.users.add(p, member(), limit);
                    inner.anonymous.fetch_sub(1, Ordering::AcqRel);
                }
                (Some(q), None) => {
                    inner.users.remove(q, &entry);
                    inner.anonymous.fetch_add(1, Ordering::AcqRel);
                }
                (Some(q), Some(p)) => {
                    // Two index updates: a panic between them would leave
                    // the session listed under neither or both principals,
                    // where "log out everywhere" could miss it. Fail
                    // closed: the session ends (as `login` does).
                    let moved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        inner.users.remove(q, &entry);
                        inner.users.add(p, member(), limit)
                    }));
                    let moved = moved.map(|over| over_limit = over);
                    if let Err(panic) = moved {
                        drop((current, map));
                        if self.kill_entry(&entry, |_| Some(())).is_some() {
                            self.retire(&entry, EventKind::Destroyed);
                        }
                        std::panic::resume_unwind(panic);
                    }
                    entry.bump_epoch();
                }
            }
            anonymous_again = bound.is_none();
            entry.set_bound(bound.is_some());
            *current = bound;
        }
        if anonymous_again {
            // Evictable again: back in the ring (a stale copy of the key
            // there is skipped by eviction, and purged in time).
            self.push_ring(self.shard(&tag), tag);
        }
        let principal = entry.principal.read().clone();
        if principal.is_some() {
            // `LoggedIn` without a rotation: the caller chose the id (and,
            // under tower-sessions, drew a new one for the login).
            inner
                .bus
                .emit(EventKind::LoggedIn, entry.handle, principal.as_ref());
        }
        if let Some(p) = over_limit {
            self.enforce_limit(&p, &entry, now);
        }
        Ok(())
    }

    /// The metadata of the live session holding `id` (records the use).
    /// Its `absolute_expires` is the earlier of the engine's absolute
    /// timeout and the session's own deadline.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let handle = sessions.insert_with_id(&[8u8; 16], (), None)?;
    /// let info = sessions.info_by_id(&[8u8; 16]).unwrap();
    /// assert_eq!(info.handle, handle);
    /// assert!(info.principal.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn info_by_id(&self, id: &[u8]) -> Option<SessionInfo<P>> {
        let (entry, _) = self.find_id(id)?;
        self.locate(&entry, |l| self.info_of(l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use crate::token::SessionToken;
    use std::time::Duration;

    fn engine(clock: &ManualClock, max: usize) -> Sessions<u32> {
        Sessions::builder()
            .clock(clock.clone())
            .idle_timeout(Duration::from_secs(600))
            .absolute_timeout(Duration::from_secs(3600))
            .max_sessions(max)
            .reaper_interval(None)
            .build()
            .unwrap()
    }

    /// A token and an id with the same bytes are different keys.
    #[test]
    fn an_id_and_a_token_of_the_same_bytes_are_apart() {
        let secret = SecretKey::from_bytes([9; 32]);
        let bytes = [0x41u8; 32];
        assert!(secret.digest(&bytes) != id_key(&secret, &bytes).unwrap());
        let sessions = Sessions::<u32>::new();
        let token = SessionToken::generate();
        sessions.insert_with_id(token.as_bytes(), 1, None).unwrap();
        assert_eq!(sessions.get(&token), None, "the id is not a token");
        let (token, _) = sessions.create(2).unwrap();
        assert_eq!(
            sessions.get_by_id(token.as_bytes()),
            None,
            "the token is not an id"
        );
    }

    #[test]
    fn ids_out_of_bounds_are_refused_with_a_typed_error() {
        let sessions = Sessions::<u32>::new();
        for len in [0, 1, MIN_ID_LEN - 1, MAX_ID_LEN + 1, 4096] {
            let id = vec![3u8; len];
            let e = sessions.insert_with_id(&id, 1, None).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidId, "len {len}");
            assert_eq!(sessions.get_by_id(&id), None);
            assert!(!sessions.remove_by_id(&id));
            assert_eq!(
                sessions.update_by_id(&id, |_| ()).unwrap_err().kind(),
                ErrorKind::NotFound
            );
        }
        assert!(sessions.is_empty(), "a refusal holds no place");
        for len in [MIN_ID_LEN, MAX_ID_LEN] {
            sessions.insert_with_id(&vec![3u8; len], 1, None).unwrap();
        }
        assert_eq!(sessions.len(), 2);
    }

    /// A taken id gives back the place it reserved: the count stays right
    /// and the store does not fill up with refusals.
    #[test]
    fn a_taken_id_is_refused_and_holds_no_place() {
        let clock = ManualClock::new();
        let sessions = engine(&clock, 2);
        sessions.insert_with_id(&[1; 16], 1, None).unwrap();
        for _ in 0..10 {
            let e = sessions.insert_with_id(&[1; 16], 2, None).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::IdTaken);
        }
        assert_eq!(sessions.len(), 1);
        assert_eq!(
            sessions.get_by_id(&[1; 16]),
            Some(1),
            "the holder is untouched"
        );
        sessions.insert_with_id(&[2; 16], 2, None).unwrap();
        assert_eq!(sessions.len(), 2);
    }

    /// An id whose session expired but was not reaped yet can be taken
    /// again: the old session is retired (counted once) and the new one
    /// starts from its own data.
    #[test]
    fn an_expired_unreaped_id_can_be_taken_again() {
        let clock = ManualClock::new();
        let sessions = engine(&clock, 10);
        let events = sessions.subscribe(16);
        sessions.insert_with_id(&[1; 16], 1, None).unwrap();
        clock.advance(Duration::from_secs(601));
        assert_eq!(sessions.get_by_id(&[1; 16]), None);
        sessions.insert_with_id(&[1; 16], 2, None).unwrap();
        assert_eq!(sessions.get_by_id(&[1; 16]), Some(2));
        assert_eq!(sessions.len(), 1);
        let kinds: Vec<_> = events.try_iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Created,
                EventKind::Expired(ExpiryReason::Idle),
                EventKind::Created
            ]
        );
        assert_eq!(sessions.run_pending(), 0, "nothing left to reap twice");
        assert_eq!(sessions.len(), 1);
    }

    /// The own deadline, the idle and the absolute timeout: the earliest wins.
    #[test]
    fn the_earliest_deadline_wins() {
        let clock = ManualClock::new();
        let sessions = engine(&clock, 10);
        sessions.insert_with_id(&[9; 16], 0, None).unwrap();
        let t0 = sessions.info_by_id(&[9; 16]).unwrap().created;
        let wall = |secs| t0 + Duration::from_secs(secs);
        // Own deadline first.
        sessions.insert_with_id(&[1; 16], 1, None).unwrap();
        sessions.set_expiry_by_id(&[1; 16], Some(wall(30))).unwrap();
        clock.advance(Duration::from_secs(29));
        assert_eq!(sessions.get_by_id(&[1; 16]), Some(1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(sessions.get_by_id(&[1; 16]), None, "own deadline");
        // The idle timeout first, though the own deadline is far (t0 + 30 s).
        sessions
            .insert_with_id(&[2; 16], 2, Some(wall(10_000)))
            .unwrap();
        clock.advance(Duration::from_secs(600));
        assert_eq!(sessions.get_by_id(&[2; 16]), None, "idle timeout");
        // The absolute timeout first (t0 + 630 s + 3600 s), however busy
        // and however far the own deadline.
        sessions
            .insert_with_id(&[3; 16], 3, Some(wall(100_000)))
            .unwrap();
        for _ in 0..11 {
            clock.advance(Duration::from_secs(300));
            assert_eq!(sessions.get_by_id(&[3; 16]), Some(3));
            sessions
                .set_expiry_by_id(&[3; 16], Some(wall(100_000)))
                .unwrap();
        }
        clock.advance(Duration::from_secs(299));
        assert_eq!(sessions.get_by_id(&[3; 16]), Some(3), "t0 + 4229 s");
        clock.advance(Duration::from_secs(1));
        assert_eq!(sessions.get_by_id(&[3; 16]), None, "absolute timeout");
        // A deadline in the past ends the session at once.
        let past = SystemTime::UNIX_EPOCH;
        assert_eq!(
            sessions.insert_with_id(&[4; 16], 4, Some(past)).map(|_| ()),
            Ok(())
        );
        assert_eq!(sessions.get_by_id(&[4; 16]), None);
    }

    /// An own deadline moved earlier is reaped when it passes: memory is
    /// freed, not only lookups refused.
    #[test]
    fn an_earlier_own_deadline_is_reaped() {
        let clock = ManualClock::new();
        let sessions = engine(&clock, 10);
        sessions.insert_with_id(&[1; 16], 1, None).unwrap();
        let soon = sessions.info_by_id(&[1; 16]).unwrap().created + Duration::from_secs(5);
        sessions.set_expiry_by_id(&[1; 16], Some(soon)).unwrap();
        clock.advance(Duration::from_secs(6));
        assert_eq!(sessions.run_pending(), 1);
        assert_eq!(sessions.len(), 0);
        assert_eq!(sessions.map_slots(), 0);
    }

    /// Sessions made with ids count against capacity and are evicted like
    /// any anonymous session.
    #[test]
    fn ids_count_against_capacity() {
        let clock = ManualClock::new();
        let sessions = engine(&clock, 3);
        for i in 0..10u8 {
            sessions
                .insert_with_id(&[i; 16], u32::from(i), None)
                .unwrap();
            clock.advance(Duration::from_millis(10));
        }
        assert_eq!(sessions.len(), 3);
        assert_eq!(sessions.stats().evicted_capacity, 7);
        assert_eq!(sessions.get_by_id(&[9; 16]), Some(9), "the newest stays");
    }
    /// A bound session is in the index, is never evicted for room, obeys
    /// the per-user limit, and ends with "log out everywhere".
    #[test]
    fn a_bound_id_session_is_indexed_kept_at_capacity_and_revocable() {
        let clock = ManualClock::new();
        let sessions: Sessions<u32> = Sessions::builder()
            .clock(clock.clone())
            .max_sessions(4)
            .max_sessions_per_user(2)
            .reaper_interval(None)
            .build()
            .unwrap();
        let alice = "alice".to_string();
        for i in 1..=3u8 {
            sessions.insert_with_id(&[i; 16], 0, None).unwrap();
            sessions.bind_by_id(&[i; 16], Some(alice.clone())).unwrap();
            clock.advance(Duration::from_millis(10));
        }
        assert_eq!(
            sessions.get_by_id(&[1; 16]),
            None,
            "per-user limit: the oldest ended"
        );
        assert_eq!(sessions.sessions_of(&alice).len(), 2);
        assert_eq!(sessions.stats().evicted_per_user, 1);
        // Anonymous floods evict anonymous sessions only.
        for i in 10..20u8 {
            sessions.insert_with_id(&[i; 16], 0, None).unwrap();
        }
        assert_eq!(sessions.len(), 4);
        assert!(sessions.get_by_id(&[2; 16]).is_some() && sessions.get_by_id(&[3; 16]).is_some());
        assert_eq!(sessions.stats().anonymous, 2);
        // Unbound again: evictable again.
        sessions.bind_by_id(&[3; 16], None).unwrap();
        assert_eq!(sessions.sessions_of(&alice).len(), 1);
        assert_eq!(sessions.stats().anonymous, 3);
        assert_eq!(sessions.revoke_user(&alice), 1);
        assert!(sessions.get_by_id(&[2; 16]).is_none());
        assert_eq!(sessions.stats().anonymous, 3, "{:?}", sessions.stats());
        assert_eq!(sessions.len(), 3);
        // Eviction is oldest first within each shard's ring, the shards
        // taken in turn (not one global order): enough creations pass every
        // shard's ring, and the unbound session is evicted with the rest.
        for i in 20..=255u8 {
            sessions.insert_with_id(&[i; 16], 0, None).unwrap();
        }
        assert!(
            sessions.get_by_id(&[3; 16]).is_none(),
            "evicted once anonymous"
        );
        assert_eq!(
            sessions
                .bind_by_id(&[3; 16], Some(alice.clone()))
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
    }

    /// Moving a session to another principal moves it in the index.
    #[test]
    fn binding_another_principal_moves_the_session() {
        let sessions = Sessions::<u32>::new();
        let (alice, bob) = ("alice".to_string(), "bob".to_string());
        sessions.insert_with_id(&[1; 16], 0, None).unwrap();
        sessions.bind_by_id(&[1; 16], Some(alice.clone())).unwrap();
        sessions.bind_by_id(&[1; 16], Some(alice.clone())).unwrap();
        assert_eq!(sessions.sessions_of(&alice).len(), 1, "bound once");
        sessions.bind_by_id(&[1; 16], Some(bob.clone())).unwrap();
        assert!(sessions.sessions_of(&alice).is_empty());
        assert_eq!(sessions.sessions_of(&bob).len(), 1);
        assert_eq!(sessions.revoke_user(&alice), 0);
        assert_eq!(sessions.revoke_user(&bob), 1);
        let s = sessions.stats();
        assert_eq!((s.live, s.anonymous), (0, 0));
    }
}
