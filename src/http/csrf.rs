//! A CSRF guard: refuses state-changing requests that a page of another
//! origin made the browser send.
//!
//! ```
//! use http::{HeaderMap, HeaderValue, Method};
//! use sesame::csrf::{CsrfGuard, CsrfRejectionKind, Origin};
//!
//! let guard = CsrfGuard::builder()
//!     .allow_origin(Origin::parse("https://app.example")?)
//!     .build()?;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("origin", HeaderValue::from_static("https://app.example"));
//! headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
//! assert!(guard.check(&Method::POST, &headers).is_ok());
//!
//! headers.insert("origin", HeaderValue::from_static("https://evil.example"));
//! headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
//! let refused = guard.check(&Method::POST, &headers).unwrap_err();
//! assert_eq!(refused.kind(), CsrfRejectionKind::CrossSite);
//! assert!(guard.check(&Method::GET, &headers).is_ok(), "safe methods pass");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The rules
//!
//! Only state-changing requests are judged: every method but `GET`,
//! `HEAD`, `OPTIONS` and `TRACE` (the safe methods of RFC 9110 §9.2.1; an
//! application must not change state on them). For the others, each of the
//! two headers a browser sets, and a page cannot forge, is checked when
//! present, and both must pass:
//!
//! | header | passes | refused |
//! |---|---|---|
//! | `Sec-Fetch-Site` (Fetch Metadata, every current browser since 2023) | `same-origin`, `none` (the user typed the address, a bookmark) | `cross-site`; `same-site` (a sibling subdomain) unless `Origin` is an allowed origin; any other value, or the header twice |
//! | `Origin` (RFC 6454) | an allowed origin: scheme, host and port equal after lowercasing scheme and host and writing out the default port | any other origin; `null` (sandboxed frames, privacy-sensitive redirects, `file:` pages); a value that is not `scheme://host[:port]`; the header twice |
//!
//! A request with **neither header** passes. Every browser sends at least
//! `Origin` with a cross-origin `POST` (and all current ones
//! `Sec-Fetch-Site` with every request), so a request with neither is a
//! same-origin request of an old browser or not a browser's at all (curl,
//! a mobile app, another server): those carry no cookie a third-party page
//! could abuse, and are not CSRF vectors. This is the reasoning of OWASP's
//! CSRF cheat sheet ("Fetch Metadata headers", "Verifying Origin With
//! Standard Headers") and of Go 1.25's `net/http.CrossOriginProtection`,
//! which also allows a request without either header.
//!
//! Two choices are stricter than Go's:
//!
//! - Go compares `Origin` with `Host` by host and port only, failing open
//!   for an `http://` page posting to the `https://` site (its doc points
//!   to HSTS). Here the scheme counts too, and `Origin` is checked even
//!   when `Sec-Fetch-Site` says `same-origin`: the two never disagree in a
//!   browser, so a disagreement is refused.
//! - Go lets a trusted origin through whatever `Sec-Fetch-Site` says. Here
//!   `cross-site` is always refused: with sesame's `SameSite=Lax` session
//!   cookie a cross-site `POST` carries no session anyway, so allowing it
//!   would serve nothing but an attack on another cookie. An allowed origin
//!   may be another origin of the same site (`https://admin.app.example`
//!   posting to `https://app.example`: `same-site`). A client on another
//!   site should use a bearer token (`sesame::tower::TokenSource`), which
//!   no browser sends on its own, on routes outside the guard.
//!
//! # Which origins are allowed
//!
//! [`CsrfGuardBuilder::allow_origin`] lists them: the origin browsers use to
//! reach the application (its public origin) and any other origin of the
//! same site whose pages may post to it. **Prefer this list.**
//!
//! [`CsrfGuardBuilder::same_origin_as_host`] adds, per request, the origin
//! made of a fixed scheme and the request's `Host` header (the URI's
//! authority for HTTP/2, with [`CsrfGuard::check_request`] and the layer).
//! It is right when browsers reach the server directly. Behind a reverse
//! proxy it is often wrong, and then fails closed: a proxy that terminates
//! TLS makes the scheme `https` while the server sees plain HTTP, and a
//! proxy that rewrites `Host` (to `backend:8080`) makes every browser's
//! `POST` look foreign. Configure the public origin there instead
//! (`allow_origin(Origin::parse("https://app.example")?)`). A `Host` value
//! is the browser's own, so it cannot be used to let a foreign page in: the
//! browser sends the `Host` of the site being attacked, not the attacker's.
//!
//! # Using it
//!
//! [`CsrfGuard::check`] takes only a method and `http` headers; it knows
//! no framework. [`CsrfGuard::check_fields`] takes header names and
//! values as text and bytes, for frameworks with their own header types.
//! With the `tower` feature, `CsrfLayer` wraps any tower service (axum,
//! tonic, hyper) and answers a refused request with an empty `403`.
//!
//! The guard does not replace `SameSite` cookies, nor the other way
//! round: each covers cases the other misses (an old browser without
//! `SameSite`; a sibling subdomain, which `SameSite` counts as the same
//! site). Nothing here needs a token in forms.

#[cfg(feature = "tower")]
mod layer;

use std::fmt;
use std::net::Ipv6Addr;

use http::{HeaderMap, Method};

#[cfg(feature = "tower")]
pub use layer::{CsrfFuture, CsrfLayer, CsrfService};

/// Longest host accepted in an origin: 253 characters, the DNS limit
/// (RFC 1035 §2.3.4), plus room for a bracketed IPv6 address. A longer
/// value is no origin a browser sends.
const MAX_HOST_LEN: usize = 255;

/// The scheme of an [`Origin`]: browsers' origins for web pages are
/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http`, default port 80.
    Http,
    /// `https`, default port 443.
    Https,
}

impl Scheme {
    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A host, normalised: a name (or IPv4 address) in lowercase, or an IPv6
/// address (so `[::1]` and `[0:0::1]` are one host).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Host<S> {
    Name(S),
    V6(Ipv6Addr),
}

/// An origin as [`Origin::parse`] reads it, borrowing its host: the check
/// path compares without allocating.
#[derive(Clone, Copy, Debug)]
struct OriginRef<'a> {
    scheme: Scheme,
    host: Host<&'a str>,
    port: u16,
}

/// A web origin (RFC 6454): scheme, host and port. Two origins are the
/// same when all three are, after lowercasing the scheme and the host and
/// writing out the scheme's default port.
///
/// ```
/// use sesame::csrf::Origin;
///
/// let a = Origin::parse("https://App.Example")?;
/// assert_eq!(a, Origin::parse("HTTPS://app.example:443")?);
/// assert_ne!(a, Origin::parse("http://app.example")?, "the scheme counts");
/// assert_ne!(a, Origin::parse("https://app.example:8443")?, "so does the port");
/// assert_eq!(a.to_string(), "https://app.example");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: Scheme,
    /// A name is stored in lowercase.
    host: Host<Box<str>>,
    port: u16,
}

impl Origin {
    /// Parses an origin as browsers write it in `Origin`:
    /// `http://host[:port]` or `https://host[:port]`, host a DNS name, an
    /// IPv4 address or a bracketed IPv6 address. Scheme and host are
    /// case-insensitive; the default port may be written or not.
    ///
    /// # Errors
    ///
    /// An [`OriginError`] saying what is wrong: `null` (a browser's opaque
    /// origin), another scheme, no host, a path (even `/`), a query, a
    /// fragment, user info, a bad port, or a character no host has.
    ///
    /// ```
    /// use sesame::csrf::{Origin, OriginErrorKind};
    ///
    /// assert!(Origin::parse("https://[::1]:3000").is_ok());
    /// let err = Origin::parse("https://app.example/").unwrap_err();
    /// assert_eq!(err.kind(), OriginErrorKind::NotAnOrigin);
    /// assert_eq!(Origin::parse("null").unwrap_err().kind(), OriginErrorKind::Null);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parse(s: &str) -> Result<Self, OriginError> {
        let r = parse_origin(s.as_bytes())?;
        Ok(Self {
            scheme: r.scheme,
            host: match r.host {
                Host::Name(name) => Host::Name(name.to_ascii_lowercase().into_boxed_str()),
                Host::V6(ip) => Host::V6(ip),
            },
            port: r.port,
        })
    }

    /// The origin's scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The origin's port (the scheme's default when none was written).
    pub fn port(&self) -> u16 {
        self.port
    }

    fn matches(&self, other: &OriginRef<'_>) -> bool {
        self.scheme == other.scheme
            && self.port == other.port
            && match (&self.host, &other.host) {
                (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
                (Host::V6(a), Host::V6(b)) => a == b,
                _ => false,
            }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        match &self.host {
            Host::Name(name) => f.write_str(name)?,
            Host::V6(ip) => write!(f, "[{ip}]")?,
        }
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Origin({self})")
    }
}

impl std::str::FromStr for Origin {
    type Err = OriginError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// What is wrong with a value that [`Origin::parse`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OriginErrorKind {
    /// `null`: the opaque origin of a sandboxed frame, a `file:` page or a
    /// request redirected across origins.
    Null,
    /// A scheme other than `http` or `https`, or none.
    Scheme,
    /// Not `scheme://host[:port]`: a path, query, fragment or user info,
    /// or no host.
    NotAnOrigin,
    /// A character no host has, or a host too long.
    Host,
    /// A port that is empty, not a number, or above 65535.
    Port,
}

/// An origin that does not parse (see [`Origin::parse`]). Says what is
/// wrong, never the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OriginError {
    kind: OriginErrorKind,
}

impl OriginError {
    /// What is wrong.
    pub fn kind(&self) -> OriginErrorKind {
        self.kind
    }
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            OriginErrorKind::Null => "expected an origin, got `null` (an opaque origin)",
            OriginErrorKind::Scheme => "expected an http or https origin, got another scheme",
            OriginErrorKind::NotAnOrigin => {
                "expected scheme://host[:port], got a path, query, fragment or user info, or no host"
            }
            OriginErrorKind::Host => "expected a host name or IP address, got other characters",
            OriginErrorKind::Port => "expected a port from 0 to 65535",
        })
    }
}

impl std::error::Error for OriginError {}

fn origin_error(kind: OriginErrorKind) -> OriginError {
    OriginError { kind }
}

/// Parses `scheme://host[:port]`, allocating nothing.
fn parse_origin(s: &[u8]) -> Result<OriginRef<'_>, OriginError> {
    if s == b"null" {
        return Err(origin_error(OriginErrorKind::Null));
    }
    let Some(colon) = s.iter().position(|&b| b == b':') else {
        return Err(origin_error(OriginErrorKind::Scheme));
    };
    let (scheme, rest) = s.split_at(colon);
    let scheme = if scheme.eq_ignore_ascii_case(b"https") {
        Scheme::Https
    } else if scheme.eq_ignore_ascii_case(b"http") {
        Scheme::Http
    } else {
        return Err(origin_error(OriginErrorKind::Scheme));
    };
    let authority = rest
        .strip_prefix(b"://")
        .ok_or(origin_error(OriginErrorKind::NotAnOrigin))?;
    if authority
        .iter()
        .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\'))
    {
        return Err(origin_error(OriginErrorKind::NotAnOrigin));
    }
    let (host, port) = parse_authority(authority)?;
    Ok(OriginRef {
        scheme,
        host,
        port: port.unwrap_or(scheme.default_port()),
    })
}

/// Parses `host[:port]` (an origin's authority, or a `Host` header).
fn parse_authority(a: &[u8]) -> Result<(Host<&str>, Option<u16>), OriginError> {
    let (host, port) = if let Some(inner) = a.strip_prefix(b"[") {
        let close = inner
            .iter()
            .position(|&b| b == b']')
            .ok_or(origin_error(OriginErrorKind::Host))?;
        let text = std::str::from_utf8(&inner[..close])
            .map_err(|_| origin_error(OriginErrorKind::Host))?;
        let ip: Ipv6Addr = text
            .parse()
            .map_err(|_| origin_error(OriginErrorKind::Host))?;
        let after = &inner[close + 1..];
        let port = match after {
            [] => None,
            [b':', digits @ ..] => Some(digits),
            _ => return Err(origin_error(OriginErrorKind::Host)),
        };
        (Host::V6(ip), port)
    } else {
        let (host, port) = match a.iter().position(|&b| b == b':') {
            Some(i) => (&a[..i], Some(&a[i + 1..])),
            None => (a, None),
        };
        if host.is_empty() {
            return Err(origin_error(OriginErrorKind::NotAnOrigin));
        }
        if host.len() > MAX_HOST_LEN
            || !host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(origin_error(OriginErrorKind::Host));
        }
        // Only ASCII bytes remain: this is valid UTF-8.
        let host = std::str::from_utf8(host).map_err(|_| origin_error(OriginErrorKind::Host))?;
        (Host::Name(host), port)
    };
    let port = match port {
        None => None,
        Some(digits) => Some(parse_port(digits)?),
    };
    Ok((host, port))
}

/// A port: 1 to 5 ASCII digits, at most 65535.
fn parse_port(digits: &[u8]) -> Result<u16, OriginError> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(origin_error(OriginErrorKind::Port));
    }
    let n = digits
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u16::try_from(n).map_err(|_| origin_error(OriginErrorKind::Port))
}

/// Why [`CsrfGuard`] refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CsrfRejectionKind {
    /// `Sec-Fetch-Site: cross-site`: a page of another site sent it.
    CrossSite,
    /// `Sec-Fetch-Site: same-site` (a sibling subdomain) without an
    /// allowed `Origin`.
    SameSite,
    /// `Sec-Fetch-Site` with a value the Fetch Metadata spec does not
    /// define, or twice.
    MalformedFetchSite,
    /// `Origin: null`: an opaque origin (sandboxed frame, `file:` page,
    /// cross-origin redirect), which could be anyone.
    NullOrigin,
    /// An `Origin` that is not `http(s)://host[:port]`, or twice.
    MalformedOrigin,
    /// A well-formed `Origin` that is not an allowed one.
    OriginNotAllowed,
}

/// Why [`CsrfGuard`] refused a request: see [`CsrfRejection::kind`].
/// Names the rule, never a header's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsrfRejection {
    kind: CsrfRejectionKind,
}

impl CsrfRejection {
    /// Which rule refused the request.
    pub fn kind(&self) -> CsrfRejectionKind {
        self.kind
    }
}

impl fmt::Display for CsrfRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            CsrfRejectionKind::CrossSite => "cross-site request refused (Sec-Fetch-Site)",
            CsrfRejectionKind::SameSite => {
                "same-site request refused: expected an allowed Origin (Sec-Fetch-Site)"
            }
            CsrfRejectionKind::MalformedFetchSite => {
                "expected one Sec-Fetch-Site of same-origin, same-site, cross-site or none"
            }
            CsrfRejectionKind::NullOrigin => "request with Origin `null` refused",
            CsrfRejectionKind::MalformedOrigin => {
                "expected one Origin of the form scheme://host[:port]"
            }
            CsrfRejectionKind::OriginNotAllowed => "request from an origin not allowed refused",
        })
    }
}

impl std::error::Error for CsrfRejection {}

fn rejection(kind: CsrfRejectionKind) -> CsrfRejection {
    CsrfRejection { kind }
}

/// A [`CsrfGuard`] that could not be built: it would allow no origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsrfBuildError(());

impl fmt::Display for CsrfBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "expected at least one allowed origin (allow_origin) or same_origin_as_host, got neither",
        )
    }
}

impl std::error::Error for CsrfBuildError {}

/// A header as a request carries it: absent, once, or more than once.
#[derive(Clone, Copy)]
enum Field<'a> {
    Absent,
    One(&'a [u8]),
    Many,
}

impl<'a> Field<'a> {
    fn add(self, value: &'a [u8]) -> Self {
        match self {
            Field::Absent => Field::One(value),
            _ => Field::Many,
        }
    }

    fn of(headers: &'a HeaderMap, name: http::header::HeaderName) -> Self {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => Field::Absent,
            (Some(v), None) => Field::One(v.as_bytes()),
            (Some(_), Some(_)) => Field::Many,
        }
    }
}

/// The CSRF check, framework-agnostic (see the [module docs](self) for
/// the rules). Cheap to clone: the configuration is shared.
#[derive(Clone)]
pub struct CsrfGuard {
    inner: std::sync::Arc<Config>,
}

struct Config {
    allowed: Vec<Origin>,
    host_scheme: Option<Scheme>,
}

impl fmt::Debug for CsrfGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrfGuard")
            .field("allowed", &self.inner.allowed)
            .field("same_origin_as_host", &self.inner.host_scheme)
            .finish()
    }
}

/// Builds a [`CsrfGuard`]: see [`CsrfGuard::builder`].
#[derive(Clone, Debug, Default)]
pub struct CsrfGuardBuilder {
    allowed: Vec<Origin>,
    host_scheme: Option<Scheme>,
}

impl CsrfGuardBuilder {
    /// Allows state-changing requests from pages of `origin`: the
    /// application's public origin (what browsers have in the address
    /// bar), or another origin of the same site. May be called more than
    /// once. Behind a proxy, this is the way to name the origin (see the
    /// [module docs](self#which-origins-are-allowed)).
    pub fn allow_origin(mut self, origin: Origin) -> Self {
        if !self.allowed.contains(&origin) {
            self.allowed.push(origin);
        }
        self
    }

    /// Also allows, for each request, the origin made of `scheme` and the
    /// request's `Host` (the URI's authority for HTTP/2 with
    /// [`CsrfGuard::check_request`]). Off by default.
    ///
    /// # Warning
    ///
    /// Right when browsers reach the server directly under `scheme`.
    /// Behind a proxy that terminates TLS or rewrites `Host`, every
    /// browser's `POST` is refused (the guard fails closed): list the
    /// public origin with [`allow_origin`](Self::allow_origin) instead.
    pub fn same_origin_as_host(mut self, scheme: Scheme) -> Self {
        self.host_scheme = Some(scheme);
        self
    }

    /// The guard.
    ///
    /// # Errors
    ///
    /// [`CsrfBuildError`] when no origin is allowed (neither
    /// [`allow_origin`](Self::allow_origin) nor
    /// [`same_origin_as_host`](Self::same_origin_as_host)): such a guard
    /// would refuse every browser's `POST`.
    pub fn build(self) -> Result<CsrfGuard, CsrfBuildError> {
        if self.allowed.is_empty() && self.host_scheme.is_none() {
            return Err(CsrfBuildError(()));
        }
        Ok(CsrfGuard {
            inner: std::sync::Arc::new(Config {
                allowed: self.allowed,
                host_scheme: self.host_scheme,
            }),
        })
    }
}

/// Whether `method` is safe (RFC 9110 §9.2.1): never judged.
fn is_safe(method: &[u8]) -> bool {
    matches!(method, b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE")
}

impl CsrfGuard {
    /// A builder with no origin allowed yet.
    ///
    /// ```
    /// use sesame::csrf::{CsrfGuard, Origin, Scheme};
    ///
    /// let guard = CsrfGuard::builder()
    ///     .allow_origin(Origin::parse("https://app.example")?)
    ///     .allow_origin(Origin::parse("https://admin.app.example")?)
    ///     .build()?;
    /// let local = CsrfGuard::builder().same_origin_as_host(Scheme::Http).build()?;
    /// assert!(CsrfGuard::builder().build().is_err(), "allows nothing");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> CsrfGuardBuilder {
        CsrfGuardBuilder::default()
    }

    /// Judges a request by its method and headers.
    ///
    /// With [`CsrfGuardBuilder::same_origin_as_host`] the request's own
    /// origin comes from its `Host` header; an HTTP/2 request carries it in
    /// the URI instead, which only [`check_request`](Self::check_request)
    /// sees.
    ///
    /// # Errors
    ///
    /// A [`CsrfRejection`] naming the rule that refused the request.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, Method};
    /// use sesame::csrf::{CsrfGuard, CsrfRejectionKind, Scheme};
    ///
    /// let guard = CsrfGuard::builder().same_origin_as_host(Scheme::Http).build()?;
    /// let mut h = HeaderMap::new();
    /// h.insert("host", HeaderValue::from_static("localhost:3000"));
    /// assert!(guard.check(&Method::POST, &h).is_ok(), "curl: neither header");
    /// h.insert("origin", HeaderValue::from_static("http://localhost:3000"));
    /// assert!(guard.check(&Method::POST, &h).is_ok());
    /// h.insert("origin", HeaderValue::from_static("null"));
    /// let why = guard.check(&Method::DELETE, &h).unwrap_err().kind();
    /// assert_eq!(why, CsrfRejectionKind::NullOrigin);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), CsrfRejection> {
        if is_safe(method.as_str().as_bytes()) {
            return Ok(());
        }
        self.judge(
            Field::of(headers, http::header::ORIGIN),
            Field::of(headers, SEC_FETCH_SITE),
            Field::of(headers, http::header::HOST),
        )
    }

    /// [`check`](Self::check) for a whole request: its `Host` header, or
    /// for HTTP/2 (no `Host`) its URI's authority, names its own origin.
    /// This is what `CsrfLayer` calls.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    pub fn check_request<B>(&self, request: &http::Request<B>) -> Result<(), CsrfRejection> {
        if is_safe(request.method().as_str().as_bytes()) {
            return Ok(());
        }
        let headers = request.headers();
        let host = match Field::of(headers, http::header::HOST) {
            Field::Absent => match request.uri().authority() {
                Some(a) => Field::One(a.as_str().as_bytes()),
                None => Field::Absent,
            },
            host => host,
        };
        self.judge(
            Field::of(headers, http::header::ORIGIN),
            Field::of(headers, SEC_FETCH_SITE),
            host,
        )
    }

    /// [`check`](Self::check) for frameworks with their own types: the
    /// method's name (`"POST"`) and every header of the request as (name,
    /// value) pairs, names in any case. Only `Origin`, `Sec-Fetch-Site`
    /// and `Host` are looked at, and only for state-changing methods.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    ///
    /// ```
    /// use sesame::csrf::{CsrfGuard, CsrfRejectionKind, Origin};
    ///
    /// let guard = CsrfGuard::builder()
    ///     .allow_origin(Origin::parse("https://app.example")?)
    ///     .build()?;
    /// let blog = [("Origin", &b"https://blog.app.example"[..]), ("Sec-Fetch-Site", b"same-site")];
    /// let why = guard.check_fields("POST", blog).unwrap_err().kind();
    /// assert_eq!(why, CsrfRejectionKind::SameSite, "a sibling not allowed");
    /// let ours = [("origin", &b"https://app.example"[..]), ("sec-fetch-site", b"same-origin")];
    /// assert!(guard.check_fields("POST", ours).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_fields<'a, I>(&self, method: &str, headers: I) -> Result<(), CsrfRejection>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        if is_safe(method.as_bytes()) {
            return Ok(());
        }
        let (mut origin, mut site, mut host) = (Field::Absent, Field::Absent, Field::Absent);
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("origin") {
                origin = origin.add(value);
            } else if name.eq_ignore_ascii_case("sec-fetch-site") {
                site = site.add(value);
            } else if name.eq_ignore_ascii_case("host") {
                host = host.add(value);
            }
        }
        self.judge(origin, site, host)
    }

    /// The rules, on a state-changing request's three headers.
    fn judge(
        &self,
        origin: Field<'_>,
        site: Field<'_>,
        host: Field<'_>,
    ) -> Result<(), CsrfRejection> {
        let origin = match origin {
            Field::Absent => None,
            Field::Many => return Err(rejection(CsrfRejectionKind::MalformedOrigin)),
            Field::One(value) => Some(parse_origin(value).map_err(|e| {
                rejection(match e.kind {
                    OriginErrorKind::Null => CsrfRejectionKind::NullOrigin,
                    _ => CsrfRejectionKind::MalformedOrigin,
                })
            })?),
        };
        let listed = |o: &OriginRef<'_>| self.inner.allowed.iter().any(|a| a.matches(o));
        match site {
            Field::Absent => {}
            Field::Many => return Err(rejection(CsrfRejectionKind::MalformedFetchSite)),
            Field::One(b"same-origin" | b"none") => {}
            Field::One(b"cross-site") => return Err(rejection(CsrfRejectionKind::CrossSite)),
            // Another origin of this site: only a listed one. The origin
            // derived from `Host` is the request's own, never `same-site`.
            Field::One(b"same-site") => {
                return match origin {
                    Some(o) if listed(&o) => Ok(()),
                    _ => Err(rejection(CsrfRejectionKind::SameSite)),
                };
            }
            Field::One(_) => return Err(rejection(CsrfRejectionKind::MalformedFetchSite)),
        }
        let Some(origin) = origin else {
            // Neither header, or a same-origin/none fetch without `Origin`:
            // not a cross-origin browser request (see the module docs).
            return Ok(());
        };
        if listed(&origin) || self.is_host_origin(&origin, host) {
            Ok(())
        } else {
            Err(rejection(CsrfRejectionKind::OriginNotAllowed))
        }
    }

    /// Whether `origin` is the request's own by its `Host`, when
    /// [`CsrfGuardBuilder::same_origin_as_host`] is on. A missing,
    /// repeated or malformed `Host` names no origin.
    fn is_host_origin(&self, origin: &OriginRef<'_>, host: Field<'_>) -> bool {
        let (Some(scheme), Field::One(host)) = (self.inner.host_scheme, host) else {
            return false;
        };
        if host.iter().any(|b| matches!(b, b'/' | b'?' | b'#' | b'@')) {
            return false;
        }
        let Ok((host, port)) = parse_authority(host) else {
            return false;
        };
        let port = port.unwrap_or(scheme.default_port());
        origin.scheme == scheme
            && origin.port == port
            && match (origin.host, host) {
                (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
                (Host::V6(a), Host::V6(b)) => a == b,
                _ => false,
            }
    }
}

/// `Sec-Fetch-Site` (W3C Fetch Metadata Request Headers).
const SEC_FETCH_SITE: http::header::HeaderName =
    http::header::HeaderName::from_static("sec-fetch-site");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_strictly() {
        assert_eq!(parse_port(b"0443"), Ok(443));
        assert_eq!(parse_port(b"65535"), Ok(65535));
        for bad in [&b""[..], b"65536", b"99999", b"123456", b"+1", b"1 ", b"-1"] {
            assert_eq!(
                parse_port(bad),
                Err(origin_error(OriginErrorKind::Port)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ipv6_hosts_compare_as_addresses() {
        let a = Origin::parse("http://[::1]:3000").unwrap();
        assert_eq!(a, Origin::parse("http://[0:0::1]:3000").unwrap());
        assert_eq!(a.to_string(), "http://[::1]:3000");
        let r = parse_origin(b"http://[0::1]:3000").unwrap();
        assert!(a.matches(&r));
    }
}
