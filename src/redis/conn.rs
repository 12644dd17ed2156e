//! Connections to Redis: a small pool of blocking connections and a
//! reconnect backoff shared by every caller.
//!
//! # Ground rules
//!
//! - No queue: a caller takes an idle connection or opens its own, so at
//!   most one connection per thread inside a call is open, plus
//!   [`MAX_IDLE`] kept for reuse. Nobody waits for anybody else's request.
//! - Every socket has a connect timeout and read/write timeouts, so a call
//!   returns within a bounded time whatever the network does.
//! - After a connection failure, new connections are refused without
//!   trying until the backoff delay has passed (10 ms doubling to 1 s):
//!   callers fail fast with [`ErrorKind::Unavailable`] instead of piling up
//!   connection attempts on a dead server. The first success resets it.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::ConnectionLike as _;

use crate::error::{Error, ErrorKind};

/// Idle connections kept for reuse; busier moments open (and then close)
/// extra ones.
pub(crate) const MAX_IDLE: usize = 32;
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

/// The pool of command connections.
pub(crate) struct Pool {
    client: redis::Client,
    idle: Mutex<Vec<redis::Connection>>,
    backoff: Mutex<Backoff>,
    pub(crate) connect_timeout: Duration,
    pub(crate) io_timeout: Duration,
}

impl Pool {
    pub(crate) fn new(
        client: redis::Client,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Self {
        Self {
            client,
            idle: Mutex::new(Vec::new()),
            backoff: Mutex::new(Backoff::default()),
            connect_timeout,
            io_timeout,
        }
    }

    /// Opens a connection with the pool's timeouts, honouring the backoff.
    fn connect(&self) -> Result<redis::Connection, Error> {
        if !self.backoff.lock().ready(Instant::now()) {
            return Err(Error::new(ErrorKind::Unavailable));
        }
        let opened = self
            .client
            .get_connection_with_timeout(self.connect_timeout)
            .and_then(|c| {
                c.set_read_timeout(Some(self.io_timeout))?;
                c.set_write_timeout(Some(self.io_timeout))?;
                Ok(c)
            });
        match opened {
            Ok(c) => {
                self.backoff.lock().succeed();
                Ok(c)
            }
            Err(_) => {
                self.backoff.lock().fail(Instant::now());
                Err(Error::new(ErrorKind::Unavailable))
            }
        }
    }

    /// Runs `f` on a connection. Any Redis error becomes
    /// [`ErrorKind::Unavailable`]; a connection that saw an I/O error is
    /// closed, and so are the idle ones (after a server restart they are all
    /// dead).
    pub(crate) fn run<R>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> Result<R, Error> {
        let pooled = self.idle.lock().pop();
        let mut con = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        match f(&mut con) {
            Ok(r) => {
                let mut idle = self.idle.lock();
                if idle.len() < MAX_IDLE {
                    idle.push(con);
                }
                Ok(r)
            }
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || !con.is_open()
                {
                    drop(con);
                    let stale = std::mem::take(&mut *self.idle.lock());
                    drop(stale);
                    self.backoff.lock().fail(Instant::now());
                } else {
                    let mut idle = self.idle.lock();
                    if idle.len() < MAX_IDLE {
                        idle.push(con);
                    }
                }
                Err(Error::new(ErrorKind::Unavailable))
            }
        }
    }
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
