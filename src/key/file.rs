//! The secret key file: read it, or create it with mode `0600`; and the
//! private-file helpers the snapshot files share.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;

use super::SecretKey;

/// Reading or creating a key file failed
/// ([`SecretKey::load_or_create`]).
///
/// Its `Display` names the rule the file broke, never the key.
#[derive(Clone, Debug)]
pub struct KeyFileError {
    kind: KeyFileErrorKind,
    source: Option<Arc<io::Error>>,
}

/// What was wrong with a key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyFileErrorKind {
    /// Reading or creating the file failed; see
    /// [`std::error::Error::source`].
    Io,
    /// The file is not private: owned by another user than the process's
    /// effective user, or readable or writable by group or others (Unix
    /// modes `0o077`). It must be this user's, mode `0600` or stricter.
    Insecure,
    /// The file holds something other than 64 hex digits (or 32 raw
    /// bytes), or an all-zero key.
    Malformed,
}

impl KeyFileError {
    pub(crate) const fn new(kind: KeyFileErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// What was wrong.
    pub fn kind(&self) -> KeyFileErrorKind {
        self.kind
    }

    /// The I/O error, for [`KeyFileErrorKind::Io`].
    pub(crate) fn io(&self) -> Option<&Arc<io::Error>> {
        self.source.as_ref()
    }
}

impl From<io::Error> for KeyFileError {
    fn from(e: io::Error) -> Self {
        Self {
            kind: KeyFileErrorKind::Io,
            source: Some(Arc::new(e)),
        }
    }
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            KeyFileErrorKind::Io => "key file i/o failed",
            KeyFileErrorKind::Insecure => {
                "key file not private: expected owned by this user with mode 0600"
            }
            KeyFileErrorKind::Malformed => "key file malformed: expected 64 hex digits",
        })
    }
}

impl std::error::Error for KeyFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl SecretKey {
    /// Reads the secret key from `path`, or creates one there if the file
    /// does not exist. Needs no feature: a server that shares sessions
    /// through Redis needs the same key on every node and across restarts.
    ///
    /// The file holds the key as 64 hex digits and a newline (a file of
    /// exactly 32 raw bytes is accepted too). A new file is created with
    /// mode `0600` and `fsync`ed. On Unix an existing file owned by another
    /// user than the process's effective user, or readable or writable by
    /// group or others, is refused, as `ssh` refuses such a private key:
    /// whoever reads the key can decrypt and forge snapshots and recognise
    /// tokens, and whoever can replace it can make the server trust a key
    /// they know.
    ///
    /// Keep the key file apart from what it protects (another directory,
    /// another backup).
    ///
    /// # Errors
    ///
    /// [`KeyFileErrorKind::Insecure`], [`KeyFileErrorKind::Malformed`], or
    /// [`KeyFileErrorKind::Io`] when reading or creating fails (a crash
    /// while creating may leave a short file, refused as `Malformed`:
    /// delete it).
    ///
    /// ```
    /// use sesame::SecretKey;
    /// # let dir = std::env::temp_dir().join(format!("sesame-doc-secret-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("session.key");
    /// # let _ = std::fs::remove_file(&path);
    /// let key = SecretKey::load_or_create(&path)?;
    /// assert_eq!(SecretKey::load_or_create(&path)?, key);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<SecretKey, KeyFileError> {
        let path = path.as_ref();
        match read_key(path) {
            Err(e) if e.io().is_some_and(|e| e.kind() == io::ErrorKind::NotFound) => {}
            other => return other,
        }
        let key = SecretKey::generate();
        match create_private(path) {
            Ok(mut f) => {
                let mut text = hex(key.as_bytes());
                text.push('\n');
                f.write_all(text.as_bytes())?;
                f.sync_all()?;
                sync_dir(dir_of(path))?;
                Ok(key)
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key(path),
            Err(e) => Err(e.into()),
        }
    }
}

fn read_key(path: &Path) -> Result<SecretKey, KeyFileError> {
    let f = File::open(path)?;
    if !is_private(&f.metadata()?) {
        return Err(KeyFileError::new(KeyFileErrorKind::Insecure));
    }
    // A key file is tiny: read at most a little more than the longest form.
    let mut buf = Vec::with_capacity(80);
    (&f).take(80).read_to_end(&mut buf)?;
    let bytes = parse_key(&buf).ok_or(KeyFileError::new(KeyFileErrorKind::Malformed))?;
    if bytes.iter().all(|&b| b == 0) {
        return Err(KeyFileError::new(KeyFileErrorKind::Malformed));
    }
    Ok(SecretKey::from_bytes(bytes))
}

fn parse_key(buf: &[u8]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if buf.len() == 32 {
        out.copy_from_slice(buf);
        return Some(out);
    }
    let text = buf.trim_ascii();
    if text.len() != 64 {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Whether a file is private: owned by the process's effective uid, and
/// neither readable nor writable by group or others (as `ssh` wants of a
/// private key). Always true off Unix.
pub(crate) fn is_private(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        meta.uid() == rustix::process::geteuid().as_raw() && meta.permissions().mode() & 0o077 == 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        true
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Opens a new file readable and writable by its owner only (on Unix).
pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// Flushes a directory's entries (the rename) to disk. On systems where a
/// directory cannot be opened as a file (Windows), the rename is left to the
/// file system.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_round_trips() {
        let k = [0xA5u8; 32];
        let text = format!("{}\n", hex(&k));
        assert_eq!(parse_key(text.as_bytes()), Some(k));
        assert_eq!(parse_key(&k), Some(k));
        assert_eq!(parse_key(b"zz"), None);
        assert_eq!(parse_key(&[b'g'; 64]), None);
    }

    #[test]
    fn bare_file_name_lives_in_current_dir() {
        assert_eq!(dir_of(Path::new("snap.bin")), Path::new("."));
        assert_eq!(dir_of(Path::new("/a/snap.bin")), Path::new("/a"));
    }
}
