//! The store's state file: the generation of the newest snapshot saved, and
//! the journal of logged-in sessions that ended since that save began.
//!
//! # Format
//!
//! A 40-byte header (magic `SESAMEst` 8, version `1` 4, flags `0` 4,
//! generation 8, MAC 16), then 24-byte records (session handle 8, MAC 16),
//! all little-endian. A MAC is the first 16 bytes of a blake3 keyed hash
//! under `blake3::derive_key("sesame 2026 snapshot v2 state key", secret)`:
//! of `b"header"` and the header's first 24 bytes, or of the generation and
//! the handle for a record.
//!
//! # Ground rules
//!
//! - A record is appended with one `write` to a file opened for appending,
//!   then `fdatasync`ed, before [`Journal::append`] returns; callers that
//!   arrive while one `fdatasync` runs share the next one.
//! - The file is only ever replaced whole ([`Journal::commit`]:
//!   temporary file, `fsync`, rename, directory `fsync`), under the same lock
//!   as appends, so no record is lost to a replacement.
//! - On open, a torn tail (a partial record, or records that fail their MAC
//!   after the last good one: writes that never finished their `fdatasync`,
//!   so no caller was told they were durable) is cut off. A bad record
//!   followed by a good one is damage, and the state is refused.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::error::{SnapshotError, SnapshotErrorKind as K};
use super::file;
use crate::key::SecretKey;

const MAGIC: [u8; 8] = *b"SESAMEst";
const VERSION: u32 = 1;
/// Magic 8, version 4, flags 4, generation 8, MAC 16.
pub(crate) const HEADER_LEN: usize = 40;
/// Handle 8, MAC 16.
pub(crate) const RECORD_LEN: usize = 24;
/// Context of the key derivation for the state file's MACs.
const CONTEXT: &str = "sesame 2026 snapshot v2 state key";

fn mac16(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 16] {
    let mut h = blake3::Hasher::new_keyed(key);
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

fn header(key: &[u8; 32], generation: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&generation.to_le_bytes());
    let mac = mac16(key, &[b"header", &h[..24]]);
    h[24..].copy_from_slice(&mac);
    h
}

fn record(key: &[u8; 32], generation: u64, handle: u64) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r[..8].copy_from_slice(&handle.to_le_bytes());
    let mac = mac16(key, &[&generation.to_le_bytes(), &r[..8]]);
    r[8..].copy_from_slice(&mac);
    r
}

fn encode(key: &[u8; 32], generation: u64, handles: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + RECORD_LEN * handles.len());
    out.extend_from_slice(&header(key, generation));
    for &h in handles {
        out.extend_from_slice(&record(key, generation, h));
    }
    out
}

/// What a state file holds: its generation, its good records, and how many
/// bytes of it they span (the rest is a torn tail).
fn decode(key: &[u8; 32], bytes: &[u8]) -> Result<(u64, Vec<u64>, usize), SnapshotError> {
    let bad = || SnapshotError::new(K::BadState);
    if bytes.len() < HEADER_LEN {
        return Err(bad());
    }
    let mut g = [0u8; 8];
    g.copy_from_slice(&bytes[16..24]);
    let generation = u64::from_le_bytes(g);
    // `header` recomputes the MAC; compare in constant time.
    let expected = header(key, generation);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        &bytes[..HEADER_LEN],
        &expected[..],
    )) {
        return Err(bad());
    }
    let mut handles = Vec::new();
    let mut good_end = HEADER_LEN;
    let mut damaged = false;
    for (i, r) in bytes[HEADER_LEN..].chunks_exact(RECORD_LEN).enumerate() {
        let mut h = [0u8; 8];
        h.copy_from_slice(&r[..8]);
        let handle = u64::from_le_bytes(h);
        let ok = bool::from(subtle::ConstantTimeEq::ct_eq(
            r,
            &record(key, generation, handle)[..],
        ));
        if !ok {
            damaged = true;
            continue;
        }
        if damaged {
            // A bad record before a good one: not a torn tail.
            return Err(bad());
        }
        handles.push(handle);
        good_end = HEADER_LEN + (i + 1) * RECORD_LEN;
    }
    Ok((generation, handles, good_end))
}

struct State {
    /// The state file, opened for appending; `None` after a failed append
    /// (the next commit rewrites the file whole).
    file: Option<File>,
    generation: u64,
    /// The handles in the file, in order (with any whose append failed).
    handles: Vec<u64>,
    /// Records appended since open, and how many of them are known durable.
    written: u64,
    durable: u64,
}

/// The state file, open: appends records, and is rewritten by each save.
pub(crate) struct Journal {
    path: PathBuf,
    key: [u8; 32],
    state: Mutex<State>,
    failures: AtomicU64,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens the state file at `path`, or creates one at generation 0. Cuts
    /// a torn tail off. Leftover temporary files of the state are removed.
    ///
    /// # Errors
    ///
    /// `InsecureKeyFile` when another user owns it or its mode lets others
    /// in, `TooLarge` beyond `max` bytes, `BadState` when it is damaged or
    /// under another key, `Io`.
    pub(crate) fn open(path: &Path, secret: &SecretKey, max: u64) -> Result<Self, SnapshotError> {
        let key = blake3::derive_key(CONTEXT, secret.as_bytes());
        file::remove_temps(path);
        let (generation, handles, f) = match File::open(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => (
                0,
                Vec::new(),
                file::write_private(path, &encode(&key, 0, &[]))?,
            ),
            Err(e) => return Err(e.into()),
            Ok(f) => {
                let meta = f.metadata()?;
                file::check_private(&meta)?;
                if meta.len() > max {
                    return Err(SnapshotError::new(K::TooLarge));
                }
                let mut bytes = Vec::new();
                (&f).take(max).read_to_end(&mut bytes)?;
                let (generation, handles, good_end) = decode(&key, &bytes)?;
                let f = OpenOptions::new().append(true).open(path)?;
                if good_end < bytes.len() {
                    f.set_len(good_end as u64)?;
                    f.sync_all()?;
                }
                (generation, handles, f)
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            key,
            state: Mutex::new(State {
                file: Some(f),
                generation,
                handles,
                written: 0,
                durable: 0,
            }),
            failures: AtomicU64::new(0),
        })
    }

    /// The generation of the newest snapshot committed.
    pub(crate) fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    /// The handles of sessions ended since the newest snapshot began.
    pub(crate) fn ended(&self) -> HashSet<u64> {
        self.state.lock().handles.iter().copied().collect()
    }

    /// Where a save begins: records from here on are kept by its commit.
    pub(crate) fn mark(&self) -> usize {
        self.state.lock().handles.len()
    }

    /// Appends that failed (a write or an `fdatasync`); each leaves its
    /// session's end undurable until the next save.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Records that `handle` ended, durably before returning (the file is
    /// `fdatasync`ed, or was by a caller that arrived meanwhile).
    ///
    /// **Locking:** the journal's lock, twice (to append, then to sync).
    pub(crate) fn append(&self, handle: u64) {
        let fail = || {
            self.failures.fetch_add(1, Ordering::Relaxed);
        };
        let me = {
            let mut s = self.state.lock();
            let rec = record(&self.key, s.generation, handle);
            s.handles.push(handle);
            s.written += 1;
            let wrote = s.file.as_ref().map(|mut f| f.write_all(&rec));
            if !matches!(wrote, Some(Ok(()))) {
                // A short write would misalign later records: stop
                // appending until a commit rewrites the file.
                s.file = None;
                drop(s);
                fail();
                return;
            }
            s.written
        };
        let mut s = self.state.lock();
        if s.durable >= me {
            return; // Another caller's fdatasync (or a commit) covered it.
        }
        let upto = s.written;
        match s.file.as_ref().map(File::sync_data) {
            Some(Ok(())) => s.durable = upto,
            _ => {
                s.file = None;
                drop(s);
                fail();
            }
        }
    }

    /// Makes `generation` the newest snapshot's, keeping the records from
    /// `keep_from` (a [`Journal::mark`]) on: rewrites the file whole.
    ///
    /// # Errors
    ///
    /// `Io` when the file cannot be written; the old one stays.
    pub(crate) fn commit(&self, generation: u64, keep_from: usize) -> Result<(), SnapshotError> {
        let mut s = self.state.lock();
        let kept = s.handles.get(keep_from..).unwrap_or_default().to_vec();
        let f = file::write_private(&self.path, &encode(&self.key, generation, &kept))?;
        s.file = Some(f);
        s.generation = generation;
        s.handles = kept;
        s.durable = s.written;
        Ok(())
    }
}

/// The engine's end hook: journals each logged-in session that ends.
pub(crate) struct Hook(pub(crate) std::sync::Arc<Journal>);

impl crate::engine::EndHook for Hook {
    fn ended(&self, handle: crate::Handle, logged_in: bool) {
        // Anonymous sessions are not journaled: see the module docs of
        // `snapshot` ("What survives a crash").
        if logged_in {
            self.0.append(handle.as_u64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K32: [u8; 32] = [3; 32];

    #[test]
    fn records_decode_back_and_a_torn_tail_is_cut() {
        let mut b = encode(&K32, 7, &[1, 2, 3]);
        assert_eq!(decode(&K32, &b).unwrap(), (7, vec![1, 2, 3], b.len()));
        let full = b.len();
        b.extend_from_slice(&[9; 10]); // a partial record
        assert_eq!(decode(&K32, &b).unwrap().2, full);
        b.truncate(full);
        b.extend_from_slice(&[0; RECORD_LEN]); // a whole but unsynced one
        assert_eq!(decode(&K32, &b).unwrap(), (7, vec![1, 2, 3], full));
    }

    #[test]
    fn a_bad_record_before_a_good_one_or_a_bad_header_is_refused() {
        let mut b = encode(&K32, 7, &[1, 2, 3]);
        b[HEADER_LEN + RECORD_LEN + 3] ^= 1;
        assert_eq!(decode(&K32, &b).unwrap_err().kind(), K::BadState);
        let mut b = encode(&K32, 7, &[]);
        b[17] ^= 1; // the generation
        assert_eq!(decode(&K32, &b).unwrap_err().kind(), K::BadState);
        let b = encode(&K32, 7, &[1]);
        assert_eq!(decode(&[4; 32], &b).unwrap_err().kind(), K::BadState);
        assert_eq!(
            decode(&K32, &b[..HEADER_LEN - 1]).unwrap_err().kind(),
            K::BadState
        );
    }

    /// A record of one generation does not pass under another.
    #[test]
    fn records_are_bound_to_their_generation() {
        let mut b = encode(&K32, 7, &[]);
        b.extend_from_slice(&record(&K32, 6, 1));
        assert_eq!(decode(&K32, &b).unwrap().1, Vec::<u64>::new());
    }
}
