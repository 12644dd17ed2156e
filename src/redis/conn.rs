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
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, RedisError, RedisResult, ScriptInvocation};

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

/// The command connections.
pub(crate) struct Pool {
    target: Arc<Target>,
    /// Writes wait for this many replicas; `None`: they do not wait.
    acks: Option<Acks>,
    slots: Box<[Mutex<Option<MultiplexedConnection>>]>,
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
    async fn connection(&self, write: bool) -> Result<MultiplexedConnection, Error> {
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
            let client = self.target.client().await?;
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
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
    fn any(&self, cause: impl FnOnce() -> BackendError) -> Result<MultiplexedConnection, Error> {
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
        let reply = tokio::time::timeout(self.io_timeout, invocation.invoke_async(&mut con)).await;
        self.settle(reply)
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
    pub(crate) async fn invoke_write<R: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<R, Error> {
        let mut con = self.connection(true).await?;
        let reply = tokio::time::timeout(self.io_timeout, invocation.invoke_async(&mut con)).await;
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
        let wait = wait.query_async::<i64>(&mut con);
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

/// Whether an error means the connection cannot be trusted any more:
/// also `READONLY`, a primary demoted to a replica by a failover (the next
/// connection asks Sentinel for the new one).
fn broken(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || e.kind() == redis::ErrorKind::ReadOnly
}

#[cfg(test)]
mod tests {
    use super::*;

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
