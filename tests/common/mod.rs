//! Shared test helpers.
#![allow(dead_code)]

use std::time::Duration;

use sesame::{Builder, ManualClock, Sessions};

pub const IDLE: Duration = Duration::from_secs(60);
pub const ABSOLUTE: Duration = Duration::from_secs(600);

/// A builder on a manual clock with no background reaper.
pub fn manual<T: Send + 'static>(clock: &ManualClock) -> Builder<T, String> {
    Sessions::<T, String>::builder()
        .clock(clock.clone())
        .idle_timeout(IDLE)
        .absolute_timeout(ABSOLUTE)
        .reaper_interval(None)
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
