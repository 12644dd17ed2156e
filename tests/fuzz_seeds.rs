//! The fuzz targets' checked-in seeds pass the targets' checks: the checks
//! (in `sesame::model`) run in every `cargo test`, not only when someone
//! fuzzes, and a seed that starts failing after a change is a regression.

use std::path::Path;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds for {target}");
    files
        .iter()
        .map(|f| std::fs::read(f).expect("seed readable"))
        .collect()
}

#[test]
fn token_parse_seeds_pass() {
    for seed in seeds("token_parse") {
        sesame::model::check_token_parse(&seed);
    }
}

#[test]
fn engine_ops_seeds_pass() {
    for seed in seeds("engine_ops") {
        sesame::model::run_bytes(&seed);
    }
}

#[cfg(feature = "cookie")]
#[test]
fn cookie_header_seeds_pass() {
    for seed in seeds("cookie_header") {
        sesame::model::check_cookie_header(&seed);
    }
}

#[cfg(feature = "cookie")]
#[test]
fn proxy_headers_seeds_pass() {
    for seed in seeds("proxy_headers") {
        sesame::model::check_proxy_headers(&seed);
    }
}

#[cfg(feature = "snapshot")]
#[test]
fn snapshot_load_seeds_pass() {
    for seed in seeds("snapshot_load") {
        sesame::model::check_snapshot_load(&seed);
    }
}

/// The framed seed reaches the entry decoder: its three far-future sessions
/// load (so the fuzzer mutates real entries, not just a failing checksum).
#[cfg(feature = "snapshot")]
#[test]
fn framed_snapshot_seed_restores_its_sessions() {
    let seed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds/snapshot_load/framed_three_sessions"),
    )
    .expect("seed");
    let rest = &seed[1..];
    let file = sesame::model::frame_snapshot(&rest[..32], &rest[32..]);
    let sessions = sesame::Sessions::<Vec<u8>, String>::builder()
        .secret_key(sesame::SecretKey::from_bytes([0x42; 32]))
        .reaper_interval(None)
        .build()
        .expect("valid options");
    let report = sessions.load_snapshot_bytes(&file).expect("loads");
    assert_eq!(report.restored, 3);
    assert_eq!(sessions.len(), 3);
}

/// The whole-file seeds are real version-2 files (encrypted under the
/// model's key): the three-session one loads its sessions, so the fuzzer
/// starts from files that pass the tag check.
#[cfg(feature = "snapshot")]
#[test]
fn whole_file_snapshot_seed_restores_its_sessions() {
    let seed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/snapshot_load/file_three_sessions"),
    )
    .expect("seed");
    assert_eq!(seed[0] & 1, 0, "a whole-file seed");
    let sessions = sesame::Sessions::<Vec<u8>, String>::builder()
        .secret_key(sesame::SecretKey::from_bytes([0x42; 32]))
        .reaper_interval(None)
        .build()
        .expect("valid options");
    let report = sessions.load_snapshot_bytes(&seed[1..]).expect("loads");
    assert_eq!(report.restored, 3);
}

/// Rewrites the whole-file seeds from the framed ones after a format
/// change: `cargo test --features model,snapshot --test fuzz_seeds -- --ignored`.
#[cfg(feature = "snapshot")]
#[test]
#[ignore = "rewrites fuzz/seeds/snapshot_load; run by hand after a format change"]
fn regenerate_whole_file_snapshot_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/snapshot_load");
    let framed = std::fs::read(dir.join("framed_three_sessions")).expect("seed");
    let rest = &framed[1..];
    let file = sesame::model::frame_snapshot(&rest[..32], &rest[32..]);
    let mut fields = rest[..32].to_vec();
    fields[24..].fill(0); // no entries
    let empty = sesame::model::frame_snapshot(&fields, &[]);
    let whole = |f: &[u8]| [&[0u8][..], f].concat();
    std::fs::write(dir.join("file_three_sessions"), whole(&file)).expect("write");
    std::fs::write(dir.join("file_empty"), whole(&empty)).expect("write");
    std::fs::write(dir.join("file_truncated"), whole(&file[..file.len() - 20])).expect("write");
}
