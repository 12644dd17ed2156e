//! Many servers, one session space: Redis is the source of truth and each
//! server keeps a near cache of it (feature `redis`).
//!
//! ```no_run
//! use std::time::Duration;
//! use sesame::SecretKey;
//! use sesame::redis::RedisSessions;
//!
//! #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
//! struct Cart { items: Vec<u32> }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # let key_bytes = [7u8; 32];
//! // Every server: same URL, same secret key. Built inside a tokio runtime.
//! let sessions = RedisSessions::<Cart>::builder("redis://127.0.0.1:6379/")
//!     .secret_key(SecretKey::from_bytes(key_bytes))
//!     .idle_timeout(Duration::from_secs(30 * 60))
//!     .build()?;
//!
//! let (token, _) = sessions.create(Cart::default()).await?;   // written to Redis
//! sessions.update(&token, |cart| cart.items.push(7)).await?; // atomic, versioned
//! let token = sessions.login(&token, "alice".to_string()).await?;
//! assert_eq!(sessions.get(&token).await?.unwrap().items, vec![7]); // then served locally
//! sessions.revoke_user(&"alice".to_string()).await?;        // every server, within ms
//! # Ok(())
//! # }
//! ```
//!
//! # Implementation
//!
//! - **Reads**: a valid local copy answers without a round trip. A miss
//!   reads Redis once (one script) and caches the copy.
//! - **Writes** go to Redis first, each as one Lua script, so each is atomic
//!   and each enforces the engine's policies itself, for every server at
//!   once: create (at capacity: reclaim expired sessions, then evict an
//!   anonymous one, else `Full`); update with a version check (optimistic
//!   concurrency, retried with the current value the script hands back, so
//!   concurrent updates from several servers all land); rotate and login
//!   (move the data, delete the old key or leave it as the session's one
//!   grace alias, update the principal index and end the sessions beyond
//!   the per-user limit, in one step); destroy; revoke. A write that changes
//!   or ends a session publishes its digest on the invalidation channel,
//!   and every server (the writer too) drops its copy.
//! - **Policies**, as the engine's ([`crate::Builder`]) and under the same
//!   names on [`RedisBuilder`]: [`RedisBuilder::rotation_grace`] (a plain
//!   rotation leaves the old token as an alias key expiring with the
//!   window; a login leaves none), [`RedisBuilder::max_sessions_per_user`]
//!   (the principal index is a sorted set by bind time; a login ends the
//!   earliest-bound sessions beyond the limit, never its own),
//!   [`RedisBuilder::max_sessions`] (over the whole Redis session space:
//!   two sorted sets, every session by deadline and the anonymous ones by
//!   last recorded use). `tests/behaviour.rs` runs the same behaviour
//!   suite on both backends.
//! - **Events and counters**: [`RedisSessions::subscribe`] and
//!   [`RedisSessions::stats`] give the engine's [`crate::Event`] and
//!   [`crate::Stats`], reported by the server that ran the operation.
//! - **Invalidation**: a tokio task per store subscribes to the channel. While
//!   the subscription is down no copy is served: reads go to Redis, and
//!   copies made before the gap are never served again (see `cache`). So a
//!   revoked session is never accepted because an invalidation was missed.
//! - **Expiry** is Redis's: every key expires at `min(idle deadline,
//!   absolute deadline)`, on Redis's clock. Reads do not become writes: a
//!   server refreshes the idle deadline only when less than half of the
//!   idle timeout is left of what it last saw (at most one touch per
//!   session, server and half idle period). A local copy is served only
//!   before the deadlines it knows of and for at most the cache TTL.
//! - **Nothing secret in Redis**: keys and messages carry hex digests of
//!   tokens under the secret key, never tokens. Each principal has an index
//!   of digests for listing, revocation and the per-user limit, pruned of
//!   expired members (layout: `scripts`).
//! - **I/O**: the `redis` crate's async client on tokio, a few multiplexed
//!   connections (each pipelines any number of concurrent requests; see
//!   `conn` for why not its connection manager).
//! - **Faults**: every request is bounded by the I/O timeout, every connect
//!   by the connect timeout; a failed connection starts a backoff (10 ms
//!   doubling to 1 s) during which calls fail fast with
//!   [`ErrorKind::Unavailable`]; nothing queues; service resumes by itself.
//!   Fail closed: no operation returns a session it could not check.
//!
//! # Near-cache correctness
//!
//! What each server promises, and the tests that hold it to it
//! (`tests/redis_two_servers.rs`, `tests/redis_faults.rs`):
//!
//! - **A server reads its own writes at once**, and a server's reads never
//!   go back to an older version: a write drops the local copy before it
//!   returns, a read in flight from before it cannot cache what it got (see
//!   `cache`), and a read whose copy was not cached serves the cached one
//!   instead when that is newer. Tested 100 runs in a row with two busy
//!   loops competing for the two cores.
//! - **`logout`, `revoke`, `revoke_user` are final on the server that ran
//!   them when the call returns**, readers busy on that server included;
//!   **on every other server within the invalidation bound**: the pub/sub
//!   delivery. Measured from the call's return to the other server's first
//!   refusal, 200 trials (debug build, two cores shared with other
//!   builds): p50 0.3 ms, p99 2.8 ms (max 4.3 ms); with two busy loops
//!   competing for the cores, p50 0.26 to 0.35 ms, p99 7.9 to 10.7 ms (max
//!   13.6 ms) over three runs. The test asserts p99 under 100 ms.
//! - **A copy is never visible before it is known to be current**: a
//!   reader inserts its copy under the shard lock that invalidation holds,
//!   and only if no invalidation or gap came since it read.
//! - **Removals sesame did not make** (`DEL`, `UNLINK`, expiry, eviction)
//!   stop being served within the pub/sub delivery when Redis accepts
//!   `CONFIG SET notify-keyspace-events` (the store asks for `Egxe` on each
//!   subscription; see [`RedisSessions::keyspace_notifications`]), else
//!   within [`RedisBuilder::fallback_cache_ttl`] (default 1 s, measured
//!   1.0 s). `FLUSHDB`/`FLUSHALL`, which notify nothing, within 250 ms plus
//!   a round trip (a marker key checked four times a second; measured 250
//!   to 260 ms).
//! - **Nothing cached before a gap in the invalidation stream survives
//!   it.** If the subscription dies, the server keeps serving copies until
//!   it notices: at once for a closed socket (a killed or restarted Redis,
//!   `CLIENT KILL`), within about a second plus the I/O timeout for a
//!   silent network partition (a ping each second). Messages published in
//!   that window are lost, which is why no copy from before a gap is served
//!   after it; [`RedisBuilder::cache_ttl`] bounds what remains.
//!
//! # Sentinel and failover
//!
//! [`RedisSessions::sentinel_builder`] takes the sentinels' addresses and
//! the service name: each new connection goes to the primary they name
//! then (its `ROLE` checked), so after a failover service resumes by
//! itself, and a demoted primary's `READONLY` drops the connection. During
//! the switch callers get [`ErrorKind::Unavailable`], nothing else; the
//! subscription dies with the old primary, so nothing cached before the
//! switch is served after it.
//!
//! Replication is asynchronous, so a write the dying primary acknowledged
//! may be missing on the promoted replica: a logout would be undone and
//! the ended session work again. Behind Sentinel, writes therefore return
//! only once a replica holds them ([`RedisBuilder::replica_acks`]: `WAIT`
//! on the writing connection, one replica within 500 ms by default); fewer
//! acknowledgements give `Unavailable` with cause
//! [`BackendErrorKind::NotReplicated`]: a logout never claims an end a
//! failover could undo. Safety over availability: with a single replica,
//! writes answer so while it is away (after a failover, until the old
//! primary is back as a replica); run two replicas, or turn the wait off
//! with `replica_acks(0, ..)`. `tests/redis_sentinel.rs` kills the primary
//! mid-traffic (a primary, a replica and a sentinel, all real) and shows
//! the lost logout without acknowledgements and none with them.
//!
//! # Redis Cluster
//!
//! [`RedisSessions::cluster_builder`] takes seed nodes. Every key carries a
//! hash tag (two hex digits: 256 tags), so each script touches one slot:
//! a rotation draws its new token until its tag equals the old one's, and
//! a login draws it in the principal's tag, so all of a principal's
//! sessions share the slot of its index (per-user limit, revocation,
//! listing stay one atomic script). A single instance (and a Sentinel
//! primary) has no slots and skips those draws: one token per rotation or
//! login, in any tag; each logged-in session records its principal's tag,
//! so the scripts find its index. The layout, what is atomic and what is
//! approximate (a login that changes a session's tag is two scripts,
//! failing closed; capacity is split across the tags) are written down in
//! `src/redis/scripts.rs`. The invalidation subscriber holds one
//! subscription per master (keyspace notifications and the flush marker
//! are per node; sesame's own messages are classic `PUBLISH`, which a
//! cluster broadcasts to every node); a gap in any of them is a gap, and
//! the masters are read again (`CLUSTER SLOTS`) before subscribing again,
//! so a failover's promoted replica is found. Writes wait for one replica
//! by default, as behind Sentinel. `tests/behaviour.rs` runs the behaviour
//! suite on a real six-node cluster.
//!
//! # Async
//!
//! Every method that may reach Redis is `async`; the store implements
//! [`crate::store::Store`]. A cache hit does no I/O: its future completes
//! on the first poll, without yielding and without a round trip. A miss or
//! a write awaits one round trip (more for an `update` that loses races),
//! each bounded by the I/O timeout. [`RedisBuilder::build`] needs a tokio
//! runtime for the invalidation subscriber (call it inside one, or pass
//! [`RedisBuilder::runtime`]). Clones are cheap.
//!
//! # Differences from [`crate::Sessions`]
//!
//! The policies (grace window, per-user limit, capacity with
//! anonymous-first eviction), events and counters behave as the engine's
//! (`tests/behaviour.rs`). What is left different:
//!
//! - Methods are `async` and return `Result` (Redis may be unreachable).
//! - `update` may run its closure more than once (once per attempt against
//!   concurrent writers) and requires `T: Clone`; there is no `login_with`.
//! - Session data and principals cross the wire as JSON (`serde`), not as
//!   values in place.
//! - Expiry is Redis's TTL: no [`crate::EventKind::Expired`] event, and
//!   `expired_idle`/`expired_absolute` stay zero in [`crate::Stats`]. Other
//!   counters count this server's operations; `live` and `anonymous` the
//!   whole Redis space. [`RedisSessions::stats`] is `async` (one round
//!   trip).
//! - Capacity eviction picks the anonymous session with the oldest use
//!   *recorded in Redis* (reads record one at most once per half idle
//!   timeout); the engine's is the least recently seen of a small sample.
//!   Sessions removed behind sesame's back count against `max_sessions`
//!   until their deadline passes.
//! - Reads through a grace alias are not cached: each goes to Redis.
//! - Needs Redis 5 or later; Redis Cluster through
//!   [`RedisSessions::cluster_builder`] (see "Redis Cluster").

mod builder;
mod cache;
mod cause;
mod conn;
mod device;
mod read;
mod scripts;
mod stats;
mod store;
mod subscriber;
mod target;
mod write;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use builder::{
    DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_FALLBACK_CACHE_TTL,
    DEFAULT_IO_TIMEOUT, DEFAULT_PREFIX, DEFAULT_SENTINEL_ACK_TIMEOUT, RedisBuildError,
    RedisBuilder, RedisOption,
};
pub use cause::{BackendError, BackendErrorKind};

use crate::clock::{Clock, EngineClock};
use crate::error::{Error, ErrorKind};
use crate::events::{Bus, EventKind, EvictionReason};
use crate::key::{SecretKey, SessionKey};
use crate::stats::bump;
use crate::token::{SessionToken, TokenInput};
use crate::{Handle, Principal, SessionInfo};
use cache::{Cache, Copy};
use conn::Pool;

/// Attempts of one `update` against concurrent writers before
/// [`ErrorKind::Conflict`]. Each lost attempt means another write landed,
/// so the system as a whole always progresses.
const MAX_UPDATE_ATTEMPTS: usize = 256;
/// Fresh tokens tried when a new digest already exists in Redis (a 2^-256
/// event; the bound only keeps the loop finite).
const MAX_KEY_ATTEMPTS: usize = 4;
/// Creates tried in other tags when a cluster tag is full of logged-in
/// sessions, before [`ErrorKind::Full`] (see `scripts`): with a third of
/// the tags full, all 32 miss with probability 3^-32.
const FULL_TRIES: usize = 32;
/// Tokens drawn for one with a given tag before giving up: each draw hits
/// with probability 1/256, so all miss with probability (255/256)^65536,
/// about e^-256.
const MAX_TAG_DRAWS: usize = 65_536;
/// A read refreshes the idle deadline in Redis once less than
/// `idle / TOUCH_DIVISOR` of it is left.
const TOUCH_DIVISOR: u64 = 2;

/// A session store shared by many servers through Redis, with this
/// server's near cache in front. See the [module docs](self).
///
/// Cloning is cheap (an `Arc`); clones share one cache and one connection
/// pool.
pub struct RedisSessions<T, P = String> {
    shared: Arc<Shared<T, P>>,
}

impl<T, P> Clone for RedisSessions<T, P> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T, P> fmt::Debug for RedisSessions<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessions")
            .field("prefix", &self.shared.prefix)
            .field("cache_trusted", &self.shared.cache.trusted())
            .finish_non_exhaustive()
    }
}

/// Counters of a [`RedisSessions`]: what went to Redis and why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Reads that went to Redis (cache misses, and every read while the
    /// cache is untrusted).
    pub fetches: u64,
    /// Idle-deadline refreshes sent on cache hits (rate limited).
    pub touches: u64,
    /// Keys dropped by invalidation messages.
    pub invalidations: u64,
    /// Update attempts lost to a concurrent writer and retried.
    pub conflicts: u64,
    /// Operations that failed with [`ErrorKind::Unavailable`].
    pub unavailable: u64,
    /// Times the invalidation channel was (re)subscribed.
    pub subscriptions: u64,
    /// Local copies held.
    pub cached: u64,
    /// Whether local copies are served now (the channel is up).
    pub cache_trusted: bool,
}

#[derive(Default)]
pub(crate) struct Counters {
    fetches: AtomicU64,
    touches: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    conflicts: AtomicU64,
    unavailable: AtomicU64,
    pub(crate) subscriptions: AtomicU64,
}

pub(crate) struct Shared<T, P> {
    pub(crate) cache: Cache<T, P>,
    pub(crate) pool: Pool,
    secret: SecretKey,
    clock: EngineClock,
    idle_ms: u64,
    abs_ms: u64,
    grace_ms: u64,
    /// The per-user limit (0: none).
    per_user: u64,
    /// The most sessions under the prefix, across all servers.
    max_sessions: u64,
    cache_ttl_ms: u64,
    fallback_ttl_ms: u64,
    /// Whether keyspace notifications are on (set by the subscriber): the
    /// cache TTL is then `cache_ttl_ms`, else at most `fallback_ttl_ms`.
    pub(crate) notified: AtomicBool,
    pub(crate) prefix: String,
    pub(crate) channel: String,
    pub(crate) stats: Counters,
    /// The engine's counters ([`crate::Stats`]), for this server's
    /// operations.
    counted: crate::stats::Counters,
    /// Lookups that found no live session (`Stats::rejected`).
    rejected: AtomicU64,
    /// Subscribers to this server's events.
    bus: Bus<P>,
    /// Dropped with the store: the subscriber task sees its receiver close
    /// and exits at once.
    _stop: tokio::sync::watch::Sender<()>,
}

/// What the builder hands over.
pub(crate) struct Parts {
    pub(crate) target: target::Target,
    /// Replicas each write waits for (`WAIT`), if any.
    pub(crate) acks: Option<conn::Acks>,
    pub(crate) secret: SecretKey,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) idle_ms: u64,
    pub(crate) abs_ms: u64,
    pub(crate) grace_ms: u64,
    pub(crate) per_user: u64,
    pub(crate) max_sessions: u64,
    pub(crate) cache_capacity: usize,
    pub(crate) cache_ttl_ms: u64,
    pub(crate) fallback_ttl_ms: u64,
    pub(crate) prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) io_timeout: Duration,
    /// The runtime the invalidation subscriber runs on.
    pub(crate) runtime: tokio::runtime::Handle,
}

impl<T, P> RedisSessions<T, P>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    P: Principal + Serialize + DeserializeOwned,
{
    /// A builder for a store on the Redis at `url` (`redis://host:port/db`,
    /// with `rediss://` for TLS if the `redis` crate is built with it). A
    /// `redis+cluster://host:port/` URL (seed nodes separated by commas)
    /// is a Redis Cluster, as [`RedisSessions::cluster_builder`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// use std::time::Duration;
    /// use sesame::{SecretKey, redis::RedisSessions};
    /// // Inside a tokio runtime; building does not connect.
    /// let sessions = RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/")
    ///     .secret_key(SecretKey::load_or_create("/etc/myapp/session.key")?)
    ///     .idle_timeout(Duration::from_secs(30 * 60))
    ///     .build()?;
    /// assert!(sessions.wait_ready(Duration::from_secs(5)).await);
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(url: &str) -> RedisBuilder<T, P> {
        RedisBuilder::new(url)
    }

    /// A builder for Redis behind Sentinel: every connection goes to the
    /// primary the `sentinels` name for `service` at that moment, so service
    /// resumes by itself after a failover (see the module docs' "Failover").
    /// The other options are [`RedisSessions::builder`]'s; writes wait for one
    /// replica by default ([`RedisBuilder::replica_acks`]), so a failover
    /// never undoes a logout or revocation that returned.
    ///
    /// ```
    /// use sesame::{SecretKey, redis::RedisSessions};
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let sentinels = ["redis://10.0.0.1:26379/", "redis://10.0.0.2:26379/"];
    /// let sessions = RedisSessions::<Vec<u32>>::sentinel_builder(&sentinels, "sessions")
    ///     .sentinel_node_url("redis://:node-password@_/2")   // the nodes' password and db
    ///     .secret_key(SecretKey::generate())
    ///     .build()?;
    /// # drop(sessions);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sentinel_builder(sentinels: &[&str], service: &str) -> RedisBuilder<T, P> {
        RedisBuilder::sentinel(sentinels, service)
    }

    /// A builder for a Redis Cluster: `nodes` are seed nodes
    /// (`redis://host:port/`, any of the cluster's; the client learns the
    /// slot map from them on each connect). Every key carries a hash tag so
    /// that each script stays in one slot; see the module docs' "Redis
    /// Cluster" for what stays atomic and what is approximate. The other
    /// options are [`RedisSessions::builder`]'s; writes wait for one
    /// replica by default ([`RedisBuilder::replica_acks`]), as behind
    /// Sentinel.
    ///
    /// ```
    /// use sesame::{SecretKey, redis::RedisSessions};
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let nodes = ["redis://10.0.0.1:7000/", "redis://10.0.0.2:7000/"];
    /// let sessions = RedisSessions::<Vec<u32>>::cluster_builder(&nodes)
    ///     .secret_key(SecretKey::generate())
    ///     .build()?; // does not connect
    /// // The same, as one URL.
    /// let url = "redis+cluster://10.0.0.1:7000/,redis+cluster://10.0.0.2:7000/";
    /// let same = RedisSessions::<Vec<u32>>::builder(url)
    ///     .secret_key(SecretKey::generate())
    ///     .build()?;
    /// # drop((sessions, same));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cluster_builder(nodes: &[&str]) -> RedisBuilder<T, P> {
        RedisBuilder::cluster(nodes)
    }

    pub(crate) fn from_parts(parts: Parts) -> Self {
        let channel = format!("{}:inv", parts.prefix);
        let target = Arc::new(parts.target);
        let (stop, stopped) = tokio::sync::watch::channel(());
        let shared = Arc::new(Shared {
            cache: Cache::new(parts.cache_capacity),
            pool: Pool::new(
                Arc::clone(&target),
                parts.acks,
                parts.connect_timeout,
                parts.io_timeout,
            ),
            secret: parts.secret,
            clock: EngineClock::new(parts.clock),
            idle_ms: parts.idle_ms,
            abs_ms: parts.abs_ms,
            grace_ms: parts.grace_ms,
            per_user: parts.per_user,
            max_sessions: parts.max_sessions,
            cache_ttl_ms: parts.cache_ttl_ms,
            fallback_ttl_ms: parts.fallback_ttl_ms,
            notified: AtomicBool::new(false),
            prefix: parts.prefix,
            channel,
            stats: Counters::default(),
            counted: crate::stats::Counters::default(),
            rejected: AtomicU64::new(0),
            bus: Bus::new(),
            _stop: stop,
        });
        subscriber::spawn(&parts.runtime, Arc::downgrade(&shared), target, stopped);
        Self { shared }
    }

    /// Waits up to `timeout` for the invalidation channel to be subscribed,
    /// after which reads are served from the near cache. Returns whether it
    /// is. Useful as a readiness check; the store works (reading through)
    /// before.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// use std::time::Duration;
    /// if !sessions.wait_ready(Duration::from_secs(5)).await {
    ///     eprintln!("Redis not ready: reads go through to it meanwhile");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            if self.shared.cache.trusted() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Whether Redis reports removals this store did not make (`DEL`,
    /// expiry, eviction) through keyspace notifications: then a copy is
    /// served for at most [`RedisBuilder::cache_ttl`], else for at most
    /// [`RedisBuilder::fallback_cache_ttl`]. Known once the store is ready.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// use std::time::Duration;
    /// sessions.wait_ready(Duration::from_secs(5)).await;
    /// if !sessions.keyspace_notifications() {
    ///     eprintln!("enable `notify-keyspace-events Egx` to see removals made outside sesame");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn keyspace_notifications(&self) -> bool {
        self.shared.notified.load(Ordering::Relaxed)
    }

    /// The Redis backend's own counters: what went to Redis and why, and
    /// the near cache (the engine's counters are [`RedisSessions::stats`]).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, _) = sessions.create(vec![1]).await?;
    /// sessions.validate(&token).await?;
    /// let stats = sessions.redis_stats();
    /// assert!(stats.cached >= 1);
    /// println!("{} reads went to Redis", stats.fetches);
    /// # Ok(())
    /// # }
    /// ```
    pub fn redis_stats(&self) -> RedisStats {
        let c = &self.shared.stats;
        RedisStats {
            fetches: c.fetches.load(Ordering::Relaxed),
            touches: c.touches.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            conflicts: c.conflicts.load(Ordering::Relaxed),
            unavailable: c.unavailable.load(Ordering::Relaxed),
            subscriptions: c.subscriptions.load(Ordering::Relaxed),
            cached: self.shared.cache.len() as u64,
            cache_trusted: self.shared.cache.trusted(),
        }
    }
}

impl<T, P> Shared<T, P>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    P: Principal + Serialize + DeserializeOwned,
{
    /// Runs a script, counting failures.
    async fn invoke<R: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<R, Error> {
        self.pool.invoke(invocation).await.inspect_err(|_| {
            self.stats.unavailable.fetch_add(1, Ordering::Relaxed);
        })
    }

    /// Runs a script that creates, changes or ends a session (waiting for
    /// replicas when configured: see `conn`), counting failures.
    async fn write<R: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        tag: u8,
    ) -> Result<R, Error> {
        self.pool
            .invoke_write(invocation, tag)
            .await
            .inspect_err(|_| {
                self.stats.unavailable.fetch_add(1, Ordering::Relaxed);
            })
    }

    /// How long a copy cached now may be served.
    fn ttl_ms(&self) -> u64 {
        if self.notified.load(Ordering::Relaxed) {
            self.cache_ttl_ms
        } else {
            self.cache_ttl_ms.min(self.fallback_ttl_ms)
        }
    }

    /// `{prefix}:s:{TT}{hex}` (layout: `scripts`).
    pub(crate) fn session_key(&self, key: &SessionKey) -> String {
        format!("{}:s:{{{:02x}}}{}", self.prefix, tag(key), hex_key(key))
    }

    /// `{prefix}:a:{TT}{hex}`: the grace alias a rotation may leave.
    pub(crate) fn alias_key(&self, key: &SessionKey) -> String {
        format!("{}:a:{{{:02x}}}{}", self.prefix, tag(key), hex_key(key))
    }

    /// The capacity sets (`all`, `anon`) of the scope holding tag `tag`:
    /// one scope on a single instance, one per tag on a cluster.
    pub(crate) fn scope(&self, tag: u8) -> (String, String) {
        if self.pool.clustered() {
            (
                format!("{}:all:{{{tag:02x}}}", self.prefix),
                format!("{}:anon:{{{tag:02x}}}", self.prefix),
            )
        } else {
            (
                format!("{}:all", self.prefix),
                format!("{}:anon", self.prefix),
            )
        }
    }

    /// Sessions one capacity scope holds: all of `max_sessions` on a
    /// single instance, an even share of it per tag on a cluster.
    pub(crate) fn scope_max(&self) -> u64 {
        if self.pool.clustered() {
            self.max_sessions.div_ceil(TAGS)
        } else {
            self.max_sessions
        }
    }

    /// The principal's index key and its tag (the first byte of a keyed
    /// hash of its JSON: see `scripts`).
    fn user_key(&self, principal: &P) -> Result<(String, u8), Error> {
        Ok(self.index_key(&principal_json(principal)?))
    }

    /// The index key and tag of a principal given as JSON.
    fn index_key(&self, json: &str) -> (String, u8) {
        let t = tag(&self.secret.digest(blake3::hash(json.as_bytes()).as_bytes()));
        (format!("{}:u:{{{t:02x}}}{json}", self.prefix), t)
    }
}

/// Hash tags: a session's is the first byte of its digest.
const TAGS: u64 = 256;

/// A session's hash tag (see `scripts`).
pub(crate) fn tag(key: &SessionKey) -> u8 {
    key.as_bytes()[0]
}

/// A row of [`scripts::DEVICES`]: `{h, ua, ip}`. A field that does not
/// parse is left out (the listing goes on).
fn device_row(f: &[Value]) -> Option<(Handle, crate::Device)> {
    let handle: Handle = std::str::from_utf8(bulk(f.first()?)?).ok()?.parse().ok()?;
    let mut device = crate::Device::new();
    if let Some(ua) = f.get(1).and_then(bulk).filter(|ua| !ua.is_empty()) {
        device = device.with_user_agent(
            &String::from_utf8_lossy(ua),
            crate::device::MAX_USER_AGENT_BYTES,
        );
    }
    if let Some(ip) = f
        .get(2)
        .and_then(bulk)
        .and_then(|ip| std::str::from_utf8(ip).ok()?.parse().ok())
    {
        device = device.with_address(ip);
    }
    Some((handle, device))
}

fn encode<V: Serialize>(v: &V) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::with_source(ErrorKind::Encoding, e))
}

fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::with_source(ErrorKind::Encoding, e))
}

fn principal_json<P: Serialize>(p: &P) -> Result<String, Error> {
    serde_json::to_string(p).map_err(|e| Error::with_source(ErrorKind::Encoding, e))
}

/// Redis ms minus local ms.
fn skew(redis_now: u64, local_now: u64) -> i64 {
    (i128::from(redis_now) - i128::from(local_now)).clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

/// Local ms shifted to Redis ms.
fn shift(local: u64, skew: i64) -> u64 {
    (i128::from(local) + i128::from(skew)).clamp(0, u64::MAX.into()) as u64
}

fn wall(unix_ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(unix_ms)
}

/// A handle as scripts return it (16 hex digits).
fn parse_handle(text: &[u8]) -> Option<Handle> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Lowercase hex of a digest: how sessions are named in Redis.
pub(crate) fn hex_key(key: &SessionKey) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for &b in key.as_bytes() {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Parses 64 hex digits back into a digest.
pub(crate) fn unhex_key(text: &[u8]) -> Option<SessionKey> {
    if text.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(SessionKey::from_bytes(out))
}

fn array(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        _ => Vec::new(),
    }
}

fn bulk(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn uint(v: &Value) -> Option<u64> {
    int(v).and_then(|n| u64::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let k = SessionKey::from_bytes(std::array::from_fn(|i| i as u8 * 7));
        let h = hex_key(&k);
        assert_eq!(h.len(), 64);
        assert_eq!(unhex_key(h.as_bytes()).unwrap().as_bytes(), k.as_bytes());
        assert!(unhex_key(h.to_uppercase().as_bytes()).is_none());
        assert!(unhex_key(&h.as_bytes()[..63]).is_none());
    }

    #[test]
    fn skew_and_shift_are_inverse() {
        let s = skew(1_700_000_000_000, 5_000);
        assert_eq!(shift(5_000, s), 1_700_000_000_000);
        assert_eq!(shift(0, -10), 0);
    }
}
