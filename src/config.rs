//! The builder: every option validated, every failure naming its option.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::engine::Sessions;
use crate::key::SecretKey;
use crate::{Principal, wheel};

/// Default idle timeout: 30 minutes, NIST SP 800-63B's inactivity limit at
/// AAL2 and the top of OWASP's "15–30 minutes for low-risk applications".
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default absolute timeout: 12 hours, NIST SP 800-63B's re-authentication
/// limit at AAL2 ("at least once per 12 hours").
pub const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// Default capacity: one million live sessions.
pub const DEFAULT_MAX_SESSIONS: usize = 1_000_000;
/// Default per-principal limit: 100 live sessions, or a tenth of
/// [`Builder::max_sessions`] if that is fewer (at least one).
///
/// A person needs a handful (a phone, a laptop, a few browsers); a hundred
/// leaves room for API clients. The point is that one account — a shared
/// login, a script, an attacker with one password — cannot fill the store
/// with sessions that are never evicted and lock every new visitor out: it
/// takes at least ten accounts to fill a store (10,000 at the default
/// capacity of one million). OWASP's session management
/// cheat sheet leaves the number to the application; NIST SP 800-63B sets
/// none. Raise it with [`Builder::max_sessions_per_user`], or lift it with
/// [`Builder::unlimited_sessions_per_user`].
pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 100;
/// Longest rotation grace window the builder accepts. The window exists only
/// for requests already in flight when the token changed.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(60);
/// Shortest timeout: the wheel's one-second tick.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest timeout: ten years; deadlines are milliseconds in a `u64`, with
/// room to spare for saturating arithmetic.
const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const MAX_SHARDS: usize = 1 << 12;

/// The option a [`BuildError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BuildOption {
    /// [`Builder::idle_timeout`]
    IdleTimeout,
    /// [`Builder::absolute_timeout`]
    AbsoluteTimeout,
    /// [`Builder::max_sessions`]
    MaxSessions,
    /// [`Builder::max_sessions_per_user`]
    MaxSessionsPerUser,
    /// [`Builder::shards`]
    Shards,
    /// [`Builder::secret_key`]
    SecretKey,
    /// [`Builder::rotation_grace`]
    RotationGrace,
    /// [`Builder::reaper_interval`]
    ReaperInterval,
}

impl fmt::Display for BuildOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IdleTimeout => "idle_timeout",
            Self::AbsoluteTimeout => "absolute_timeout",
            Self::MaxSessions => "max_sessions",
            Self::MaxSessionsPerUser => "max_sessions_per_user",
            Self::Shards => "shards",
            Self::SecretKey => "secret_key",
            Self::RotationGrace => "rotation_grace",
            Self::ReaperInterval => "reaper_interval",
        })
    }
}

/// [`Builder::build`] refused an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildError {
    option: BuildOption,
    expected: &'static str,
}

impl BuildError {
    const fn new(option: BuildOption, expected: &'static str) -> Self {
        Self { option, expected }
    }

    /// The option that was refused.
    pub fn option(&self) -> BuildOption {
        self.option
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: expected {}", self.option, self.expected)
    }
}

impl std::error::Error for BuildError {}

/// Validated configuration, shared by the engine's parts.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) idle_ms: u64,
    pub(crate) absolute_ms: u64,
    pub(crate) max_sessions: usize,
    pub(crate) max_per_user: Option<usize>,
    pub(crate) shards: usize,
    pub(crate) grace_ms: u64,
    pub(crate) reaper_interval: Option<Duration>,
}

/// The per-principal limit as set on the builder.
#[derive(Clone, Copy, Debug)]
enum PerUser {
    /// [`DEFAULT_MAX_SESSIONS_PER_USER`], capped at a tenth of capacity.
    Default,
    Limit(usize),
    Unlimited,
}

/// Builds a [`Sessions`] engine. Start from [`Sessions::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sesame::{BuildOption, Sessions};
///
/// let sessions = Sessions::<u32>::builder()
///     .idle_timeout(Duration::from_secs(15 * 60))
///     .max_sessions(10_000)
///     .build()?;
/// assert!(sessions.is_empty());
///
/// let err = Sessions::<u32>::builder().shards(3).build().unwrap_err();
/// assert_eq!(err.option(), BuildOption::Shards);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct Builder<T, P = String> {
    idle: Duration,
    absolute: Duration,
    max_sessions: usize,
    max_per_user: PerUser,
    shards: Option<usize>,
    clock: Option<Arc<dyn Clock>>,
    secret: Option<SecretKey>,
    grace: Duration,
    reaper_interval: Option<Duration>,
    _types: PhantomData<fn() -> (T, P)>,
}

impl<T, P> fmt::Debug for Builder<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("idle", &self.idle)
            .field("absolute", &self.absolute)
            .field("max_sessions", &self.max_sessions)
            .field("max_per_user", &self.max_per_user)
            .field("shards", &self.shards)
            .field("secret", &self.secret.as_ref().map(|_| ".."))
            .field("grace", &self.grace)
            .field("reaper_interval", &self.reaper_interval)
            .finish_non_exhaustive()
    }
}

impl<T, P> Default for Builder<T, P> {
    fn default() -> Self {
        Self {
            idle: DEFAULT_IDLE_TIMEOUT,
            absolute: DEFAULT_ABSOLUTE_TIMEOUT,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_per_user: PerUser::Default,
            shards: None,
            clock: None,
            secret: None,
            grace: Duration::ZERO,
            reaper_interval: Some(Duration::from_secs(1)),
            _types: PhantomData,
        }
    }
}

impl<T, P> Builder<T, P>
where
    T: Send + 'static,
    P: Principal,
{
    /// How long a session may go unused. Default 30 minutes
    /// ([`DEFAULT_IDLE_TIMEOUT`]). Each successful lookup restarts it.
    /// At least 1 s, at most the absolute timeout.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// How long a session may live however busy it is, counted from creation
    /// and restarted by [`Sessions::login`] (re-authentication). Default 12
    /// hours ([`DEFAULT_ABSOLUTE_TIMEOUT`]).
    pub fn absolute_timeout(mut self, absolute: Duration) -> Self {
        self.absolute = absolute;
        self
    }

    /// The most live sessions the engine holds. Default one million. When
    /// full, creating a session first reclaims expired sessions (the reaper
    /// may not have run yet), then evicts an anonymous one (least recently
    /// seen, approximately); if there is none, creation fails with
    /// [`crate::ErrorKind::Full`]. Logged-in sessions are never evicted for
    /// room.
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    /// The most live sessions one principal may hold; a login beyond it ends
    /// the principal's session that logged in longest ago. Default:
    /// [`DEFAULT_MAX_SESSIONS_PER_USER`] (100, or a tenth of
    /// `max_sessions` if that is fewer), so that one account cannot fill the
    /// store. At most `max_sessions`.
    pub fn max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_per_user = PerUser::Limit(max);
        self
    }

    /// Lifts the per-principal limit.
    ///
    /// # Warning
    ///
    /// Logged-in sessions are never evicted for room, so without a limit
    /// one account logging in again and again (a script, or an attacker with
    /// one password) fills the store, and every new visitor's `create` then
    /// fails with [`crate::ErrorKind::Full`] until those sessions expire.
    pub fn unlimited_sessions_per_user(mut self) -> Self {
        self.max_per_user = PerUser::Unlimited;
        self
    }

    /// Number of shards (a power of two, 1 to 4096). Default: 16 per core,
    /// rounded up to a power of two, at least 64.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The clock all expiry reads. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The secret key of the token digests. Default: a fresh random key, so
    /// no token outlives the engine. Give one to restore snapshots or to share
    /// sessions between servers.
    pub fn secret_key(mut self, key: SecretKey) -> Self {
        self.secret = Some(key);
        self
    }

    /// How long a token replaced by a plain rotation ([`Sessions::rotate`],
    /// the layer's `renew_after`) keeps working, for requests already in
    /// flight. Default zero: the old token fails at once. At most
    /// [`MAX_ROTATION_GRACE`].
    ///
    /// A login never leaves a usable alias, whatever this window: the
    /// pre-login token is the one an attacker may have planted (session
    /// fixation). A session has at most one alias; it is reaped when its
    /// window ends.
    ///
    /// # Warning
    ///
    /// During the window a stolen pre-rotation token still works. Keep it
    /// to the few seconds concurrent requests need, or leave it at zero.
    pub fn rotation_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Runs a background reaper thread every `interval` (default 1 s), or
    /// none with `None` (then call [`Sessions::run_pending`] yourself). The
    /// thread stops when the engine is dropped.
    pub fn reaper_interval(mut self, interval: Option<Duration>) -> Self {
        self.reaper_interval = interval;
        self
    }

    /// Validates the options and builds the engine.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the first option out of range.
    pub fn build(self) -> Result<Sessions<T, P>, BuildError> {
        use BuildOption as O;
        if self.idle < MIN_TIMEOUT || self.idle > MAX_TIMEOUT {
            return Err(BuildError::new(O::IdleTimeout, "between 1 s and 10 years"));
        }
        if self.absolute < MIN_TIMEOUT || self.absolute > MAX_TIMEOUT {
            return Err(BuildError::new(
                O::AbsoluteTimeout,
                "between 1 s and 10 years",
            ));
        }
        if self.idle > self.absolute {
            return Err(BuildError::new(
                O::IdleTimeout,
                "at most the absolute timeout",
            ));
        }
        if self.max_sessions == 0 || self.max_sessions > (u32::MAX as usize) {
            return Err(BuildError::new(O::MaxSessions, "between 1 and 2^32 - 1"));
        }
        let max_per_user = match self.max_per_user {
            PerUser::Limit(n) if n == 0 || n > self.max_sessions => {
                return Err(BuildError::new(
                    O::MaxSessionsPerUser,
                    "between 1 and max_sessions",
                ));
            }
            PerUser::Limit(n) => Some(n),
            PerUser::Default => {
                Some(DEFAULT_MAX_SESSIONS_PER_USER.min((self.max_sessions / 10).max(1)))
            }
            PerUser::Unlimited => None,
        };
        let shards = match self.shards {
            Some(n) if n == 0 || n > MAX_SHARDS || !n.is_power_of_two() => {
                return Err(BuildError::new(O::Shards, "a power of two from 1 to 4096"));
            }
            Some(n) => n,
            None => {
                let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
                (cores * 16).next_power_of_two().clamp(64, MAX_SHARDS)
            }
        };
        if self.grace > MAX_ROTATION_GRACE || self.grace >= self.idle {
            return Err(BuildError::new(
                O::RotationGrace,
                "at most 60 s and shorter than the idle timeout",
            ));
        }
        if let Some(i) = self.reaper_interval
            && (i.is_zero() || i > Duration::from_secs(3600))
        {
            return Err(BuildError::new(
                O::ReaperInterval,
                "between 1 ms and 1 hour, or None",
            ));
        }
        if let Some(key) = &self.secret
            && key.as_bytes().iter().all(|&b| b == 0)
        {
            return Err(BuildError::new(O::SecretKey, "a random key, not all zeros"));
        }
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock::new()));
        let config = Config {
            idle_ms: crate::clock::duration_millis(self.idle),
            absolute_ms: crate::clock::duration_millis(self.absolute),
            max_sessions: self.max_sessions,
            max_per_user,
            shards,
            grace_ms: crate::clock::duration_millis(self.grace),
            reaper_interval: self.reaper_interval,
        };
        debug_assert!(config.absolute_ms / 1000 < wheel::MAX_TICKS * 1000);
        Ok(Sessions::from_parts(
            config,
            clock,
            self.secret.unwrap_or_else(SecretKey::generate),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(b: Builder<(), String>) -> BuildOption {
        b.build().unwrap_err().option()
    }

    #[test]
    fn each_bad_option_is_named() {
        let b = Builder::<(), String>::default;
        assert_eq!(
            err(b().idle_timeout(Duration::ZERO)),
            BuildOption::IdleTimeout
        );
        assert_eq!(
            err(b().absolute_timeout(Duration::from_millis(10))),
            BuildOption::AbsoluteTimeout
        );
        assert_eq!(
            err(b()
                .idle_timeout(Duration::from_secs(100))
                .absolute_timeout(Duration::from_secs(10))),
            BuildOption::IdleTimeout
        );
        assert_eq!(err(b().max_sessions(0)), BuildOption::MaxSessions);
        assert_eq!(
            err(b().max_sessions(10).max_sessions_per_user(11)),
            BuildOption::MaxSessionsPerUser
        );
        assert_eq!(err(b().shards(0)), BuildOption::Shards);
        assert_eq!(err(b().shards(48)), BuildOption::Shards);
        assert_eq!(
            err(b().rotation_grace(Duration::from_secs(61))),
            BuildOption::RotationGrace
        );
        assert_eq!(
            err(b().reaper_interval(Some(Duration::ZERO))),
            BuildOption::ReaperInterval
        );
        assert_eq!(
            err(b().secret_key(SecretKey::from_bytes([0; 32]))),
            BuildOption::SecretKey
        );
    }

    #[test]
    fn error_message_names_option() {
        let e = Builder::<(), String>::default()
            .shards(3)
            .build()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid shards: expected a power of two from 1 to 4096"
        );
    }

    #[test]
    fn debug_hides_secret() {
        let b = Builder::<(), String>::default().secret_key(SecretKey::from_bytes([0xAB; 32]));
        let dbg = format!("{b:?}");
        assert!(!dbg.contains("171") && !dbg.to_lowercase().contains("ab, "));
    }
}
