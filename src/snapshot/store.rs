//! [`SnapshotStore`]: a snapshot file with a generation and a revocation
//! journal, so that a restart brings back nothing that ended.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{SnapshotError, SnapshotErrorKind as K};
use super::journal::{Hook, Journal};
use super::{LoadReport, SaveReport, SnapshotTask, file, format};
use crate::{Principal, Sessions};

/// A snapshot file kept with a *state file*: the generation of the newest
/// snapshot saved, and a journal of the logged-in sessions that ended since
/// that save began. See the [module docs](crate::snapshot) for what this
/// guarantees.
///
/// Keep the state file beside the key file (same directory, same
/// protection), not beside the snapshot: an attacker who can write where the
/// snapshot lies must not be able to roll the state back.
///
/// Open the store before serving: ends before [`SnapshotStore::open`] are not
/// journaled. One store per engine.
///
/// ```
/// use sesame::Sessions;
/// use sesame::snapshot::{SnapshotStore, load_or_create_key};
/// # let dir = std::env::temp_dir().join(format!("sesame-doc-store-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// # std::fs::create_dir_all(&dir)?;
/// let (snap, key_file) = (dir.join("sessions.snap"), dir.join("session.key"));
/// let state = dir.join("session.key.state");
/// let key = load_or_create_key(&key_file)?;
///
/// let sessions = Sessions::<u32>::builder().secret_key(key.clone()).build()?;
/// let store = SnapshotStore::open(&sessions, &snap, &state)?;
/// assert!(store.load()?.is_none()); // the first start: no snapshot yet
/// let (token, _) = sessions.create(1)?;
/// let token = sessions.login(&token, "alice".to_string())?;
/// store.save()?;
/// sessions.logout(&token); // journaled before it returns
/// drop((store, sessions)); // a crash: no save after the logout
///
/// let sessions = Sessions::<u32>::builder().secret_key(key).build()?;
/// let store = SnapshotStore::open(&sessions, &snap, &state)?;
/// let report = store.load()?.expect("a snapshot");
/// assert_eq!((report.restored, report.ended), (0, 1));
/// assert!(sessions.get(&token).is_none());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SnapshotStore<T, P = String> {
    sessions: Sessions<T, P>,
    path: PathBuf,
    journal: Arc<Journal>,
    max_bytes: u64,
}

impl<T, P> Clone for SnapshotStore<T, P> {
    fn clone(&self) -> Self {
        Self {
            sessions: self.sessions.clone(),
            path: self.path.clone(),
            journal: Arc::clone(&self.journal),
            max_bytes: self.max_bytes,
        }
    }
}

impl<T, P> std::fmt::Debug for SnapshotStore<T, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStore")
            .field("path", &self.path)
            .field("journal", &self.journal)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl<T, P> SnapshotStore<T, P>
where
    T: Send + 'static,
    P: Principal,
{
    /// Opens (or creates, at generation 0) the state file at `state` and
    /// starts journaling `sessions`' ended logged-in sessions to it.
    ///
    /// # Errors
    ///
    /// [`K::InsecureKeyFile`] when the state file is another user's or open
    /// to group or others, [`K::BadState`] when it is damaged or under
    /// another key, [`K::InUse`] when the engine already has a store,
    /// [`K::Io`].
    pub fn open(
        sessions: &Sessions<T, P>,
        snapshot: impl AsRef<Path>,
        state: impl AsRef<Path>,
    ) -> Result<Self, SnapshotError> {
        let journal = Arc::new(Journal::open(
            state.as_ref(),
            sessions.secret(),
            file::DEFAULT_MAX_BYTES,
        )?);
        if !sessions.set_end_hook(Box::new(Hook(Arc::clone(&journal)))) {
            return Err(SnapshotError::new(K::InUse));
        }
        Ok(Self {
            sessions: sessions.clone(),
            path: snapshot.as_ref().to_path_buf(),
            journal,
            max_bytes: file::DEFAULT_MAX_BYTES,
        })
    }

    /// Caps the size of a snapshot file [`SnapshotStore::load`] reads
    /// (default 4 GiB): a larger one is refused as [`K::TooLarge`] after its
    /// header is read, before any of its body is.
    #[must_use]
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = max;
        self
    }

    /// The snapshot file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The generation of the newest snapshot saved (0 before the first).
    pub fn generation(&self) -> u64 {
        self.journal.generation()
    }

    /// How many journal appends failed (a write or an `fsync` error). Each
    /// such session's end is not durable until the next successful save,
    /// which rewrites the state file whole. Zero in a healthy process.
    pub fn journal_failures(&self) -> u64 {
        self.journal.failures()
    }

    /// Restores the snapshot into the engine, less every session the journal
    /// says ended; `None` when there is no snapshot (never saved, or
    /// deleted: starting empty brings nothing back).
    ///
    /// When the file is older than the generation recorded in the state
    /// file, or does not load, and a save was interrupted between recording
    /// its generation and its rename, the complete new file left beside it is
    /// renamed into place and loaded instead (the save's roll-forward).
    /// Leftover temporary files are then removed.
    ///
    /// **Locking:** the path's save lock, then as
    /// [`Sessions::load_snapshot`].
    ///
    /// # Errors
    ///
    /// [`K::RolledBack`] for a genuine snapshot older than the recorded
    /// generation; [`K::TooLarge`] beyond [`SnapshotStore::max_bytes`]; the
    /// errors of [`Sessions::load_snapshot`] except `NotFound`. On error the
    /// engine is unchanged.
    pub fn load(&self) -> Result<Option<LoadReport>, SnapshotError>
    where
        T: DeserializeOwned,
        P: DeserializeOwned,
    {
        let lock = file::save_lock(&self.path);
        let _saving = lock.lock();
        let secret = self.sessions.secret();
        let floor = self.journal.generation();
        let read = file::read_capped(&self.path, self.max_bytes, secret).and_then(|(h, bytes)| {
            if h.generation < floor {
                return Err(SnapshotError::new(K::RolledBack));
            }
            format::open(bytes, secret)
        });
        let opened = match read {
            Ok(o) => o,
            Err(e) => match self.roll_forward(floor) {
                Some(o) => o,
                // No file (deleted, or never saved): start empty, which
                // brings nothing back.
                None if e.kind() == K::NotFound => return Ok(None),
                None => return Err(e),
            },
        };
        // Authenticated now: a newer genuine file (saved without the store)
        // raises the floor at once.
        if opened.header.generation > floor {
            self.journal.commit(opened.header.generation, 0)?;
        }
        let ended = self.journal.ended();
        let report = self.sessions.load_opened(opened, Some(&ended))?;
        file::remove_temps(&self.path);
        Ok(Some(report))
    }

    /// A complete, genuine file of generation `floor` left by a save that
    /// recorded its generation and was interrupted before its rename:
    /// renamed into place.
    fn roll_forward(&self, floor: u64) -> Option<format::Opened> {
        let secret = self.sessions.secret();
        for tmp in file::temps_of(&self.path) {
            let Ok((h, bytes)) = file::read_capped(&tmp, self.max_bytes, secret) else {
                continue;
            };
            if h.generation != floor {
                continue;
            }
            let Ok(opened) = format::open(bytes, secret) else {
                continue;
            };
            if std::fs::rename(&tmp, &self.path).is_ok()
                && file::sync_dir(self.path.parent().unwrap_or(Path::new("."))).is_ok()
            {
                return Some(opened);
            }
        }
        None
    }

    /// Saves every live session, with the next generation, crash-safely:
    /// the new file is written and `fsync`ed, the state file records its
    /// generation and drops the journal records the new file makes needless,
    /// then the file is renamed into place. Saves to one path run one at a
    /// time.
    ///
    /// **Locking:** the path's save lock; the journal's lock while the state
    /// file is rewritten (revocations wait that long); otherwise as
    /// [`Sessions::save_snapshot`].
    ///
    /// # Errors
    ///
    /// As [`Sessions::save_snapshot`]. The previous snapshot stays loadable.
    pub fn save(&self) -> Result<SaveReport, SnapshotError>
    where
        T: Serialize,
        P: Serialize,
    {
        {
            // A save whose rename failed after its commit left the path
            // older than the record: finish that rename first, so that the
            // complete file is not taken for a leftover if this save fails.
            let lock = file::save_lock(&self.path);
            let _saving = lock.lock();
            let floor = self.journal.generation();
            let on_disk = file::peek_generation(&self.path, self.sessions.secret());
            if floor > 0 && on_disk.is_none_or(|g| g < floor) {
                self.roll_forward(floor);
            }
        }
        self.sessions.save_to(&self.path, Some(&self.journal))
    }

    /// [`Sessions::snapshot_every`] through this store: saves every
    /// `every` on a background thread, and once more when the task is
    /// finished or dropped.
    pub fn save_every(&self, every: Duration) -> SnapshotTask<T, P>
    where
        T: Serialize,
        P: Serialize,
    {
        let store = self.clone();
        SnapshotTask::spawn(
            self.sessions.clone(),
            self.path.clone(),
            every,
            Arc::new(move || store.save()),
        )
    }
}
