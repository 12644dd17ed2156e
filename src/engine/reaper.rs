//! The optional background reaper thread.
//!
//! It holds no strong reference to the engine between runs: each run
//! upgrades a weak one, so dropping the last `Sessions` ends the engine, and
//! dropping the engine stops the thread (its stop channel disconnects).

use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

pub(crate) struct Reaper {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Spawns a thread that calls `run` every `every` until `run` returns
    /// false or the reaper is dropped.
    pub(crate) fn spawn(every: Duration, mut run: impl FnMut() -> bool + Send + 'static) -> Self {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = thread::Builder::new()
            .name("sesame-reaper".into())
            .spawn(move || {
                // Runs until the engine is gone or the stop channel closes.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if !run() {
                        break;
                    }
                }
            })
            .ok();
        Self {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            // The engine may be dropped by the reaper itself (its temporary
            // strong reference was the last): it must not join itself.
            if t.thread().id() != thread::current().id() {
                let _ = t.join();
            }
        }
    }
}
