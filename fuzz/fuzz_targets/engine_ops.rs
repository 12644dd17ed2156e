//! Arbitrary sequences of engine operations and clock moves, run against the
//! engine and the reference model (`sesame::model`): every observable result
//! must agree. The bytes decode to a configuration then operations
//! (`sesame::model::run_bytes`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sesame::model::run_bytes(data);
});
