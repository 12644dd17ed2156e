//! The `cookie_header` fuzz target's checks: arbitrary `Cookie` header
//! values and cookie options through [`crate::cookie`].

use std::time::Duration;

use http::{HeaderMap, HeaderValue, header::COOKIE};

use crate::cookie::{CookieConfig, MAX_CANDIDATES, SameSite, cookie_headers};
use crate::token::SessionToken;

/// The token [`check_cookie_header`] treats as the one live session (its
/// text is in the target's dictionary and seeds, so the fuzzer can place it).
pub const KNOWN_TOKEN: [u8; 32] = [0x5A; 32];

/// Strips optional whitespace (space, tab) at both ends.
fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(a), Some(b)) => &s[a..=b],
        _ => &[],
    }
}

/// RFC 6265 §5.4's split, naively: every `;`-separated pair of every header
/// whose trimmed name is `name`, its trimmed value, the first
/// `MAX_CANDIDATES` of them.
fn reference_values<'h>(name: &str, headers: &[&'h [u8]]) -> Vec<&'h [u8]> {
    let mut out = Vec::new();
    for header in headers {
        for pair in header.split(|&b| b == b';') {
            let pair = trim(pair);
            if let Some(eq) = pair.iter().position(|&b| b == b'=')
                && trim(&pair[..eq]) == name.as_bytes()
                && out.len() < MAX_CANDIDATES
            {
                out.push(trim(&pair[eq + 1..]));
            }
        }
    }
    out
}

/// Input layout: a flag byte, then `\n`-separated parts. With flag bit 0
/// the first parts are a cookie name (and, with bits 1 and 2, a domain and
/// a path) for the builder, bits 3 to 7 pick `Secure`, `HttpOnly`,
/// persistence and `SameSite`; the remaining parts are `Cookie` header
/// values.
///
/// Checks: the builder never panics, and what it accepts writes a
/// `Set-Cookie` that parses back to the same attributes and whose pair,
/// sent back as a `Cookie` header, is found; reading cookies agrees with a
/// naive reference split; `find_session` returns the first candidate that
/// passes its check, and finds the known token exactly when it is among the
/// candidates; header maps yield their `Cookie` values in order.
///
/// # Panics
///
/// On any disagreement (that is the point).
pub fn check_cookie_header(data: &[u8]) {
    let (&flags, rest) = data.split_first().unwrap_or((&0, &[]));
    let mut parts = rest.split(|&b| b == b'\n');
    let config = if flags & 1 == 0 {
        CookieConfig::default()
    } else {
        let mut text = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        let mut b = CookieConfig::builder().name(text());
        let domain = (flags & 2 != 0).then(&mut text);
        if let Some(d) = &domain {
            b = b.domain(d.clone());
        }
        let path = (flags & 4 != 0).then(&mut text);
        if let Some(p) = &path {
            b = b.path(p.clone());
        }
        let same_site = match flags >> 6 {
            0 | 3 => SameSite::Lax,
            1 => SameSite::Strict,
            _ => SameSite::None,
        };
        let built = b
            .secure(flags & 8 == 0)
            .http_only(flags & 16 == 0)
            .persistent(flags & 32 != 0)
            .same_site(same_site)
            .build();
        match built {
            Ok(c) => {
                assert_eq!(c.domain(), domain.as_deref());
                assert_eq!(c.path(), path.as_deref().unwrap_or("/"));
                assert_eq!(c.same_site(), same_site);
                c
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                CookieConfig::default()
            }
        }
    };
    let headers: Vec<&[u8]> = parts.collect();

    let got: Vec<&[u8]> = config.cookie_values(headers.iter().copied()).collect();
    assert_eq!(
        got,
        reference_values(config.name(), &headers),
        "cookie values"
    );

    let known = SessionToken::from_bytes(KNOWN_TOKEN);
    let found = config.find_session(headers.iter().copied(), |v| {
        (v == known.as_str().as_bytes()).then_some(())
    });
    assert_eq!(
        found.is_some(),
        got.contains(&known.as_str().as_bytes()),
        "known token found exactly when sent"
    );
    if let Some((t, ())) = found {
        assert_eq!(t, known);
    }
    let first_parsing = got.iter().find_map(|v| SessionToken::parse_bytes(v).ok());
    let found = config.find_session(headers.iter().copied(), |v| {
        SessionToken::parse_bytes(v).ok()
    });
    assert_eq!(
        found.map(|(t, _)| t),
        first_parsing,
        "first valid candidate"
    );

    let mut map = HeaderMap::new();
    let valid: Vec<&[u8]> = headers
        .iter()
        .copied()
        .filter(|h| match HeaderValue::from_bytes(h) {
            Ok(v) => {
                map.append(COOKIE, v);
                true
            }
            Err(_) => false,
        })
        .collect();
    assert!(cookie_headers(&map).eq(valid.iter().copied()));

    // Writing: any token, any lifetime.
    let mut bytes = [0u8; 32];
    for (b, d) in bytes.iter_mut().zip(rest) {
        *b = *d;
    }
    let token = SessionToken::from_bytes(bytes);
    let max_age = Duration::from_secs(u64::from(flags) * 1_000_003);
    let set = config.set_cookie(&token, max_age);
    let text = set.to_str().expect("Set-Cookie is visible ASCII");
    assert!(text.starts_with(&format!("{}={}", config.name(), token.as_str())));
    let parsed = ::cookie::Cookie::parse(text).expect("Set-Cookie parses");
    assert_eq!(parsed.name(), config.name());
    assert_eq!(parsed.value(), token.as_str());
    assert_eq!(parsed.path(), Some(config.path()));
    assert_eq!(parsed.secure(), Some(config.is_secure()).filter(|&s| s));
    assert_eq!(
        parsed.http_only(),
        Some(config.is_http_only()).filter(|&s| s)
    );
    assert_eq!(parsed.max_age().is_some(), config.is_persistent());
    let pair = text.split(';').next().unwrap_or_default();
    let back: Vec<&[u8]> = config.cookie_values([pair.as_bytes()]).collect();
    assert_eq!(back, [token.as_str().as_bytes()]);

    let clear = config.clear_cookie();
    let clear = ::cookie::Cookie::parse(clear.to_str().expect("visible ASCII")).expect("parses");
    assert_eq!(clear.name(), config.name());
    assert_eq!(clear.value(), "");
    assert_eq!(clear.max_age(), Some(::cookie::time::Duration::ZERO));
}
