//! Public, non-secret facts about a session: its handle and its metadata.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

/// A session's public handle: a short random identifier fixed at creation
/// and kept across rotation.
///
/// For logs, listings and "end that session" buttons. It is not a
/// credential: no engine operation accepts a handle in place of a token, and
/// [`crate::Sessions::revoke`] takes a handle only together with the
/// principal that owns it. Its text form is 16 lowercase hex digits.
///
/// ```
/// use sesame::Handle;
/// let h: Handle = "00000000deadbeef".parse()?;
/// assert_eq!(h.to_string(), "00000000deadbeef");
/// assert!("xyz".parse::<Handle>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(u64);

impl Handle {
    pub(crate) fn generate() -> Self {
        Self(crate::rng::next_u64())
    }

    /// The handle as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// A handle from a number (as stored by a snapshot or a backend).
    pub fn from_u64(n: u64) -> Self {
        Self(n)
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({:016x})", self.0)
    }
}

/// A string is not a handle (16 hex digits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleParseError;

impl fmt::Display for HandleParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid session handle: expected 16 hex digits")
    }
}

impl std::error::Error for HandleParseError {}

impl FromStr for Handle {
    type Err = HandleParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(HandleParseError);
        }
        u64::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| HandleParseError)
    }
}

/// What may be shown about a session: metadata, never its token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo<P> {
    /// The session's public handle.
    pub handle: Handle,
    /// Who is logged in, if anyone.
    pub principal: Option<P>,
    /// When the session was created.
    pub created: SystemTime,
    /// When it was last used.
    pub last_seen: SystemTime,
    /// When its current token was issued (creation or last rotation).
    pub token_issued: SystemTime,
    /// When it expires unless used again: the earlier of the idle and the
    /// absolute deadline.
    pub expires: SystemTime,
    /// Its absolute deadline.
    pub absolute_expires: SystemTime,
    /// The device it was created or last logged in from, when one was
    /// recorded ([`crate::Sessions::set_device`]; the tower layer's
    /// `record_devices`): filled in by `sessions_of`, the device list, on
    /// every store. `info` leaves it `None`, so that the lookups HTTP layers
    /// make on every request pay nothing for device lists (read one
    /// session's with [`crate::Sessions::device`]). `None` too when
    /// recording is off, and after a restart from a snapshot (devices are
    /// personal data and are not persisted; see [`crate::device`]).
    pub device: Option<crate::Device>,
}
