//! Why Redis did not answer: the cause behind an
//! [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable), redacted.
//!
//! The Redis client's own error can carry free text from its configuration
//! or the server; this keeps only its category, the server's error code
//! (`WRONGPASS`, `NOAUTH`, `OOM`, ...) and, for I/O, the I/O error kind. It
//! never holds the URL, so a password in it cannot leak into a log.

use std::fmt;

use redis::RedisError;

/// What kind of failure a [`BackendError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The server refused the credentials (wrong or missing password or
    /// user): a configuration error, not an outage.
    Auth,
    /// Nothing listens at the address: the server is down or the address
    /// is wrong.
    Refused,
    /// No answer within the connect or I/O timeout (a frozen, overloaded or
    /// unreachable server).
    Timeout,
    /// Another I/O failure (connection reset, broken pipe, ...).
    Io,
    /// The server answered with an error (`OOM`, `READONLY`, `BUSY`, ...).
    Server,
    /// The write reached the primary, but fewer replicas than configured
    /// acknowledged it in time (`RedisBuilder::replica_acks`): it is not
    /// known to survive a failover.
    NotReplicated,
    /// Anything else the client reported.
    Other,
}

/// The cause of an `Unavailable` error from [`crate::redis::RedisSessions`]:
/// what [`std::error::Error::source`] returns on it.
///
/// ```
/// use std::error::Error as _;
/// use sesame::redis::{BackendError, BackendErrorKind};
///
/// fn is_misconfigured(e: &sesame::Error) -> bool {
///     e.source()
///         .and_then(|c| c.downcast_ref::<BackendError>())
///         .is_some_and(|c| c.kind() == BackendErrorKind::Auth)
/// }
/// assert!(!is_misconfigured(&sesame::ErrorKind::Unavailable.into()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendError {
    kind: BackendErrorKind,
    /// The server's error code, when it sent one (`WRONGPASS`).
    code: Option<Box<str>>,
    /// The I/O error kind, for I/O failures.
    io: Option<std::io::ErrorKind>,
}

impl BackendError {
    /// What kind of failure this is.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// The server's error code (`WRONGPASS`, `NOAUTH`, `OOM`, ...), when
    /// the server sent one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// A timeout of the client's own (no answer in time).
    pub(crate) fn timeout() -> Self {
        Self {
            kind: BackendErrorKind::Timeout,
            code: None,
            io: None,
        }
    }

    /// A write not acknowledged by enough replicas.
    pub(crate) fn not_replicated() -> Self {
        Self {
            kind: BackendErrorKind::NotReplicated,
            code: None,
            io: None,
        }
    }

    /// The redacted form of the client's error.
    pub(crate) fn from_redis(e: &RedisError) -> Self {
        // Server error codes are short upper-case words; anything else is
        // not kept (it could be free text).
        let code = e
            .code()
            .filter(|c| c.len() <= 32 && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
            .map(Box::from);
        let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(code.as_deref(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"));
        let io = e.is_io_error().then(|| io_kind(e)).flatten();
        let kind = if auth {
            BackendErrorKind::Auth
        } else if e.is_timeout() {
            BackendErrorKind::Timeout
        } else if e.is_connection_refusal() {
            BackendErrorKind::Refused
        } else if e.is_io_error() || e.is_connection_dropped() {
            BackendErrorKind::Io
        } else if code.is_some() {
            BackendErrorKind::Server
        } else {
            BackendErrorKind::Other
        };
        Self { kind, code, io }
    }
}

/// The I/O error kind inside a client error, if it wraps one.
fn io_kind(e: &RedisError) -> Option<std::io::ErrorKind> {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind)
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            BackendErrorKind::Auth => "redis authentication failed",
            BackendErrorKind::Refused => "redis connection refused",
            BackendErrorKind::Timeout => "redis timed out",
            BackendErrorKind::Io => "redis i/o error",
            BackendErrorKind::Server => "redis server error",
            BackendErrorKind::NotReplicated => "redis write not acknowledged by the replicas",
            BackendErrorKind::Other => "redis client error",
        })?;
        match (&self.code, self.io) {
            (Some(code), _) => write!(f, " ({code})"),
            (None, Some(io)) => write!(f, " ({io})"),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for BackendError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_codes_are_kept_and_free_text_is_not() {
        let e = RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "auth",
            "redis://:secret@host/".to_string(),
        ));
        let b = BackendError::from_redis(&e);
        assert_eq!(b.kind(), BackendErrorKind::Auth);
        assert!(!format!("{b} {b:?}").contains("secret"));

        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let b = BackendError::from_redis(&io);
        assert_eq!(b.kind(), BackendErrorKind::Refused);
        assert_eq!(
            b.to_string(),
            "redis connection refused (connection refused)"
        );
    }
}
