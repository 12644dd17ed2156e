//! Session tokens in `Authorization: Bearer <token>` (RFC 6750 §2.1), for
//! API and mobile clients, framework-agnostic.
//!
//! ```
//! use http::{HeaderMap, HeaderValue};
//! use sesame::bearer::{BearerErrorKind, bearer_token};
//! use sesame::Sessions;
//!
//! let sessions = Sessions::<u32>::new();
//! let (token, _) = sessions.create(7)?;
//! let mut headers = HeaderMap::new();
//! let value = format!("Bearer {}", token.as_str());
//! headers.insert("authorization", HeaderValue::from_str(&value)?);
//! let presented = bearer_token(&headers)?.expect("a bearer header");
//! assert_eq!(sessions.get(&presented), Some(7));
//!
//! headers.insert("authorization", HeaderValue::from_static("Basic YWxpY2U6cHc="));
//! assert_eq!(bearer_token(&headers).unwrap_err().kind(), BearerErrorKind::Scheme);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Parsing
//!
//! Strict, as for cookies: the scheme `Bearer` in any case (RFC 9110
//! §11.1: auth schemes are case-insensitive), exactly one space, then one
//! sesame token (43 base64url characters) and nothing else. Anything else
//! (another scheme, no token, two spaces, a second word, a token of
//! another length or alphabet, non-ASCII bytes, two `Authorization`
//! headers) is a [`BearerError`] saying which rule failed, never the value.
//! Nothing allocates or panics.
//!
//! # Why a bearer request needs no CSRF guard
//!
//! A browser attaches cookies to requests on its own, including to a
//! request a page of another site made it send: that is what cross-site
//! request forgery abuses, and what [`crate::csrf`] guards against. It
//! never attaches an `Authorization` header on its own: a page must set
//! it in script, and a cross-origin script that does so gets a CORS
//! preflight the server must approve. A request authenticated only by a
//! bearer token is therefore no CSRF vector (OWASP CSRF cheat sheet); the
//! routes that read the token from the header alone can do without the
//! guard. The token must then be kept from other scripts (the cookie's
//! `HttpOnly` has no equivalent): that is the client's care.

use std::fmt;

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::SessionToken;

/// Where a layer reads the session token from.
///
/// | source | the request's token | a token the request issues (creation, login, rotation) |
/// |---|---|---|
/// | `Cookie` (default) | the session cookie | `Set-Cookie` |
/// | `Bearer` | `Authorization: Bearer` | handed to the handler, for the response's body; never a cookie |
/// | `CookieOrBearer` | the header when the request has an `Authorization` header, else the cookie | as the source used |
///
/// With `CookieOrBearer` a request that carries `Authorization` is judged
/// by it alone, even when it is malformed or names no live session: the
/// cookie is not looked at. An explicit header is the client's choice, the
/// cookie is whatever the browser holds; falling back to it would turn a
/// request the client meant to authenticate with its token into one
/// authenticated by ambient credentials (the very thing CSRF abuses), and
/// hide from an API client that its token is dead. A request with no
/// `Authorization` header is a cookie request: a browser's first visit,
/// or an API client's login on such a route, which then gets a cookie. An
/// API client should log in on a route under a `Bearer` layer (one store
/// can serve several layers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// The session cookie only (browsers).
    #[default]
    Cookie,
    /// `Authorization: Bearer <token>` only (API and mobile clients): no
    /// cookie is ever read or written.
    Bearer,
    /// The header when the request has one, else the cookie.
    CookieOrBearer,
}

/// Which rule a refused `Authorization` header broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BearerErrorKind {
    /// A scheme other than `Bearer` (`Basic`, `Digest`, …).
    Scheme,
    /// Not `Bearer`, one space and one word: no token, two spaces, a
    /// second word, a tab.
    Syntax,
    /// The word is not a sesame token: wrong length or alphabet.
    Token,
    /// More than one `Authorization` header.
    Repeated,
}

/// An `Authorization` header that is not `Bearer <token>` (see
/// [`bearer_token`]). Names the rule, never the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BearerError {
    kind: BearerErrorKind,
}

impl BearerError {
    /// Which rule the header broke.
    pub fn kind(&self) -> BearerErrorKind {
        self.kind
    }
}

impl fmt::Display for BearerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            BearerErrorKind::Scheme => "expected the Bearer scheme, got another",
            BearerErrorKind::Syntax => "expected `Bearer` then one space and one token",
            BearerErrorKind::Token => "expected a 43-character base64url session token",
            BearerErrorKind::Repeated => "expected one Authorization header, got several",
        })
    }
}

impl std::error::Error for BearerError {}

fn error(kind: BearerErrorKind) -> BearerError {
    BearerError { kind }
}

/// The session token of a request's `Authorization: Bearer` header;
/// `Ok(None)` without an `Authorization` header.
///
/// # Errors
///
/// A [`BearerError`] when there is an `Authorization` header that is not
/// exactly one `Bearer <token>` (see the [module docs](self#parsing)).
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<SessionToken>, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => parse_authorization(value.as_bytes()).map(Some),
        (Some(_), Some(_)) => Err(error(BearerErrorKind::Repeated)),
    }
}

/// The session token of one `Authorization` header's value, for
/// frameworks with their own header types.
///
/// # Errors
///
/// A [`BearerError`] when `value` is not `Bearer <token>`.
///
/// ```
/// use sesame::bearer::{BearerErrorKind, parse_authorization};
///
/// let token = sesame::SessionToken::generate();
/// let value = format!("bEaReR {}", token.as_str());
/// assert_eq!(parse_authorization(value.as_bytes())?, token);
/// let two_spaces = format!("Bearer  {}", token.as_str());
/// let err = parse_authorization(two_spaces.as_bytes()).unwrap_err();
/// assert_eq!(err.kind(), BearerErrorKind::Syntax);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_authorization(value: &[u8]) -> Result<SessionToken, BearerError> {
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], Some(&value[i + 1..])),
        None => (value, None),
    };
    if !scheme.eq_ignore_ascii_case(b"Bearer") {
        return Err(error(BearerErrorKind::Scheme));
    }
    let token = match rest {
        Some(t) if !t.is_empty() && !t.iter().any(|b| b.is_ascii_whitespace()) => t,
        _ => return Err(error(BearerErrorKind::Syntax)),
    };
    SessionToken::parse_bytes(token).map_err(|_| error(BearerErrorKind::Token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_malformed_shape_is_a_typed_error() {
        let t = SessionToken::generate();
        let t = t.as_str();
        let cases: [(String, BearerErrorKind); 10] = [
            ("Bearer".into(), BearerErrorKind::Syntax),
            ("Bearer ".into(), BearerErrorKind::Syntax),
            (format!("Bearer  {t}"), BearerErrorKind::Syntax),
            (format!("Bearer {t} x"), BearerErrorKind::Syntax),
            (format!("Bearer\t{t}"), BearerErrorKind::Scheme),
            (format!("Basic {t}"), BearerErrorKind::Scheme),
            (format!("Bearer {t}A"), BearerErrorKind::Token),
            (format!("Bearer {}", &t[1..]), BearerErrorKind::Token),
            ("Bearer é".into(), BearerErrorKind::Token),
            (String::new(), BearerErrorKind::Scheme),
        ];
        for (value, kind) in cases {
            let err = parse_authorization(value.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), kind, "{value:?}");
        }
    }
}
