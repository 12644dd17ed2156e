//! The fuzz target `proxy_headers`: arbitrary `X-Forwarded-For` and
//! `Forwarded` field lines through the client-address parsers.

use std::net::{IpAddr, SocketAddr};

use crate::http::device::{forwarded, forwarded_elements, x_forwarded_for};

/// `data`: one byte for the trusted hop count (0 to 4), then field lines
/// separated by `\n`, the first one written by the client and the others
/// by the application's proxies. Checks that the parsers never panic, that
/// zero hops read nothing, that `X-Forwarded-For` reads what a naive split
/// reads, and that what the client wrote never changes the answer when the
/// proxies' lines hold the trusted hops.
///
/// # Panics
///
/// On a failed check (that is the point).
pub fn check_proxy_headers(data: &[u8]) {
    let Some((&h, rest)) = data.split_first() else {
        return;
    };
    let hops = usize::from(h % 5);
    let lines: Vec<&[u8]> = rest.split(|b| *b == b'\n').collect();
    let xff = x_forwarded_for(lines.iter().copied(), hops);
    let fwd = forwarded(lines.iter().copied(), hops);
    if hops == 0 {
        assert_eq!((xff, fwd), (None, None), "zero hops read a header");
        return;
    }
    assert_eq!(xff, naive_x_forwarded_for(&lines, hops), "X-Forwarded-For");
    let ours = &lines[1..];
    let ours_xff = ours
        .iter()
        .flat_map(|l| l.split(|b| *b == b','))
        .filter(|e| !e.trim_ascii().is_empty())
        .count();
    if ours_xff >= hops {
        let without = x_forwarded_for(ours.iter().copied(), hops);
        assert_eq!(xff, without, "the client's line moved X-Forwarded-For");
    }
    if forwarded_elements(ours.iter().copied()) >= hops {
        let without = forwarded(ours.iter().copied(), hops);
        assert_eq!(fwd, without, "the client's line moved Forwarded");
    }
}

/// Every line split on commas, empty elements dropped, the `hops`-th from
/// the right parsed as an address with or without a port or brackets.
fn naive_x_forwarded_for(lines: &[&[u8]], hops: usize) -> Option<IpAddr> {
    let elements: Vec<&[u8]> = lines
        .iter()
        .flat_map(|l| l.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
        .collect();
    let text = std::str::from_utf8(elements.iter().rev().nth(hops - 1)?).ok()?;
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| text.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}
