//! Snapshot save and load throughput: `snapshot_save/sesame/1M` writes a
//! million live sessions to disk crash-safely (temp file, fsync, rename,
//! directory fsync); `snapshot_encode/sesame/1M` is the same save into
//! `io::sink()` (the CPU side alone); `snapshot_load/sesame/1M` reads,
//! verifies and restores them into a fresh engine.
//!
//! Sessions hold a small cart (`Vec<u32>` of two items); one in ten is
//! logged in (a `String` principal). Run with
//! `cargo bench --features snapshot --bench snapshot`.
//!
//! `logout_logged_in/sesame/journal_off` and `.../journal_on` are what a
//! revocation costs without and with a [`SnapshotStore`]'s journal (one
//! append and one `fdatasync` of the state file, in `CARGO_TARGET_TMPDIR`):
//! `cargo bench --features snapshot --bench snapshot -- logout_logged_in`.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};
use serde::{Deserialize, Serialize};
use sesame::snapshot::SnapshotStore;
use sesame::{SecretKey, Sessions};

#[derive(Clone, Default, Serialize, Deserialize)]
struct Cart {
    items: Vec<u32>,
}

const KEY: [u8; 32] = [0xBE; 32];

fn engine(max: usize) -> Sessions<Cart> {
    Sessions::builder()
        .secret_key(SecretKey::from_bytes(KEY))
        .max_sessions(max)
        .reaper_interval(None)
        .build()
        .expect("valid config")
}

fn populated(n: usize) -> Sessions<Cart> {
    let s = engine(n);
    for i in 0..n {
        let (t, _) = s
            .create(Cart {
                items: vec![i as u32, 7],
            })
            .expect("room");
        if i % 10 == 0 {
            s.login(&t, format!("user{}", i % 100_000)).expect("live");
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sesame-bench-snapshot");
    std::fs::create_dir_all(&dir).expect("bench dir");
    for (label, n) in [("10k", 10_000usize), ("1M", 1_000_000)] {
        let path = dir.join(format!("{label}.snap"));
        let sessions = populated(n);
        // Saved once up front: the load bench reads this file even when a
        // filter skips the save bench.
        sessions.save_snapshot(&path).expect("save");

        // The CPU side alone: encode and checksum, no file.
        let mut encode = c.benchmark_group("snapshot_encode");
        encode
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .measurement_time(Duration::from_secs(if n > 100_000 { 15 } else { 5 }))
            .throughput(Throughput::Elements(n as u64));
        encode.bench_function(BenchmarkId::new("sesame", label), |b| {
            b.iter(|| sessions.write_snapshot(std::io::sink()).expect("encode"))
        });
        encode.finish();

        let mut save = c.benchmark_group("snapshot_save");
        save.sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .measurement_time(Duration::from_secs(if n > 100_000 { 15 } else { 5 }))
            .throughput(Throughput::Elements(n as u64));
        save.bench_function(BenchmarkId::new("sesame", label), |b| {
            b.iter(|| sessions.save_snapshot(&path).expect("save"))
        });
        save.finish();
        let bytes = std::fs::metadata(&path).expect("saved").len();
        eprintln!(
            "snapshot {label}: {bytes} bytes, {:.1} bytes/session",
            bytes as f64 / n as f64
        );
        drop(sessions);

        let mut load = c.benchmark_group("snapshot_load");
        load.sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .measurement_time(Duration::from_secs(if n > 100_000 { 20 } else { 5 }))
            .throughput(Throughput::Elements(n as u64));
        load.bench_function(BenchmarkId::new("sesame", label), |b| {
            b.iter_batched(
                || engine(n),
                |fresh| {
                    let r = fresh.load_snapshot(&path).expect("load");
                    assert_eq!(r.restored, n);
                    fresh
                },
                BatchSize::PerIteration,
            )
        });
        load.finish();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A logout of a logged-in session, journal off and on. Each iteration's
/// session is created and logged in outside the timing.
fn revocation(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sesame-bench-revocation");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let mut g = c.benchmark_group("logout_logged_in");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    for journal in [false, true] {
        let s = engine(1 << 20);
        let _store = journal.then(|| {
            SnapshotStore::open(&s, dir.join("s.snap"), dir.join("s.state")).expect("store")
        });
        let label = if journal { "journal_on" } else { "journal_off" };
        let mut n = 0u64;
        g.bench_function(BenchmarkId::new("sesame", label), |b| {
            b.iter_batched(
                || {
                    n += 1;
                    let (t, _) = s.create(Cart::default()).expect("room");
                    s.login(&t, format!("user{n}")).expect("live")
                },
                |t| assert!(s.logout(&t)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion::criterion_group!(benches, revocation, bench);
criterion::criterion_main!(benches);
