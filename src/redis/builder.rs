//! The builder of [`RedisSessions`]: every option validated, every failure
//! naming its option.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use redis::IntoConnectionInfo as _;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};

use super::RedisSessions;
use super::conn::Acks;
use super::target::Target;
use crate::Principal;
use crate::clock::{Clock, SystemClock};
use crate::config::{
    DEFAULT_ABSOLUTE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_SESSIONS,
    DEFAULT_MAX_SESSIONS_PER_USER, MAX_ROTATION_GRACE,
};
use crate::key::SecretKey;

/// Default near-cache capacity: sessions this server keeps copies of.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;
/// Default near-cache time-to-live: the longest a copy is served without
/// reading Redis again. Invalidations drop copies within milliseconds; this
/// bounds the damage of one that is lost without the connection noticing.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default near-cache time-to-live when Redis refuses keyspace
/// notifications (`CONFIG SET notify-keyspace-events` denied, as on many
/// managed services): a session removed in Redis behind sesame's back
/// (`DEL`, eviction) is then served from a copy for at most this long.
pub const DEFAULT_FALLBACK_CACHE_TTL: Duration = Duration::from_secs(1);
/// Default key prefix in Redis.
pub const DEFAULT_PREFIX: &str = "sesame";
/// Default wait for a replica's acknowledgement of a write behind Sentinel
/// or on a Redis Cluster (see [`RedisBuilder::replica_acks`]).
pub const DEFAULT_SENTINEL_ACK_TIMEOUT: Duration = Duration::from_millis(500);
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default read/write timeout of a Redis command.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(1);

const MIN_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const MAX_NET_TIMEOUT: Duration = Duration::from_secs(60);

/// The sentinels to ask for the primary.
struct SentinelSpec {
    sentinels: Vec<String>,
    service: String,
    node_url: Option<String>,
}

/// The per-user limit as chosen.
#[derive(Clone, Copy, Debug)]
enum PerUser {
    Default,
    Limit(usize),
    Unlimited,
}

/// The option a [`RedisBuildError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RedisOption {
    /// The Redis URL given to [`RedisSessions::builder`].
    Url,
    /// [`RedisBuilder::secret_key`]
    SecretKey,
    /// [`RedisBuilder::idle_timeout`]
    IdleTimeout,
    /// [`RedisBuilder::absolute_timeout`]
    AbsoluteTimeout,
    /// [`RedisBuilder::cache_capacity`]
    CacheCapacity,
    /// [`RedisBuilder::cache_ttl`]
    CacheTtl,
    /// [`RedisBuilder::fallback_cache_ttl`]
    FallbackCacheTtl,
    /// [`RedisBuilder::runtime`]: no tokio runtime to run the invalidation
    /// subscriber on.
    Runtime,
    /// [`RedisBuilder::key_prefix`]
    KeyPrefix,
    /// [`RedisBuilder::connect_timeout`]
    ConnectTimeout,
    /// [`RedisBuilder::io_timeout`]
    IoTimeout,
    /// The sentinel addresses or service name given to
    /// [`RedisSessions::sentinel_builder`], or
    /// [`RedisBuilder::sentinel_node_url`].
    Sentinel,
    /// [`RedisBuilder::replica_acks`]
    ReplicaAcks,
    /// [`RedisBuilder::rotation_grace`]
    RotationGrace,
    /// [`RedisBuilder::max_sessions_per_user`]
    MaxSessionsPerUser,
    /// [`RedisBuilder::max_sessions`]
    MaxSessions,
    /// The node URLs given to [`RedisSessions::cluster_builder`].
    Cluster,
}

impl fmt::Display for RedisOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Url => "url",
            Self::SecretKey => "secret_key",
            Self::IdleTimeout => "idle_timeout",
            Self::AbsoluteTimeout => "absolute_timeout",
            Self::CacheCapacity => "cache_capacity",
            Self::CacheTtl => "cache_ttl",
            Self::FallbackCacheTtl => "fallback_cache_ttl",
            Self::Runtime => "runtime",
            Self::KeyPrefix => "key_prefix",
            Self::ConnectTimeout => "connect_timeout",
            Self::IoTimeout => "io_timeout",
            Self::Sentinel => "sentinel",
            Self::ReplicaAcks => "replica_acks",
            Self::RotationGrace => "rotation_grace",
            Self::MaxSessionsPerUser => "max_sessions_per_user",
            Self::MaxSessions => "max_sessions",
            Self::Cluster => "cluster",
        })
    }
}

/// [`RedisBuilder::build`] refused an option. It never echoes the URL
/// (which may hold a password) or the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisBuildError {
    option: RedisOption,
    expected: &'static str,
}

impl RedisBuildError {
    const fn new(option: RedisOption, expected: &'static str) -> Self {
        Self { option, expected }
    }

    /// The option that was refused.
    pub fn option(&self) -> RedisOption {
        self.option
    }
}

impl fmt::Display for RedisBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: expected {}", self.option, self.expected)
    }
}

impl std::error::Error for RedisBuildError {}

/// Builds a [`RedisSessions`]. Start from [`RedisSessions::builder`].
///
/// Building does not connect: a Redis that is down at start-up gives
/// [`crate::ErrorKind::Unavailable`] until it comes up, then service starts
/// by itself.
///
/// **Runtime:** the store spawns its invalidation subscriber as a tokio
/// task. Call [`RedisBuilder::build`] inside a tokio runtime (the common
/// case: in `main` under `#[tokio::main]`), or hand it one with
/// [`RedisBuilder::runtime`]. The store's methods are `async` and run on
/// whatever runtime awaits them.
///
/// ```
/// use std::time::Duration;
/// use sesame::SecretKey;
/// use sesame::redis::{RedisOption, RedisSessions};
///
/// let err = RedisSessions::<u32>::builder("redis://127.0.0.1:1/")
///     .build()
///     .unwrap_err();
/// assert_eq!(err.option(), RedisOption::SecretKey); // all servers must share one
///
/// let err = RedisSessions::<u32>::builder("redis://127.0.0.1:1/")
///     .secret_key(SecretKey::generate())
///     .build()
///     .unwrap_err();
/// assert_eq!(err.option(), RedisOption::Runtime); // not inside a runtime
///
/// let rt = tokio::runtime::Runtime::new()?;
/// let sessions = RedisSessions::<u32>::builder("redis://127.0.0.1:1/")
///     .secret_key(SecretKey::generate())
///     .idle_timeout(Duration::from_secs(15 * 60))
///     .runtime(rt.handle().clone())
///     .build()?;
/// # drop(sessions);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct RedisBuilder<T, P = String> {
    url: String,
    sentinel: Option<SentinelSpec>,
    /// The seed nodes of a Redis Cluster.
    cluster: Option<Vec<String>>,
    /// `sentinel_node_url` without a Sentinel builder (refused by `build`).
    url_misuse: bool,
    /// `None`: the default (one replica behind Sentinel, none otherwise).
    acks: Option<(u32, Duration)>,
    secret: Option<SecretKey>,
    idle: Duration,
    absolute: Duration,
    grace: Duration,
    per_user: PerUser,
    max_sessions: usize,
    cache_capacity: usize,
    cache_ttl: Duration,
    fallback_cache_ttl: Duration,
    runtime: Option<tokio::runtime::Handle>,
    clock: Option<Arc<dyn Clock>>,
    prefix: String,
    connect_timeout: Duration,
    io_timeout: Duration,
    _types: PhantomData<fn() -> (T, P)>,
}

impl<T, P> fmt::Debug for RedisBuilder<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBuilder")
            .field("secret", &self.secret.as_ref().map(|_| ".."))
            .field("idle", &self.idle)
            .field("absolute", &self.absolute)
            .field("grace", &self.grace)
            .field("per_user", &self.per_user)
            .field("max_sessions", &self.max_sessions)
            .field("cache_capacity", &self.cache_capacity)
            .field("cache_ttl", &self.cache_ttl)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl<T, P> RedisBuilder<T, P>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    P: Principal + Serialize + DeserializeOwned,
{
    pub(crate) fn sentinel(sentinels: &[&str], service: &str) -> Self {
        let mut builder = Self::new("");
        builder.sentinel = Some(SentinelSpec {
            sentinels: sentinels.iter().map(|s| (*s).to_owned()).collect(),
            service: service.to_owned(),
            node_url: None,
        });
        builder
    }

    pub(crate) fn cluster(nodes: &[&str]) -> Self {
        let mut builder = Self::new("");
        builder.cluster = Some(nodes.iter().map(|s| (*s).to_owned()).collect());
        builder
    }

    pub(crate) fn new(url: &str) -> Self {
        // `redis+cluster://seed[,seed...]`: a Redis Cluster.
        let cluster = url.starts_with("redis+cluster://").then(|| {
            url.split(',')
                .map(|u| u.trim().replacen("redis+cluster://", "redis://", 1))
                .collect()
        });
        Self {
            url: url.to_owned(),
            sentinel: None,
            cluster,
            url_misuse: false,
            acks: None,
            secret: None,
            idle: DEFAULT_IDLE_TIMEOUT,
            absolute: DEFAULT_ABSOLUTE_TIMEOUT,
            grace: Duration::ZERO,
            per_user: PerUser::Default,
            max_sessions: DEFAULT_MAX_SESSIONS,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            cache_ttl: DEFAULT_CACHE_TTL,
            fallback_cache_ttl: DEFAULT_FALLBACK_CACHE_TTL,
            runtime: None,
            clock: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
            _types: PhantomData,
        }
    }

    /// The secret key of the token digests. **Required**, and the same on
    /// every server: a token is found by its keyed digest.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// let e = RedisSessions::<()>::builder(url).build().unwrap_err(); // no key
    /// assert_eq!(e.option(), RedisOption::SecretKey);
    /// let e = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::from_bytes([0; 32]))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::SecretKey);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn secret_key(mut self, key: SecretKey) -> Self {
        self.secret = Some(key);
        self
    }

    /// How long a session may go unused (default 30 minutes, as
    /// [`crate::Builder::idle_timeout`]). At least 1 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// // Options are checked before anything else: no runtime, no Redis needed.
    /// let e = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .idle_timeout(Duration::from_millis(10))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::IdleTimeout);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// How long a session may live from creation or its last login (default
    /// 12 hours, as [`crate::Builder::absolute_timeout`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// // Options are checked before anything else: no runtime, no Redis needed.
    /// let e = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .absolute_timeout(Duration::from_secs(20 * 365 * 24 * 3600))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::AbsoluteTimeout);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn absolute_timeout(mut self, absolute: Duration) -> Self {
        self.absolute = absolute;
        self
    }

    /// How long a token replaced by a plain rotation ([`RedisSessions::rotate`],
    /// the layer's `renew_after`) keeps working, for requests already in
    /// flight, on every server: as [`crate::Builder::rotation_grace`].
    /// Default zero: the old token fails at once. At most
    /// [`crate::config::MAX_ROTATION_GRACE`] and shorter than the idle
    /// timeout.
    ///
    /// The old token becomes the session's one alias in Redis, expiring
    /// with the window (rotating again ends it at once). A login never
    /// leaves one, and ends the one a rotation left. Reads through an alias
    /// always go to Redis (they are not cached).
    ///
    /// # Warning
    ///
    /// During the window a stolen pre-rotation token still works. Keep it
    /// to the few seconds concurrent requests need, or leave it at zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// // Options are checked before anything else: no runtime, no Redis needed.
    /// let e = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .rotation_grace(Duration::from_secs(61))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::RotationGrace);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rotation_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The most live sessions in the whole Redis session space (every
    /// server, one prefix): as [`crate::Builder::max_sessions`], default
    /// [`crate::config::DEFAULT_MAX_SESSIONS`]. A `create` at the limit
    /// first drops the sessions whose deadline passed, then evicts the
    /// anonymous session Redis saw in use least recently; with none,
    /// creation fails with [`crate::ErrorKind::Full`]. Logged-in sessions
    /// are never evicted for room. Every server must set the same value.
    ///
    /// **Cost:** below the limit a create adds two sorted-set insertions
    /// (`O(log n)`); at the limit, `O(log n + m)` more to drop the `m`
    /// sessions that expired since the last time, and one eviction.
    ///
    /// **Approximate:** sessions created by a version without this count,
    /// or removed behind sesame's back (`DEL`, `maxmemory` eviction), are
    /// counted until their deadline passes; "least recently used" is as
    /// recorded in Redis, where reads refresh the use at most once per half
    /// idle timeout (see the [module docs](crate::redis)).
    ///
    /// ```
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// // Options are checked before anything else: no runtime, no Redis needed.
    /// let e = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .max_sessions(0)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::MaxSessions);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    /// The most live sessions one principal may hold, across all servers; a
    /// login beyond it ends the principal's session that logged in longest
    /// ago (never the new one), atomically in the login's script, on every
    /// server. As [`crate::Builder::max_sessions_per_user`]; default
    /// [`crate::config::DEFAULT_MAX_SESSIONS_PER_USER`] (100, or a tenth of
    /// [`RedisBuilder::max_sessions`] if that is fewer). At least 1, at
    /// most `max_sessions`.
    ///
    /// ```
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// // Options are checked before anything else: no runtime, no Redis needed.
    /// let e = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .max_sessions_per_user(0)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::MaxSessionsPerUser);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_sessions_per_user(mut self, max: usize) -> Self {
        self.per_user = PerUser::Limit(max);
        self
    }

    /// Lifts the per-principal limit.
    ///
    /// # Warning
    ///
    /// As [`crate::Builder::unlimited_sessions_per_user`]: one account
    /// logging in again and again then holds as many sessions as it likes.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let sessions = sesame::redis::RedisSessions::<()>::builder("redis://127.0.0.1:6379/")
    ///     .secret_key(sesame::SecretKey::generate())
    ///     .unlimited_sessions_per_user() // API clients of one service account
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn unlimited_sessions_per_user(mut self) -> Self {
        self.per_user = PerUser::Unlimited;
        self
    }

    /// Sessions this server keeps local copies of (default 100,000). Beyond
    /// it an arbitrary copy is dropped; Redis still holds the session.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// // Options are checked before anything else: no runtime, no Redis needed.
    /// let e = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .cache_capacity(0)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::CacheCapacity);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// The longest a local copy is served without reading Redis (default
    /// 60 s): a bound on staleness should an invalidation be lost without
    /// the connection noticing. At least 1 ms, at most the absolute timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// // Options are checked before anything else: no runtime, no Redis needed.
    /// let e = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .cache_ttl(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::CacheTtl);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// The near-cache time-to-live used instead of
    /// [`RedisBuilder::cache_ttl`] (when shorter) while Redis does not
    /// report removals through keyspace notifications (default 1 s): the
    /// bound on serving a session deleted, evicted or expired in Redis
    /// without a message from sesame. At least 1 ms.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// // Options are checked before anything else: no runtime, no Redis needed.
    /// let e = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .fallback_cache_ttl(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::FallbackCacheTtl);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fallback_cache_ttl(mut self, ttl: Duration) -> Self {
        self.fallback_cache_ttl = ttl;
        self
    }

    /// The tokio runtime the invalidation subscriber runs on. Default: the
    /// runtime [`RedisBuilder::build`] is called in.
    /// Should that runtime shut down while the store lives on, the store
    /// stops serving local copies (every read goes to Redis): nobody would
    /// apply invalidations any more.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// // Outside a runtime, build() needs one named.
    /// let e = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::Runtime);
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let sessions = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .connect_timeout(Duration::from_millis(50))
    ///     .runtime(runtime.handle().clone())
    ///     .build()?;
    /// assert_eq!(sessions.redis_stats().cached, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// The clock of the near cache (local deadlines and touch rate limits).
    /// Deadlines in Redis are on Redis's clock, shared by all servers.
    /// Default: [`SystemClock`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// use sesame::ManualClock;
    /// # async fn run(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    /// let clock = ManualClock::new();
    /// let sessions = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .clock(clock.clone())
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Prefix of every key and of the invalidation channel (default
    /// `sesame`): several applications can share one Redis. Non-empty, at
    /// most 64 bytes, no whitespace.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// // Options are checked before anything else: no runtime, no Redis needed.
    /// let e = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .key_prefix("my app")
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::KeyPrefix);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// Connect timeout (default 1 s; 1 ms to 60 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// // Options are checked before anything else: no runtime, no Redis needed.
    /// let e = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .connect_timeout(Duration::from_secs(120))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::ConnectTimeout);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Read and write timeout of each Redis command (default 1 s; 1 ms to
    /// 60 s): the longest a call blocks when Redis stops answering.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// // Options are checked before anything else: no runtime, no Redis needed.
    /// let e = RedisSessions::<()>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .io_timeout(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::IoTimeout);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// Behind Sentinel: the database, user and password of the monitored
    /// nodes, as a URL whose host is ignored (`redis://user:pass@_/2`).
    /// Default: database 0, no authentication. Refused without
    /// [`RedisSessions::sentinel_builder`].
    ///
    /// ```
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// let e = RedisSessions::<()>::builder("redis://127.0.0.1:6379/")
    ///     .secret_key(SecretKey::generate())
    ///     .sentinel_node_url("redis://:pw@_/0")
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::Sentinel); // not a Sentinel builder
    /// ```
    pub fn sentinel_node_url(mut self, url: &str) -> Self {
        match &mut self.sentinel {
            Some(spec) => spec.node_url = Some(url.to_owned()),
            None => self.url_misuse = true,
        }
        self
    }

    /// Writes (create, update, rotate, login, logout, revoke) return only
    /// once `replicas` replicas acknowledge them (`WAIT`), for at most
    /// `timeout`; fewer in time give [`crate::ErrorKind::Unavailable`] with
    /// cause [`super::BackendErrorKind::NotReplicated`] (the primary has the
    /// write; it is not known to survive a failover). Replication is
    /// asynchronous: without this, a logout acknowledged by a primary that
    /// dies a moment later can be missing on the replica promoted in its
    /// place, and the ended session works again. Default: one replica for
    /// 500 ms behind Sentinel and on a Redis Cluster (the `WAIT` goes to
    /// the master that ran the write), none for a plain URL; `replicas = 0`
    /// turns it off. Writes that wait use their own connections, so a slow
    /// acknowledgement does not hold up reads.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// let e = RedisSessions::<()>::builder("redis://127.0.0.1:6379/")
    ///     .secret_key(SecretKey::generate())
    ///     .replica_acks(1, Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.option(), RedisOption::ReplicaAcks); // a timeout of at least 1 ms
    /// ```
    pub fn replica_acks(mut self, replicas: u32, timeout: Duration) -> Self {
        self.acks = Some((replicas, timeout));
        self
    }

    /// The connection target and write acknowledgements.
    fn target(&self) -> Result<(Target, Option<Acks>), RedisBuildError> {
        use RedisOption as O;
        let acks = match self.acks {
            None if self.sentinel.is_some() || self.cluster.is_some() => {
                Some((1, DEFAULT_SENTINEL_ACK_TIMEOUT))
            }
            None => None,
            Some((0, _)) => None,
            Some((n, t)) => {
                if t < Duration::from_millis(1) || t > MAX_NET_TIMEOUT {
                    return Err(RedisBuildError::new(
                        O::ReplicaAcks,
                        "a timeout between 1 ms and 60 s",
                    ));
                }
                Some((n, t))
            }
        }
        .map(|(replicas, timeout)| Acks { replicas, timeout });
        if self.url_misuse {
            return Err(RedisBuildError::new(
                O::Sentinel,
                "sentinel_node_url only with RedisSessions::sentinel_builder",
            ));
        }
        if let Some(nodes) = &self.cluster {
            let bad = || RedisBuildError::new(O::Cluster, "redis:// node URLs that parse");
            let infos = nodes
                .iter()
                .map(|n| n.as_str().into_connection_info().map_err(|_| bad()))
                .collect::<Result<Vec<_>, _>>()?;
            if infos.is_empty() {
                return Err(bad());
            }
            let wait = acks.map_or(Duration::ZERO, |a| a.timeout);
            // Few retries inside the client: the pool's own backoff and
            // timeouts decide (see `conn`); a request is bounded by the I/O
            // timeout whatever the client does.
            let client = redis::cluster::ClusterClient::builder(infos.clone())
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.io_timeout + wait)
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(100)
                .build()
                .map_err(|_| bad())?;
            return Ok((
                Target::Cluster {
                    client,
                    nodes: infos,
                },
                acks,
            ));
        }
        let Some(spec) = &self.sentinel else {
            let client = redis::Client::open(self.url.as_str())
                .map_err(|_| RedisBuildError::new(O::Url, "a redis:// or rediss:// URL"))?;
            return Ok((Target::Direct(client), acks));
        };
        let bad = || {
            RedisBuildError::new(
                O::Sentinel,
                "redis:// sentinel URLs, a service name and a node URL that parse",
            )
        };
        if spec.sentinels.is_empty() || spec.service.is_empty() {
            return Err(bad());
        }
        let node = match &spec.node_url {
            None => None,
            Some(url) => {
                let info = url.as_str().into_connection_info().map_err(|_| bad())?;
                Some(SentinelNodeConnectionInfo {
                    tls_mode: None,
                    redis_connection_info: Some(info.redis),
                })
            }
        };
        let sentinels: Vec<&str> = spec.sentinels.iter().map(String::as_str).collect();
        let client = SentinelClient::build(
            sentinels,
            spec.service.clone(),
            node,
            SentinelServerType::Master,
        )
        .map_err(|_| bad())?;
        Ok((Target::Sentinel(tokio::sync::Mutex::new(client)), acks))
    }

    /// Validates the options and builds the store. Spawns the invalidation
    /// subscriber task on the runtime (see the type's docs); does not wait
    /// for Redis (see [`RedisSessions::wait_ready`]).
    ///
    /// # Errors
    ///
    /// A [`RedisBuildError`] naming the first option out of range.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::{RedisOption, RedisSessions}};
    /// # let url = "redis://127.0.0.1:6379/";
    /// # async fn run(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    /// let sessions = RedisSessions::<Vec<u32>>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .build()?; // inside a tokio runtime; does not connect
    /// assert!(sessions.wait_ready(Duration::from_secs(5)).await);
    /// # Ok(())
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<RedisSessions<T, P>, RedisBuildError> {
        use RedisOption as O;
        let (target, acks) = self.target()?;
        let Some(secret) = self.secret else {
            return Err(RedisBuildError::new(
                O::SecretKey,
                "the secret key shared by all servers",
            ));
        };
        if secret.as_bytes().iter().all(|&b| b == 0) {
            return Err(RedisBuildError::new(
                O::SecretKey,
                "a random key, not all zeros",
            ));
        }
        if self.idle < MIN_TIMEOUT || self.idle > MAX_TIMEOUT {
            return Err(RedisBuildError::new(
                O::IdleTimeout,
                "between 1 s and 10 years",
            ));
        }
        if self.absolute < MIN_TIMEOUT || self.absolute > MAX_TIMEOUT {
            return Err(RedisBuildError::new(
                O::AbsoluteTimeout,
                "between 1 s and 10 years",
            ));
        }
        if self.idle > self.absolute {
            return Err(RedisBuildError::new(
                O::IdleTimeout,
                "at most the absolute timeout",
            ));
        }
        if self.grace > MAX_ROTATION_GRACE || self.grace >= self.idle {
            return Err(RedisBuildError::new(
                O::RotationGrace,
                "at most 60 s and shorter than the idle timeout",
            ));
        }
        if self.max_sessions == 0 || self.max_sessions > (u32::MAX as usize) {
            return Err(RedisBuildError::new(
                O::MaxSessions,
                "between 1 and 2^32 - 1",
            ));
        }
        let per_user = match self.per_user {
            PerUser::Limit(n) if n == 0 || n > self.max_sessions => {
                return Err(RedisBuildError::new(
                    O::MaxSessionsPerUser,
                    "between 1 and max_sessions",
                ));
            }
            PerUser::Limit(n) => n as u64,
            PerUser::Default => {
                DEFAULT_MAX_SESSIONS_PER_USER.min((self.max_sessions / 10).max(1)) as u64
            }
            PerUser::Unlimited => 0,
        };
        if self.cache_capacity == 0 || self.cache_capacity > u32::MAX as usize {
            return Err(RedisBuildError::new(
                O::CacheCapacity,
                "between 1 and 2^32 - 1",
            ));
        }
        if self.cache_ttl < Duration::from_millis(1) || self.cache_ttl > self.absolute {
            return Err(RedisBuildError::new(
                O::CacheTtl,
                "between 1 ms and the absolute timeout",
            ));
        }
        if self.prefix.is_empty()
            || self.prefix.len() > 64
            || self
                .prefix
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'{' || b == b'}')
        {
            // Braces would make the prefix the keys' hash tag on a cluster.
            return Err(RedisBuildError::new(
                O::KeyPrefix,
                "1 to 64 bytes without whitespace or braces",
            ));
        }
        if self.fallback_cache_ttl < Duration::from_millis(1)
            || self.fallback_cache_ttl > self.absolute
        {
            return Err(RedisBuildError::new(
                O::FallbackCacheTtl,
                "between 1 ms and the absolute timeout",
            ));
        }
        let net = Duration::from_millis(1)..=MAX_NET_TIMEOUT;
        if !net.contains(&self.connect_timeout) {
            return Err(RedisBuildError::new(
                O::ConnectTimeout,
                "between 1 ms and 60 s",
            ));
        }
        if !net.contains(&self.io_timeout) {
            return Err(RedisBuildError::new(O::IoTimeout, "between 1 ms and 60 s"));
        }
        let runtime = match self.runtime {
            Some(handle) => handle,
            None => tokio::runtime::Handle::try_current().map_err(|_| {
                RedisBuildError::new(
                    O::Runtime,
                    "build() inside a tokio runtime, or RedisBuilder::runtime",
                )
            })?,
        };
        Ok(RedisSessions::from_parts(super::Parts {
            target,
            acks,
            secret,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock::new())),
            idle_ms: crate::clock::duration_millis(self.idle),
            abs_ms: crate::clock::duration_millis(self.absolute),
            grace_ms: crate::clock::duration_millis(self.grace),
            per_user,
            max_sessions: self.max_sessions as u64,
            cache_capacity: self.cache_capacity,
            cache_ttl_ms: crate::clock::duration_millis(self.cache_ttl),
            fallback_ttl_ms: crate::clock::duration_millis(self.fallback_cache_ttl),
            prefix: self.prefix,
            connect_timeout: self.connect_timeout,
            io_timeout: self.io_timeout,
            runtime,
        }))
    }
}
