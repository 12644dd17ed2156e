//! sesame against its peers, operation by operation, in one run.
//!
//! Ids read `operation/store/size`: `validate_hit/sesame/1M`,
//! `validate_hit/moka/1M`. Stores and what they pay are described in
//! `benches/common/mod.rs`. Sizes: 10k and 1M live sessions; set
//! `SESAME_BENCH_10M=1` to add 10M for sesame and the floor.
//!
//! Each store is filled once per size and dropped before the next, so only
//! one large map is in memory at a time.
//!
//! Timing: single-thread operations are timed in the bench thread's CPU
//! time (`CLOCK_THREAD_CPUTIME_ID`), so that other processes on a shared
//! machine do not inflate them; the `mix_1t`/`mix_2t` throughput groups are
//! timed in wall time, since parallel scaling is what they measure.
//!
//! ```text
//! cargo bench --bench sessions                      # everything (~5 min on 2 cores)
//! cargo bench --bench sessions -- validate_hit      # one operation
//! SESAME_BENCH_10M=1 cargo bench --bench sessions -- 10M
//! ```

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{
    Floor, MALFORMED, Moka, RwMap, Sesame, Store, ThreadCpu, TowerSessions, populated, size_label,
    thread_cpu,
};
use criterion::{BenchmarkId, Throughput, criterion_group, criterion_main};

type Criterion = criterion::Criterion<ThreadCpu>;

/// Unknown tokens cycled through by the miss benches.
const UNKNOWN: usize = 4096;
/// One create for this many operations in the mixed workload.
const CREATE_EVERY: usize = 20; // 5%

/// Whether the command line's filter (the first argument that is not a
/// flag) can match this store and size: filling a 1M store takes seconds,
/// so `cargo bench --bench sessions -- validate_hit/sesame/1M` fills only
/// sesame's. A filter naming no store (or no size) keeps them all.
fn wanted(store: &str, size: &str) -> bool {
    const STORES: [&str; 5] = ["sesame", "floor", "moka", "rwlock", "tower_sessions"];
    const SIZES: [&str; 3] = ["10k", "1M", "10M"];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(f) = args.iter().find(|a| !a.starts_with('-')) else {
        return true;
    };
    let names_store = STORES.iter().any(|s| f.contains(s));
    let names_size = SIZES.iter().any(|s| f.contains(&format!("/{s}")));
    (!names_store || f.contains(store)) && (!names_size || f.contains(&format!("/{size}")))
}

fn bench_store<S: Store>(c: &mut Criterion, n: usize, full: bool) {
    let label = size_label(n);
    if !wanted(S::NAME, &label) {
        return;
    }
    let (s, tokens) = populated::<S>(n);
    let s = &s;
    // Well-formed tokens of this store's own shape that it no longer knows.
    let unknown: Vec<String> = (0..UNKNOWN)
        .map(|_| {
            let t = s.create();
            assert!(s.logout(&t));
            t
        })
        .collect();
    let id = || BenchmarkId::new(S::NAME, &label);

    c.benchmark_group("validate_hit").bench_function(id(), |b| {
        let mut i = 0;
        b.iter(|| {
            let t = &tokens[i];
            i += 1;
            if i == tokens.len() {
                i = 0;
            }
            assert!(s.validate(black_box(t)));
        })
    });
    c.benchmark_group("validate_miss")
        .bench_function(id(), |b| {
            let mut i = 0;
            b.iter(|| {
                let t = &unknown[i];
                i = (i + 1) % UNKNOWN;
                assert!(!s.validate(black_box(t)));
            })
        });
    if !full {
        return;
    }
    c.benchmark_group("malformed").bench_function(id(), |b| {
        b.iter(|| assert!(!s.validate(black_box(MALFORMED))))
    });
    c.benchmark_group("update").bench_function(id(), |b| {
        let mut i = 0;
        b.iter(|| {
            let t = &tokens[i];
            i += 1;
            if i == tokens.len() {
                i = 0;
            }
            assert!(s.update(black_box(t)));
        })
    });
    // Mutating operations: what they make or consume is set up and cleaned
    // up outside the timed loop, so the store stays at its size.
    c.benchmark_group("create").bench_function(id(), |b| {
        b.iter_custom(|iters| {
            let mut made = Vec::with_capacity(iters as usize);
            let start = thread_cpu();
            for _ in 0..iters {
                made.push(s.create());
            }
            let took = thread_cpu() - start;
            for t in &made {
                s.logout(t);
            }
            took
        })
    });
    let rotating = |login: bool| {
        move |iters: u64| {
            let fresh: Vec<String> = (0..iters).map(|_| s.create()).collect();
            let mut made = Vec::with_capacity(iters as usize);
            let start = thread_cpu();
            for (i, t) in fresh.iter().enumerate() {
                let new = if login {
                    s.login(t, i as u64)
                } else {
                    s.rotate(t)
                };
                made.push(new.expect("live session"));
            }
            let took = thread_cpu() - start;
            for t in &made {
                s.logout(t);
            }
            took
        }
    };
    c.benchmark_group("rotate")
        .bench_function(id(), |b| b.iter_custom(rotating(false)));
    c.benchmark_group("login")
        .bench_function(id(), |b| b.iter_custom(rotating(true)));
    c.benchmark_group("logout").bench_function(id(), |b| {
        b.iter_custom(|iters| {
            let fresh: Vec<String> = (0..iters).map(|_| s.create()).collect();
            let start = thread_cpu();
            for t in &fresh {
                assert!(s.logout(t));
            }
            thread_cpu() - start
        })
    });
    for threads in [1, 2] {
        let mut g = c.benchmark_group(format!("mix_{threads}t"));
        g.throughput(Throughput::Elements(1));
        g.bench_function(id(), |b| {
            b.iter_custom(|iters| mix(s, &tokens, threads, iters))
        });
    }
}

/// 95% validate / 5% create on `threads` threads; returns the wall time of
/// `iters` operations in all. Sessions created are logged out afterwards,
/// untimed.
fn mix<S: Store>(s: &S, tokens: &[String], threads: usize, iters: u64) -> Duration {
    let per = (iters as usize).div_ceil(threads);
    let start = Instant::now();
    let made: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut made = Vec::with_capacity(per / CREATE_EVERY + 1);
                    let mut i = t * tokens.len() / threads;
                    for k in 0..per {
                        if k % CREATE_EVERY == 0 {
                            made.push(s.create());
                        } else {
                            assert!(s.validate(black_box(&tokens[i])));
                            i += 1;
                            if i == tokens.len() {
                                i = 0;
                            }
                        }
                    }
                    made
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect()
    });
    let took = start.elapsed();
    for t in made.iter().flatten() {
        s.logout(t);
    }
    took
}

fn all(c: &mut Criterion) {
    for n in [10_000, 1_000_000] {
        bench_store::<Sesame>(c, n, true);
        bench_store::<Floor>(c, n, true);
        bench_store::<Moka>(c, n, true);
        bench_store::<RwMap>(c, n, true);
        bench_store::<TowerSessions>(c, n, true);
    }
    if std::env::var_os("SESAME_BENCH_10M").is_some_and(|v| v == "1") {
        bench_store::<Sesame>(c, 10_000_000, false);
        bench_store::<Floor>(c, 10_000_000, false);
    }
}

fn config() -> Criterion {
    criterion::Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = all
}
criterion_main!(benches);
