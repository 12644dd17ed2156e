//! Connections to Redis: a few multiplexed async connections and a
//! reconnect backoff shared by every caller.
//!
//! # Why multiplexed connections and not the connection manager
//!
//! A [`redis::aio::MultiplexedConnection`] pipelines every request sent
//! through it: any number of tasks share one socket, each awaiting its own
//! reply, so a "pool" is a handful of them ([`CONNECTIONS`], used round
//! robin, so one large reply does not hold up every caller). The crate's
//! `ConnectionManager` would also reconnect by itself, but behind the
//! caller: during an outage callers wait on its reconnect attempts and its
//! retry policy. Sesame keeps its own, explicit rule instead, the one the
//! blocking client had: fail fast during a backoff, never queue.
//!
//! # Ground rules
//!
//! - No queue: a caller clones a connected handle (a cheap `Arc` clone)
//!   and sends; only a caller finding its slot empty connects, under a lock
//!   that others of that slot wait on for at most the connect timeout. A
//!   slot that cannot connect (backoff, refusal) lends another slot's open
//!   connection.
//! - Every request is bounded by the I/O timeout (`tokio::time::timeout`
//!   around the whole call, on top of the client's own response timeout),
//!   every connect, handshake included, by the connect timeout: a frozen
//!   Redis gives [`ErrorKind::Unavailable`] within one of them, never a
//!   hang (a call that connects first: both, at worst).
//! - A request that failed on the connection (I/O error, dropped
//!   connection, timeout) drops every connection (after a server restart
//!   they are all dead) and starts the backoff (10 ms doubling to 1 s),
//!   during which new connections are refused without trying: callers fail
//!   fast. The first successful connect resets it. An error answered by
//!   Redis (a script error) keeps the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, RedisResult,
    ScriptInvocation, Value,
};

use super::cause::BackendError;
use super::target::Target;
use crate::error::{Error, ErrorKind};

/// Multiplexed connections per store.
pub(crate) const CONNECTIONS: usize = 4;
/// First reconnect delay after a failure.
pub(crate) const BACKOFF_START: Duration = Duration::from_millis(10);
/// Longest reconnect delay: bounds how long service takes to resume once
/// Redis is back.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Exponential backoff: 10 ms, 20 ms, ... capped at [`BACKOFF_MAX`].
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
}

impl Backoff {
    /// The delay after the current run of failures.
    pub(crate) fn delay(&self) -> Duration {
        let shift = self.failures.saturating_sub(1).min(16);
        BACKOFF_START.saturating_mul(1 << shift).min(BACKOFF_MAX)
    }

    /// Records a failure and schedules the next attempt.
    pub(crate) fn fail(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + self.delay());
    }

    pub(crate) fn succeed(&mut self) {
        self.failures = 0;
        self.retry_at = None;
    }

    /// Whether an attempt may be made at `now`.
    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|t| now >= t)
    }
}

/// Replicas a write waits for before it returns (`WAIT`), and how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Acks {
    pub(crate) replicas: u32,
    pub(crate) timeout: Duration,
}

/// One command connection: to a single server, or to a cluster (the
/// client routes each script by its first key, follows `MOVED`, and holds
/// one multiplexed connection per node).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The hash slot of the hash tag `{TT}` (two lowercase hex digits of
/// `tag`): CRC16-XMODEM of the tag's text, modulo 16384, as Redis Cluster
/// computes it.
pub(crate) fn slot_of_tag(tag: u8) -> u16 {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    slot_of(&[DIGITS[usize::from(tag >> 4)], DIGITS[usize::from(tag & 15)]])
}

/// The hash slot of a key whose hash tag is `text` (CRC16-XMODEM modulo
/// 16384).
pub(crate) fn slot_of(text: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in text {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16_384
}

/// The command connections.
pub(crate) struct Pool {
    target: Arc<Target>,
    /// Writes wait for this many replicas; `None`: they do not wait.
    acks: Option<Acks>,
    slots: Box<[Mutex<Option<Conn>>]>,
    connecting: Box<[tokio::sync::Mutex<()>]>,
    next: AtomicUsize,
    backoff: Mutex<Backoff>,
    /// Why the last connect failed: the cause reported while backing off.
    last: Mutex<Option<BackendError>>,
    pub(crate) connect_timeout: Duration,
    pub(crate) io_timeout: Duration,
}

impl Pool {
    pub(crate) fn new(
        target: Arc<Target>,
        acks: Option<Acks>,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Self {
        Self {
            target,
            acks,
            slots: (0..CONNECTIONS).map(|_| Mutex::new(None)).collect(),
            connecting: (0..CONNECTIONS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            next: AtomicUsize::new(0),
            backoff: Mutex::new(Backoff::default()),
            last: Mutex::new(None),
            connect_timeout,
            io_timeout,
        }
    }

    /// A connection: the next slot's, opened (honouring the backoff) if the
    /// slot is empty. When writes wait for replicas they use the upper half
    /// of the slots and everything else the lower half: a `WAIT` blocks its
    /// connection on the server until the replicas answer, and must not
    /// hold up the reads pipelined behind it.
    async fn connection(&self, write: bool) -> Result<Conn, Error> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let i = match self.acks {
            None => n % CONNECTIONS,
            Some(_) if write => CONNECTIONS / 2 + n % (CONNECTIONS - CONNECTIONS / 2),
            Some(_) => n % (CONNECTIONS / 2),
        };
        if let Some(c) = self.slots[i].lock().clone() {
            return Ok(c);
        }
        let _connecting = self.connecting[i].lock().await;
        if let Some(c) = self.slots[i].lock().clone() {
            return Ok(c);
        }
        if !self.backoff.lock().ready(Instant::now()) {
            return self.any(|| {
                self.last
                    .lock()
                    .clone()
                    .unwrap_or_else(BackendError::timeout)
            });
        }
        // A `WAIT` may take the acknowledgement timeout on top of the I/O
        // timeout; every other request is bounded by the I/O timeout on
        // the caller's side.
        let wait = self.acks.map_or(Duration::ZERO, |a| a.timeout);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(self.io_timeout + wait);
        let opened = tokio::time::timeout(self.connect_timeout, async {
            if let Target::Cluster { client, .. } = &*self.target {
                // The slot map is read afresh from the seed nodes: after a
                // failover, the promoted masters.
                return client.get_async_connection().await.map(Conn::Cluster);
            }
            let client = self.target.client().await?;
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map(Conn::Single)
        })
        .await;
        match opened {
            Ok(Ok(c)) => {
                self.backoff.lock().succeed();
                *self.last.lock() = None;
                *self.slots[i].lock() = Some(c.clone());
                Ok(c)
            }
            Ok(Err(e)) if !e.is_timeout() => {
                // Refused (`maxclients`, say): others may still serve.
                self.backoff.lock().fail(Instant::now());
                let cause = BackendError::from_redis(&e);
                *self.last.lock() = Some(cause.clone());
                self.any(|| cause)
            }
            opened => {
                // No answer within the connect timeout: a frozen or
                // unreachable server; do not wait on another connection too.
                self.backoff.lock().fail(Instant::now());
                let cause = match opened {
                    Ok(Err(e)) => BackendError::from_redis(&e),
                    _ => BackendError::timeout(),
                };
                *self.last.lock() = Some(cause.clone());
                Err(Error::with_source(ErrorKind::Unavailable, cause))
            }
        }
    }

    /// Any open connection, when the slot's own cannot be opened (Redis at
    /// `maxclients`, say, or a backoff after such a refusal).
    fn any(&self, cause: impl FnOnce() -> BackendError) -> Result<Conn, Error> {
        self.slots
            .iter()
            .find_map(|slot| slot.lock().clone())
            .ok_or_else(|| Error::with_source(ErrorKind::Unavailable, cause()))
    }

    /// Runs a script that only reads (or only refreshes a deadline). Any
    /// failure becomes [`ErrorKind::Unavailable`].
    pub(crate) async fn invoke<R: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<R, Error> {
        let mut con = self.connection(false).await?;
        let reply = tokio::time::timeout(self.io_timeout, run(invocation, &mut con)).await;
        self.settle(reply)
    }

    /// Whether the store talks to a Redis Cluster.
    pub(crate) fn clustered(&self) -> bool {
        matches!(*self.target, Target::Cluster { .. })
    }

    /// Runs a script that creates, changes or ends a session. With replica
    /// acknowledgements configured, it returns only once that many replicas
    /// hold the write (`WAIT` on the connection that wrote): a failover to
    /// one of them cannot undo it, so a logout or revocation that returned
    /// stays final. Fewer acknowledgements within the timeout give
    /// [`ErrorKind::Unavailable`] (cause
    /// [`super::BackendErrorKind::NotReplicated`]): the primary has the
    /// write, but it is not known to survive a failover. Safety over
    /// availability: while fewer replicas are attached (one was lost, or a
    /// failover promoted the only one), every write answers so, until one
    /// attaches again. Waiting for "the replicas that happen to be
    /// connected" instead would accept writes exactly when a replica has
    /// been cut off, the case in which a failover loses them.
    ///
    /// `tag`: the hash tag of the script's keys; on a cluster the `WAIT`
    /// goes to the master of its slot, the node that ran the write, over
    /// the same connection. One window is left: a failover between the
    /// write and its `WAIT` sends the `WAIT` to the promoted node, where
    /// this client wrote nothing; with one replica per master it has none
    /// and answers 0 (`NotReplicated`), but a promoted node that already
    /// has replicas would count them.
    pub(crate) async fn invoke_write<R: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
        tag: u8,
    ) -> Result<R, Error> {
        let mut con = self.connection(true).await?;
        let reply = tokio::time::timeout(self.io_timeout, run(invocation, &mut con)).await;
        let reply = self.settle(reply)?;
        let Some(acks) = self.acks else {
            return Ok(reply);
        };
        let want = acks.replicas;
        let mut wait = redis::cmd("WAIT");
        wait.arg(want).arg(
            u64::try_from(acks.timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        );
        let wait = async {
            match &mut con {
                Conn::Cluster(c) => {
                    let route = Route::new(slot_of_tag(tag), SlotAddr::Master);
                    let routing =
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                    redis::from_owned_redis_value::<i64>(c.route_command(&wait, routing).await?)
                }
                Conn::Single(c) => wait.query_async::<i64>(c).await,
            }
        };
        let acked =
            self.settle(tokio::time::timeout(self.io_timeout + acks.timeout, wait).await)?;
        if acked < i64::from(want) {
            return Err(Error::with_source(
                ErrorKind::Unavailable,
                BackendError::not_replicated(),
            ));
        }
        Ok(reply)
    }

    /// A reply, or the failure: a timeout or a connection fault drops every
    /// connection and starts the backoff.
    fn settle<R>(
        &self,
        reply: Result<RedisResult<R>, tokio::time::error::Elapsed>,
    ) -> Result<R, Error> {
        match reply {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) if !broken(&e) => Err(Error::with_source(
                ErrorKind::Unavailable,
                BackendError::from_redis(&e),
            )),
            reply => {
                for slot in self.slots.iter() {
                    drop(slot.lock().take());
                }
                self.backoff.lock().fail(Instant::now());
                let cause = match reply {
                    Ok(Err(e)) => BackendError::from_redis(&e),
                    _ => BackendError::timeout(),
                };
                Err(Error::with_source(ErrorKind::Unavailable, cause))
            }
        }
    }
}

/// Runs a script: `EVALSHA`, loading it on `NOSCRIPT` (the crate's
/// `invoke_async`; on a cluster `SCRIPT LOAD` goes to every master). A
/// second `NOSCRIPT` (a failover between the load and the call, to a
/// replica that never saw the script) is retried once more, so it never
/// reaches a caller as such.
async fn run<R: FromRedisValue>(
    invocation: &ScriptInvocation<'_>,
    con: &mut Conn,
) -> RedisResult<R> {
    match invocation.invoke_async(con).await {
        Err(e) if e.kind() == redis::ErrorKind::NoScriptError => invocation.invoke_async(con).await,
        reply => reply,
    }
}

/// Whether an error means the connection cannot be trusted any more:
/// also `READONLY`, a primary demoted to a replica by a failover (the next
/// connection asks Sentinel for the new one).
fn broken(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || e.kind() == redis::ErrorKind::ReadOnly
        || e.kind() == redis::ErrorKind::ClusterDown
        || e.kind() == redis::ErrorKind::MasterDown
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers (CRC16-XMODEM of the tag text, modulo 16384; also
    /// checked against `CLUSTER KEYSLOT` in `tests/redis_cluster.rs`).
    #[test]
    fn tag_slots_match_redis() {
        assert_eq!(slot_of_tag(0x00), 13_254);
        assert_eq!(slot_of_tag(0x7f), 4_194);
        assert_eq!(slot_of_tag(0xff), 11_756);
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let mut b = Backoff::default();
        let t = Instant::now();
        assert!(b.ready(t));
        b.fail(t);
        assert_eq!(b.delay(), BACKOFF_START);
        assert!(!b.ready(t));
        assert!(b.ready(t + BACKOFF_START));
        b.fail(t);
        assert_eq!(b.delay(), BACKOFF_START * 2);
        for _ in 0..40 {
            b.fail(t);
        }
        assert_eq!(b.delay(), BACKOFF_MAX);
        b.succeed();
        assert!(b.ready(t));
    }
}
