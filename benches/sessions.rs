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
//! # Access orders
//!
//! The order in which a loop presents the live sessions decides whether
//! their heap objects (sesame's `Arc<Entry>`, moka's entries and keys, the
//! peers' `Arc<PeerEntry>`) are met in allocation order, where the hardware
//! prefetcher hides their cache misses, or scattered, as real users come
//! back. Every order is fixed by `common::SEED`, so runs present the same
//! sequence of creation indices:
//!
//! - random (the plain ids: `validate_hit`, `update`, `rotate`, `login`,
//!   `logout`, `mix_1t`, `mix_2t`): every session once per pass, in one
//!   shuffled order. Uniform traffic over a population much larger than
//!   the caches: the worst case, and the one the targets are judged on.
//! - `_zipf` (`validate_hit_zipf`, `mix_1t_zipf`, `mix_2t_zipf`): draws from
//!   a Zipf distribution with exponent `common::ZIPF_S` (YCSB's default)
//!   over the sessions, the hottest ones picked at random: a few hot
//!   sessions and a long tail, as real sites see. At 1M the hottest 1% take about 2/3 of
//!   the requests, so part of the working set stays in cache.
//! - `_seq` (`validate_hit_seq`): creation order, as these benches walked
//!   before: the best case for every store, kept to show what the
//!   prefetcher hides (it is not a traffic pattern).
//!
//! The tokens themselves are laid end to end in the order they are
//! presented (`common::Seq`), so reading the next one costs what reading it
//! from a request buffer does, whatever the order of the sessions.
//!
//! Timing: single-thread operations are timed in the bench thread's CPU
//! time (`CLOCK_THREAD_CPUTIME_ID`), so that other processes on a shared
//! machine do not inflate them; the `mix_1t`/`mix_2t` throughput groups are
//! timed in wall time, since parallel scaling is what they measure.
//!
//! ```text
//! cargo bench --bench sessions                      # everything (~10 min on 2 cores)
//! cargo bench --bench sessions -- validate_hit      # every validate_hit* group
//! SESAME_BENCH_10M=1 cargo bench --bench sessions -- 10M
//! ```

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{
    Floor, MALFORMED, Moka, RwMap, SEED, Seq, Sesame, Store, ThreadCpu, TowerSessions, populated,
    shuffled, size_label, thread_cpu, zipf,
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
    let random = shuffled(&tokens, SEED);
    let (created, skewed) = if full {
        (
            Some(Seq::new(tokens.iter().map(String::as_str))),
            Some(zipf(&tokens, SEED)),
        )
    } else {
        (None, None)
    };
    drop(tokens);
    // Well-formed tokens of this store's own shape that it no longer knows.
    let unknown: Vec<String> = (0..UNKNOWN)
        .map(|_| {
            let t = s.create();
            assert!(s.logout(&t));
            t
        })
        .collect();
    let unknown = Seq::new(unknown.iter().map(String::as_str));
    let id = || BenchmarkId::new(S::NAME, &label);
    let hits = |c: &mut Criterion, group: &str, seq: &Seq| {
        c.benchmark_group(group).bench_function(id(), |b| {
            let mut cur = seq.cursor(0);
            b.iter(|| black_box(s.validate(black_box(cur.next()))).expect("live session"))
        });
    };

    hits(c, "validate_hit", &random);
    if let (Some(created), Some(skewed)) = (&created, &skewed) {
        hits(c, "validate_hit_zipf", skewed);
        hits(c, "validate_hit_seq", created);
    }
    c.benchmark_group("validate_miss")
        .bench_function(id(), |b| {
            let mut cur = unknown.cursor(0);
            b.iter(|| assert!(black_box(s.validate(black_box(cur.next()))).is_none()))
        });
    let Some(skewed) = &skewed else {
        return; // not `full`
    };
    c.benchmark_group("malformed").bench_function(id(), |b| {
        b.iter(|| assert!(black_box(s.validate(black_box(MALFORMED))).is_none()))
    });
    c.benchmark_group("update").bench_function(id(), |b| {
        let mut cur = random.cursor(0);
        b.iter(|| assert!(s.update(black_box(cur.next()))))
    });
    // Mutating operations: what they make or consume is set up and cleaned
    // up outside the timed loop, so the store stays at its size. Sessions
    // made for them are consumed in a shuffled order.
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
    let fresh = |iters: u64| {
        let made: Vec<String> = (0..iters).map(|_| s.create()).collect();
        shuffled(&made, SEED ^ iters)
    };
    let rotating = |login: bool| {
        move |iters: u64| {
            let fresh = fresh(iters);
            let mut cur = fresh.cursor(0);
            let mut made = Vec::with_capacity(iters as usize);
            let start = thread_cpu();
            for i in 0..iters {
                let t = cur.next();
                let new = if login { s.login(t, i) } else { s.rotate(t) };
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
            let fresh = fresh(iters);
            let mut cur = fresh.cursor(0);
            let start = thread_cpu();
            for _ in 0..iters {
                assert!(s.logout(cur.next()));
            }
            thread_cpu() - start
        })
    });
    for (suffix, seq) in [("", &random), ("_zipf", skewed)] {
        for threads in [1, 2] {
            let mut g = c.benchmark_group(format!("mix_{threads}t{suffix}"));
            g.throughput(Throughput::Elements(1));
            g.bench_function(id(), |b| b.iter_custom(|iters| mix(s, seq, threads, iters)));
        }
    }
}

/// 95% validate / 5% create on `threads` threads; returns the wall time of
/// `iters` operations in all. Sessions created are logged out afterwards,
/// untimed.
fn mix<S: Store>(s: &S, seq: &Seq, threads: usize, iters: u64) -> Duration {
    let per = (iters as usize).div_ceil(threads);
    let start = Instant::now();
    let made: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut made = Vec::with_capacity(per / CREATE_EVERY + 1);
                    // Each thread starts at its own part of the sequence.
                    let mut cur = seq.cursor(t * seq.count / threads);
                    for k in 0..per {
                        if k % CREATE_EVERY == 0 {
                            made.push(s.create());
                        } else {
                            black_box(s.validate(black_box(cur.next()))).expect("live session");
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
