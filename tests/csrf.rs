//! The CSRF guard (`sesame::csrf`): the check on each header combination
//! browsers send, then the tower layer on a real axum server over TCP.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::routing::post;
use reqwest::StatusCode;
use sesame::csrf::{CsrfGuard, CsrfLayer, CsrfRejectionKind, Origin, OriginErrorKind, Scheme};
use support::serve;

use CsrfRejectionKind::*;

/// A request's headers, as (name, value) pairs.
type Pairs<'a> = &'a [(&'a str, &'a [u8])];

const APP: &str = "https://app.example";
const ADMIN: &str = "https://admin.app.example";

/// The application at `https://app.example`, with its admin subdomain
/// allowed to post to it.
fn guard() -> CsrfGuard {
    CsrfGuard::builder()
        .allow_origin(Origin::parse(APP).unwrap())
        .allow_origin(Origin::parse(ADMIN).unwrap())
        .build()
        .unwrap()
}

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    h
}

fn check(
    guard: &CsrfGuard,
    method: Method,
    pairs: &[(&str, &[u8])],
) -> Result<(), CsrfRejectionKind> {
    let by_map = guard.check(&method, &headers(pairs)).map_err(|r| r.kind());
    // The framework-agnostic entry point agrees, whatever the names' case.
    let upper: Vec<(String, &[u8])> = pairs.iter().map(|(n, v)| (n.to_uppercase(), *v)).collect();
    let by_fields = guard
        .check_fields(method.as_str(), upper.iter().map(|(n, v)| (n.as_str(), *v)))
        .map_err(|r| r.kind());
    assert_eq!(by_map, by_fields, "{method} {pairs:?}");
    by_map
}

#[test]
fn what_browsers_send_for_a_same_origin_post_passes() {
    let g = guard();
    let cases: [&[(&str, &[u8])]; 5] = [
        &[
            ("origin", b"https://app.example"),
            ("sec-fetch-site", b"same-origin"),
        ],
        // Scheme and host in any case, the default port written out.
        &[
            ("origin", b"HTTPS://App.Example:443"),
            ("sec-fetch-site", b"same-origin"),
        ],
        // Older browsers: `Origin` only.
        &[("origin", b"https://app.example")],
        // Fetch Metadata without `Origin` (a same-origin navigation).
        &[("sec-fetch-site", b"same-origin")],
        // The user typed the address or used a bookmark.
        &[("sec-fetch-site", b"none")],
    ];
    for pairs in cases {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(
                check(&g, method.clone(), pairs),
                Ok(()),
                "{method} {pairs:?}"
            );
        }
    }
}

#[test]
fn a_cross_site_post_is_refused() {
    let g = guard();
    let cases: [(Pairs, CsrfRejectionKind); 5] = [
        (
            &[
                ("origin", b"https://evil.example"),
                ("sec-fetch-site", b"cross-site"),
            ],
            CrossSite,
        ),
        (&[("sec-fetch-site", b"cross-site")], CrossSite),
        // Even from an allowed origin: a cross-site POST carries no
        // `SameSite=Lax` cookie, and browsers never send this pair.
        (
            &[
                ("origin", b"https://app.example"),
                ("sec-fetch-site", b"cross-site"),
            ],
            CrossSite,
        ),
        // An old browser: `Origin` only.
        (&[("origin", b"https://evil.example")], OriginNotAllowed),
        // A host that merely starts with ours.
        (
            &[("origin", b"https://app.example.evil.example")],
            OriginNotAllowed,
        ),
    ];
    for (pairs, why) in cases {
        assert_eq!(check(&g, Method::POST, pairs), Err(why), "{pairs:?}");
    }
}

#[test]
fn a_same_site_subdomain_passes_only_when_allowed() {
    let g = guard();
    let admin: &[(&str, &[u8])] = &[
        ("origin", ADMIN.as_bytes()),
        ("sec-fetch-site", b"same-site"),
    ];
    assert_eq!(check(&g, Method::POST, admin), Ok(()), "allow-listed");
    let blog: &[(&str, &[u8])] = &[
        ("origin", b"https://blog.app.example"),
        ("sec-fetch-site", b"same-site"),
    ];
    assert_eq!(check(&g, Method::POST, blog), Err(SameSite));
    let hidden: &[(&str, &[u8])] = &[("sec-fetch-site", b"same-site")];
    assert_eq!(
        check(&g, Method::POST, hidden),
        Err(SameSite),
        "no Origin to allow"
    );
    // The same subdomain, once only our own origin is allowed.
    let own = CsrfGuard::builder()
        .allow_origin(Origin::parse(APP).unwrap())
        .build()
        .unwrap();
    assert_eq!(check(&own, Method::POST, admin), Err(SameSite));
}

#[test]
fn an_allow_listed_second_origin_passes() {
    let g = guard();
    let pairs: &[(&str, &[u8])] = &[("origin", ADMIN.as_bytes())];
    assert_eq!(check(&g, Method::DELETE, pairs), Ok(()));
}

#[test]
fn a_null_origin_is_refused_for_state_changes() {
    let g = guard();
    for site in [
        None,
        Some(&b"same-origin"[..]),
        Some(b"cross-site"),
        Some(b"same-site"),
    ] {
        let mut pairs: Vec<(&str, &[u8])> = vec![("origin", b"null")];
        if let Some(s) = site {
            pairs.push(("sec-fetch-site", s));
        }
        let why = check(&g, Method::POST, &pairs).unwrap_err();
        assert!(
            matches!(why, NullOrigin | CrossSite | SameSite),
            "{pairs:?}: {why:?}"
        );
    }
    assert_eq!(
        check(&g, Method::POST, &[("origin", b"null")]),
        Err(NullOrigin)
    );
    assert_eq!(
        check(&g, Method::GET, &[("origin", b"null")]),
        Ok(()),
        "safe method"
    );
}

#[test]
fn safe_methods_pass_whatever_they_carry() {
    let g = guard();
    let hostile: &[(&str, &[u8])] = &[
        ("origin", b"https://evil.example"),
        ("sec-fetch-site", b"cross-site"),
    ];
    for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
        assert_eq!(check(&g, method.clone(), hostile), Ok(()), "{method}");
        // A same-origin GET sends no `Origin`.
        assert_eq!(
            check(&g, method, &[("sec-fetch-site", b"same-origin")]),
            Ok(())
        );
    }
    let custom = Method::from_bytes(b"PURGE").unwrap();
    assert_eq!(
        check(&g, custom, hostile),
        Err(CrossSite),
        "any other method is judged"
    );
}

/// Curl, a mobile app, another server, or a same-origin form of a browser
/// from before `Origin` and Fetch Metadata: not a CSRF vector (Go's
/// `CrossOriginProtection` allows it too).
#[test]
fn a_post_with_neither_header_passes() {
    assert_eq!(check(&guard(), Method::POST, &[]), Ok(()));
    assert_eq!(
        check(&guard(), Method::POST, &[("host", b"evil.example")]),
        Ok(())
    );
}

#[test]
fn an_origin_differing_only_by_port_or_scheme_is_refused() {
    let g = guard();
    for origin in [
        &b"http://app.example"[..],
        b"https://app.example:8443",
        b"http://app.example:443",
        b"https://app.example:80",
        b"wss://app.example",
    ] {
        let why = check(
            &g,
            Method::POST,
            &[("origin", origin), ("sec-fetch-site", b"same-origin")],
        );
        assert!(
            matches!(why, Err(OriginNotAllowed | MalformedOrigin)),
            "{:?}: {why:?}",
            String::from_utf8_lossy(origin)
        );
    }
}

/// Whatever bytes arrive, a typed rejection, never a panic.
#[test]
fn malformed_values_are_typed_rejections() {
    let g = guard();
    let origins: [&[u8]; 19] = [
        b"",
        b" ",
        b"app.example",
        b"https://",
        b"https:/app.example",
        b"https://app.example/",
        b"https://app.example/x",
        b"https://app.example?x",
        b"https://app.example#x",
        b"https://u@app.example",
        b"https://app.example:",
        b"https://app.example:99999",
        b"https://app.example:44a",
        b"https://[::1",
        b"https://[::g]",
        b"https://[::1]x",
        b"https://app\xc3\xa9.example",
        b"https://app .example",
        b"https://\xff\xfe",
    ];
    for origin in origins {
        assert_eq!(
            check(&g, Method::POST, &[("origin", origin)]),
            Err(MalformedOrigin),
            "{:?}",
            String::from_utf8_lossy(origin)
        );
    }
    let long = format!("https://{}.example", "a".repeat(300));
    assert_eq!(
        check(&g, Method::POST, &[("origin", long.as_bytes())]),
        Err(MalformedOrigin)
    );
    // Twice, even twice the same.
    let twice: &[(&str, &[u8])] = &[("origin", APP.as_bytes()), ("origin", APP.as_bytes())];
    assert_eq!(check(&g, Method::POST, twice), Err(MalformedOrigin));
    for site in [
        &b"Same-Origin"[..],
        b"same-origin ",
        b"",
        b"cross-site, same-origin",
        b"\xff",
    ] {
        assert_eq!(
            check(&g, Method::POST, &[("sec-fetch-site", site)]),
            Err(MalformedFetchSite),
            "{site:?}"
        );
    }
    let twice: &[(&str, &[u8])] = &[
        ("sec-fetch-site", b"same-origin"),
        ("sec-fetch-site", b"same-origin"),
    ];
    assert_eq!(check(&g, Method::POST, twice), Err(MalformedFetchSite));
}

#[test]
fn origins_parse_strictly_with_the_reason() {
    for good in [
        "http://a.example",
        "https://a.example:8443",
        "https://[::1]:3000",
        "http://127.0.0.1:3000",
    ] {
        assert!(Origin::parse(good).is_ok(), "{good}");
    }
    let bad = [
        ("null", OriginErrorKind::Null),
        ("a.example", OriginErrorKind::Scheme),
        ("ftp://a.example", OriginErrorKind::Scheme),
        ("//a.example", OriginErrorKind::Scheme),
        ("https://", OriginErrorKind::NotAnOrigin),
        ("https://a.example/", OriginErrorKind::NotAnOrigin),
        ("https://u@a.example", OriginErrorKind::NotAnOrigin),
        ("https://a.example:", OriginErrorKind::Port),
        ("https://a.example:65536", OriginErrorKind::Port),
        ("https://a_b!.example", OriginErrorKind::Host),
    ];
    for (s, kind) in bad {
        let err = Origin::parse(s).unwrap_err();
        assert_eq!(err.kind(), kind, "{s:?}");
        assert!(
            s == "null" || !err.to_string().contains(s),
            "errors never echo the value"
        );
    }
}

/// Without a configured origin, the request's `Host` and a fixed scheme
/// name the application's own origin.
#[test]
fn same_origin_as_host_compares_scheme_host_and_port() {
    let g = CsrfGuard::builder()
        .same_origin_as_host(Scheme::Http)
        .build()
        .unwrap();
    let post =
        |host: &[u8], origin: &[u8]| check(&g, Method::POST, &[("host", host), ("origin", origin)]);
    assert_eq!(post(b"app.example", b"http://app.example"), Ok(()));
    assert_eq!(post(b"app.example", b"http://app.example:80"), Ok(()));
    assert_eq!(
        post(b"app.example:8080", b"http://APP.example:8080"),
        Ok(())
    );
    assert_eq!(post(b"[::1]:3000", b"http://[0::1]:3000"), Ok(()));
    assert_eq!(
        post(b"app.example", b"https://app.example"),
        Err(OriginNotAllowed)
    );
    assert_eq!(
        post(b"app.example:8080", b"http://app.example"),
        Err(OriginNotAllowed)
    );
    assert_eq!(
        post(b"app.example", b"http://other.example"),
        Err(OriginNotAllowed)
    );
    // A `Host` that names no origin allows none.
    assert_eq!(
        post(b"app.example/x", b"http://app.example"),
        Err(OriginNotAllowed)
    );
    assert_eq!(post(b"", b"http://app.example"), Err(OriginNotAllowed));
    assert_eq!(
        check(&g, Method::POST, &[("origin", b"http://app.example")]),
        Err(OriginNotAllowed)
    );
    assert!(
        CsrfGuard::builder().build().is_err(),
        "a guard that allows nothing"
    );
}

/// The layer on a real server: refused requests get an empty `403` and
/// never reach the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_refuses_over_tcp_with_an_empty_403() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let handler = move || {
        let counted = Arc::clone(&counted);
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            "done"
        }
    };
    let router = Router::new()
        .route("/act", post(handler.clone()).get(handler))
        .layer(CsrfLayer::new(guard()));
    let http = serve(router).await;
    let send = |method: reqwest::Method, origin: Option<&str>, site: Option<&str>| {
        let mut rb = http.request(method, "/act", None);
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        if let Some(s) = site {
            rb = rb.header("sec-fetch-site", s);
        }
        let http = http.clone();
        async move { http.send(rb).await }
    };
    use reqwest::Method as M;
    let passing = [
        (M::POST, Some(APP), Some("same-origin")),
        (M::POST, Some(ADMIN), Some("same-site")),
        (M::POST, None, None),
        (M::GET, Some("https://evil.example"), Some("cross-site")),
        (M::GET, None, Some("same-origin")),
    ];
    let n = passing.len();
    for (method, origin, site) in passing {
        let r = send(method.clone(), origin, site).await;
        assert_eq!(r.status, StatusCode::OK, "{method} {origin:?} {site:?}");
        assert_eq!(r.body, "done");
    }
    assert_eq!(calls.load(Ordering::SeqCst), n);
    let refused = [
        (M::POST, Some("https://evil.example"), Some("cross-site")),
        (M::POST, Some("https://blog.app.example"), Some("same-site")),
        (M::POST, Some("null"), None),
        (M::DELETE, Some("http://app.example"), None),
        (M::PUT, Some("https://app.example:8443"), None),
        (M::PATCH, Some("not an origin"), None),
    ];
    for (method, origin, site) in refused {
        let r = send(method.clone(), origin, site).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{method} {origin:?} {site:?}"
        );
        assert_eq!(r.body, "", "nothing about why");
        assert!(r.set_cookies().is_empty());
    }
    assert_eq!(calls.load(Ordering::SeqCst), n, "the handler never ran");
}

/// A `Host`-derived origin over TCP: the client's own `Host` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_derives_the_origin_from_host_over_tcp() {
    let guard = CsrfGuard::builder()
        .same_origin_as_host(Scheme::Http)
        .build()
        .unwrap();
    let router = Router::new()
        .route("/act", post(|| async { "done" }))
        .layer(CsrfLayer::new(guard));
    let http = serve(router).await;
    let url = http
        .request(reqwest::Method::GET, "/", None)
        .build()
        .unwrap();
    let authority = format!(
        "{}:{}",
        url.url().host_str().unwrap(),
        url.url().port().unwrap()
    );
    for (origin, status) in [
        (format!("http://{authority}"), StatusCode::OK),
        (format!("https://{authority}"), StatusCode::FORBIDDEN),
        ("http://localhost:1".to_owned(), StatusCode::FORBIDDEN),
    ] {
        let rb = http
            .request(reqwest::Method::POST, "/act", None)
            .header("origin", &origin);
        assert_eq!(http.send(rb).await.status, status, "{origin}");
    }
}

proptest::proptest! {
    /// Any bytes in the three headers: a typed answer, never a panic; an
    /// `Origin` the guard accepts is one that parses and is allowed.
    #[test]
    fn any_header_bytes_get_a_typed_answer(
        origin in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..64)),
        site in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..16)),
        host in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..32)),
    ) {
        let g = CsrfGuard::builder()
            .allow_origin(Origin::parse(APP).unwrap())
            .same_origin_as_host(Scheme::Http)
            .build()
            .unwrap();
        let mut pairs: Vec<(&str, &[u8])> = Vec::new();
        if let Some(o) = &origin { pairs.push(("origin", o)); }
        if let Some(s) = &site { pairs.push(("sec-fetch-site", s)); }
        if let Some(h) = &host { pairs.push(("host", h)); }
        let answer = g.check_fields("POST", pairs.iter().copied());
        if answer.is_ok() {
            if let Some(o) = &origin {
                let parsed = std::str::from_utf8(o).ok().and_then(|s| Origin::parse(s).ok());
                proptest::prop_assert!(parsed.is_some(), "accepted an unparsable Origin {o:?}");
            }
        }
        if let Some(o) = origin.as_deref().and_then(|o| std::str::from_utf8(o).ok()) {
            if let Ok(parsed) = Origin::parse(o) {
                proptest::prop_assert_eq!(Origin::parse(&parsed.to_string()), Ok(parsed));
            }
        }
    }

    /// Any `Authorization` value: a token or a typed error, never a panic.
    #[test]
    fn any_authorization_bytes_get_a_typed_answer(value in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
        if let Ok(token) = sesame::bearer::parse_authorization(&value) {
            proptest::prop_assert!(value.len() == 7 + 43);
            proptest::prop_assert!(value[..7].eq_ignore_ascii_case(b"bearer "));
            proptest::prop_assert_eq!(token.as_str().as_bytes(), &value[7..]);
        }
    }
}
