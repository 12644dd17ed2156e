//! The snapshot error: an opaque struct with a public kind.

use std::fmt;
use std::io;
use std::sync::Arc;

/// Saving or loading a snapshot failed.
///
/// Every way a file can be wrong has its own [`SnapshotErrorKind`]; none of
/// them panics or allocates more than the file's size (nor, past its
/// header, reads a file over the loader's cap). The error never holds
/// a token (a snapshot holds none) nor any session's data. It is `Clone` (an
/// I/O cause is shared) so a periodic saver can hand out its last outcome.
#[derive(Clone, Debug)]
pub struct SnapshotError {
    kind: SnapshotErrorKind,
    /// The version found, for [`SnapshotErrorKind::UnsupportedVersion`].
    version: u32,
    source: Option<Arc<io::Error>>,
}

/// What was wrong with a snapshot, or with saving one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SnapshotErrorKind {
    /// The file (or, for a key file, the key file) does not exist.
    NotFound,
    /// Reading or writing failed; see [`std::error::Error::source`].
    Io,
    /// The file ends early: shorter than a header and a footer, or without
    /// the end marker a complete snapshot has.
    Truncated,
    /// The file does not start with the snapshot magic: not a sesame snapshot.
    BadMagic,
    /// A format version this build cannot read.
    UnsupportedVersion,
    /// The file was written under another secret key: its sessions' digests
    /// would match no token under this engine's key.
    ForeignKey,
    /// The file does not authenticate under the key: it was damaged,
    /// edited, or cut short at a chunk boundary.
    Checksum,
    /// The checksum matched but the content breaks the format (a length
    /// beyond the file, a count that cannot fit, stray bytes): a forged file
    /// or a bug.
    Corrupt,
    /// A session's data or principal did not decode as this build's types
    /// (did `T` or `P` change since the file was written?).
    Decode,
    /// A session's data or principal could not be encoded, or an encoding
    /// exceeds the format's 4 GiB per-field limit.
    Encode,
    /// A key or state file is not private: owned by another user than the
    /// process's effective user, or readable or writable by group or others
    /// (Unix modes `0o077`). It must be this user's, mode `0600` or stricter.
    InsecureKeyFile,
    /// A key file holds something other than 64 hex digits (or 32 raw bytes).
    BadKeyFile,
    /// The file is larger than the loader's cap
    /// ([`SnapshotStore::max_bytes`](super::SnapshotStore::max_bytes)); nothing
    /// past its header was read.
    TooLarge,
    /// A genuine snapshot older than the newest one the store recorded was
    /// put back in place (a replay, or a restore from an old backup): it
    /// would bring back sessions that ended since.
    RolledBack,
    /// The store's state file (generation and revocation journal) is
    /// damaged, or was written under another secret key.
    BadState,
    /// The engine already journals its ended sessions to a store: one
    /// store per engine.
    InUse,
}

impl SnapshotError {
    pub(crate) const fn new(kind: SnapshotErrorKind) -> Self {
        Self {
            kind,
            version: 0,
            source: None,
        }
    }

    pub(crate) const fn version(found: u32) -> Self {
        Self {
            kind: SnapshotErrorKind::UnsupportedVersion,
            version: found,
            source: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> SnapshotErrorKind {
        self.kind
    }
}

impl From<crate::key::KeyFileError> for SnapshotError {
    fn from(e: crate::key::KeyFileError) -> Self {
        use crate::key::KeyFileErrorKind as F;
        let kind = match e.kind() {
            F::Insecure => SnapshotErrorKind::InsecureKeyFile,
            F::Malformed => SnapshotErrorKind::BadKeyFile,
            // `Io` and any later kind: as the I/O error, if there is one.
            _ if e
                .io()
                .is_some_and(|io| io.kind() == io::ErrorKind::NotFound) =>
            {
                SnapshotErrorKind::NotFound
            }
            _ => SnapshotErrorKind::Io,
        };
        Self {
            kind,
            version: 0,
            source: e.io().cloned(),
        }
    }
}

impl From<io::Error> for SnapshotError {
    fn from(e: io::Error) -> Self {
        let kind = if e.kind() == io::ErrorKind::NotFound {
            SnapshotErrorKind::NotFound
        } else {
            SnapshotErrorKind::Io
        };
        Self {
            kind,
            version: 0,
            source: Some(Arc::new(e)),
        }
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SnapshotErrorKind as K;
        match self.kind {
            K::NotFound => f.write_str("snapshot file not found"),
            K::Io => f.write_str("snapshot i/o failed"),
            K::Truncated => {
                f.write_str("snapshot truncated: expected an end marker, got end of file")
            }
            K::BadMagic => f.write_str("not a sesame snapshot: bad magic"),
            K::UnsupportedVersion => write!(
                f,
                "unsupported snapshot version: expected {}, got {}",
                super::format::VERSION,
                self.version
            ),
            K::ForeignKey => {
                f.write_str("snapshot written under another secret key: fingerprints differ")
            }
            K::Checksum => {
                f.write_str("snapshot does not authenticate: damaged, edited or cut short")
            }
            K::Corrupt => f.write_str("snapshot content breaks the format"),
            K::Decode => f.write_str("session data or principal in snapshot did not decode"),
            K::Encode => f.write_str("session data or principal could not be encoded"),
            K::InsecureKeyFile => f.write_str(
                "key or state file not private: expected owned by this user with mode 0600",
            ),
            K::BadKeyFile => f.write_str("key file malformed: expected 64 hex digits"),
            K::TooLarge => f.write_str("snapshot larger than the loader's cap"),
            K::RolledBack => f.write_str(
                "snapshot older than the newest one saved: expected the recorded generation",
            ),
            K::BadState => f.write_str("snapshot state file damaged or under another key"),
            K::InUse => f.write_str("the engine already journals to a snapshot store"),
        }
    }
}

impl std::error::Error for SnapshotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
