//! Snapshots: live sessions saved to an encrypted file and restored after a
//! restart, crash-safely, without a single token touching the disk, and
//! without bringing back a session that ended.
//!
//! Behind the `snapshot` cargo feature. Session data `T` and principals `P`
//! must implement serde's `Serialize` and `DeserializeOwned`; they are
//! encoded with `postcard`.
//!
//! A [`SnapshotStore`] is the way to use it: a snapshot file, plus a small
//! *state file* kept beside the key file that records the newest snapshot's
//! generation and journals every logged-in session that ends between saves.
//!
//! ```
//! use sesame::snapshot::{SnapshotStore, load_or_create_key};
//! use sesame::Sessions;
//! # let dir = std::env::temp_dir().join(format!("sesame-doc-snap-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! # std::fs::create_dir_all(&dir)?;
//! let (snap, key_file) = (dir.join("sessions.snap"), dir.join("session.key"));
//! let state = dir.join("session.key.state"); // beside the key, not the snapshot
//! let key = load_or_create_key(&key_file)?;
//!
//! let before = Sessions::<Vec<u32>>::builder().secret_key(key.clone()).build()?;
//! let store = SnapshotStore::open(&before, &snap, &state)?;
//! store.load()?; // None: nothing saved yet
//! let (token, _) = before.create(vec![1, 2, 3])?;
//! let token = before.login(&token, "alice".to_string())?;
//! store.save()?; // in production: store.save_every(interval)
//! drop((store, before)); // the process restarts...
//!
//! let after = Sessions::<Vec<u32>>::builder().secret_key(key).build()?;
//! let store = SnapshotStore::open(&after, &snap, &state)?;
//! let report = store.load()?.expect("a snapshot");
//! assert_eq!(report.restored, 1);
//! assert_eq!(after.get(&token), Some(vec![1, 2, 3]));
//! assert_eq!(after.info(&token).unwrap().principal.as_deref(), Some("alice"));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Sessions::save_snapshot`], [`Sessions::load_snapshot`] and
//! [`Sessions::write_snapshot`] read and write the same file format without
//! a state file: no journal, no generation check (for backups, or for
//! sending a snapshot elsewhere).
//!
//! # What survives a crash
//!
//! With a [`SnapshotStore`] opened before serving and loaded at start:
//!
//! - **A logged-in session that ended stays ended.** When a logged-in
//!   session ends before its deadline — [`Sessions::logout`],
//!   [`Sessions::revoke`], [`Sessions::revoke_user`], or eviction by the
//!   per-user limit — its handle is appended to the journal and the journal
//!   is `fdatasync`ed *before the call returns*. A later restart from any
//!   snapshot the store accepts drops that session, whatever happens in
//!   between: a crash, `SIGKILL`, a power loss after the call returned. (A
//!   call interrupted before it returned may or may not have ended the
//!   session durably.) Handles are fixed at a session's creation and kept
//!   across rotation and login, so a record names the session in any older
//!   snapshot even after its token rotated.
//! - **Expiry needs no journal**: deadlines are saved and never extended on
//!   load (see below), so an expired session cannot come back.
//! - **Anonymous sessions that end are not journaled.** After a crash, an
//!   anonymous session that was logged out or evicted since the last save
//!   may come back (until its own deadlines), with its data but with no
//!   principal: no login comes back. Anonymous ends are mostly evictions at
//!   capacity, one per creation under a flood; a disk write each would put
//!   a system call (and an `fsync`, to be worth anything) on the path a
//!   flood hammers.
//! - **Sessions created, rotated or updated since the last save are lost**
//!   by a crash (their users log in again): the interval of
//!   [`SnapshotStore::save_every`] bounds what a crash loses. A graceful
//!   shutdown saves once more.
//! - **An ended session that a save captured is still dropped**: a save
//!   keeps the journal records written after it began, so an end racing a
//!   save is not lost.
//!
//! The journal is appended under one lock; callers that arrive during an
//! `fdatasync` share the next one. A logout of a logged-in session costs one
//! `fdatasync` of the state file: `logout_logged_in` in
//! `benches/snapshot.rs` measured 0.74 µs with the journal off and 218 µs
//! with it on (ext4 on a virtual disk, 2 vCPUs; ~300×). What `fdatasync`
//! costs is the disk's: milliseconds on a spinning disk, tens of
//! microseconds on a fast SSD. [`Sessions::revoke_user`] pays it once per
//! session it ends. If an append fails (disk full, I/O error) the
//! session still ends in memory, [`SnapshotStore::journal_failures`] counts
//! it, and it is durable only from the next successful save.
//!
//! # What an attacker can and cannot do
//!
//! Against someone who can read and write the snapshot's directory but not
//! the key file nor the state file beside it:
//!
//! - **Read nothing.** Principals, data and times are encrypted
//!   (XChaCha20-Poly1305). What shows: the key's fingerprint, the save's
//!   generation, time and timeouts, and the file's size (so roughly how many
//!   sessions were live). Tokens are not in the file at all, only their
//!   keyed digests, inside the encrypted part.
//! - **Forge or edit nothing**: any change to any byte is refused
//!   ([`SnapshotErrorKind::Checksum`] or an earlier check).
//! - **Not replay an older genuine snapshot**: it is refused as
//!   [`SnapshotErrorKind::RolledBack`], since its generation is below the
//!   one the state file records. Nor delete the journal: it lives in the
//!   state file, beside the key.
//! - **Deny service only**: delete or damage the snapshot, and the server
//!   starts empty (every user logs in again) or refuses the file; fill the
//!   directory, and saves fail. Nothing ended comes back either way.
//! - **Not make the loader exhaust memory**: the header is read and checked
//!   first, the file's size is capped ([`SnapshotStore::max_bytes`], 4 GiB by
//!   default) before its body is read, and nothing is allocated beyond the
//!   file's size.
//!
//! Whoever holds the key file can read every session's data and principal,
//! forge snapshots, and recognise tokens; whoever can write the state file
//! can roll it back. Keep both in a directory only the server's user can
//! write, apart from the snapshot and its backups: the key and state files
//! must belong to the process's effective user with mode `0600`
//! ([`SnapshotErrorKind::InsecureKeyFile`] otherwise, as `ssh` refuses such
//! a private key). Two processes must not save to one snapshot path.
//!
//! # What is saved
//!
//! Each live session: the keyed digest of its current token (never the
//! token), its handle, its creation, last-use and token-issue times, its
//! idle and absolute deadlines, its principal and its data. Times are
//! wall-clock unix milliseconds, so a restart (a new monotonic clock) keeps
//! deadlines right. Not saved: grace aliases of rotated tokens (their
//! windows last seconds), counters, events. Restoring emits no events.
//!
//! # Loading
//!
//! The header is read first and checked (magic, version, key fingerprint),
//! then the file's size against the cap, then the whole file is read,
//! decrypted and authenticated chunk by chunk, and every length is checked
//! against the bytes that remain; then it is decoded whole before anything
//! is inserted: a bad file changes nothing. Then:
//!
//! - Sessions the store's journal names are dropped
//!   ([`LoadReport::ended`]).
//! - Sessions whose idle or absolute deadline has passed (they expired
//!   while the process was down) are dropped.
//! - Deadlines are never extended: a session keeps its saved deadlines, and
//!   when the loading engine has shorter timeouts they apply at once
//!   (idle deadline at most last use + new idle timeout; absolute deadline
//!   at most its start + new absolute timeout). When the idle timeout grew,
//!   the restored last-use time reads earlier than saved, so the saved idle
//!   deadline holds until the next use.
//! - `max_sessions` holds: an authenticated session may evict an anonymous
//!   one as [`Sessions::create`] would; an anonymous one evicts nothing and
//!   is dropped when the store is full. `max_sessions_per_user` holds.
//! - A digest already live in the engine is left alone (counted as a
//!   duplicate).
//!
//! # Saving while serving
//!
//! A save walks the shards one by one under each shard's read lock, reading
//! times and principals; data is encoded afterwards under each session's own
//! mutex only. Lookups keep flowing; an operation that writes to a shard
//! (create, rotate, logout there) waits while that one shard's metadata is
//! copied. Expired sessions not yet reaped are not saved. A session's saved digest, principal
//! and data always belong together: a session rotated (or logged in) while
//! the save runs is saved as it was before the rotation or as it was after
//! it, never both and never a mix; rarely (when its new digest falls in a
//! shard already walked) it is not saved at all. Sessions created while the
//! save runs may or may not be in it.
//!
//! # Crash safety
//!
//! Saves to one path run one at a time within the process, so the file
//! always holds the save that began last. A save writes a temporary file
//! `.<name>.<pid>.<random>.tmp` in the same directory and `fsync`s it; a
//! [`SnapshotStore`] then `fsync`s the directory and rewrites its state file
//! (new generation; the journal records written after the save began)
//! crash-safely; then the file is renamed over the old one and the
//! directory is `fsync`ed. At every instant the path names either the old
//! snapshot or the complete new one. A crash after the state file records
//! generation *n* but before the rename leaves the path at *n − 1* with the
//! complete file *n* beside it: [`SnapshotStore::load`] renames it into
//! place (the roll-forward) rather than refuse the path's older file. Other
//! leftover temporary files are removed by the next save or load. Snapshot,
//! key and state files are created with mode `0600` on Unix.
//!
//! # Format, version 2
//!
//! All integers little-endian. The header, in clear:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `SESAMEsn` |
//! | 4 | format version, `2` |
//! | 4 | flags, `0` |
//! | 32 | [`SecretKey::fingerprint`](crate::SecretKey::fingerprint) of the key |
//! | 8 | generation (`0` from [`Sessions::write_snapshot`]) |
//! | 8 | unix ms when the save started |
//! | 8 | the saving engine's idle timeout, ms |
//! | 8 | the saving engine's absolute timeout, ms |
//! | 16 | nonce prefix, random per file |
//!
//! Then the plaintext — the entries one after the other, the number of
//! entries (8 bytes), the end marker `SESAMEnd` — encrypted with
//! XChaCha20-Poly1305 in chunks of 64 KiB (the last one shorter, never
//! empty), each chunk followed by its 16-byte tag. The key is
//! `blake3::derive_key("sesame 2026 snapshot v2 encryption key", secret
//! key)`; chunk *i*'s nonce is the nonce prefix then *i* (8 bytes); its
//! associated data is the whole header then one byte, `1` for the last chunk
//! and `0` for the others (a file cut at a chunk boundary does not
//! authenticate).
//!
//! Each entry:
//!
//! | bytes | field |
//! |---|---|
//! | 32 | token digest: `blake3::keyed_hash(secret key, token)` (see [`crate::key`]) |
//! | 8 | handle |
//! | 8 × 5 | unix ms: created, last seen, token issued, idle deadline, absolute deadline |
//! | 1 | flags: bit 0 set when a principal follows; other bits zero |
//! | 4 + n | principal: length, then its postcard encoding (length 0 when none) |
//! | 4 + m | data: length, then its postcard encoding |
//!
//! The state file: a 40-byte header (magic `SESAMEst`, version `1` (4
//! bytes), flags `0` (4), generation (8), MAC (16)), then 24-byte records
//! (handle (8), MAC (16)). A MAC is the first 16 bytes of a blake3 keyed
//! hash under `blake3::derive_key("sesame 2026 snapshot v2 state key",
//! secret key)`, of `b"header"` and the header's first 24 bytes, or of the
//! generation and the handle. On open, records after the last good one (a
//! torn append that no caller was told was durable) are cut off; a bad
//! record before a good one, or a bad header, is refused
//! ([`SnapshotErrorKind::BadState`]).

mod error;
mod file;
mod format;
mod journal;
mod store;
mod task;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{SnapshotError, SnapshotErrorKind};
pub use file::load_or_create_key;
pub use store::SnapshotStore;
pub use task::SnapshotTask;

use crate::engine::Restored;
use crate::key::{BuildIdentity, SessionKey, Tag};
use crate::shard::Entry;
use crate::{Handle, Principal, Sessions};
use format::{Header, Opened, SealWriter, Times};

/// For the model's fuzz framing: a header of these fields.
#[cfg(feature = "model")]
pub(crate) fn format_header(
    generation: u64,
    saved_at: u64,
    idle_ms: u64,
    absolute_ms: u64,
) -> Header {
    Header {
        generation,
        saved_at,
        idle_ms,
        absolute_ms,
    }
}

#[cfg(feature = "model")]
pub(crate) use format::seal_file;

/// For the model's seeds: a file's saved-at, idle and absolute fields and
/// entry count, and its plaintext entries, if it opens under `secret`.
#[cfg(feature = "model")]
pub(crate) fn open_plain(file: &[u8], secret: &crate::SecretKey) -> Option<([u64; 4], Vec<u8>)> {
    let o = format::open(file.to_vec(), secret).ok()?;
    let h = o.header;
    let fields = [h.saved_at, h.idle_ms, h.absolute_ms, o.count];
    Some((fields, o.into_body()))
}

/// What a save wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaveReport {
    /// Sessions saved.
    pub saved: usize,
    /// Size of the file, bytes.
    pub bytes: u64,
    /// The generation written in the file's header.
    pub generation: u64,
}

/// What a load did with the sessions in the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadReport {
    /// Sessions inserted into the engine. With `max_sessions_per_user`, a
    /// principal's oldest ones beyond the limit are then ended (counted in
    /// [`Stats::evicted_per_user`](crate::Stats::evicted_per_user)).
    pub restored: usize,
    /// Sessions dropped because a deadline had passed.
    pub expired: usize,
    /// Sessions whose digest was already live in the engine (left alone).
    pub duplicates: usize,
    /// Sessions dropped because the engine was full.
    pub refused_full: usize,
    /// Sessions dropped because the store's journal says they ended after
    /// the save began (logout, revocation, eviction).
    pub ended: usize,
}

/// Wall-clock conversions between engine ms and unix ms.
#[derive(Clone, Copy)]
struct WallClock {
    /// Unix ms of engine ms zero (negative if before 1970).
    origin: i128,
}

impl WallClock {
    fn new(wall_origin: SystemTime) -> Self {
        let origin = match wall_origin.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i128,
            Err(e) => -(e.duration().as_millis() as i128),
        };
        Self { origin }
    }

    fn to_unix(self, engine_ms: u64) -> u64 {
        clamp_u64(self.origin + i128::from(engine_ms))
    }

    fn to_engine(self, unix_ms: u64) -> u64 {
        clamp_u64(i128::from(unix_ms) - self.origin)
    }
}

fn clamp_u64(v: i128) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(u64::MAX)
}

/// One session decoded from a file, not yet in the engine.
struct Decoded<T, P> {
    key: SessionKey,
    entry: Entry<T, P>,
    /// Engine ms.
    last_seen: u64,
    /// Engine ms.
    abs: u64,
}

/// One live entry as read under its shard's lock.
struct Captured<T, P> {
    tag: Tag,
    entry: Arc<Entry<T, P>>,
    times: Times,
    principal: Option<P>,
}

/// The state of one save, walked shard by shard; its buffers are reused
/// from shard to shard.
struct Saver<'a, T, P> {
    sessions: &'a Sessions<T, P>,
    wall: WallClock,
    idle: u64,
    /// Sessions written so far. Handles are random 64-bit: two sessions
    /// sharing one (odds ~n²/2⁶⁵) would lose one of them.
    written: HashSet<Handle, BuildIdentity>,
    captured: Vec<Captured<T, P>>,
    /// The encoded entries of the current shard, back to back.
    buf: Vec<u8>,
    /// Where each entry of `buf` ends.
    ends: Vec<usize>,
    /// Whether each captured entry is still current.
    current: Vec<bool>,
    saved: usize,
    bytes: u64,
}

impl<'a, T, P> Saver<'a, T, P>
where
    T: Send + Serialize + 'static,
    P: Principal + Serialize,
{
    fn new(sessions: &'a Sessions<T, P>, wall: WallClock) -> Self {
        Self {
            sessions,
            wall,
            idle: sessions.config().idle_ms,
            written: HashSet::with_capacity_and_hasher(sessions.len(), BuildIdentity::default()),
            captured: Vec::new(),
            buf: Vec::new(),
            ends: Vec::new(),
            current: Vec::new(),
            saved: 0,
            bytes: 0,
        }
    }

    /// Saves one shard: reads its live entries under its read lock, encodes
    /// them outside it, keeps those still current, writes them.
    fn save_shard<W: Write>(
        &mut self,
        shard: usize,
        w: &mut SealWriter<W>,
    ) -> Result<(), SnapshotError> {
        self.capture(shard);
        self.encode()?;
        self.check_current(shard);
        let mut start = 0;
        let mut all = true;
        let mut chosen: Vec<(usize, usize)> = Vec::new();
        for ((c, &end), &current) in self.captured.iter().zip(&self.ends).zip(&self.current) {
            // Written once per session: after a rotation moved it to a
            // shard not yet walked, it is met again there.
            if current && self.written.insert(c.entry.handle) {
                chosen.push((start, end));
            } else {
                all = false;
            }
            start = end;
        }
        if all {
            w.put(&self.buf)?;
        } else {
            for &(a, b) in &chosen {
                w.put(&self.buf[a..b])?;
            }
        }
        self.saved += chosen.len();
        self.bytes += chosen.iter().map(|&(a, b)| (b - a) as u64).sum::<u64>();
        Ok(())
    }

    /// Copies the metadata of shard `shard`'s live entries under its read
    /// lock (taking each principal's read lock inside it: the engine's order).
    fn capture(&mut self, shard: usize) {
        let (wall, idle) = (self.wall, self.idle);
        let now = self.sessions.engine_now();
        let captured = &mut self.captured;
        captured.clear();
        self.sessions.read_shard(shard, |map| {
            for line in map.iter() {
                if !line.is_live_line() || !line.live_at(now, idle) {
                    continue;
                }
                let e = &line.entry;
                let last_seen = line.last_seen();
                let times = Times {
                    created: wall.to_unix(e.created),
                    last_seen: wall.to_unix(last_seen),
                    issued: wall.to_unix(e.issued.load(Ordering::Relaxed)),
                    idle_deadline: wall.to_unix(last_seen.saturating_add(idle)),
                    abs_deadline: wall.to_unix(line.abs_deadline),
                };
                captured.push(Captured {
                    tag: line.tag,
                    entry: Arc::clone(e),
                    times,
                    principal: e.principal.read().clone(),
                });
            }
        });
    }

    /// Encodes the captured entries, each under its own data mutex only.
    fn encode(&mut self) -> Result<(), SnapshotError> {
        self.buf.clear();
        self.ends.clear();
        for c in &self.captured {
            let data = c.entry.data.lock();
            format::encode_entry(
                &mut self.buf,
                // The table keeps 16 bytes of each digest: written as the
                // digest field's first 16, zeros after (a restore reads the
                // first 16, so older files with whole digests load too).
                &c.tag.to_digest_bytes(),
                c.entry.handle.as_u64(),
                &c.times,
                c.principal.as_ref(),
                &*data,
            )?;
            drop(data);
            self.ends.push(self.buf.len());
        }
        Ok(())
    }

    /// Marks which captured entries still hold their key: a token rotated
    /// since it was read may carry data from after the rotation, and is not
    /// written under the old digest.
    fn check_current(&mut self, shard: usize) {
        let (captured, current) = (&self.captured, &mut self.current);
        current.clear();
        self.sessions.read_shard(shard, |map| {
            current.extend(
                captured
                    .iter()
                    .map(|c| map.get(&c.tag).is_some_and(|l| l.is_live_line_of(&c.entry))),
            );
        });
    }
}

impl<T, P> Sessions<T, P>
where
    T: Send + 'static,
    P: Principal,
{
    /// Saves every live session to `path`, replacing the file crash-safely
    /// (see the [module docs](crate::snapshot)).
    ///
    /// Safe to call while serving, from any thread. Saves to one path run
    /// one at a time (a lock per path, within the process), so the file
    /// always ends with the state of the save that began last. A killed
    /// save's leftover temporary file is removed by the next save.
    ///
    /// This alone does not journal revocations nor refuse an older file
    /// put back in place: use a [`SnapshotStore`] for that.
    ///
    /// **Locking:** the path's save lock, then each shard's read lock in turn (twice: to read, then to
    /// check what was read is still current), then each session's data mutex
    /// alone while its data is encoded; never two at once.
    ///
    /// # Errors
    ///
    /// [`SnapshotErrorKind::Io`] (or `NotFound` for a missing directory) when
    /// writing fails, [`SnapshotErrorKind::Encode`] when a session's data or
    /// principal does not encode. The previous file is then left in place.
    pub fn save_snapshot(&self, path: impl AsRef<Path>) -> Result<SaveReport, SnapshotError>
    where
        T: Serialize,
        P: Serialize,
    {
        self.save_to(path.as_ref(), None)
    }

    /// One save to `path`, under its save lock; with a journal, the next
    /// generation, committed to the state file before the rename.
    fn save_to(
        &self,
        path: &Path,
        journal: Option<&journal::Journal>,
    ) -> Result<SaveReport, SnapshotError>
    where
        T: Serialize,
        P: Serialize,
    {
        let lock = file::save_lock(path);
        let _saving = lock.lock();
        let Some(journal) = journal else {
            let generation =
                file::peek_generation(path, self.secret()).map_or(1, |g| g.saturating_add(1));
            return file::replace(path, |out| self.write_generation(out, generation), None);
        };
        // Records from here on may be of sessions this save still captures:
        // the commit keeps them.
        let mark = journal.mark();
        let generation = journal.generation().saturating_add(1);
        let mut commit = || journal.commit(generation, mark);
        file::replace(
            path,
            |out| self.write_generation(out, generation),
            Some(&mut commit),
        )
    }

    /// Writes a snapshot of every live session to `out`, in the format
    /// [`Sessions::load_snapshot_bytes`] reads: for sending one elsewhere
    /// (a backup store, a socket). Unlike [`Sessions::save_snapshot`] this
    /// gives no crash safety of its own.
    ///
    /// **Locking:** as [`Sessions::save_snapshot`].
    ///
    /// # Errors
    ///
    /// [`SnapshotErrorKind::Io`] when writing fails,
    /// [`SnapshotErrorKind::Encode`] when a session's data or principal does
    /// not encode.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<u8>::new();
    /// let (token, _) = sessions.create(3)?;
    /// let mut bytes = Vec::new();
    /// sessions.write_snapshot(&mut bytes)?;
    /// sessions.logout(&token);
    /// sessions.load_snapshot_bytes(&bytes)?;
    /// assert_eq!(sessions.get(&token), Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_snapshot<W: Write>(&self, out: W) -> Result<SaveReport, SnapshotError>
    where
        T: Serialize,
        P: Serialize,
    {
        self.write_generation(out, 0)
    }

    fn write_generation<W: Write>(
        &self,
        out: W,
        generation: u64,
    ) -> Result<SaveReport, SnapshotError>
    where
        T: Serialize,
        P: Serialize,
    {
        let wall = WallClock::new(self.wall_origin());
        let header = Header {
            generation,
            saved_at: wall.to_unix(self.engine_now()),
            idle_ms: self.config().idle_ms,
            absolute_ms: self.config().absolute_ms,
        };
        let header = format::encode_header(&self.secret().fingerprint(), &header, &rand::random());
        let mut w = SealWriter::new(out, format::cipher(self.secret()), header)?;
        let mut saver = Saver::new(self, wall);
        for shard in 0..self.shard_count() {
            saver.save_shard(shard, &mut w)?;
        }
        w.finish(saver.saved as u64)?;
        Ok(SaveReport {
            saved: saver.saved,
            bytes: format::sealed_len(saver.bytes + format::TRAILER_LEN as u64),
            generation,
        })
    }

    /// Restores the sessions saved in `path` into this engine (see the
    /// [module docs](crate::snapshot) for what is dropped and what limits
    /// hold). Tokens issued before the save work again, if this engine has
    /// the same secret key.
    ///
    /// The header is read and checked first; a file over 4 GiB is then
    /// refused (a [`SnapshotStore`] sets another cap); then the whole file is
    /// read into memory, decrypted and checked, then decoded, before any
    /// session is inserted: on error the engine is unchanged.
    ///
    /// This alone applies no revocation journal and accepts any generation:
    /// use a [`SnapshotStore`] for that.
    ///
    /// # Errors
    ///
    /// [`SnapshotErrorKind::NotFound`] when there is no file, `Io` when it
    /// cannot be read, `Truncated`, `BadMagic`, `UnsupportedVersion`,
    /// `ForeignKey` (another secret key), `TooLarge`, `Checksum` or
    /// `Corrupt` for a bad file, `Decode` when an entry's data or principal
    /// does not decode as `T` or `P`.
    pub fn load_snapshot(&self, path: impl AsRef<Path>) -> Result<LoadReport, SnapshotError>
    where
        T: DeserializeOwned,
        P: DeserializeOwned,
    {
        let (_, bytes) = file::read_capped(path.as_ref(), file::DEFAULT_MAX_BYTES, self.secret())?;
        self.load_opened(format::open(bytes, self.secret())?, None)
    }

    /// [`Sessions::load_snapshot`], but a missing file is not an error: the
    /// first start of a server has none. Returns `None` then.
    ///
    /// # Errors
    ///
    /// As [`Sessions::load_snapshot`], except `NotFound`.
    pub fn load_snapshot_if_exists(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<Option<LoadReport>, SnapshotError>
    where
        T: DeserializeOwned,
        P: DeserializeOwned,
    {
        match self.load_snapshot(path) {
            Err(e) if e.kind() == SnapshotErrorKind::NotFound => Ok(None),
            other => other.map(Some),
        }
    }

    /// [`Sessions::load_snapshot`] from bytes already in memory (for
    /// example for fuzzing the decoder).
    ///
    /// # Errors
    ///
    /// As [`Sessions::load_snapshot`], without the I/O kinds.
    pub fn load_snapshot_bytes(&self, bytes: &[u8]) -> Result<LoadReport, SnapshotError>
    where
        T: DeserializeOwned,
        P: DeserializeOwned,
    {
        // The header first: junk is refused before it is copied.
        let head = &bytes[..bytes.len().min(format::HEADER_LEN)];
        format::check_header(head, bytes.len() as u64, self.secret())?;
        self.load_opened(format::open(bytes.to_vec(), self.secret())?, None)
    }

    /// Restores an opened file, less the sessions whose handles are in
    /// `ended`.
    fn load_opened(
        &self,
        opened: Opened,
        ended: Option<&HashSet<u64>>,
    ) -> Result<LoadReport, SnapshotError>
    where
        T: DeserializeOwned,
        P: DeserializeOwned,
    {
        let saved = opened.header;
        let wall = WallClock::new(self.wall_origin());
        let config = self.config();
        let (new_idle, new_abs) = (config.idle_ms, config.absolute_ms);
        let now = self.engine_now();
        let now_unix = wall.to_unix(now);
        let mut report = LoadReport::default();
        // Authenticated sessions go in first: when the engine cannot take
        // them all, anonymous ones are the ones left out.
        let mut authenticated: Vec<Decoded<T, P>> = Vec::new();
        let mut anonymous: Vec<Decoded<T, P>> = Vec::new();
        opened.for_each_entry(|r| {
            if ended.is_some_and(|e| e.contains(&r.handle)) {
                report.ended += 1;
                return Ok(());
            }
            let t = r.times;
            // Never extend a deadline; apply a shorter timeout at once.
            let abs_start = t.abs_deadline.saturating_sub(saved.absolute_ms);
            let abs = t
                .abs_deadline
                .min(abs_start.saturating_add(new_abs))
                .min(now_unix.saturating_add(new_abs));
            let idle_at = t
                .idle_deadline
                .min(t.last_seen.saturating_add(new_idle))
                .min(now_unix.saturating_add(new_idle));
            if now_unix >= idle_at.min(abs) {
                report.expired += 1;
                return Ok(());
            }
            let principal = r.principal.map(format::decode_field::<P>).transpose()?;
            let data = format::decode_field::<T>(r.data)?;
            let mut entry = Entry::new(
                Handle::from_u64(r.handle),
                wall.to_engine(t.created.min(now_unix)),
                data,
            );
            // The idle deadline is last use + idle timeout: place the last
            // use so the deadline is `idle_at` exactly.
            let last_seen = wall.to_engine(idle_at.saturating_sub(new_idle));
            *entry.issued.get_mut() = wall.to_engine(t.issued.min(now_unix));
            let to = if principal.is_some() {
                &mut authenticated
            } else {
                &mut anonymous
            };
            *entry.principal.get_mut() = principal;
            to.push(Decoded {
                key: SessionKey::from_bytes(r.digest),
                entry,
                last_seen,
                abs: wall.to_engine(abs),
            });
            Ok(())
        })?;
        // Everything decoded: only now does the engine change.
        for d in authenticated.into_iter().chain(anonymous) {
            match self.restore_entry(d.key, d.entry, d.last_seen, d.abs) {
                Restored::Inserted => report.restored += 1,
                Restored::Duplicate => report.duplicates += 1,
                Restored::Full => report.refused_full += 1,
            }
        }
        Ok(report)
    }

    /// Starts a thread that saves a snapshot to `path` every `every`, and
    /// once more when the returned task is finished or dropped (the
    /// graceful-shutdown save). See [`SnapshotTask`].
    ///
    /// Pick `every` by how much session activity a crash may lose, and by
    /// what a save costs (on a busy 2-vCPU machine, 1.4 to 4.5 s per million
    /// sessions, `fsync` included; see `BENCHMARKS.md`). A zero interval
    /// saves back to back.
    pub fn snapshot_every(
        &self,
        path: impl AsRef<Path>,
        every: std::time::Duration,
    ) -> SnapshotTask<T, P>
    where
        T: Serialize,
        P: Serialize,
    {
        let (sessions, p) = (self.clone(), path.as_ref().to_path_buf());
        let save: task::SaveFn = Arc::new(move || sessions.save_snapshot(&p));
        SnapshotTask::spawn(self.clone(), path.as_ref().to_path_buf(), every, save)
    }
}
