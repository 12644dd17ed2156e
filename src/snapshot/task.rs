//! The periodic snapshot thread, with a final save at shutdown.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};
use parking_lot::Mutex;
use serde::Serialize;

use super::{SaveReport, SnapshotError};
use crate::{Principal, Sessions};

type Outcome = Option<Result<SaveReport, SnapshotError>>;
/// One save: [`Sessions::save_snapshot`] or [`super::SnapshotStore::save`].
pub(crate) type SaveFn = Arc<dyn Fn() -> Result<SaveReport, SnapshotError> + Send + Sync>;

/// Saves a snapshot every interval on a background thread, and once more
/// when stopped: call [`SnapshotTask::finish`] at graceful shutdown (or just
/// drop the task, which does the same but cannot report an error).
///
/// Made by [`Sessions::snapshot_every`] or
/// [`SnapshotStore::save_every`](super::SnapshotStore::save_every). The task
/// holds a clone of the engine, so the engine lives at least as long as the
/// task.
///
/// ```
/// use std::time::Duration;
/// # let dir = std::env::temp_dir().join(format!("sesame-doc-task-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("sessions.snap");
/// let sessions = sesame::Sessions::<u32>::new();
/// let task = sessions.snapshot_every(&path, Duration::from_secs(60));
/// let (token, _) = sessions.create(7)?;
/// // ... serve until a shutdown signal, then:
/// let report = task.finish()?;
/// assert_eq!(report.saved, 1);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SnapshotTask<T, P = String>
where
    T: Serialize + Send + 'static,
    P: Principal + Serialize,
{
    /// Keeps the engine alive as long as the task.
    _sessions: Sessions<T, P>,
    path: PathBuf,
    save: SaveFn,
    last: Arc<Mutex<Outcome>>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Set by `finish`, so that drop does not save a second time.
    finished: bool,
}

impl<T, P> std::fmt::Debug for SnapshotTask<T, P>
where
    T: Serialize + Send + 'static,
    P: Principal + Serialize,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotTask")
            .field("path", &self.path)
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl<T, P> SnapshotTask<T, P>
where
    T: Serialize + Send + 'static,
    P: Principal + Serialize,
{
    pub(crate) fn spawn(
        sessions: Sessions<T, P>,
        path: PathBuf,
        every: Duration,
        save: SaveFn,
    ) -> Self {
        let last: Arc<Mutex<Outcome>> = Arc::new(Mutex::new(None));
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = {
            let save = Arc::clone(&save);
            let last = Arc::clone(&last);
            thread::Builder::new()
                .name("sesame-snapshot".into())
                .spawn(move || {
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                        let r = save();
                        *last.lock() = Some(r);
                    }
                })
                .ok()
        };
        Self {
            _sessions: sessions,
            path,
            save,
            last,
            stop: Some(stop),
            thread,
            finished: false,
        }
    }

    /// The outcome of the latest save (periodic or [`SnapshotTask::save_now`]),
    /// `None` before the first. A failed save leaves the previous file in place.
    pub fn last_outcome(&self) -> Option<Result<SaveReport, SnapshotError>> {
        self.last.lock().clone()
    }

    /// Saves now, on the calling thread.
    ///
    /// # Errors
    ///
    /// As [`Sessions::save_snapshot`] (or [`super::SnapshotStore::save`]).
    pub fn save_now(&self) -> Result<SaveReport, SnapshotError> {
        let r = (self.save)();
        *self.last.lock() = Some(r.clone());
        r
    }

    fn stop_thread(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops the thread (waiting for a save in progress) and saves one last
    /// time: the graceful-shutdown save.
    ///
    /// # Errors
    ///
    /// As [`Sessions::save_snapshot`]; the previous file stays in place.
    pub fn finish(mut self) -> Result<SaveReport, SnapshotError> {
        self.stop_thread();
        self.finished = true;
        self.save_now()
    }
}

impl<T, P> Drop for SnapshotTask<T, P>
where
    T: Serialize + Send + 'static,
    P: Principal + Serialize,
{
    /// Stops the thread and saves one last time, ignoring errors (use
    /// [`SnapshotTask::finish`] to see them).
    fn drop(&mut self) {
        self.stop_thread();
        if !self.finished {
            let _ = (self.save)();
        }
    }
}
