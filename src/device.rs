//! What a session remembers about the device that holds it: the user
//! agent and the client address, for "your devices" lists that a user can
//! act on ([`crate::Sessions::logout_others`], [`crate::Sessions::revoke`]).
//!
//! # Privacy
//!
//! The address and the user agent are personal data. The engine records
//! them only when asked ([`crate::Sessions::set_device`]; the tower layer
//! only with `SessionLayer::record_devices`, with the `tower` feature), keeps them only beside the session they describe, drops
//! them when the session ends (whatever ends it), never logs them, never
//! puts them in events or errors, and never writes them to a snapshot. A
//! `Device`'s `Debug` output shows neither.
//!
//! # From HTTP requests
//!
//! With the `cookie` feature, `DeviceConfig` reads a request's device
//! (user agent, and client address from the connection or a trusted proxy
//! header: `ClientAddress`); the tower layer uses it.

use std::fmt;
use std::net::IpAddr;

#[cfg(feature = "cookie")]
pub use crate::http::device::{ClientAddress, DEFAULT_MAX_USER_AGENT, DeviceConfig};

/// The most bytes of user agent a [`Device`] keeps, whatever the caller
/// asks for: bounds the memory a client can make a session hold (real
/// user agents are well under 512 bytes).
pub const MAX_USER_AGENT_BYTES: usize = 1024;

/// The device a session was created or logged in from, as the client
/// described it: metadata shown in device lists
/// ([`crate::SessionInfo::device`]), never used to decide anything (both
/// parts are easy to forge).
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use sesame::Device;
/// let device = Device::new()
///     .with_user_agent("Mozilla/5.0 (X11; Linux x86_64)\r\n", 16)
///     .with_address(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
/// assert_eq!(device.user_agent.as_deref(), Some("Mozilla/5.0 (X11")); // control characters gone, truncated
/// assert_eq!(device.address, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))));
/// assert_eq!(format!("{device:?}"), "Device { user_agent: Some(..), address: Some(..) }");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Device {
    /// The client's `User-Agent`, cleaned: no control characters, at most
    /// the configured length (and never more than [`MAX_USER_AGENT_BYTES`]),
    /// cut on a character boundary. `None` when absent or empty.
    pub user_agent: Option<String>,
    /// The client's address: the connection's, or the one a trusted proxy
    /// reported.
    pub address: Option<IpAddr>,
}

impl Device {
    /// A device with nothing known.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the user agent from `raw`: control characters removed,
    /// surrounding spaces trimmed, cut to at most `max_bytes` bytes (and
    /// [`MAX_USER_AGENT_BYTES`]) on a character boundary. Empty gives `None`.
    ///
    /// ```
    /// let device = sesame::Device::new().with_user_agent("  café\u{7}  ", 4);
    /// assert_eq!(device.user_agent.as_deref(), Some("caf")); // 'é' is 2 bytes: not cut in half
    /// assert_eq!(sesame::Device::new().with_user_agent(" \t", 64).user_agent, None);
    /// ```
    pub fn with_user_agent(mut self, raw: &str, max_bytes: usize) -> Self {
        self.user_agent = clean_user_agent(raw, max_bytes);
        self
    }

    /// Sets the client address.
    pub fn with_address(mut self, address: IpAddr) -> Self {
        self.address = Some(address);
        self
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.user_agent.is_none() && self.address.is_none()
    }

    /// The device as the engine keeps it: a user agent built by hand (the
    /// fields are public) is held to the same rules as one set through
    /// [`Device::with_user_agent`].
    pub(crate) fn bounded(mut self) -> Self {
        if let Some(ua) = &self.user_agent {
            let clean_enough = ua.len() <= MAX_USER_AGENT_BYTES
                && !ua.is_empty()
                && !ua.chars().any(char::is_control);
            if !clean_enough {
                self.user_agent = clean_user_agent(ua, MAX_USER_AGENT_BYTES);
            }
        }
        self
    }
}

/// Redacted: a device's details are personal data (see the module docs).
impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Known(bool);
        impl fmt::Debug for Known {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(if self.0 { "Some(..)" } else { "None" })
            }
        }
        f.debug_struct("Device")
            .field("user_agent", &Known(self.user_agent.is_some()))
            .field("address", &Known(self.address.is_some()))
            .finish()
    }
}

/// See [`Device::with_user_agent`].
fn clean_user_agent(raw: &str, max_bytes: usize) -> Option<String> {
    let max = max_bytes.min(MAX_USER_AGENT_BYTES);
    let mut out = String::with_capacity(raw.len().min(max));
    for c in raw.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_cut_on_char_boundaries_and_cleaned() {
        let ua = "é".repeat(10); // 20 bytes
        for max in 0..25 {
            let d = Device::new().with_user_agent(&ua, max);
            let got = d.user_agent.unwrap_or_default();
            assert!(got.len() <= max, "{max}");
            assert_eq!(got.len(), (max.min(20) / 2) * 2, "{max}");
        }
        let d = Device::new().with_user_agent("a\u{0}b\u{1b}[31mc\u{7f}d\u{85}e\n", 64);
        assert_eq!(d.user_agent.as_deref(), Some("ab[31mcde"));
    }

    #[test]
    fn the_engine_bound_holds_whatever_the_caller_asked() {
        let d = Device::new().with_user_agent(&"x".repeat(5000), usize::MAX);
        assert_eq!(d.user_agent.map(|u| u.len()), Some(MAX_USER_AGENT_BYTES));
        let mut d = Device::new();
        d.user_agent = Some(format!("{}\n", "y".repeat(3000)));
        let d = d.bounded();
        assert_eq!(d.user_agent.map(|u| u.len()), Some(MAX_USER_AGENT_BYTES));
        let mut d = Device::new();
        d.user_agent = Some(String::new());
        assert_eq!(d.bounded().user_agent, None);
    }
}
