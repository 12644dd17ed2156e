//! Time: all expiry logic reads the time only through a [`Clock`].
//!
//! The engine counts in milliseconds since an arbitrary origin. Whatever a
//! clock reports, the engine's own notion of "now" never goes backwards (it
//! keeps a high-water mark), so a clock that jumps back can neither
//! resurrect an expired session nor make a deadline computation underflow.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A source of monotonic milliseconds.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since this clock's origin.
    fn now_millis(&self) -> u64;
}

/// The real clock: coarse monotonic milliseconds since the clock was made.
///
/// On Linux it reads `CLOCK_MONOTONIC_COARSE` (through `coarsetime`): a
/// plain read of the time the kernel stores at each tick, a few ns, where
/// `std::time::Instant` (`CLOCK_MONOTONIC`) reads the TSC and took ~15% of
/// a validation. Its resolution is the kernel tick (1 to 4 ms), far finer
/// than any session timeout; the engine's wheel works in whole seconds.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    origin: coarsetime::Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: coarsetime::Instant::now_without_cache_update(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now_millis(&self) -> u64 {
        // `now_without_cache_update`: `now` would also store into a global
        // shared by every thread, bouncing its cache line on each call.
        // Saturating: the coarse clock is monotonic, but never underflow.
        let now = coarsetime::Instant::now_without_cache_update();
        if now <= self.origin {
            return 0;
        }
        now.duration_since(self.origin).as_millis()
    }
}

/// A clock that moves only when told: for tests. Clones share the same time.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sesame::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let view = clock.clone();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(view.now_millis(), 2_000);
/// clock.rewind(Duration::from_secs(5)); // saturates at zero
/// assert_eq!(view.now_millis(), 0);
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = duration_millis(by);
        // fetch_update never fails with a closure that returns Some.
        let _ = self
            .millis
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(ms))
            });
    }

    /// Moves the clock backward (as a badly synchronised wall clock might).
    pub fn rewind(&self, by: Duration) {
        let ms = duration_millis(by);
        let _ = self
            .millis
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_sub(ms))
            });
    }

    /// Sets the clock to an absolute time since its origin.
    pub fn set(&self, since_origin: Duration) {
        self.millis
            .store(duration_millis(since_origin), Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::Acquire)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("millis", &self.now_millis())
            .finish()
    }
}

/// Milliseconds in a duration, saturating.
pub(crate) fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Engine milliseconds start here rather than at zero: 10^12 ms, about 31.7
/// years (a whole number of wheel ticks, so tick boundaries stay where they
/// were). Sessions restored from a snapshot were created and last seen
/// before this engine started; the offset lets their times (and so their
/// idle deadlines) be represented exactly as engine ms without going below
/// zero. Any live session's last use lies within the longest timeout (ten
/// years) of now, well inside the offset.
pub(crate) const ENGINE_EPOCH_MS: u64 = 1_000_000_000_000;

/// The engine's view of a clock: never goes backwards, counts from
/// [`ENGINE_EPOCH_MS`].
pub(crate) struct EngineClock {
    clock: Arc<dyn Clock>,
    high_water: AtomicU64,
}

impl EngineClock {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        let now = clock.now_millis().saturating_add(ENGINE_EPOCH_MS);
        Self {
            clock,
            high_water: AtomicU64::new(now),
        }
    }

    /// Now, in engine milliseconds: the maximum the clock has ever reported.
    ///
    /// A plain load on the common path; the shared mark is written at most
    /// when the clock has moved forward (at most once per millisecond with
    /// the system clock).
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        // Saturating: a clock near u64::MAX ms (584 million years) stays put.
        let t = self.clock.now_millis().saturating_add(ENGINE_EPOCH_MS);
        let hw = self.high_water.load(Ordering::Relaxed);
        if t > hw {
            self.high_water.fetch_max(t, Ordering::Relaxed);
            t
        } else {
            hw
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_clock_never_goes_back() {
        let manual = ManualClock::new();
        manual.set(Duration::from_secs(100));
        let ec = EngineClock::new(Arc::new(manual.clone()));
        assert_eq!(ec.now(), ENGINE_EPOCH_MS + 100_000);
        manual.rewind(Duration::from_secs(50));
        assert_eq!(ec.now(), ENGINE_EPOCH_MS + 100_000);
        manual.advance(Duration::from_secs(60));
        assert_eq!(ec.now(), ENGINE_EPOCH_MS + 110_000);
    }

    /// The real clock counts real milliseconds from its creation and never
    /// goes back. (The old check compared two reads a nanosecond apart,
    /// which a clock stuck at zero or counting seconds also passed.)
    #[test]
    fn system_clock_counts_real_milliseconds_and_never_goes_back() {
        // The coarse clock moves in kernel ticks (at most 10 ms) and lags
        // real time by up to one: allow two. Real time is read on both
        // sides of the clock's creation, so a thread descheduled at any
        // point only widens the bounds.
        const SLACK_MS: u64 = 20;
        const RUN: Duration = Duration::from_millis(60);
        let before = std::time::Instant::now();
        let c = SystemClock::new();
        let after = std::time::Instant::now();
        let mut last = c.now_millis();
        assert!(
            last <= duration_millis(before.elapsed()) + SLACK_MS,
            "starts near zero: {last}"
        );
        let mut reads = 0u64;
        while after.elapsed() < RUN {
            let now = c.now_millis();
            assert!(now >= last, "went back from {last} to {now}");
            last = now;
            reads += 1;
        }
        let now = c.now_millis();
        let upper = duration_millis(before.elapsed());
        assert!(
            now + SLACK_MS >= duration_millis(RUN) && now <= upper + SLACK_MS,
            "{now} ms after {upper} real ms ({reads} reads)"
        );
    }
}
