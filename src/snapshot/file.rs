//! Files: the capped read, the crash-safe replace (one save at a time per
//! path), private files, and the secret key file.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use super::error::{SnapshotError, SnapshotErrorKind as K};
use super::format::{self, HEADER_LEN, Header};
use crate::key::SecretKey;
pub(crate) use crate::key::file::sync_dir;
use crate::key::file::{create_private, dir_of};

/// The default cap on a snapshot file's size: 4 GiB. A larger file is
/// refused after its header is read and before its body is.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 4 << 30;

/// Write buffer of a save: large writes, few syscalls.
const WRITE_BUFFER: usize = 1 << 20; // 1 MiB

/// A fresh, unused temporary name beside `path`: `.<name>.<pid>.<random>.tmp`.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".to_owned());
    let tmp = format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        crate::rng::next_u64()
    );
    dir_of(path).join(tmp)
}

/// The leftover temporary files of saves to `path` (killed before their
/// rename), by name: `.<name>.*.tmp` beside it.
pub(crate) fn temps_of(path: &Path) -> Vec<PathBuf> {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let prefix = format!(".{name}.");
    let Ok(dir) = fs::read_dir(dir_of(path)) else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(".tmp") && n.len() > prefix.len() + 4
        })
        .map(|e| e.path())
        .collect()
}

/// Removes the leftover temporary files of saves to `path`. Called with
/// the path's save lock held, so none of them is being written.
pub(crate) fn remove_temps(path: &Path) {
    for t in temps_of(path) {
        let _ = fs::remove_file(t);
    }
}

/// The lock that serializes saves to one path within the process, so that
/// a save that captured older state never renames last.
pub(crate) fn save_lock(path: &Path) -> Arc<Mutex<()>> {
    type Locks = Mutex<HashMap<PathBuf, Weak<Mutex<()>>>>;
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut locks = LOCKS.get_or_init(Locks::default).lock();
    if let Some(lock) = locks.get(&key).and_then(Weak::upgrade) {
        return lock;
    }
    locks.retain(|_, w| w.strong_count() > 0);
    let lock = Arc::new(Mutex::new(()));
    locks.insert(key, Arc::downgrade(&lock));
    lock
}

/// Reads a snapshot file with its checks before its allocations: the
/// header first (magic, version, key fingerprint), then the size against
/// `max`, then the rest. Returns the header and the whole file.
///
/// # Errors
///
/// `NotFound`/`Io`, those of [`format::check_header`], `TooLarge`.
pub(crate) fn read_capped(
    path: &Path,
    max: u64,
    secret: &SecretKey,
) -> Result<(Header, Vec<u8>), SnapshotError> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = Vec::with_capacity(HEADER_LEN);
    (&mut f).take(HEADER_LEN as u64).read_to_end(&mut head)?;
    let header = format::check_header(&head, len, secret)?;
    if len > max {
        return Err(SnapshotError::new(K::TooLarge));
    }
    let cap = usize::try_from(len).map_err(|_| SnapshotError::new(K::TooLarge))?;
    let mut bytes = Vec::with_capacity(cap);
    bytes.extend_from_slice(&head);
    // Bounded even if the file grows while it is read.
    f.take(max - HEADER_LEN as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(SnapshotError::new(K::TooLarge));
    }
    Ok((header, bytes))
}

/// The generation in the header of the file at `path`, if it is a snapshot
/// under `secret` (unauthenticated: a hint).
pub(crate) fn peek_generation(path: &Path, secret: &SecretKey) -> Option<u64> {
    let f = File::open(path).ok()?;
    let mut head = Vec::with_capacity(HEADER_LEN);
    f.take(HEADER_LEN as u64).read_to_end(&mut head).ok()?;
    format::peek_generation(&head, secret)
}

/// Replaces `path` with what `write` produces, crash-safely: the bytes go to
/// a new temporary file in the same directory, which is flushed and
/// `fsync`ed, renamed over `path`, and the directory is `fsync`ed. At every
/// instant `path` is either the old file or the complete new one. The
/// caller holds the path's [`save_lock`]; leftover temporary files of
/// earlier, killed saves are removed first.
///
/// With `commit`, the temporary file's directory entry is made durable and
/// `commit` runs before the rename (the store records the new generation
/// there). On error before the commit the temporary file is removed; after
/// it, it is kept for the store's roll-forward.
pub(crate) fn replace<R>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<R, SnapshotError>,
    commit: Option<&mut dyn FnMut() -> Result<(), SnapshotError>>,
) -> Result<R, SnapshotError> {
    remove_temps(path);
    let tmp = temp_beside(path);
    let mut committed = false;
    let result = (|| {
        let mut w = BufWriter::with_capacity(WRITE_BUFFER, create_private(&tmp)?);
        let r = write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        if let Some(commit) = commit {
            sync_dir(dir_of(path))?;
            commit()?;
            committed = true;
        }
        fs::rename(&tmp, path)?;
        sync_dir(dir_of(path))?;
        Ok(r)
    })();
    if result.is_err() && !committed {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` crash-safely (temporary file, `fsync`, rename,
/// directory `fsync`) with mode `0600`, and returns `path` opened for
/// appending.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<File> {
    let tmp = temp_beside(path);
    let result = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir_of(path))?;
        OpenOptions::new().append(true).open(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Refuses a key or state file that another user owns or that group or
/// others may read or write (as `ssh` refuses such a private key). The
/// owner is compared with the process's effective uid.
pub(crate) fn check_private(meta: &fs::Metadata) -> Result<(), SnapshotError> {
    if crate::key::file::is_private(meta) {
        Ok(())
    } else {
        Err(SnapshotError::new(K::InsecureKeyFile))
    }
}

/// Reads the secret key from `path`, or creates one there if the file does
/// not exist: [`SecretKey::load_or_create`] (which needs no feature), with
/// its error as a [`SnapshotError`], kept for compatibility.
///
/// # Errors
///
/// [`K::InsecureKeyFile`], [`K::BadKeyFile`], or [`K::Io`] (see
/// [`SecretKey::load_or_create`]).
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("sesame-doc-key-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("session.key");
/// # let _ = std::fs::remove_file(&path);
/// let key = sesame::snapshot::load_or_create_key(&path)?;
/// let again = sesame::SecretKey::load_or_create(&path)?;
/// assert_eq!(key, again);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_or_create_key(path: impl AsRef<Path>) -> Result<SecretKey, SnapshotError> {
    SecretKey::load_or_create(path).map_err(SnapshotError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_file_name_lives_in_current_dir() {
        assert_eq!(dir_of(Path::new("snap.bin")), Path::new("."));
        assert_eq!(dir_of(Path::new("/a/snap.bin")), Path::new("/a"));
        let t = temp_beside(Path::new("/a/snap.bin"));
        assert_eq!(t.parent(), Some(Path::new("/a")));
        assert!(
            t.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".snap.bin.")
        );
    }
}
