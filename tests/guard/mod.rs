//! Threads a test spawns stop when the test fails.
//!
//! A test that panics unwinds its own stack only: a helper thread that loops
//! until told to stop would spin on (or, in a `thread::scope`, keep the
//! scope and so the test from ever ending). These guards set the stop flag
//! when they are dropped, on success and on unwinding alike.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Sets `flag` when dropped. For scoped threads: create it inside the
/// `thread::scope` closure before the code that may panic, so the flag is
/// set before the scope joins its threads.
pub struct StopOnDrop<'a>(pub &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// How long a dropped [`Background`] waits for its threads after setting
/// the stop flag; a thread still running then (deadlocked?) is left behind
/// rather than hanging the test.
const DROP_WAIT: Duration = Duration::from_secs(10);

/// Threads that run until a shared stop flag is set. Dropping it (a test
/// panicked) sets the flag and joins them; [`Background::finish`] does the
/// same on the success path and passes their panics on.
pub struct Background<T> {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<T>>,
}

impl<T: Send + 'static> Background<T> {
    pub fn new() -> Self {
        Self {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        }
    }

    /// Spawns `f` with the stop flag; `f` should return once it is set.
    pub fn spawn(&mut self, f: impl FnOnce(Arc<AtomicBool>) -> T + Send + 'static) {
        let stop = Arc::clone(&self.stop);
        self.threads.push(std::thread::spawn(move || f(stop)));
    }

    /// Sets the stop flag and joins every thread, re-raising the first
    /// thread panic.
    pub fn finish(mut self) -> Vec<T> {
        self.stop.store(true, Ordering::Release);
        let results: Vec<_> = self.threads.drain(..).map(JoinHandle::join).collect();
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    }
}

impl<T> Drop for Background<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let deadline = Instant::now() + DROP_WAIT;
        while self.threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for t in self.threads.drain(..) {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}
