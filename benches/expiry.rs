//! Mass expiry: 1M sessions expire in the same second and are reaped while
//! another thread validates live sessions.
//!
//! ```text
//! cargo bench --bench expiry
//! SESAME_EXPIRY_N=10000000 cargo bench --bench expiry
//! ```
//!
//! Time comes from a `ManualClock`: N sessions are created at t = 0 with a
//! 60 s idle timeout, 10k live ones at t = 30 s; the clock moves to t = 61 s
//! and `run_pending` reaps the N due ones (all in one wheel tick) while a
//! validator thread loops over the live tokens, timing each call into an
//! HDR histogram. The same validator runs first for as long without reaping,
//! as the baseline. Reaping is reported in wall time and in the reaping
//! thread's CPU time (the machine may be shared).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::thread_cpu;
use hdrhistogram::Histogram;
use sesame::{ManualClock, Sessions};

const LIVE: usize = 10_000;

fn validator(
    s: Sessions<(), u64>,
    tokens: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Histogram<u64>> {
    std::thread::spawn(move || {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let t = &tokens[i];
            i = (i + 1) % tokens.len();
            let start = Instant::now();
            let ok = s.validate(t.as_str()).is_some();
            let ns = start.elapsed().as_nanos() as u64;
            assert!(ok, "live session refused");
            h.record(ns.max(1)).expect("in bounds");
        }
        h
    })
}

fn report(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<22} validations {:>10}  p50 {:>6} ns  p99 {:>6} ns  p99.9 {:>7} ns  max {:>9} ns",
        h.len(),
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

fn main() {
    let n: usize = std::env::var("SESAME_EXPIRY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let clock = ManualClock::new();
    let s = Sessions::<(), u64>::builder()
        .idle_timeout(Duration::from_secs(60))
        .max_sessions(n + LIVE + 1)
        .reaper_interval(None)
        .clock(clock.clone())
        .build()
        .expect("valid config");
    let fill = Instant::now();
    for _ in 0..n {
        s.create(()).expect("room");
    }
    let fill = fill.elapsed();
    clock.set(Duration::from_secs(30));
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..LIVE)
            .map(|_| s.create(()).expect("room").0.as_str().to_owned())
            .collect(),
    );
    println!(
        "{n} expiring + {LIVE} live sessions created in {:.2} s",
        fill.as_secs_f64()
    );
    clock.set(Duration::from_secs(61));

    // Baseline: validator alone.
    let stop = Arc::new(AtomicBool::new(false));
    let v = validator(s.clone(), Arc::clone(&tokens), Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let base = v.join().expect("validator");

    // Reaping with the validator running.
    let stop = Arc::new(AtomicBool::new(false));
    let v = validator(s.clone(), Arc::clone(&tokens), Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    let cpu = thread_cpu();
    let reaped = s.run_pending();
    let cpu = thread_cpu() - cpu;
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = v.join().expect("validator");

    assert_eq!(reaped, n, "every expired session is reaped");
    assert_eq!(s.len(), LIVE);
    println!(
        "reaped {reaped} in {:.1} ms wall: {:.2} M sessions/s; reaper CPU {:.1} ms: {:.2} M sessions/s",
        took.as_secs_f64() * 1e3,
        reaped as f64 / took.as_secs_f64() / 1e6,
        cpu.as_secs_f64() * 1e3,
        reaped as f64 / cpu.as_secs_f64() / 1e6
    );
    report("validate, idle", &base);
    report("validate, reaping", &during);
}
