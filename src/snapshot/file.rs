//! Files: the crash-safe replace, and the secret key file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};

use super::error::{SnapshotError, SnapshotErrorKind as K};
use crate::key::SecretKey;

/// Write buffer of a save: large writes, few syscalls.
const WRITE_BUFFER: usize = 1 << 20; // 1 MiB

/// The directory holding `path` (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

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

/// Opens a new file readable and writable by its owner only (on Unix).
fn create_private(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// Flushes a directory's entries (the rename) to disk. On systems where a
/// directory cannot be opened as a file (Windows), the rename is left to the
/// file system.
fn sync_dir(dir: &Path) -> io::Result<()> {
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

/// Replaces `path` with what `write` produces, crash-safely: the bytes go to
/// a new temporary file in the same directory, which is flushed and
/// `fsync`ed, renamed over `path`, and the directory is `fsync`ed. At every
/// instant `path` is either the old file or the complete new one. On error
/// the temporary file is removed; a process killed mid-save leaves it
/// behind (it is never read).
pub(crate) fn replace<R>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<R, SnapshotError>,
) -> Result<R, SnapshotError> {
    let tmp = temp_beside(path);
    let result = (|| {
        let mut w = BufWriter::with_capacity(WRITE_BUFFER, create_private(&tmp)?);
        let r = write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(dir_of(path))?;
        Ok(r)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads the secret key from `path`, or creates one there if the file does
/// not exist.
///
/// The file holds the key as 64 hex digits and a newline (a file of exactly
/// 32 raw bytes is accepted too). A new file is created with mode `0600`
/// and `fsync`ed. On Unix an existing file readable or writable by group or
/// others is refused, as `ssh` refuses such a private key: whoever reads the
/// key can turn a stolen snapshot's digests into nothing, but can forge
/// snapshots and recognise tokens.
///
/// Keep the key file apart from the snapshot (another directory, another
/// backup): the snapshot alone is harmless, both together are not.
///
/// # Errors
///
/// [`K::InsecureKeyFile`], [`K::BadKeyFile`], or [`K::Io`] when reading or
/// creating fails (a crash while creating may leave a short file, refused as
/// [`K::BadKeyFile`]: delete it).
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("sesame-doc-key-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("session.key");
/// # let _ = std::fs::remove_file(&path);
/// let key = sesame::snapshot::load_or_create_key(&path)?;
/// let again = sesame::snapshot::load_or_create_key(&path)?;
/// assert_eq!(key, again);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_or_create_key(path: impl AsRef<Path>) -> Result<SecretKey, SnapshotError> {
    let path = path.as_ref();
    match read_key(path) {
        Err(e) if e.kind() == K::NotFound => {}
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

fn read_key(path: &Path) -> Result<SecretKey, SnapshotError> {
    let f = File::open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if f.metadata()?.permissions().mode() & 0o077 != 0 {
            return Err(SnapshotError::new(K::InsecureKeyFile));
        }
    }
    // A key file is tiny: read at most a little more than the longest form.
    let mut buf = Vec::with_capacity(80);
    (&f).take(80).read_to_end(&mut buf)?;
    let bytes = parse_key(&buf).ok_or(SnapshotError::new(K::BadKeyFile))?;
    if bytes.iter().all(|&b| b == 0) {
        return Err(SnapshotError::new(K::BadKeyFile));
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
