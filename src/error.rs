//! Errors of engine operations.

use std::fmt;

/// An engine operation failed.
///
/// Opaque on purpose: a presented token that is malformed, forged, unknown,
/// expired or revoked gives the same [`ErrorKind::NotFound`], so neither the
/// caller nor an attacker learns which. The error never carries a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
}

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No live session answers to the token.
    NotFound,
    /// The store is at `max_sessions` and holds no anonymous session to evict.
    Full,
    /// A remote backend (Redis) cannot be reached; the engine fails closed.
    Unavailable,
    /// A remote backend's optimistic update lost to concurrent writers too
    /// many times in a row; nothing was written.
    Conflict,
    /// Session data could not be encoded for, or decoded from, a remote
    /// backend (for example after an incompatible change of its type).
    Encoding,
}

impl Error {
    pub(crate) const fn new(kind: ErrorKind) -> Self {
        Self { kind }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// For implementations of `sesame::tower::Store` (feature `tower`) and
/// other backends outside this crate: an error of this kind.
///
/// ```
/// use sesame::{Error, ErrorKind};
/// let e = Error::from(ErrorKind::Unavailable);
/// assert_eq!(e.kind(), ErrorKind::Unavailable);
/// ```
impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            ErrorKind::NotFound => "no live session for this token",
            ErrorKind::Full => {
                "session store full: at max_sessions with no anonymous session to evict"
            }
            ErrorKind::Unavailable => "session backend unavailable",
            ErrorKind::Conflict => "session update lost to concurrent writers; nothing written",
            ErrorKind::Encoding => "session data could not be encoded or decoded",
        })
    }
}

impl std::error::Error for Error {}
