//! The reference model: the engine's rules written the naive way.
//!
//! Sessions hold data `u64` and principals `u8`. Tokens are keyed by their
//! text; the caller (the [`super::Harness`]) supplies the tokens and handles
//! the real engine issued, since the model cannot draw the same random
//! numbers.

use std::collections::{HashMap, VecDeque};

use crate::error::ErrorKind;
use crate::events::{Event, EventKind, EvictionReason, ExpiryReason};
use crate::session::Handle;
use crate::stats::Stats;

/// The wheel's tick in ms (the engine's `shard::TICK_MS`, restated).
const TICK_MS: u64 = 1_000;
/// Eviction candidates sampled per attempt (the engine's `EVICT_SAMPLE`).
const EVICT_SAMPLE: usize = 8;
/// The base64url alphabet, in value order.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A session's index in the model.
pub type Sid = usize;

/// Whether `text` is a token's canonical text form, decided without the
/// crate's parser: 43 base64url characters, the last one carrying four data
/// bits and two zero bits (so its value is a multiple of four).
pub fn is_canonical_token_text(text: &[u8]) -> bool {
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c);
    text.len() == 43
        && text.iter().all(|&c| value(c).is_some())
        && value(text[42]).is_some_and(|v| v % 4 == 0)
}

/// The options the model needs (the engine's builder options, in ms).
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Idle timeout.
    pub idle_ms: u64,
    /// Absolute timeout.
    pub absolute_ms: u64,
    /// Capacity.
    pub max_sessions: usize,
    /// Per-principal limit.
    pub max_per_user: Option<usize>,
    /// Rotation grace window.
    pub grace_ms: u64,
}

/// What the model knows of one session.
#[derive(Clone, Debug)]
struct Session {
    handle: Handle,
    data: u64,
    principal: Option<u8>,
    created: u64,
    last_seen: u64,
    issued: u64,
    abs_deadline: u64,
    alive: bool,
    /// Text of the current token (empty until bound).
    token: String,
    /// Tick at which the current token's wheel entry fires.
    wheel_tick: u64,
}

/// What a token text points at.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Live(Sid),
    Grace { sid: Sid, until: u64 },
}

/// A session's metadata in engine milliseconds (as [`crate::SessionInfo`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// Handle.
    pub handle: Handle,
    /// Principal.
    pub principal: Option<u8>,
    /// Creation time.
    pub created: u64,
    /// Last use.
    pub last_seen: u64,
    /// When the current token was issued.
    pub issued: u64,
    /// The earlier deadline.
    pub expires: u64,
    /// The absolute deadline.
    pub absolute_expires: u64,
}

/// Counters the model keeps (the others are derived from the sessions).
#[derive(Clone, Debug, Default)]
struct Counters {
    created: u64,
    expired_idle: u64,
    expired_absolute: u64,
    evicted_capacity: u64,
    evicted_per_user: u64,
    rotated: u64,
    destroyed: u64,
    revoked: u64,
    rejected: u64,
    refused_full: u64,
}

/// The reference model of a one-shard engine.
#[derive(Debug)]
pub struct Model {
    cfg: ModelConfig,
    /// What the clock says.
    clock: u64,
    /// The engine's time: the highest clock reading so far.
    now: u64,
    sessions: Vec<Session>,
    slots: HashMap<String, Slot>,
    ring: VecDeque<String>,
    users: HashMap<u8, Vec<Sid>>,
    counters: Counters,
    events: Vec<Event<u8>>,
    /// The wheel tick the last `run_pending` covered (none yet).
    reaped_tick: Option<u64>,
}

impl Model {
    /// An empty model whose clock reads `clock_ms` (read once, as the
    /// engine's builder does).
    pub fn new(cfg: ModelConfig, clock_ms: u64) -> Self {
        Self {
            cfg,
            clock: clock_ms,
            now: clock_ms,
            sessions: Vec::new(),
            slots: HashMap::new(),
            ring: VecDeque::new(),
            users: HashMap::new(),
            counters: Counters::default(),
            events: Vec::new(),
            reaped_tick: None,
        }
    }

    /// The clock now reads `ms` (the engine sees it at its next read).
    pub fn set_clock(&mut self, ms: u64) {
        self.clock = ms;
    }

    fn read_clock(&mut self) -> u64 {
        self.now = self.now.max(self.clock);
        self.now
    }

    fn deadline(&self, sid: Sid) -> u64 {
        let s = &self.sessions[sid];
        s.last_seen
            .saturating_add(self.cfg.idle_ms)
            .min(s.abs_deadline)
    }

    fn is_live(&self, sid: Sid, now: u64) -> bool {
        self.sessions[sid].alive && now < self.deadline(sid)
    }

    fn emit(&mut self, kind: EventKind, sid: Sid) {
        let s = &self.sessions[sid];
        self.events.push(Event {
            kind,
            handle: s.handle,
            principal: s.principal,
        });
    }

    /// Takes the events emitted since the last call.
    pub fn take_events(&mut self) -> Vec<Event<u8>> {
        std::mem::take(&mut self.events)
    }

    /// Kills a live session and does the bookkeeping (the engine's `retire`).
    fn kill(&mut self, sid: Sid, kind: EventKind) {
        debug_assert!(self.sessions[sid].alive, "killed twice");
        self.sessions[sid].alive = false;
        if let Some(p) = self.sessions[sid].principal
            && let Some(list) = self.users.get_mut(&p)
        {
            list.retain(|&m| m != sid);
            if list.is_empty() {
                self.users.remove(&p);
            }
        }
        let c = &mut self.counters;
        *match kind {
            EventKind::Expired(ExpiryReason::Idle) => &mut c.expired_idle,
            EventKind::Expired(ExpiryReason::Absolute) => &mut c.expired_absolute,
            EventKind::Evicted(EvictionReason::Capacity) => &mut c.evicted_capacity,
            EventKind::Evicted(EvictionReason::PerUser) => &mut c.evicted_per_user,
            EventKind::Revoked => &mut c.revoked,
            _ => &mut c.destroyed,
        } += 1;
        self.emit(kind, sid);
    }

    /// Resolves a presented token as a lookup does: `None` (and one more
    /// rejected lookup) unless it names a live session; a hit is a use.
    fn find(&mut self, presented: &[u8]) -> Option<Sid> {
        if !is_canonical_token_text(presented) {
            self.counters.rejected += 1;
            return None;
        }
        // The engine reads its clock on every well-formed lookup.
        let now = self.read_clock();
        let text = std::str::from_utf8(presented).unwrap_or_default();
        let hit = match self.slots.get(text) {
            Some(&Slot::Live(sid)) => self.is_live(sid, now).then_some(sid),
            Some(&Slot::Grace { sid, until }) => {
                (now < until && self.is_live(sid, now)).then_some(sid)
            }
            None => None,
        };
        match hit {
            Some(sid) => {
                let s = &mut self.sessions[sid];
                s.last_seen = s.last_seen.max(now);
                Some(sid)
            }
            None => {
                self.counters.rejected += 1;
                None
            }
        }
    }

    /// [`crate::Sessions::validate`].
    pub fn validate(&mut self, presented: &[u8]) -> Option<Handle> {
        self.find(presented).map(|sid| self.sessions[sid].handle)
    }

    /// [`crate::Sessions::get`].
    pub fn get(&mut self, presented: &[u8]) -> Option<u64> {
        self.find(presented).map(|sid| self.sessions[sid].data)
    }

    /// [`crate::Sessions::info`].
    pub fn info(&mut self, presented: &[u8]) -> Option<ModelInfo> {
        self.find(presented).map(|sid| self.info_of(sid))
    }

    fn info_of(&self, sid: Sid) -> ModelInfo {
        let s = &self.sessions[sid];
        ModelInfo {
            handle: s.handle,
            principal: s.principal,
            created: s.created,
            last_seen: s.last_seen,
            issued: s.issued,
            expires: self.deadline(sid),
            absolute_expires: s.abs_deadline,
        }
    }

    /// [`crate::Sessions::update`] with `f`; returns what `f` returned.
    pub fn update(
        &mut self,
        presented: &[u8],
        f: impl FnOnce(&mut u64) -> u64,
    ) -> Result<u64, ErrorKind> {
        match self.find(presented) {
            Some(sid) => Ok(f(&mut self.sessions[sid].data)),
            None => Err(ErrorKind::NotFound),
        }
    }

    /// The first half of [`crate::Sessions::create`]: makes room (or refuses)
    /// and adds the session. [`Model::bind_created`] gives it the token and
    /// handle the engine issued.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Full`] when the engine must refuse.
    pub fn create(&mut self, data: u64) -> Result<Sid, ErrorKind> {
        if self.len() >= self.cfg.max_sessions {
            // Full: reclaim what expired (once per wheel tick), then evict.
            let tick = self.read_clock() / TICK_MS;
            let reclaimed = self.reaped_tick.is_none_or(|r| r < tick) && self.run_pending() > 0;
            if !reclaimed && !self.evict_one() {
                self.counters.refused_full += 1;
                return Err(ErrorKind::Full);
            }
        }
        let now = self.read_clock();
        self.sessions.push(Session {
            handle: Handle::from_u64(0),
            data,
            principal: None,
            created: now,
            last_seen: now,
            issued: now,
            abs_deadline: now.saturating_add(self.cfg.absolute_ms),
            alive: true,
            token: String::new(),
            wheel_tick: 0,
        });
        self.counters.created += 1;
        Ok(self.sessions.len() - 1)
    }

    /// Completes [`Model::create`] with the engine's token and handle.
    pub fn bind_created(&mut self, sid: Sid, token: &str, handle: Handle) {
        self.sessions[sid].handle = handle;
        self.bind(sid, token);
        self.emit(EventKind::Created, sid);
    }

    /// Points `token` at `sid` as its live token: schedules it, and queues it
    /// for eviction while the session is anonymous.
    fn bind(&mut self, sid: Sid, token: &str) {
        let tick = self.deadline(sid).div_ceil(TICK_MS);
        let s = &mut self.sessions[sid];
        s.token = token.to_owned();
        s.wheel_tick = tick;
        let anonymous = s.principal.is_none();
        self.slots.insert(token.to_owned(), Slot::Live(sid));
        if anonymous {
            self.ring.push_back(token.to_owned());
        }
    }

    /// Evicts one anonymous session the way a one-shard engine does: sample
    /// the ring's front, drop stale keys, end the least recently seen (the
    /// first of equals), put the other candidates back at the end.
    fn evict_one(&mut self) -> bool {
        if self.anonymous() == 0 {
            return false;
        }
        loop {
            let k = EVICT_SAMPLE.min(self.ring.len());
            if k == 0 {
                return false;
            }
            let sample: Vec<String> = self.ring.drain(..k).collect();
            let candidates: Vec<(String, Sid)> = sample
                .into_iter()
                .filter_map(|t| match self.slots.get(&t) {
                    Some(&Slot::Live(sid))
                        if self.sessions[sid].alive && self.sessions[sid].principal.is_none() =>
                    {
                        Some((t, sid))
                    }
                    _ => None,
                })
                .collect();
            let Some(victim) = candidates
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, sid))| self.sessions[*sid].last_seen)
                .map(|(i, _)| i)
            else {
                continue;
            };
            let sid = candidates[victim].1;
            for (i, (t, _)) in candidates.into_iter().enumerate() {
                if i != victim {
                    self.ring.push_back(t);
                }
            }
            self.kill(sid, EventKind::Evicted(EvictionReason::Capacity));
            return true;
        }
    }

    /// [`crate::Sessions::rotate`] (`login` `None`) or
    /// [`crate::Sessions::login`], up to the new token: moves the principal,
    /// retires the presented token (or gives it a grace window), applies the
    /// per-user limit. [`Model::bind_rotated`] gives the new token.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] unless the token is a live session's current one.
    pub fn rotate(&mut self, presented: &[u8], login: Option<u8>) -> Result<Sid, ErrorKind> {
        if !is_canonical_token_text(presented) {
            self.counters.rejected += 1;
            return Err(ErrorKind::NotFound);
        }
        let now = self.read_clock();
        let text = std::str::from_utf8(presented).unwrap_or_default();
        let sid = match self.slots.get(text) {
            Some(&Slot::Live(sid)) if self.is_live(sid, now) => sid,
            _ => {
                self.counters.rejected += 1;
                return Err(ErrorKind::NotFound);
            }
        };
        let is_login = login.is_some();
        let mut victims = Vec::new();
        if let Some(p) = login {
            match self.sessions[sid].principal {
                Some(q) if q == p => {}
                old => {
                    if let Some(q) = old
                        && let Some(list) = self.users.get_mut(&q)
                    {
                        list.retain(|&m| m != sid);
                        if list.is_empty() {
                            self.users.remove(&q);
                        }
                    }
                    if old.is_some() {
                        // A new principal starts from fresh data.
                        self.sessions[sid].data = 0;
                    }
                    let mut list = self.users.remove(&p).unwrap_or_default();
                    list.push(sid);
                    // Beyond the limit, the earliest-bound live sessions
                    // go; the new one (last) never does.
                    if let Some(limit) = self.cfg.max_per_user {
                        let live = list.iter().filter(|&&m| self.is_live(m, now)).count();
                        let mut excess = live.saturating_sub(limit);
                        let mut i = 0;
                        while excess > 0 && i + 1 < list.len() {
                            if self.is_live(list[i], now) {
                                victims.push(list.remove(i));
                                excess -= 1;
                            } else {
                                i += 1;
                            }
                        }
                    }
                    self.users.insert(p, list);
                }
            }
            let s = &mut self.sessions[sid];
            s.principal = Some(p);
            s.abs_deadline = now.saturating_add(self.cfg.absolute_ms);
        }
        let s = &mut self.sessions[sid];
        s.issued = now;
        s.last_seen = s.last_seen.max(now);
        // At most one grace alias per session: the previous one ends.
        self.slots
            .retain(|_, slot| !matches!(slot, Slot::Grace { sid: g, .. } if *g == sid));
        if self.cfg.grace_ms > 0 && !is_login {
            let until = now.saturating_add(self.cfg.grace_ms);
            self.slots
                .insert(text.to_owned(), Slot::Grace { sid, until });
        } else {
            // Login leaves no alias: the pre-login token never carries
            // the principal.
            self.slots.remove(text);
        }
        self.counters.rotated += 1;
        let kind = if is_login {
            EventKind::LoggedIn
        } else {
            EventKind::Rotated
        };
        self.emit(kind, sid);
        for m in victims {
            self.kill(m, EventKind::Evicted(EvictionReason::PerUser));
        }
        Ok(sid)
    }

    /// Completes [`Model::rotate`] with the engine's new token.
    pub fn bind_rotated(&mut self, sid: Sid, token: &str) {
        self.bind(sid, token);
    }

    /// [`crate::Sessions::logout`].
    pub fn logout(&mut self, presented: &[u8]) -> bool {
        if !is_canonical_token_text(presented) {
            return false;
        }
        match self.find(presented) {
            Some(sid) => {
                self.kill(sid, EventKind::Destroyed);
                true
            }
            None => false,
        }
    }

    /// [`crate::Sessions::revoke_user`].
    pub fn revoke_user(&mut self, p: u8) -> usize {
        let now = self.read_clock();
        let members = self.users.remove(&p).unwrap_or_default();
        members
            .into_iter()
            .filter(|&sid| self.revoke_one(sid, now))
            .count()
    }

    /// Ends a member being revoked: one past a deadline at `now` ends as
    /// expired (with the reaper's reason) and is not counted.
    fn revoke_one(&mut self, sid: Sid, now: u64) -> bool {
        if !self.sessions[sid].alive {
            return false;
        }
        if now < self.deadline(sid) {
            self.kill(sid, EventKind::Revoked);
            return true;
        }
        let idle_at = self.sessions[sid]
            .last_seen
            .saturating_add(self.cfg.idle_ms);
        let reason = if self.sessions[sid].abs_deadline <= idle_at {
            ExpiryReason::Absolute
        } else {
            ExpiryReason::Idle
        };
        self.kill(sid, EventKind::Expired(reason));
        false
    }

    /// [`crate::Sessions::revoke`].
    pub fn revoke(&mut self, p: u8, handle: Handle) -> bool {
        let found = self
            .users
            .get(&p)
            .and_then(|list| list.iter().find(|&&m| self.sessions[m].handle == handle))
            .copied();
        let now = self.read_clock();
        found.is_some_and(|sid| self.revoke_one(sid, now))
    }

    /// [`crate::Sessions::sessions_of`].
    pub fn sessions_of(&mut self, p: u8) -> Vec<ModelInfo> {
        let now = self.read_clock();
        let mut members = self.users.get(&p).cloned().unwrap_or_default();
        members.retain(|&m| self.is_live(m, now));
        members.sort_by_key(|&m| self.sessions[m].created);
        members.into_iter().map(|m| self.info_of(m)).collect()
    }

    /// [`crate::Sessions::run_pending`]: every live session whose wheel entry
    /// is due either expires (its deadline has passed) or is re-scheduled at
    /// its current deadline.
    pub fn run_pending(&mut self) -> usize {
        let now = self.read_clock();
        let tick = now / TICK_MS;
        self.reaped_tick = Some(self.reaped_tick.map_or(tick, |r| r.max(tick)));
        let mut expired = 0;
        for sid in 0..self.sessions.len() {
            if !self.sessions[sid].alive || self.sessions[sid].wheel_tick > tick {
                continue;
            }
            let idle_at = self.sessions[sid]
                .last_seen
                .saturating_add(self.cfg.idle_ms);
            let abs_at = self.sessions[sid].abs_deadline;
            let at = idle_at.min(abs_at);
            if now >= at {
                let reason = if abs_at <= idle_at {
                    ExpiryReason::Absolute
                } else {
                    ExpiryReason::Idle
                };
                self.kill(sid, EventKind::Expired(reason));
                expired += 1;
            } else {
                self.sessions[sid].wheel_tick = at.div_ceil(TICK_MS);
            }
        }
        expired
    }

    /// [`crate::Sessions::len`]: sessions not yet ended (expired ones count
    /// until reaped).
    pub fn len(&self) -> usize {
        self.sessions.iter().filter(|s| s.alive).count()
    }

    /// True when [`Model::len`] is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn anonymous(&self) -> usize {
        self.sessions
            .iter()
            .filter(|s| s.alive && s.principal.is_none())
            .count()
    }

    /// [`crate::Sessions::stats`], with no subscriber ever falling behind.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            live: self.len() as u64,
            anonymous: self.anonymous() as u64,
            created: c.created,
            expired_idle: c.expired_idle,
            expired_absolute: c.expired_absolute,
            evicted_capacity: c.evicted_capacity,
            evicted_per_user: c.evicted_per_user,
            rotated: c.rotated,
            destroyed: c.destroyed,
            revoked: c.revoked,
            rejected: c.rejected,
            refused_full: c.refused_full,
            events_dropped: 0,
        }
    }

    /// Instants after the clock's reading when something is due: idle and
    /// absolute deadlines, wheel ticks, grace window ends. Sorted, no
    /// duplicates. Jumping the clock to one (or 1 ms short of it) tests the
    /// boundaries.
    pub fn upcoming(&self) -> Vec<u64> {
        let mut at: Vec<u64> = self
            .sessions
            .iter()
            .filter(|s| s.alive)
            .flat_map(|s| {
                [
                    s.last_seen.saturating_add(self.cfg.idle_ms),
                    s.abs_deadline,
                    s.wheel_tick.saturating_mul(TICK_MS),
                ]
            })
            .chain(self.slots.values().filter_map(|slot| match slot {
                Slot::Grace { until, .. } => Some(*until),
                Slot::Live(_) => None,
            }))
            .filter(|&t| t > self.clock)
            .collect();
        at.sort_unstable();
        at.dedup();
        at
    }

    /// The handle of session `sid`.
    pub fn handle(&self, sid: Sid) -> Handle {
        self.sessions[sid].handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_token_check_agrees_on_samples() {
        let t = crate::SessionToken::generate();
        assert!(is_canonical_token_text(t.as_str().as_bytes()));
        assert!(!is_canonical_token_text(&t.as_str().as_bytes()[..42]));
        let mut bad = t.as_str().as_bytes().to_vec();
        bad[42] = b'B';
        assert!(!is_canonical_token_text(&bad));
        bad[42] = b'E';
        assert!(is_canonical_token_text(&bad));
    }
}
