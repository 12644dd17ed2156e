//! Bytes per live session at 1M sessions: RSS delta / N, `T = ()`.
//!
//! ```text
//! cargo bench --bench memory              # 1M sessions per store
//! SESAME_MEM_N=100000 cargo bench --bench memory
//! ```
//!
//! Each store is measured in a fresh child process (this binary run again
//! with `--store NAME`), so no store inherits another's freed heap. The
//! figure is RSS (`/proc/self/statm`) after filling the store minus RSS
//! before, divided by N: it includes the allocator's slack and the maps'
//! spare capacity, as a server would see it. Keys and tokens held by the
//! store count; the tokens handed to clients are dropped at once.

mod common;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::process::Command;

use common::{FirstEight, IDLE, Store, TowerSessions, rss_bytes, sesame_engine};
use sesame::{SecretKey, SessionToken};

const STORES: [&str; 5] = ["sesame", "floor", "moka", "rwlock", "tower_sessions"];

fn fill(store: &str, n: usize) -> Box<dyn std::any::Any> {
    match store {
        "sesame" => {
            let s = sesame_engine::<()>(n);
            for _ in 0..n {
                s.create(()).expect("room");
            }
            Box::new(s)
        }
        "floor" => {
            let secret = *SecretKey::generate().as_bytes();
            let m: dashmap::DashMap<[u8; 32], (), BuildHasherDefault<FirstEight>> =
                dashmap::DashMap::default();
            for _ in 0..n {
                let t = SessionToken::generate();
                m.insert(*blake3::keyed_hash(&secret, t.as_bytes()).as_bytes(), ());
            }
            Box::new(m)
        }
        "moka" => {
            let c: moka::sync::Cache<String, ()> = moka::sync::Cache::builder()
                .time_to_idle(IDLE)
                .max_capacity(n as u64 * 2)
                .build();
            for _ in 0..n {
                c.insert(SessionToken::generate().as_str().to_owned(), ());
            }
            c.run_pending_tasks();
            Box::new(c)
        }
        "rwlock" => {
            let m = parking_lot::RwLock::new(HashMap::new());
            for _ in 0..n {
                m.write()
                    .insert(SessionToken::generate().as_str().to_owned(), ());
            }
            Box::new(m)
        }
        "tower_sessions" => {
            let s = TowerSessions::with_capacity(0);
            for _ in 0..n {
                s.create();
            }
            Box::new(s)
        }
        other => panic!("unknown store {other}"),
    }
}

fn main() {
    let n: usize = std::env::var("SESAME_MEM_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--store") {
        let store = &args[i + 1];
        let before = rss_bytes().expect("/proc/self/statm");
        let kept = fill(store, n);
        let after = rss_bytes().expect("/proc/self/statm");
        std::hint::black_box(&kept);
        let per = (after.saturating_sub(before)) as f64 / n as f64;
        println!(
            "{store:<15} {n:>10} {:>10.1} MiB {per:>8.0} B/session",
            (after - before) as f64 / 1048576.0
        );
        return;
    }
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    println!("memory per live session, T = (), RSS delta / N");
    println!(
        "{:<15} {:>10} {:>14} {:>17}",
        "store", "sessions", "RSS delta", "per session"
    );
    let exe = std::env::current_exe().expect("own path");
    for store in STORES {
        if filter.is_some_and(|f| !store.contains(f.as_str())) {
            continue;
        }
        let status = Command::new(&exe)
            .args(["--store", store])
            .status()
            .expect("run child");
        assert!(status.success(), "{store} failed");
    }
}
