//! Session cookies, framework-agnostic: read the token from `Cookie`
//! headers, write `Set-Cookie` with secure defaults.
//!
//! # Defaults
//!
//! | attribute | default | why |
//! |---|---|---|
//! | name | `__Host-id` | a generic name that says nothing about the framework (OWASP session management cheat sheet, "Session ID Name Fingerprinting"), with the `__Host-` prefix (RFC 6265bis §4.1.3.2; recommended by OWASP ASVS 5 and NIST SP 800-63B-4): the browser accepts it only from a secure origin, with `Path=/` and no `Domain`, so a sibling subdomain or a plain-HTTP page cannot plant or overwrite it |
//! | `HttpOnly` | on | scripts cannot read the token (OWASP) |
//! | `Secure` | on | the token never travels over plain HTTP (browsers treat `http://localhost` as secure, so local development works) |
//! | `SameSite` | `Lax` | not sent on cross-site subresource requests or cross-site `POST`s, still sent when a user follows a link to the site (RFC 6265bis §8.8) |
//! | `Path` | `/` | required by the `__Host-` prefix |
//! | `Domain` | none | host-only: never sent to other subdomains |
//! | lifetime | browser session (no `Max-Age`) | OWASP prefers non-persistent session cookies; [`CookieConfigBuilder::persistent`] sets `Max-Age` to the session's remaining lifetime instead |
//!
//! A configuration that breaks the rules of its name's prefix, or sets
//! `SameSite=None` without `Secure`, fails at [`CookieConfigBuilder::build`]
//! with a [`CookieConfigError`] naming the option.
//!
//! # Reading
//!
//! A request may carry several `Cookie` headers, several cookies per header
//! and several cookies with the session cookie's name (a sibling domain or
//! a path-specific cookie can shadow ours). [`CookieConfig::find_session`]
//! tries each value with our name in order, at most [`MAX_CANDIDATES`], and
//! the first that validates wins. Malformed, oversized and non-UTF-8 values
//! simply do not validate; nothing here allocates per cookie or panics.
//!
//! ```
//! use sesame::Sessions;
//! use sesame::cookie::CookieConfig;
//!
//! let sessions = Sessions::<u32>::new();
//! let (token, handle) = sessions.create(7)?;
//! let config = CookieConfig::default();
//!
//! // The response that created the session sets the cookie.
//! let set = config.set_cookie(&token, std::time::Duration::ZERO);
//! assert!(set.to_str()?.starts_with("__Host-id="));
//!
//! // A later request presents it, maybe next to junk with the same name.
//! let header = format!("theme=dark; __Host-id=forged; __Host-id={}", token.as_str());
//! let found = config.find_session([header.as_bytes()], |v| sessions.validate(v));
//! let (presented, found_handle) = found.expect("the second value validates");
//! assert_eq!(presented, token);
//! assert_eq!(found_handle, handle);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::time::Duration;

use ::cookie::time::{Duration as CookieDuration, OffsetDateTime};
use http::HeaderValue;
use http::header::{COOKIE, HeaderMap};

use crate::{SessionInfo, SessionToken};

/// The default cookie name: generic, with the `__Host-` prefix.
pub const DEFAULT_COOKIE_NAME: &str = "__Host-id";

/// How many values carrying the session cookie's name one request may have
/// checked against the engine. Browsers send one, or two or three when a
/// parent domain or a narrower path sets its own; more is a bug or an
/// attack, and each check costs a keyed hash and a lookup.
pub const MAX_CANDIDATES: usize = 8;

/// Longest `Max-Age` written: 400 days, the cap of RFC 6265bis §5.5 (longer
/// values are clamped by browsers anyway).
const MAX_AGE_CAP: Duration = Duration::from_secs(400 * 24 * 3600);

/// Longest accepted `Path` or `Domain` value: RFC 6265bis §5.5 ignores
/// attribute values longer than 1024 bytes.
const MAX_ATTRIBUTE_LEN: usize = 1024;

/// The `SameSite` attribute (RFC 6265bis §5.6.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// Sent only with same-site requests, not even when a user follows a
    /// link from another site.
    Strict,
    /// Sent with same-site requests and top-level cross-site navigations
    /// that use a safe method (`GET`). The default.
    Lax,
    /// Sent with every request, cross-site ones included. Requires `Secure`.
    ///
    /// # Warning
    ///
    /// Cross-site requests then carry the session: the application must
    /// defend itself against CSRF on its own.
    None,
}

impl SameSite {
    fn to_cookie(self) -> ::cookie::SameSite {
        match self {
            Self::Strict => ::cookie::SameSite::Strict,
            Self::Lax => ::cookie::SameSite::Lax,
            Self::None => ::cookie::SameSite::None,
        }
    }
}

/// The option a [`CookieConfigError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CookieOption {
    /// [`CookieConfigBuilder::name`]
    Name,
    /// [`CookieConfigBuilder::domain`]
    Domain,
    /// [`CookieConfigBuilder::path`]
    Path,
    /// [`CookieConfigBuilder::secure`]
    Secure,
    /// [`CookieConfigBuilder::same_site`]
    SameSite,
}

impl fmt::Display for CookieOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Name => "name",
            Self::Domain => "domain",
            Self::Path => "path",
            Self::Secure => "secure",
            Self::SameSite => "same_site",
        })
    }
}

/// [`CookieConfigBuilder::build`] refused an option.
///
/// ```
/// use sesame::cookie::{CookieConfig, CookieOption};
///
/// let err = CookieConfig::builder().domain("example.com").build().unwrap_err();
/// assert_eq!(err.option(), CookieOption::Domain);
/// assert_eq!(
///     err.to_string(),
///     "invalid cookie domain: expected no domain for a __Host- cookie"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieConfigError {
    option: CookieOption,
    expected: &'static str,
}

impl CookieConfigError {
    const fn new(option: CookieOption, expected: &'static str) -> Self {
        Self { option, expected }
    }

    /// The option that was refused.
    pub fn option(&self) -> CookieOption {
        self.option
    }
}

impl fmt::Display for CookieConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid cookie {}: expected {}",
            self.option, self.expected
        )
    }
}

impl std::error::Error for CookieConfigError {}

/// How the session cookie is named, scoped and written. Validated; build it
/// with [`CookieConfig::builder`], or take the secure defaults with
/// [`CookieConfig::default`] (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieConfig {
    name: Box<str>,
    domain: Option<Box<str>>,
    path: Box<str>,
    same_site: SameSite,
    secure: bool,
    http_only: bool,
    persistent: bool,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: DEFAULT_COOKIE_NAME.into(),
            domain: None,
            path: "/".into(),
            same_site: SameSite::Lax,
            secure: true,
            http_only: true,
            persistent: false,
        }
    }
}

/// Builds a [`CookieConfig`], starting from the secure defaults.
///
/// ```
/// use sesame::cookie::{CookieConfig, SameSite};
///
/// let config = CookieConfig::builder()
///     .same_site(SameSite::Strict)
///     .persistent(true)
///     .build()?;
/// assert_eq!(config.name(), "__Host-id");
/// assert!(config.is_persistent());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct CookieConfigBuilder {
    config: CookieConfig,
}

impl CookieConfig {
    /// A builder starting from the secure defaults.
    pub fn builder() -> CookieConfigBuilder {
        CookieConfigBuilder {
            config: Self::default(),
        }
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `Domain` attribute, if any.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The `Path` attribute.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `SameSite` attribute.
    pub fn same_site(&self) -> SameSite {
        self.same_site
    }

    /// Whether the cookie is `Secure`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Whether the cookie is `HttpOnly`.
    pub fn is_http_only(&self) -> bool {
        self.http_only
    }

    /// Whether the cookie carries a `Max-Age` (persistent) or lasts for the
    /// browser session.
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// The values of the cookies with our name, in the order the client
    /// sent them, across all the given `Cookie` header values; at most
    /// [`MAX_CANDIDATES`]. Values are raw bytes: nothing is decoded or
    /// allocated, and bytes that are not UTF-8 are passed on as they are
    /// (they never form a valid token).
    ///
    /// ```
    /// let config = sesame::cookie::CookieConfig::default();
    /// let headers: [&[u8]; 2] = [b"a=1; __Host-id=x", b"__Host-id=y;b=2"];
    /// let values: Vec<&[u8]> = config.cookie_values(headers).collect();
    /// assert_eq!(values, [b"x", b"y"]);
    /// ```
    pub fn cookie_values<'h, I>(&self, header_values: I) -> impl Iterator<Item = &'h [u8]>
    where
        I: IntoIterator<Item = &'h [u8]>,
    {
        let name = self.name.as_bytes();
        header_values
            .into_iter()
            .flat_map(|value| value.split(|&b| b == b';'))
            .filter_map(move |pair| {
                let pair = trim_ows(pair);
                let eq = pair.iter().position(|&b| b == b'=')?;
                let (n, v) = (trim_ows(&pair[..eq]), trim_ows(&pair[eq + 1..]));
                (n == name).then_some(v)
            })
            .take(MAX_CANDIDATES)
    }

    /// Finds the session a request presents: tries each value with our name
    /// (see [`CookieConfig::cookie_values`]) with `check`, in order, and
    /// returns the first that passes, parsed, with what `check` returned.
    ///
    /// `check` gets the raw value so that the engine counts malformed
    /// values among its rejected lookups: pass `|v| sessions.validate(v)` or
    /// `|v| sessions.info(v)`.
    pub fn find_session<'h, I, R>(
        &self,
        header_values: I,
        mut check: impl FnMut(&[u8]) -> Option<R>,
    ) -> Option<(SessionToken, R)>
    where
        I: IntoIterator<Item = &'h [u8]>,
    {
        self.cookie_values(header_values).find_map(|value| {
            let found = check(value)?;
            let token = SessionToken::parse_bytes(value).ok()?;
            Some((token, found))
        })
    }

    /// The `Set-Cookie` value that gives the client `token`.
    ///
    /// `max_age` is written as `Max-Age` (whole seconds, at most 400 days)
    /// only when the cookie is persistent; pass the session's remaining
    /// lifetime, [`max_age`]. A browser-session cookie ignores it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame::{SessionToken, cookie::CookieConfig};
    ///
    /// let token = SessionToken::generate();
    /// let value = CookieConfig::default().set_cookie(&token, Duration::from_secs(60));
    /// assert_eq!(
    ///     value.to_str()?,
    ///     format!("__Host-id={}; HttpOnly; SameSite=Lax; Secure; Path=/", token.as_str())
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_cookie(&self, token: &SessionToken, max_age: Duration) -> HeaderValue {
        let mut cookie = self.cookie(token.as_str());
        if self.persistent {
            let secs = max_age.min(MAX_AGE_CAP).as_secs();
            cookie.set_max_age(CookieDuration::seconds(
                i64::try_from(secs).unwrap_or(i64::MAX),
            ));
        }
        header_value(&cookie)
    }

    /// The `Set-Cookie` value that removes the session cookie from the
    /// client: same name and attributes (a browser matches on name, domain
    /// and path, and accepts a `__Host-` cookie only with its attributes),
    /// an empty value, `Max-Age=0` and an `Expires` in the past.
    ///
    /// ```
    /// let value = sesame::cookie::CookieConfig::default().clear_cookie();
    /// assert_eq!(
    ///     value.to_str()?,
    ///     "__Host-id=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0; \
    ///      Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear_cookie(&self) -> HeaderValue {
        let mut cookie = self.cookie("");
        cookie.set_max_age(CookieDuration::ZERO);
        cookie.set_expires(OffsetDateTime::UNIX_EPOCH);
        header_value(&cookie)
    }

    fn cookie<'c>(&'c self, value: &'c str) -> ::cookie::Cookie<'c> {
        let mut cookie = ::cookie::Cookie::new(&*self.name, value);
        cookie.set_http_only(self.http_only);
        cookie.set_same_site(self.same_site.to_cookie());
        cookie.set_secure(self.secure);
        cookie.set_path(&*self.path);
        if let Some(domain) = &self.domain {
            cookie.set_domain(&**domain);
        }
        cookie
    }
}

/// The `Cookie` header values of a request, as raw bytes, for
/// [`CookieConfig::find_session`].
pub fn cookie_headers(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes)
}

/// A session's remaining lifetime as seen at its last use: the `Max-Age`
/// for a persistent cookie. The earlier of the idle and absolute deadlines,
/// counted from the moment [`SessionInfo`] was taken.
pub fn max_age<P>(info: &SessionInfo<P>) -> Duration {
    info.expires
        .duration_since(info.last_seen)
        .unwrap_or(Duration::ZERO)
}

fn header_value(cookie: &::cookie::Cookie<'_>) -> HeaderValue {
    // Every part was validated by the builder (visible ASCII, no `;`) or is
    // base64url, so the conversion cannot fail.
    match HeaderValue::try_from(cookie.to_string()) {
        Ok(v) => v,
        Err(_) => {
            debug_assert!(false, "validated cookie is a valid header value");
            HeaderValue::from_static("")
        }
    }
}

/// Strips optional whitespace (space, tab) at both ends.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

impl CookieConfigBuilder {
    /// The cookie's name. Default `__Host-id`. An RFC 6265 token: visible
    /// ASCII without separators.
    ///
    /// A name starting with `__Host-` (any case) requires `Secure`, `Path=/`
    /// and no `Domain`; one starting with `__Secure-` requires `Secure`.
    ///
    /// # Warning
    ///
    /// Without the `__Host-` prefix, a sibling subdomain or a plain-HTTP
    /// response can plant a cookie of this name on the client (session
    /// fixation, cookie tossing). Keep the prefix unless you must share the
    /// cookie across subdomains.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into().into_boxed_str();
        self
    }

    /// The `Domain` attribute. Default none (host-only cookie).
    ///
    /// # Warning
    ///
    /// A domain sends the cookie to every subdomain of it as well; it is
    /// refused for a `__Host-` cookie.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.config.domain = Some(domain.into().into_boxed_str());
        self
    }

    /// The `Path` attribute. Default `/`, the only value a `__Host-` cookie
    /// may have.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.config.path = path.into().into_boxed_str();
        self
    }

    /// The `SameSite` attribute. Default [`SameSite::Lax`].
    ///
    /// # Warning
    ///
    /// [`SameSite::None`] sends the session with cross-site requests.
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.config.same_site = same_site;
        self
    }

    /// The `Secure` attribute. Default on.
    ///
    /// # Warning
    ///
    /// Off, the token may travel in clear over plain HTTP. Refused for
    /// `__Host-` and `__Secure-` names and for `SameSite=None`.
    pub fn secure(mut self, secure: bool) -> Self {
        self.config.secure = secure;
        self
    }

    /// The `HttpOnly` attribute. Default on.
    ///
    /// # Warning
    ///
    /// Off, any script on the page (an XSS payload included) can read the
    /// token.
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.config.http_only = http_only;
        self
    }

    /// A persistent cookie (`Max-Age` set to the session's remaining
    /// lifetime: the idle timeout, or less near the absolute deadline) or,
    /// by default, a browser-session cookie that the browser drops when it
    /// closes.
    ///
    /// A persistent cookie is written only when it is issued; to keep the
    /// browser's copy alive as long as the session is used, also turn on
    /// the layer's `rolling` option.
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.config.persistent = persistent;
        self
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    ///
    /// [`CookieConfigError`] naming the option: a name that is not a
    /// token; a domain or path with characters outside visible ASCII or
    /// with `;`, or longer than 1024 bytes; a path not starting with `/`;
    /// a `__Host-` name with a domain, a path other than `/` or without
    /// `Secure`; a `__Secure-` name without `Secure`; `SameSite=None`
    /// without `Secure`.
    pub fn build(self) -> Result<CookieConfig, CookieConfigError> {
        use CookieOption as O;
        let c = self.config;
        if c.name.is_empty() || !c.name.bytes().all(is_token_byte) {
            return Err(CookieConfigError::new(
                O::Name,
                "a non-empty token (visible ASCII, no separators)",
            ));
        }
        if let Some(domain) = &c.domain
            && (domain.is_empty()
                || domain.len() > 253
                || !domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
        {
            return Err(CookieConfigError::new(
                O::Domain,
                "a host name (letters, digits, '-' and '.', at most 253 bytes)",
            ));
        }
        if !c.path.starts_with('/')
            || c.path.len() > MAX_ATTRIBUTE_LEN
            || !c.path.bytes().all(|b| b.is_ascii_graphic() && b != b';')
        {
            return Err(CookieConfigError::new(
                O::Path,
                "a path starting with '/' (visible ASCII, no ';', at most 1024 bytes)",
            ));
        }
        if has_prefix(&c.name, "__Host-") {
            if !c.secure {
                return Err(CookieConfigError::new(
                    O::Secure,
                    "secure for a __Host- cookie",
                ));
            }
            if c.domain.is_some() {
                return Err(CookieConfigError::new(
                    O::Domain,
                    "no domain for a __Host- cookie",
                ));
            }
            if &*c.path != "/" {
                return Err(CookieConfigError::new(
                    O::Path,
                    "\"/\" for a __Host- cookie",
                ));
            }
        }
        if has_prefix(&c.name, "__Secure-") && !c.secure {
            return Err(CookieConfigError::new(
                O::Secure,
                "secure for a __Secure- cookie",
            ));
        }
        if c.same_site == SameSite::None && !c.secure {
            return Err(CookieConfigError::new(
                O::SameSite,
                "Lax or Strict when the cookie is not secure",
            ));
        }
        Ok(c)
    }
}

/// Prefixes match case-insensitively, as browsers now check them
/// (RFC 6265bis §5.7, step 21 and 22).
fn has_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// RFC 9110 `tchar`, the characters of a cookie name (RFC 6265 §4.1.1).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'h>(config: &CookieConfig, headers: &[&'h [u8]]) -> Vec<&'h [u8]> {
        config.cookie_values(headers.iter().copied()).collect()
    }

    #[test]
    fn defaults_are_the_secure_ones() {
        let c = CookieConfig::default();
        assert_eq!(c.name(), "__Host-id");
        assert!(c.is_secure() && c.is_http_only() && !c.is_persistent());
        assert_eq!(c.same_site(), SameSite::Lax);
        assert_eq!((c.path(), c.domain()), ("/", None));
        assert_eq!(CookieConfig::builder().build(), Ok(c));
    }

    #[test]
    fn values_across_headers_in_order_with_whitespace() {
        let c = CookieConfig::default();
        let got = values(
            &c,
            &[
                b"a=1;__Host-id=one ; \t__Host-id = two",
                b"",
                b";;;__Host-id=three;=;x",
            ],
        );
        assert_eq!(got, [&b"one"[..], b"two", b"three"]);
    }

    #[test]
    fn names_match_exactly() {
        let c = CookieConfig::default();
        let got = values(&c, &[b"__host-id=a; __Host-idx=b; x__Host-id=c; __Host-id"]);
        assert!(got.is_empty());
    }

    #[test]
    fn candidates_are_capped() {
        let c = CookieConfig::default();
        let header = "__Host-id=x; ".repeat(500);
        assert_eq!(values(&c, &[header.as_bytes()]).len(), MAX_CANDIDATES);
    }

    #[test]
    fn non_utf8_and_oversized_values_never_validate() {
        let c = CookieConfig::default();
        let big = format!("__Host-id={}", "A".repeat(8192));
        let headers: [&[u8]; 3] = [b"__Host-id=\xff\xfe\x80", b"\xc3\x28=1", big.as_bytes()];
        let mut seen = 0;
        let found = c.find_session(headers, |v| {
            seen += 1;
            SessionToken::parse_bytes(v).ok()
        });
        assert!(found.is_none());
        assert_eq!(seen, 2);
    }

    #[test]
    fn first_value_that_validates_wins() {
        let c = CookieConfig::default();
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        let header = format!("__Host-id={}; __Host-id={}", a.as_str(), b.as_str());
        let found = c.find_session([header.as_bytes()], |v| {
            (v == b.as_str().as_bytes()).then_some(2)
        });
        assert_eq!(found, Some((b.clone(), 2)));
        let found = c.find_session([header.as_bytes()], |_| Some(1));
        assert_eq!(found, Some((a, 1)));
    }

    #[test]
    fn persistent_cookie_has_capped_max_age() {
        let c = CookieConfig::builder().persistent(true).build().unwrap();
        let t = SessionToken::generate();
        let v = c.set_cookie(&t, Duration::from_secs(1800));
        assert!(v.to_str().unwrap().ends_with("; Path=/; Max-Age=1800"));
        let v = c.set_cookie(&t, Duration::from_secs(10 * 365 * 24 * 3600));
        assert!(v.to_str().unwrap().ends_with("; Max-Age=34560000"));
    }

    #[test]
    fn custom_attributes_are_written() {
        let c = CookieConfig::builder()
            .name("sid")
            .domain("example.com")
            .path("/app")
            .same_site(SameSite::Strict)
            .build()
            .unwrap();
        let t = SessionToken::generate();
        assert_eq!(
            c.set_cookie(&t, Duration::ZERO).to_str().unwrap(),
            format!(
                "sid={}; HttpOnly; SameSite=Strict; Secure; Path=/app; Domain=example.com",
                t.as_str()
            )
        );
        assert!(c.clear_cookie().to_str().unwrap().starts_with(
            "sid=; HttpOnly; SameSite=Strict; Secure; Path=/app; Domain=example.com; Max-Age=0"
        ));
    }

    #[test]
    fn prefix_rules_fail_at_build_naming_the_option() {
        let err = |b: CookieConfigBuilder| b.build().unwrap_err().option();
        let b = CookieConfig::builder;
        assert_eq!(err(b().secure(false)), CookieOption::Secure);
        assert_eq!(err(b().path("/app")), CookieOption::Path);
        assert_eq!(err(b().domain("example.com")), CookieOption::Domain);
        assert_eq!(
            err(b().name("__HOST-x").secure(false)),
            CookieOption::Secure
        );
        assert_eq!(
            err(b().name("__Secure-id").secure(false)),
            CookieOption::Secure
        );
        assert!(
            b().name("__Secure-id")
                .domain("example.com")
                .path("/a")
                .build()
                .is_ok()
        );
        assert_eq!(
            err(b().name("id").secure(false).same_site(SameSite::None)),
            CookieOption::SameSite
        );
        assert!(b().name("id").secure(false).build().is_ok());
    }

    proptest::proptest! {
        /// Any bytes at all: no panic, and every value handed out is a
        /// trimmed piece of one pair, without `;`.
        #[test]
        fn arbitrary_headers_never_panic(headers in proptest::collection::vec(
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), 0..8,
        )) {
            let c = CookieConfig::default();
            for v in c.cookie_values(headers.iter().map(Vec::as_slice)) {
                proptest::prop_assert!(!v.contains(&b';'));
                proptest::prop_assert!(v.first() != Some(&b' ') && v.last() != Some(&b' '));
            }
            let found = c.find_session(headers.iter().map(Vec::as_slice), |v| {
                SessionToken::parse_bytes(v).ok()
            });
            if let Some((token, parsed)) = found {
                proptest::prop_assert_eq!(token, parsed);
            }
        }

        /// A valid token among arbitrary other cookies is found.
        #[test]
        fn token_is_found_among_junk(
            before in "[a-z]{1,8}=[ -:<-~]{0,20}(; [a-z]{1,8}=[ -:<-~]{0,20}){0,5}",
            after in "[a-z]{1,8}=[ -:<-~]{0,20}",
        ) {
            let c = CookieConfig::default();
            let token = SessionToken::generate();
            let header = format!("{before}; __Host-id={};{after}", token.as_str());
            let found = c.find_session([header.as_bytes()], |v| SessionToken::parse_bytes(v).ok());
            proptest::prop_assert_eq!(found.map(|(t, _)| t), Some(token));
        }
    }

    #[test]
    fn bad_syntax_fails_at_build_naming_the_option() {
        let err = |b: CookieConfigBuilder| b.build().unwrap_err().option();
        let b = || CookieConfig::builder().name("id");
        for name in ["", "a b", "a;b", "a=b", "é", "a\"b"] {
            assert_eq!(err(b().name(name)), CookieOption::Name, "{name:?}");
        }
        for domain in ["", "a b", "a;b", "ex\u{e9}.com"] {
            assert_eq!(err(b().domain(domain)), CookieOption::Domain, "{domain:?}");
        }
        for path in ["", "app", "/a;b", "/a b", "/\u{e9}"] {
            assert_eq!(err(b().path(path)), CookieOption::Path, "{path:?}");
        }
        assert_eq!(err(b().path("/".repeat(1025))), CookieOption::Path);
    }
}
