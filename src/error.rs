//! Errors of engine operations.

use std::fmt;
use std::sync::Arc;

/// An engine operation failed.
///
/// Opaque on purpose: a presented token that is malformed, forged, unknown,
/// expired or revoked gives the same [`ErrorKind::NotFound`], so neither the
/// caller nor an attacker learns which. The error never carries a token.
///
/// A failure of a lower layer keeps its cause, through
/// [`std::error::Error::source`]: a Redis backend that refuses the password
/// and one that is down are both [`ErrorKind::Unavailable`] (the engine
/// fails closed either way), but the cause tells them apart
/// (`sesame::redis::BackendError`). `Display` stays a short fixed text;
/// causes never carry a token or a password.
///
/// Two errors are equal when their kinds are.
#[derive(Clone, Debug)]
pub struct Error {
    kind: ErrorKind,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
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
    /// A live session already holds the caller-chosen id
    /// ([`crate::Sessions::insert_with_id`]): draw another; nothing changed.
    IdTaken,
    /// A caller-chosen id is shorter than [`crate::MIN_ID_LEN`] or longer
    /// than [`crate::MAX_ID_LEN`] bytes ([`crate::Sessions::insert_with_id`]).
    InvalidId,
}

impl Error {
    pub(crate) const fn new(kind: ErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// An error of `kind` caused by `source` (for implementations of
    /// [`crate::store::Store`] outside this crate, and the backends here).
    /// The source must not carry a token or a password: it is what
    /// [`std::error::Error::source`] returns, and it may be logged.
    ///
    /// ```
    /// use std::error::Error as _;
    /// use sesame::{Error, ErrorKind};
    ///
    /// let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    /// let e = Error::with_source(ErrorKind::Unavailable, io);
    /// assert_eq!(e.to_string(), "session backend unavailable");
    /// let cause = e.source().unwrap().downcast_ref::<std::io::Error>().unwrap();
    /// assert_eq!(cause.kind(), std::io::ErrorKind::ConnectionRefused);
    /// ```
    pub fn with_source(
        kind: ErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: Some(Arc::from(source.into())),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// For implementations of [`crate::store::Store`] outside this crate: an
/// error of this kind.
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
            ErrorKind::IdTaken => "a live session already holds this id",
            ErrorKind::InvalidId => "invalid session id: expected 16 to 64 bytes",
        })
    }
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl Eq for Error {}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// How long a client is asked to wait before retrying a `503` (the
/// `Retry-After` of [`Error`]'s response, in seconds): a remote store's
/// reconnect backoff starts at 10 ms and caps at 1 s
/// (`sesame::redis`), so one second covers it.
#[cfg(any(feature = "axum", feature = "actix"))]
pub const RETRY_AFTER_SECS: u32 = 1;

impl Error {
    /// The status code and fixed body of this error's HTTP response (see
    /// the table on `IntoResponse for Error`); shared by the axum and
    /// actix-web adapters.
    #[cfg(any(feature = "axum", feature = "actix"))]
    pub(crate) fn http_response(&self) -> (u16, &'static str) {
        match self.kind {
            ErrorKind::Unavailable | ErrorKind::Full => (503, "service unavailable"),
            ErrorKind::NotFound => (409, "session ended or changed"),
            ErrorKind::Conflict => (409, "conflict, try again"),
            ErrorKind::Encoding | ErrorKind::IdTaken | ErrorKind::InvalidId => {
                (500, "internal server error")
            }
        }
    }
}

/// The response for a session operation that failed (feature `axum`), so
/// handlers can use `?` on [`crate::tower::Session`]'s methods. Bodies are
/// short fixed texts: no token, no backend address, no detail.
///
/// | kind | status | why |
/// |---|---|---|
/// | [`ErrorKind::Unavailable`] | `503` + `Retry-After: 1` | the store cannot answer now; it fails closed |
/// | [`ErrorKind::Full`] | `503` + `Retry-After: 1` | no room for a new session now (capacity, not the client's fault) |
/// | [`ErrorKind::NotFound`] | `409` | the session ended or changed hands while the request ran (another request logged it out, or rotated it with a login) |
/// | [`ErrorKind::Conflict`] | `409` | an update lost to concurrent writers; nothing was written, retrying may succeed |
/// | [`ErrorKind::Encoding`] | `500` | the stored data does not fit the program's type: a deployment bug |
/// | [`ErrorKind::IdTaken`], [`ErrorKind::InvalidId`] | `500` | caller-chosen ids only, which the layer never uses: a bug |
///
/// ```
/// use axum_core::response::IntoResponse as _;
/// use sesame::{Error, ErrorKind};
///
/// let response = Error::from(ErrorKind::Unavailable).into_response();
/// assert_eq!(response.status(), 503);
/// assert_eq!(response.headers()["retry-after"], "1");
/// assert_eq!(Error::from(ErrorKind::NotFound).into_response().status(), 409);
/// ```
#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for Error {
    fn into_response(self) -> axum_core::response::Response {
        use http::StatusCode;
        use http::header::{CACHE_CONTROL, HeaderValue, RETRY_AFTER};

        let (code, body) = self.http_response();
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(all(test, feature = "axum"))]
mod tests {
    use axum_core::response::IntoResponse as _;
    use http::header::{CACHE_CONTROL, RETRY_AFTER};

    use super::{Error, ErrorKind};

    /// Every kind's status, `Retry-After` exactly on `503`, and a body
    /// that is one of the fixed texts.
    #[test]
    fn each_kind_maps_to_its_status() {
        let cases = [
            (ErrorKind::Unavailable, 503, Some("1")),
            (ErrorKind::Full, 503, Some("1")),
            (ErrorKind::NotFound, 409, None),
            (ErrorKind::Conflict, 409, None),
            (ErrorKind::Encoding, 500, None),
            (ErrorKind::IdTaken, 500, None),
            (ErrorKind::InvalidId, 500, None),
        ];
        for (kind, status, retry) in cases {
            let response = Error::from(kind).into_response();
            assert_eq!(response.status(), status, "{kind:?}");
            let retry_after = response.headers().get(RETRY_AFTER);
            assert_eq!(retry_after.map(|v| v.to_str().unwrap()), retry, "{kind:?}");
            assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        }
    }
}
