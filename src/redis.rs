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
//! - **Writes** go to Redis first, each as one Lua script, so each is atomic:
//!   create; update with a version check (optimistic concurrency, retried
//!   with the current value the script hands back, so concurrent updates
//!   from several servers all land); rotate and login (move the data, delete
//!   the old key, update the principal index, in one step); destroy; revoke.
//!   A write that changes or ends a session publishes its digest on the
//!   invalidation channel, and every server (the writer too) drops its copy.
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
//!   tokens under the secret key, never tokens. Each principal has a set of
//!   digests for listing and revocation, pruned of expired members.
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
//! Methods return `Result` (Redis may be unreachable); `update` may run its
//! closure more than once (once per attempt) and requires `T: Clone`; there
//! is no rotation grace window, no per-user limit, no capacity-based
//! eviction (use Redis's `maxmemory` policy) and no events. Session data
//! and principals cross the wire as JSON. Needs Redis 5 or later, not
//! Redis Cluster (scripts name principal sets from data).

mod builder;
mod cache;
mod cause;
mod conn;
mod scripts;
mod store;
mod subscriber;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use builder::{
    DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_FALLBACK_CACHE_TTL,
    DEFAULT_IO_TIMEOUT, DEFAULT_PREFIX, RedisBuildError, RedisBuilder, RedisOption,
};
pub use cause::{BackendError, BackendErrorKind};

use crate::clock::{Clock, EngineClock};
use crate::error::{Error, ErrorKind};
use crate::key::{SecretKey, SessionKey};
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
    cache_ttl_ms: u64,
    fallback_ttl_ms: u64,
    /// Whether keyspace notifications are on (set by the subscriber): the
    /// cache TTL is then `cache_ttl_ms`, else at most `fallback_ttl_ms`.
    pub(crate) notified: AtomicBool,
    pub(crate) prefix: String,
    pub(crate) channel: String,
    pub(crate) stats: Counters,
    /// Dropped with the store: the subscriber task sees its receiver close
    /// and exits at once.
    _stop: tokio::sync::watch::Sender<()>,
}

/// What the builder hands over.
pub(crate) struct Parts {
    pub(crate) client: redis::Client,
    pub(crate) secret: SecretKey,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) idle_ms: u64,
    pub(crate) abs_ms: u64,
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
    /// with `rediss://` for TLS if the `redis` crate is built with it).
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

    pub(crate) fn from_parts(parts: Parts) -> Self {
        let channel = format!("{}:inv", parts.prefix);
        let client = parts.client.clone();
        let (stop, stopped) = tokio::sync::watch::channel(());
        let shared = Arc::new(Shared {
            cache: Cache::new(parts.cache_capacity),
            pool: Pool::new(parts.client, parts.connect_timeout, parts.io_timeout),
            secret: parts.secret,
            clock: EngineClock::new(parts.clock),
            idle_ms: parts.idle_ms,
            abs_ms: parts.abs_ms,
            cache_ttl_ms: parts.cache_ttl_ms,
            fallback_ttl_ms: parts.fallback_ttl_ms,
            notified: AtomicBool::new(false),
            prefix: parts.prefix,
            channel,
            stats: Counters::default(),
            _stop: stop,
        });
        subscriber::spawn(&parts.runtime, Arc::downgrade(&shared), client, stopped);
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

    /// The store's counters.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, _) = sessions.create(vec![1]).await?;
    /// sessions.validate(&token).await?;
    /// let stats = sessions.stats();
    /// assert!(stats.cached >= 1);
    /// println!("{} reads went to Redis", stats.fetches);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> RedisStats {
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

    /// Creates an anonymous session holding `data`, in Redis first, then in
    /// the near cache.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached,
    /// [`ErrorKind::Encoding`] when `data` does not serialize.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, handle) = sessions.create(vec![7]).await?;
    /// assert_eq!(sessions.validate(&token).await?, Some(handle));
    /// // Send `token.as_str()` to the client in a cookie.
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create(&self, data: T) -> Result<(SessionToken, Handle), Error> {
        let s = &*self.shared;
        let bytes = encode(&data)?;
        let handle = Handle::generate();
        let handle_hex = handle.to_string();
        for _ in 0..MAX_KEY_ATTEMPTS {
            let token = SessionToken::generate();
            let key = s.secret.digest(token.as_bytes());
            let ticket = s.cache.ticket(&key);
            let now = s.clock.now();
            let reply: Vec<i64> = s
                .invoke(
                    scripts::CREATE
                        .key(s.session_key(&key))
                        .arg(&handle_hex)
                        .arg(&bytes)
                        .arg(s.idle_ms)
                        .arg(s.abs_ms),
                )
                .await?;
            if reply.first() != Some(&1) {
                continue;
            }
            let redis_now = reply.get(1).map_or(0, |&t| u64::try_from(t).unwrap_or(0));
            let copy = Arc::new(Copy {
                epoch: Cache::<T, P>::epoch_of(ticket),
                handle,
                version: 1,
                principal: None,
                created: redis_now,
                issued: redis_now,
                abs: redis_now.saturating_add(s.abs_ms),
                skew: skew(redis_now, now),
                data,
                hard_until: now.saturating_add(s.abs_ms.min(s.ttl_ms())),
                idle_until: AtomicU64::new(now.saturating_add(s.idle_ms)),
                touching: AtomicBool::new(false),
            });
            s.cache.insert(key, &copy, ticket, now);
            return Ok((token, handle));
        }
        Err(Error::new(ErrorKind::Conflict))
    }

    /// Validates a token: the session's handle if it is live, `Ok(None)` if
    /// the token is malformed, unknown, expired or revoked.
    ///
    /// A hit in the near cache takes one shard read lock and no round trip.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] when the answer needs Redis and Redis
    /// cannot be reached (fail closed: never a session that was not
    /// checked); [`ErrorKind::Encoding`] when the stored data does not decode.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, handle) = sessions.create(Vec::new()).await?;
    /// assert_eq!(sessions.validate(token.as_str()).await?, Some(handle));
    /// assert_eq!(sessions.validate("forged").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn validate(
        &self,
        token: &(impl TokenInput + ?Sized),
    ) -> Result<Option<Handle>, Error> {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            return Ok(None);
        };
        let key = s.secret.digest(&bytes);
        let now = s.clock.now();
        let fast = s
            .cache
            .peek(&key, now, |c| (!s.touch_due(c, now)).then_some(c.handle));
        if let Some(Some(handle)) = fast {
            return Ok(Some(handle));
        }
        Ok(s.load(&key, now).await?.map(|c| c.handle))
    }

    /// Validates a token and reads the session's data through `f`, which
    /// runs with no lock held.
    ///
    /// # Errors
    ///
    /// As [`RedisSessions::validate`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, _) = sessions.create(vec![1, 2, 3]).await?;
    /// assert_eq!(sessions.with(&token, |items| items.len()).await?, Some(3));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn with<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        f: impl FnOnce(&T) -> R,
    ) -> Result<Option<R>, Error> {
        Ok(self.copy_of(token).await?.map(|c| f(&c.data)))
    }

    /// Validates a token and returns a copy of the session's data.
    ///
    /// # Errors
    ///
    /// As [`RedisSessions::validate`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, _) = sessions.create(vec![1, 2]).await?;
    /// assert_eq!(sessions.get(&token).await?, Some(vec![1, 2]));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self, token: &(impl TokenInput + ?Sized)) -> Result<Option<T>, Error>
    where
        T: Clone,
    {
        self.with(token, T::clone).await
    }

    /// Validates a token and returns the session's metadata.
    ///
    /// # Errors
    ///
    /// As [`RedisSessions::validate`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, handle) = sessions.create(Vec::new()).await?;
    /// let token = sessions.login(&token, "alice".to_string()).await?;
    /// let info = sessions.info(&token).await?.unwrap();
    /// assert_eq!((info.handle, info.principal.as_deref()), (handle, Some("alice")));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn info(
        &self,
        token: &(impl TokenInput + ?Sized),
    ) -> Result<Option<SessionInfo<P>>, Error> {
        let s = &*self.shared;
        let now = s.clock.now();
        Ok(self.copy_of(token).await?.map(|c| {
            let seen = shift(now, c.skew);
            SessionInfo {
                handle: c.handle,
                principal: c.principal.clone(),
                created: wall(c.created),
                last_seen: wall(seen),
                token_issued: wall(c.issued),
                expires: wall(seen.saturating_add(s.idle_ms).min(c.abs)),
                absolute_expires: wall(c.abs),
                // As on the engine: filled in by `sessions_of` only.
                device: None,
            }
        }))
    }

    async fn copy_of(
        &self,
        token: &(impl TokenInput + ?Sized),
    ) -> Result<Option<Arc<Copy<T, P>>>, Error> {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            return Ok(None);
        };
        let key = s.secret.digest(&bytes);
        s.load(&key, s.clock.now()).await
    }

    /// Changes the session's data: `f` runs on a copy, and the result is
    /// written to Redis only if no other write landed since the copy was
    /// read (a version check in the script). On a conflict the script hands
    /// back the current data and `f` runs again on it, so concurrent updates
    /// from any number of servers all land, in some order.
    ///
    /// `f` may run more than once: keep it free of side effects beyond the
    /// data. Every server's copy is invalidated.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token,
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached (nothing or
    /// everything of this update was written: a reply lost after the write
    /// looks the same), [`ErrorKind::Conflict`] after 256 lost attempts,
    /// [`ErrorKind::Encoding`] when the data does not (de)serialize.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, _) = sessions.create(Vec::new()).await?;
    /// let len = sessions.update(&token, |items| { items.push(7); items.len() }).await?;
    /// assert_eq!(len, 1);
    /// assert_eq!(sessions.get(&token).await?, Some(vec![7]));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update<R>(
        &self,
        token: &(impl TokenInput + ?Sized),
        mut f: impl FnMut(&mut T) -> R,
    ) -> Result<R, Error>
    where
        T: Clone,
    {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        let key = s.secret.digest(&bytes);
        let Some(copy) = s.load(&key, s.clock.now()).await? else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        let mut version = copy.version;
        let mut data = copy.data.clone();
        drop(copy);
        let skey = s.session_key(&key);
        let hex = hex_key(&key);
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let r = f(&mut data);
            let encoded = encode(&data)?;
            let reply: Value = s
                .invoke(
                    scripts::UPDATE
                        .key(&skey)
                        .arg(version)
                        .arg(&encoded)
                        .arg(s.idle_ms)
                        .arg(&s.channel)
                        .arg(&hex),
                )
                .await?;
            let items = array(&reply);
            match items.first().and_then(int) {
                Some(1) => {
                    s.cache.invalidate(&key);
                    return Ok(r);
                }
                Some(0) => {
                    s.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                    version = items
                        .get(1)
                        .and_then(int)
                        .and_then(|v| u64::try_from(v).ok())
                        .ok_or(Error::new(ErrorKind::Unavailable))?;
                    data = decode(items.get(2).and_then(bulk).unwrap_or_default())?;
                }
                _ => {
                    s.cache.invalidate(&key);
                    return Err(Error::new(ErrorKind::NotFound));
                }
            }
        }
        Err(Error::new(ErrorKind::Conflict))
    }

    /// Gives the session a new token; the old one stops working on every
    /// server. Data, principal and handle stay.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token,
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (old, handle) = sessions.create(Vec::new()).await?;
    /// let new = sessions.rotate(&old).await?;
    /// assert_eq!(sessions.validate(&old).await?, None);
    /// assert_eq!(sessions.validate(&new).await?, Some(handle));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rotate(&self, token: &(impl TokenInput + ?Sized)) -> Result<SessionToken, Error> {
        self.rotate_inner(token, None).await
    }

    /// Logs a session in: a new token, bound to `principal`, absolute
    /// timeout restarted; the pre-login token stops working on every server.
    /// Logging in as another principal than the one bound resets the data
    /// to `T::default()`, as [`crate::Sessions::login`] does. Data, principal
    /// index and invalidation change in one script.
    ///
    /// # Errors
    ///
    /// As [`RedisSessions::rotate`], and [`ErrorKind::Encoding`] when the
    /// principal does not serialize.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (anonymous, _) = sessions.create(vec![7]).await?; // the cart
    /// let token = sessions.login(&anonymous, "alice".to_string()).await?;
    /// assert_eq!(sessions.validate(&anonymous).await?, None); // fixation defeated
    /// assert_eq!(sessions.get(&token).await?, Some(vec![7])); // the cart survives
    /// # Ok(())
    /// # }
    /// ```
    pub async fn login(
        &self,
        token: &(impl TokenInput + ?Sized),
        principal: P,
    ) -> Result<SessionToken, Error>
    where
        T: Default,
    {
        let fresh = encode(&T::default())?;
        self.rotate_inner(token, Some((principal, fresh))).await
    }

    async fn rotate_inner(
        &self,
        token: &(impl TokenInput + ?Sized),
        login: Option<(P, Vec<u8>)>,
    ) -> Result<SessionToken, Error> {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        let old = s.secret.digest(&bytes);
        let (principal, fresh) = match &login {
            Some((p, fresh)) => (principal_json(p)?, fresh.as_slice()),
            None => (String::new(), &[][..]),
        };
        for _ in 0..MAX_KEY_ATTEMPTS {
            let new_token = SessionToken::generate();
            let new = s.secret.digest(new_token.as_bytes());
            if new == old {
                continue;
            }
            let reply: i64 = s
                .invoke(
                    scripts::ROTATE
                        .key(s.session_key(&old))
                        .key(s.session_key(&new))
                        .arg(&s.prefix)
                        .arg(hex_key(&old))
                        .arg(hex_key(&new))
                        .arg(s.idle_ms)
                        .arg(s.abs_ms)
                        .arg(&principal)
                        .arg(&s.channel)
                        .arg(fresh),
                )
                .await?;
            match reply {
                1 => {
                    s.cache.invalidate(&old);
                    return Ok(new_token);
                }
                -1 => continue,
                _ => {
                    s.cache.invalidate(&old);
                    return Err(Error::new(ErrorKind::NotFound));
                }
            }
        }
        Err(Error::new(ErrorKind::Conflict))
    }

    /// Destroys the session (logout) on every server. Returns whether a live
    /// session ended.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, _) = sessions.create(Vec::new()).await?;
    /// assert!(sessions.logout(&token).await?);
    /// assert!(!sessions.logout(&token).await?); // already ended
    /// assert_eq!(sessions.validate(&token).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn logout(&self, token: &(impl TokenInput + ?Sized)) -> Result<bool, Error> {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            return Ok(false);
        };
        let key = s.secret.digest(&bytes);
        let existed: i64 = s
            .invoke(
                scripts::DESTROY
                    .key(s.session_key(&key))
                    .arg(&s.prefix)
                    .arg(hex_key(&key))
                    .arg(&s.channel),
            )
            .await?;
        s.cache.invalidate(&key);
        Ok(existed == 1)
    }

    /// Ends every session of `principal` on every server ("log out
    /// everywhere"). Returns how many ended.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached,
    /// [`ErrorKind::Encoding`] when the principal does not serialize.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let alice = "alice".to_string();
    /// let (phone, _) = sessions.create(Vec::new()).await?;
    /// let phone = sessions.login(&phone, alice.clone()).await?;
    /// assert_eq!(sessions.revoke_user(&alice).await?, 1);
    /// assert_eq!(sessions.validate(&phone).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn revoke_user(&self, principal: &P) -> Result<usize, Error> {
        self.revoke_inner(principal, None).await
    }

    /// Ends one of `principal`'s sessions by its handle. False if the handle
    /// is not one of theirs.
    ///
    /// # Errors
    ///
    /// As [`RedisSessions::revoke_user`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let alice = "alice".to_string();
    /// let (token, handle) = sessions.create(Vec::new()).await?;
    /// let token = sessions.login(&token, alice.clone()).await?;
    /// assert!(!sessions.revoke(&"bob".to_string(), handle).await?); // not bob's
    /// assert!(sessions.revoke(&alice, handle).await?);
    /// assert_eq!(sessions.validate(&token).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn revoke(&self, principal: &P, handle: Handle) -> Result<bool, Error> {
        Ok(self.revoke_inner(principal, Some(handle)).await? > 0)
    }

    async fn revoke_inner(&self, principal: &P, handle: Option<Handle>) -> Result<usize, Error> {
        let s = &*self.shared;
        let set = s.user_key(principal)?;
        let handle = handle.map(|h| h.to_string()).unwrap_or_default();
        let gone: Vec<Vec<u8>> = s
            .invoke(
                scripts::REVOKE
                    .key(&set)
                    .arg(&s.prefix)
                    .arg(&s.channel)
                    .arg(&handle),
            )
            .await?;
        for key in gone.iter().filter_map(|h| unhex_key(h)) {
            s.cache.invalidate(&key);
        }
        Ok(gone.len())
    }

    /// The live sessions of `principal`, oldest first: metadata, never
    /// tokens. Prunes the index of expired sessions.
    ///
    /// # Errors
    ///
    /// As [`RedisSessions::revoke_user`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let alice = "alice".to_string();
    /// let (token, handle) = sessions.create(Vec::new()).await?;
    /// sessions.login(&token, alice.clone()).await?;
    /// let listed: Vec<_> = sessions.sessions_of(&alice).await?.iter().map(|i| i.handle).collect();
    /// assert!(listed.contains(&handle));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn sessions_of(&self, principal: &P) -> Result<Vec<SessionInfo<P>>, Error> {
        let s = &*self.shared;
        let set = s.user_key(principal)?;
        let reply: Value = s.invoke(scripts::LIST.key(&set).arg(&s.prefix)).await?;
        let items = array(&reply);
        let now = items.first().and_then(uint).unwrap_or(0);
        let mut out: Vec<SessionInfo<P>> = items
            .get(1)
            .map(array)
            .unwrap_or_default()
            .iter()
            .filter_map(|row| {
                let f = array(row);
                let handle: Handle = std::str::from_utf8(bulk(f.first()?)?).ok()?.parse().ok()?;
                let (c, i, seen, a) = (
                    uint(f.get(1)?)?,
                    uint(f.get(2)?)?,
                    uint(f.get(3)?)?,
                    uint(f.get(4)?)?,
                );
                let expires = seen.saturating_add(s.idle_ms).min(a);
                (now < expires).then(|| SessionInfo {
                    handle,
                    principal: Some(principal.clone()),
                    created: wall(c),
                    last_seen: wall(seen),
                    token_issued: wall(i),
                    expires: wall(expires),
                    absolute_expires: wall(a),
                    device: None,
                })
            })
            .collect();
        if !out.is_empty() {
            let devices: Value = s.invoke(scripts::DEVICES.key(&set).arg(&s.prefix)).await?;
            for row in array(&devices) {
                if let Some((handle, device)) = device_row(&array(&row))
                    && let Some(info) = out.iter_mut().find(|i| i.handle == handle)
                {
                    info.device = Some(device);
                }
            }
        }
        out.sort_by_key(|i| i.created);
        Ok(out)
    }

    /// Records the device of the session `token` names, listed by
    /// [`RedisSessions::sessions_of`] (as [`crate::Sessions::set_device`]:
    /// kept in the session's hash, gone with it, never logged; not in the
    /// copies servers cache, so reads pay nothing for it).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token,
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, _) = sessions.create(Vec::new()).await?;
    /// let token = sessions.login(&token, "alice".to_string()).await?;
    /// sessions.set_device(&token, sesame::Device::new().with_user_agent("curl/8.5.0", 256)).await?;
    /// let listed = sessions.sessions_of(&"alice".to_string()).await?;
    /// let agent = listed[0].device.as_ref().and_then(|d| d.user_agent.as_deref());
    /// assert_eq!(agent, Some("curl/8.5.0"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_device(
        &self,
        token: &(impl TokenInput + ?Sized),
        device: crate::Device,
    ) -> Result<(), Error> {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        let key = s.secret.digest(&bytes);
        let device = device.bounded();
        let address = device.address.map(|a| a.to_string()).unwrap_or_default();
        let written: i64 = s
            .invoke(
                scripts::SET_DEVICE
                    .key(s.session_key(&key))
                    .arg(device.user_agent.as_deref().unwrap_or_default())
                    .arg(address)
                    .arg(s.idle_ms),
            )
            .await?;
        if written == 1 {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::NotFound))
        }
    }

    /// Ends every session of the principal `token` is logged in as, except
    /// that one, on every server ("sign out of all other devices"), in one
    /// script. Returns how many ended: 0 for an anonymous session.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token,
    /// [`ErrorKind::Unavailable`] when Redis cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let alice = "alice".to_string();
    /// let (phone, _) = sessions.create(Vec::new()).await?;
    /// let phone = sessions.login(&phone, alice.clone()).await?;
    /// let (laptop, _) = sessions.create(Vec::new()).await?;
    /// let laptop = sessions.login(&laptop, alice.clone()).await?;
    /// assert_eq!(sessions.logout_others(&laptop).await?, 1);
    /// assert_eq!(sessions.validate(&phone).await?, None);
    /// assert!(sessions.validate(&laptop).await?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn logout_others(&self, token: &(impl TokenInput + ?Sized)) -> Result<usize, Error> {
        let s = &*self.shared;
        let Some(bytes) = token.token_bytes() else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        let key = s.secret.digest(&bytes);
        let gone: Option<Vec<Vec<u8>>> = s
            .invoke(
                scripts::REVOKE_OTHERS
                    .key(s.session_key(&key))
                    .arg(&s.prefix)
                    .arg(&s.channel)
                    .arg(hex_key(&key))
                    .arg(s.idle_ms),
            )
            .await?;
        let Some(gone) = gone else {
            s.cache.invalidate(&key);
            return Err(Error::new(ErrorKind::NotFound));
        };
        for key in gone.iter().filter_map(|h| unhex_key(h)) {
            s.cache.invalidate(&key);
        }
        Ok(gone.len())
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

    /// How long a copy cached now may be served.
    fn ttl_ms(&self) -> u64 {
        if self.notified.load(Ordering::Relaxed) {
            self.cache_ttl_ms
        } else {
            self.cache_ttl_ms.min(self.fallback_ttl_ms)
        }
    }

    pub(crate) fn session_key(&self, key: &SessionKey) -> String {
        format!("{}:s:{}", self.prefix, hex_key(key))
    }

    fn user_key(&self, principal: &P) -> Result<String, Error> {
        Ok(format!("{}:u:{}", self.prefix, principal_json(principal)?))
    }

    /// Whether a hit at `now` should refresh the idle deadline in Redis.
    #[inline]
    fn touch_due(&self, c: &Copy<T, P>, now: u64) -> bool {
        now.saturating_add(self.idle_ms / TOUCH_DIVISOR) >= c.idle_until.load(Ordering::Relaxed)
    }

    /// The live session for `key`: the local copy, refreshed in Redis if its
    /// idle deadline is getting close, or a read from Redis.
    async fn load(&self, key: &SessionKey, now: u64) -> Result<Option<Arc<Copy<T, P>>>, Error> {
        if let Some(c) = self.cache.peek(key, now, Arc::clone) {
            if self.touch_due(&c, now) && !c.touching.swap(true, Ordering::AcqRel) {
                let touched = self.touch(key, now).await;
                match touched {
                    Ok(Some(())) => {
                        c.idle_until
                            .store(now.saturating_add(self.idle_ms), Ordering::Relaxed);
                        c.touching.store(false, Ordering::Release);
                    }
                    Ok(None) => {
                        self.cache.discard(key, &c);
                        return Ok(None);
                    }
                    Err(e) => {
                        c.touching.store(false, Ordering::Release);
                        return Err(e);
                    }
                }
            }
            return Ok(Some(c));
        }
        self.fetch(key, now).await
    }

    async fn touch(&self, key: &SessionKey, _now: u64) -> Result<Option<()>, Error> {
        self.stats.touches.fetch_add(1, Ordering::Relaxed);
        let reply: i64 = self
            .invoke(scripts::TOUCH.key(self.session_key(key)).arg(self.idle_ms))
            .await?;
        Ok((reply >= 0).then_some(()))
    }

    async fn fetch(&self, key: &SessionKey, now: u64) -> Result<Option<Arc<Copy<T, P>>>, Error> {
        let ticket = self.cache.ticket(key);
        self.stats.fetches.fetch_add(1, Ordering::Relaxed);
        let rec: Option<Vec<Vec<u8>>> = self
            .invoke(scripts::FETCH.key(self.session_key(key)).arg(self.idle_ms))
            .await?;
        let Some(rec) = rec else { return Ok(None) };
        let bad = || Error::new(ErrorKind::Encoding);
        let field = |i: usize| rec.get(i).map(Vec::as_slice).ok_or_else(bad);
        let num = |i: usize| -> Result<u64, Error> {
            std::str::from_utf8(field(i)?)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(bad)
        };
        let version = num(0)?;
        let data: T = decode(field(1)?)?;
        let principal = match field(2)? {
            [] => None,
            p => Some(serde_json::from_slice(p).map_err(|_| bad())?),
        };
        let handle: Handle = std::str::from_utf8(field(3)?)
            .ok()
            .and_then(|h| h.parse().ok())
            .ok_or_else(bad)?;
        let (created, issued, seen, abs, redis_now) = (num(4)?, num(5)?, num(6)?, num(7)?, num(8)?);
        let idle_left = seen.saturating_add(self.idle_ms).saturating_sub(redis_now);
        let abs_left = abs.saturating_sub(redis_now);
        let copy = Arc::new(Copy {
            epoch: Cache::<T, P>::epoch_of(ticket),
            handle,
            version,
            principal,
            created,
            issued,
            abs,
            skew: skew(redis_now, now),
            data,
            hard_until: now.saturating_add(abs_left.min(self.ttl_ms())),
            idle_until: AtomicU64::new(now.saturating_add(idle_left)),
            touching: AtomicBool::new(false),
        });
        if !self.cache.insert(*key, &copy, ticket, now) {
            // Not cached (an invalidation since the ticket, or a newer copy
            // there): serve the cached copy if it is newer, so that no
            // reader on this server is handed a version older than one
            // another reader here may already have been served.
            let newer = self.cache.peek(key, now, |c| {
                (c.version > copy.version).then(|| Arc::clone(c))
            });
            if let Some(Some(newer)) = newer {
                return Ok(Some(newer));
            }
        }
        Ok(Some(copy))
    }
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
