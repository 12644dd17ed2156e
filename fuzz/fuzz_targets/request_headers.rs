//! Arbitrary request headers through the CSRF guard and the bearer parser:
//! never a panic; a parsed `Origin` prints in a form that parses back to
//! itself; safe methods always pass the guard; a state-changing request
//! that says `Sec-Fetch-Site: cross-site` never does; an accepted
//! `Authorization` value is exactly `Bearer`, one space and the token.
//!
//! Input: the first byte picks the method, the rest is header lines
//! (`name:value`, split on `\n`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame::bearer::parse_authorization;
use sesame::csrf::{CsrfGuard, Origin, Scheme};

const METHODS: [&str; 8] = ["GET", "HEAD", "OPTIONS", "TRACE", "POST", "PUT", "DELETE", "PATCH"];

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[usize::from(m) % METHODS.len()];
    let headers: Vec<(&str, &[u8])> = rest
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = std::str::from_utf8(&line[..colon]).ok()?;
            Some((name, &line[colon + 1..]))
        })
        .collect();

    for (name, value) in &headers {
        if let Ok(text) = std::str::from_utf8(value) {
            if let Ok(origin) = Origin::parse(text) {
                let again = Origin::parse(&origin.to_string()).expect("a printed origin parses");
                assert_eq!(again, origin, "{text:?}");
            }
        }
        if name.eq_ignore_ascii_case("authorization") {
            if let Ok(token) = parse_authorization(value) {
                assert_eq!(value.len(), 7 + 43);
                assert!(value[..7].eq_ignore_ascii_case(b"bearer "));
                assert_eq!(&value[7..], token.as_str().as_bytes());
            }
        }
    }

    let guard = CsrfGuard::builder()
        .allow_origin(Origin::parse("https://app.example").expect("valid"))
        .same_origin_as_host(Scheme::Https)
        .build()
        .expect("a guard that allows an origin");
    let verdict = guard.check_fields(method, headers.iter().copied());
    let safe = matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE");
    if safe {
        assert!(verdict.is_ok(), "a safe method is never refused");
    }
    let cross_site = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("sec-fetch-site") && v.eq_ignore_ascii_case(b"cross-site"));
    if !safe && cross_site {
        assert!(verdict.is_err(), "a cross-site state change passed");
    }
});
