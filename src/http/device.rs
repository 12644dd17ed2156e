//! Which device an HTTP request comes from: its user agent, and its client
//! address from the connection or from a proxy header the application says
//! it can trust (see [`ClientAddress`]).

use std::net::{IpAddr, SocketAddr};

use http::header::{FORWARDED, HeaderName, USER_AGENT};
use http::{Extensions, HeaderMap};

use crate::Device;

/// The user agent length kept by default, in bytes: enough for every
/// common browser's (rarely above 200), small enough that a session's
/// device stays a few hundred bytes.
pub const DEFAULT_MAX_USER_AGENT: usize = 256;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Where a request's client address comes from.
///
/// # Trusting proxy headers
///
/// `X-Forwarded-For` and `Forwarded` (RFC 7239) are written by whoever
/// sends the request, so a client can put any address in them. Only the
/// entries appended by proxies the application runs can be believed: each
/// proxy appends the address it received the request from, so with `n`
/// trusted proxies in front of the application the client's address is the
/// `n`-th entry from the right (MDN, "X-Forwarded-For: Selecting an IP
/// address"). That is all [`ClientAddress::XForwardedFor`] and
/// [`ClientAddress::Forwarded`] read: never an entry further left, which
/// the client wrote. With fewer entries than trusted hops, or an entry
/// that is not an address (`unknown`, an obfuscated node, garbage), the
/// address is unknown (`None`) rather than guessed. A header is read only
/// when configured: by default ([`ClientAddress::Peer`]) the address is the
/// connection's.
///
/// ```
/// use sesame::device::{ClientAddress, DeviceConfig};
/// use http::{Extensions, HeaderMap};
/// let config = DeviceConfig::new().client_address(ClientAddress::XForwardedFor { trusted_hops: 1 });
/// let mut headers = HeaderMap::new();
/// // The client wrote the first entry; our one proxy appended the second.
/// headers.insert("x-forwarded-for", "6.6.6.6, 192.0.2.7".parse()?);
/// assert_eq!(config.address(&headers, &Extensions::new()), Some("192.0.2.7".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAddress {
    /// The connection's peer (see [`DeviceConfig::peer`]). Right when
    /// clients connect to the application directly.
    #[default]
    Peer,
    /// The `trusted_hops`-th entry from the right of `X-Forwarded-For`,
    /// for an application behind that many proxies that each append the
    /// address they received from (nginx's `$proxy_add_x_forwarded_for`,
    /// most load balancers). `0` means no trusted proxy: the peer.
    ///
    /// # Warning
    ///
    /// Count exactly: one hop too many reads an entry the client wrote.
    XForwardedFor {
        /// How many proxies the application runs in front of itself.
        trusted_hops: usize,
    },
    /// The `for` parameter of the `trusted_hops`-th element from the right
    /// of `Forwarded` (RFC 7239), as [`ClientAddress::XForwardedFor`].
    Forwarded {
        /// How many proxies the application runs in front of itself.
        trusted_hops: usize,
    },
}

/// What the tower layer records about a request's device (see
/// `sesame::tower::SessionLayer::record_devices`): the user agent, cut to
/// a length, and the client address.
///
/// The peer address is read from the request's extensions by a function
/// (by default: a [`SocketAddr`] or an [`IpAddr`] there). axum puts it
/// in its own `ConnectInfo<SocketAddr>` (served with
/// `into_make_service_with_connect_info::<SocketAddr>()`), which this crate
/// cannot name; say so with [`DeviceConfig::peer`]:
///
/// ```
/// use std::net::{IpAddr, SocketAddr};
/// use axum::extract::ConnectInfo;
/// use sesame::device::DeviceConfig;
/// use http::{Extensions, HeaderMap};
///
/// let config = DeviceConfig::new()
///     .peer(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()));
/// let mut ext = Extensions::new();
/// ext.insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 9], 50_000))));
/// let mut headers = HeaderMap::new();
/// headers.insert("user-agent", "Mozilla/5.0".parse()?);
/// let device = config.device(&headers, &ext);
/// assert_eq!(device.address, Some(IpAddr::from([192, 0, 2, 9])));
/// assert_eq!(device.user_agent.as_deref(), Some("Mozilla/5.0"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct DeviceConfig {
    max_user_agent: usize,
    address: ClientAddress,
    peer: fn(&Extensions) -> Option<IpAddr>,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceConfig {
    /// User agents cut to [`DEFAULT_MAX_USER_AGENT`] bytes, the address of
    /// the connection ([`ClientAddress::Peer`]), found as a [`SocketAddr`]
    /// or [`IpAddr`] request extension.
    pub fn new() -> Self {
        Self {
            max_user_agent: DEFAULT_MAX_USER_AGENT,
            address: ClientAddress::Peer,
            peer: default_peer,
        }
    }

    /// Keep at most `bytes` of the user agent (cut on a character
    /// boundary; never more than [`crate::device::MAX_USER_AGENT_BYTES`]).
    /// `0` records no user agent.
    pub fn max_user_agent(mut self, bytes: usize) -> Self {
        self.max_user_agent = bytes;
        self
    }

    /// Where the client address comes from (default: the connection).
    ///
    /// # Warning
    ///
    /// A proxy header is believed only as far as `trusted_hops` says:
    /// configure it only behind proxies that append to it (see
    /// [`ClientAddress`]).
    pub fn client_address(mut self, from: ClientAddress) -> Self {
        self.address = from;
        self
    }

    /// How to find the connection's address in a request's extensions
    /// (see the type's docs for axum's `ConnectInfo`).
    pub fn peer(mut self, find: fn(&Extensions) -> Option<IpAddr>) -> Self {
        self.peer = find;
        self
    }

    /// The request's device: its cleaned user agent and its client address.
    pub fn device(&self, headers: &HeaderMap, extensions: &Extensions) -> Device {
        self.seen(headers, extensions).device(self)
    }

    /// What the device will be built from, taken when the request arrives
    /// (cheap: a reference-counted header value and an address); the
    /// `Device` itself is built only when a session records it.
    pub(crate) fn seen(&self, headers: &HeaderMap, extensions: &Extensions) -> Seen {
        Seen {
            user_agent: (self.max_user_agent > 0)
                .then(|| headers.get(USER_AGENT).cloned())
                .flatten(),
            address: self.address(headers, extensions),
        }
    }

    /// The request's client address, as configured (see [`ClientAddress`]).
    pub fn address(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        match self.address {
            ClientAddress::XForwardedFor { trusted_hops } if trusted_hops > 0 => {
                let values = headers.get_all(X_FORWARDED_FOR);
                x_forwarded_for(values.iter().map(|v| v.as_bytes()), trusted_hops)
            }
            ClientAddress::Forwarded { trusted_hops } if trusted_hops > 0 => {
                let values = headers.get_all(FORWARDED);
                forwarded(values.iter().map(|v| v.as_bytes()), trusted_hops)
            }
            _ => (self.peer)(extensions),
        }
    }
}

/// A request's device, before it is built (see [`DeviceConfig::seen`]).
/// No `Debug`: its parts are personal data.
#[derive(Clone)]
pub(crate) struct Seen {
    user_agent: Option<http::HeaderValue>,
    address: Option<IpAddr>,
}

impl Seen {
    /// The device, its user agent cleaned and cut as `config` says.
    pub(crate) fn device(&self, config: &DeviceConfig) -> Device {
        let mut device = Device::new();
        if let Some(ua) = &self.user_agent {
            device = device.with_user_agent(
                &String::from_utf8_lossy(ua.as_bytes()),
                config.max_user_agent,
            );
        }
        if let Some(ip) = self.address {
            device = device.with_address(ip);
        }
        device
    }
}

fn default_peer(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<SocketAddr>()
        .map(SocketAddr::ip)
        .or_else(|| extensions.get::<IpAddr>().copied())
}

/// The `hops`-th entry from the right of the `X-Forwarded-For` field lines
/// `values` (in order), empty list elements skipped (RFC 9110, 5.6.1).
pub(crate) fn x_forwarded_for<'a>(
    values: impl DoubleEndedIterator<Item = &'a [u8]>,
    hops: usize,
) -> Option<IpAddr> {
    let entry = values
        .rev()
        .flat_map(|v| v.rsplit(|b| *b == b','))
        .filter(|e| !trim(e).is_empty())
        .nth(hops.checked_sub(1)?)?;
    node_address(trim(entry))
}

/// The `for` address of the `hops`-th element from the right of the
/// `Forwarded` field lines `values` (RFC 7239). Commas and semicolons
/// inside quoted strings do not split; an unterminated quoted string makes
/// its value invalid.
pub(crate) fn forwarded<'a>(
    values: impl DoubleEndedIterator<Item = &'a [u8]>,
    hops: usize,
) -> Option<IpAddr> {
    let mut elements: Vec<&[u8]> = Vec::new();
    for value in values {
        elements.extend(split_unquoted(value, b',').filter(|e| !trim(e).is_empty()));
    }
    let element = *elements.iter().rev().nth(hops.checked_sub(1)?)?;
    let value = split_unquoted(element, b';').find_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|b| *b == b'=')?;
        trim(&pair[..eq])
            .eq_ignore_ascii_case(b"for")
            .then(|| trim(&pair[eq + 1..]))
    })?;
    let node = match value {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'"') && !inner.contains(&b'\\') => inner,
        [b'"', ..] => return None, // unterminated, or escapes no address needs
        plain => plain,
    };
    node_address(node)
}

/// How many elements the `Forwarded` field lines `values` hold (what
/// [`forwarded`] counts its hops in).
#[cfg_attr(not(feature = "model"), allow(dead_code))]
pub(crate) fn forwarded_elements<'a>(values: impl Iterator<Item = &'a [u8]>) -> usize {
    values
        .map(|v| {
            split_unquoted(v, b',')
                .filter(|e| !trim(e).is_empty())
                .count()
        })
        .sum()
}

/// Splits `s` on `sep` outside double-quoted strings (a backslash escapes
/// the next byte inside one).
fn split_unquoted(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    let mut i = 0;
    std::iter::from_fn(move || {
        if start > s.len() {
            return None;
        }
        while i < s.len() {
            let b = s[i];
            i += 1;
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                let part = &s[start..i - 1];
                start = i;
                return Some(part);
            }
        }
        let part = &s[start..];
        start = s.len() + 1;
        Some(part)
    })
}

/// An address as proxies write a node: `192.0.2.1`, `192.0.2.1:443`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`. Anything else
/// (`unknown`, `_hidden`, garbage, non-UTF-8) is `None`.
fn node_address(node: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(node).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str], hops: usize) -> Option<IpAddr> {
        x_forwarded_for(values.iter().map(|v| v.as_bytes()), hops)
    }

    fn fwd(values: &[&str], hops: usize) -> Option<IpAddr> {
        forwarded(values.iter().map(|v| v.as_bytes()), hops)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn x_forwarded_for_reads_only_the_trusted_hop() {
        assert_eq!(xff(&["203.0.113.9"], 1), ip("203.0.113.9"));
        // The client's forgery sits left of what our proxies appended.
        assert_eq!(xff(&["6.6.6.6, 203.0.113.9"], 1), ip("203.0.113.9"));
        assert_eq!(
            xff(&["6.6.6.6, 203.0.113.9, 10.0.0.2"], 2),
            ip("203.0.113.9")
        );
        // Several field lines are one list, in order.
        assert_eq!(xff(&["6.6.6.6", "203.0.113.9"], 1), ip("203.0.113.9"));
        assert_eq!(
            xff(&["6.6.6.6", "203.0.113.9, 10.0.0.2"], 2),
            ip("203.0.113.9")
        );
        // Ports and brackets, as some proxies write them.
        assert_eq!(xff(&["[2001:db8::1]:443"], 1), ip("2001:db8::1"));
        assert_eq!(xff(&["2001:db8::1"], 1), ip("2001:db8::1"));
        assert_eq!(xff(&["192.0.2.1:8080"], 1), ip("192.0.2.1"));
        // Empty elements do not count as hops.
        assert_eq!(xff(&["6.6.6.6,, 203.0.113.9 ,"], 1), ip("203.0.113.9"));
    }

    #[test]
    fn x_forwarded_for_never_guesses() {
        assert_eq!(xff(&["203.0.113.9"], 2), None, "fewer entries than hops");
        assert_eq!(xff(&[], 1), None);
        assert_eq!(
            xff(&["203.0.113.9"], 0),
            None,
            "zero hops is not a header read"
        );
        assert_eq!(xff(&["unknown"], 1), None);
        assert_eq!(xff(&["1.2.3.4 5.6.7.8"], 1), None);
        assert_eq!(xff(&["999.1.1.1"], 1), None);
        assert_eq!(xff(&["[::1"], 1), None);
        assert_eq!(xff(&["::1]"], 1), None);
        assert_eq!(xff(&["1.2.3.4, "], usize::MAX), None);
    }

    #[test]
    fn forwarded_reads_only_the_trusted_hop() {
        assert_eq!(
            fwd(&["for=192.0.2.60;proto=http;by=203.0.113.43"], 1),
            ip("192.0.2.60")
        );
        assert_eq!(
            fwd(&["For=\"[2001:db8:cafe::17]:4711\""], 1),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(fwd(&["for=6.6.6.6, for=192.0.2.43"], 1), ip("192.0.2.43"));
        assert_eq!(fwd(&["for=192.0.2.43, for=10.0.0.2"], 2), ip("192.0.2.43"));
        assert_eq!(
            fwd(&["for=6.6.6.6", "proto=https;for=192.0.2.43"], 1),
            ip("192.0.2.43")
        );
        // A quoted comma is not an element boundary.
        assert_eq!(
            fwd(&["for=\"6.6.6.6,x\";by=a, for=192.0.2.43"], 1),
            ip("192.0.2.43")
        );
        assert_eq!(
            fwd(&["for=192.0.2.43;by=\"a,for=6.6.6.6\""], 1),
            ip("192.0.2.43")
        );
    }

    #[test]
    fn forwarded_never_guesses() {
        assert_eq!(fwd(&["for=unknown"], 1), None);
        assert_eq!(fwd(&["for=_hidden"], 1), None);
        assert_eq!(
            fwd(&["proto=https"], 1),
            None,
            "the trusted element has no for"
        );
        assert_eq!(fwd(&["for=192.0.2.43"], 2), None);
        assert_eq!(fwd(&["for=192.0.2.43"], 0), None);
        // An unterminated quote swallows what follows on its line: unknown,
        // never the client's address.
        assert_eq!(fwd(&["for=\"6.6.6.6, for=192.0.2.43"], 1), None);
        assert_eq!(fwd(&["for=\"6.6.6.6\\\""], 1), None);
        assert_eq!(fwd(&["for=\"1.2.3.4"], 1), None);
        assert_eq!(fwd(&["for="], 1), None);
        assert_eq!(fwd(&["for=\""], 1), None);
        assert_eq!(fwd(&["="], 1), None);
        assert_eq!(fwd(&[";;;,,,\"\"\"\\"], 1), None);
    }

    #[test]
    fn headers_are_read_only_when_configured() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        headers.insert("forwarded", "for=6.6.6.6".parse().unwrap());
        let mut ext = Extensions::new();
        ext.insert(SocketAddr::from(([192, 0, 2, 1], 1234)));
        let peer = ip("192.0.2.1");
        assert_eq!(DeviceConfig::new().address(&headers, &ext), peer);
        for zero in [
            ClientAddress::XForwardedFor { trusted_hops: 0 },
            ClientAddress::Forwarded { trusted_hops: 0 },
        ] {
            let config = DeviceConfig::new().client_address(zero);
            assert_eq!(config.address(&headers, &ext), peer);
        }
        let config =
            DeviceConfig::new().client_address(ClientAddress::Forwarded { trusted_hops: 1 });
        assert_eq!(config.address(&headers, &ext), ip("6.6.6.6"));
        assert_eq!(
            config.address(&HeaderMap::new(), &ext),
            None,
            "no header: unknown, not the proxy"
        );
    }

    #[test]
    fn user_agents_are_cut_and_cleaned_from_raw_bytes() {
        let mut headers = HeaderMap::new();
        let raw = http::HeaderValue::from_bytes(b"Agent\xff/1.0\t(x)").unwrap();
        headers.insert(USER_AGENT, raw);
        let ext = Extensions::new();
        let d = DeviceConfig::new().device(&headers, &ext);
        assert_eq!(d.user_agent.as_deref(), Some("Agent\u{fffd}/1.0(x)"));
        let d = DeviceConfig::new().max_user_agent(5).device(&headers, &ext);
        assert_eq!(d.user_agent.as_deref(), Some("Agent"));
        let d = DeviceConfig::new().max_user_agent(0).device(&headers, &ext);
        assert_eq!(d, Device::new());
    }

    proptest::proptest! {
        /// Hostile header values: never a panic, and never an address that
        /// is not the configured hop's own text.
        #[test]
        fn hostile_values_never_panic(
            lines in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..4),
            hops in 0usize..6,
        ) {
            let values: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            let _ = x_forwarded_for(values.iter().copied(), hops);
            let _ = forwarded(values.iter().copied(), hops);
        }

        /// Whatever a client prepends, one trusted hop reads the proxy's entry.
        #[test]
        fn client_prefixes_cannot_move_the_trusted_hop(prefix in "[ -~]{0,40}") {
            let line = format!("{prefix}, 192.0.2.77");
            proptest::prop_assert_eq!(xff(&[&line], 1), ip("192.0.2.77"));
            let line = prefix.replace('"', "");
            proptest::prop_assert_eq!(fwd(&[&line, "for=192.0.2.77"], 1), ip("192.0.2.77"));
        }
    }
}
