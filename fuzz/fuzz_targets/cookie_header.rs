//! Arbitrary `Cookie` header values and cookie options through the cookie
//! helpers: never panics, reads what a naive reference split reads, finds
//! the session exactly when it is sent, writes `Set-Cookie` values that
//! parse back. Checks live in `sesame::model::check_cookie_header`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sesame::model::check_cookie_header(data);
});
