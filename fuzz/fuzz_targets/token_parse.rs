//! Any bytes through the strict token parser: never panics, agrees with an
//! independent reference, and parse(format(t)) == t. Checks live in
//! `sesame::model::check_token_parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sesame::model::check_token_parse(data);
});
