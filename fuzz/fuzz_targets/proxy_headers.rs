//! Arbitrary `X-Forwarded-For` / `Forwarded` field lines and trusted hop
//! counts through the client-address parsers: never panics, reads only the
//! trusted hop. Checks live in `sesame::model::check_proxy_headers`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sesame::model::check_proxy_headers(data);
});
