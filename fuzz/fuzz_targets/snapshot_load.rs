//! Arbitrary snapshot files, and arbitrary bodies in a correctly signed
//! frame, through the loader: never panics, a refused file changes nothing,
//! what loads saves and loads again. Checks live in
//! `sesame::model::check_snapshot_load`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sesame::model::check_snapshot_load(data);
});
