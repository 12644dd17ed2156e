//! Session tokens in `Authorization: Bearer` (`TokenSource`), through a
//! real axum server over TCP: validation, strict parsing, no cookie ever
//! in bearer mode, login handing the rotated token to the body, and the
//! precedence of `CookieOrBearer`.

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, HeaderValue};
use reqwest::{Method, StatusCode};
use sesame::axum::SessionRouterExt as _;
use sesame::tower::{Session, SessionLayer, TokenSource};
use sesame::{ManualClock, Sessions};
use support::{Http, NAME, Reply, serve};

type Engine = Sessions<u32, String>;

/// The issued token for the body, or `-` when the request issued none.
fn issued(session: &Session<u32>) -> String {
    session
        .token_for_response()
        .map(|t| t.as_str().to_owned())
        .unwrap_or_else(|| "-".to_owned())
}

async fn me(session: Session<u32>) -> Result<String, sesame::Error> {
    let data = session.get().await?;
    let who = session.principal().await?;
    Ok(match data {
        Some(n) => format!("{n} {}", who.as_deref().unwrap_or("anonymous")),
        None => "none".to_owned(),
    })
}

async fn start(session: Session<u32>) -> Result<String, sesame::Error> {
    session.update(|n| *n += 1).await?;
    Ok(issued(&session))
}

async fn login(session: Session<u32>) -> Result<String, sesame::Error> {
    session.login("alice".to_owned()).await?;
    Ok(issued(&session))
}

async fn rotate(session: Session<u32>) -> Result<String, sesame::Error> {
    session.rotate().await?;
    Ok(issued(&session))
}

async fn logout(session: Session<u32>) -> Result<String, sesame::Error> {
    Ok(session.logout().await?.to_string())
}

fn app(sessions: &Engine, layer: SessionLayer<u32, String>) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/start", post(start))
        .route("/login", post(login))
        .route("/rotate", post(rotate))
        .route("/logout", post(logout))
        .session_layer(layer)
        .with_state(sessions.clone())
}

async fn server(source: TokenSource) -> (Http, Engine) {
    let sessions = Engine::new();
    let layer = SessionLayer::new(sessions.clone()).token_source(source);
    (serve(app(&sessions, layer)).await, sessions)
}

async fn send(
    http: &Http,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    cookie: Option<&str>,
) -> Reply {
    let mut rb = http.request(method, path, None);
    if let Some(b) = bearer {
        rb = rb.header(AUTHORIZATION, format!("Bearer {b}"));
    }
    if let Some(c) = cookie {
        rb = rb.header(COOKIE, format!("{NAME}={c}"));
    }
    http.send(rb).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_names_its_session() {
    let (http, sessions) = server(TokenSource::Bearer).await;
    let (token, _) = sessions.create(41).unwrap();
    let r = send(&http, Method::GET, "/me", Some(token.as_str()), None).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "41 anonymous")
    );
    assert!(r.set_cookies().is_empty());
    assert_eq!(
        r.headers[CACHE_CONTROL], "no-store",
        "a page built from the session"
    );
    // An unknown token of the right shape: no session, counted.
    let rejected = sessions.stats().rejected;
    let unknown = sesame::SessionToken::generate();
    let r = send(&http, Method::GET, "/me", Some(unknown.as_str()), None).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "none"));
    assert_eq!(sessions.stats().rejected, rejected + 1);
}

/// Bearer mode never writes a cookie (nor reads one): not on creation,
/// login, rotation or logout, not for a request that also carries a
/// valid session cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_mode_never_sets_a_cookie() {
    let (http, sessions) = server(TokenSource::Bearer).await;
    let mut replies = Vec::new();
    let r = send(&http, Method::POST, "/start", None, None).await;
    let anon = r.body.clone();
    assert_eq!(
        anon.len(),
        43,
        "the created session's token, in the body: {r:?}"
    );
    assert_eq!(r.headers[CACHE_CONTROL], "no-store", "a body with a token");
    replies.push(r);
    replies.push(send(&http, Method::POST, "/start", Some(&anon), None).await);
    assert_eq!(replies[1].body, "-", "an update issues no token");
    let r = send(&http, Method::POST, "/login", Some(&anon), None).await;
    let alice = r.body.clone();
    replies.push(r);
    let r = send(&http, Method::POST, "/rotate", Some(&alice), None).await;
    let rotated = r.body.clone();
    replies.push(r);
    // A valid cookie is not a bearer token: ignored.
    let (cookie_token, _) = sessions.create(5).unwrap();
    let r = send(&http, Method::GET, "/me", None, Some(cookie_token.as_str())).await;
    assert_eq!(r.body, "none", "the cookie is not read in bearer mode");
    replies.push(r);
    replies.push(
        send(
            &http,
            Method::POST,
            "/logout",
            Some(&rotated),
            Some(cookie_token.as_str()),
        )
        .await,
    );
    assert_eq!(replies.last().unwrap().body, "true");
    replies.push(send(&http, Method::POST, "/logout", Some(&rotated), None).await);
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(
            r.set_cookies().is_empty(),
            "no cookie in bearer mode: {r:?}"
        );
    }
    assert_eq!(sessions.len(), 1, "only the cookie's session is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_headers_are_no_session_and_no_500() {
    let (http, sessions) = server(TokenSource::Bearer).await;
    let (token, _) = sessions.create(1).unwrap();
    let t = token.as_str();
    let values: Vec<Vec<u8>> = vec![
        b"Bearer".to_vec(),
        b"Bearer ".to_vec(),
        format!("Bearer  {t}").into_bytes(),
        format!("Bearer {t} x").into_bytes(),
        format!("Bearer {t}A").into_bytes(),
        format!("Bearer {}", &t[1..]).into_bytes(),
        format!("Basic {t}").into_bytes(),
        b"Basic YWxpY2U6d29uZGVybGFuZA==".to_vec(),
        format!("Bearer {}é", &t[2..]).into_bytes(),
        b"Bearer \xff\xfe".to_vec(),
        format!("Bearer {}=", &t[..42]).into_bytes(),
    ];
    for value in &values {
        let rejected = sessions.stats().rejected;
        for path in ["/me", "/rotate"] {
            let method = if path == "/me" {
                Method::GET
            } else {
                Method::POST
            };
            let rb = http
                .request(method, path, None)
                .header(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
            let r = http.send(rb).await;
            let shown = String::from_utf8_lossy(value);
            match path {
                "/me" => assert_eq!(
                    (r.status, r.body.as_str()),
                    (StatusCode::OK, "none"),
                    "{shown:?}"
                ),
                // Nothing to rotate: the handler's `NotFound`, not a 500.
                _ => assert_eq!(r.status, StatusCode::CONFLICT, "{shown:?}"),
            }
            assert!(r.set_cookies().is_empty());
        }
        assert_eq!(
            sessions.stats().rejected,
            rejected + 2,
            "counted: {:?}",
            String::from_utf8_lossy(value)
        );
    }
    // Two headers, even both valid: ambiguous, refused.
    let rb = http
        .request(Method::GET, "/me", None)
        .header(AUTHORIZATION, format!("Bearer {t}"))
        .header(AUTHORIZATION, format!("Bearer {t}"));
    assert_eq!(http.send(rb).await.body, "none");
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let rb = http
        .request(Method::GET, "/me", None)
        .header(AUTHORIZATION, format!("bEARER {t}"));
    assert_eq!(http.send(rb).await.body, "1 anonymous");
    assert_eq!(sessions.len(), 1, "nothing was created");
}

/// Login rotates the token (session fixation): the body carries the new
/// token, the old one stops working, the data moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_returns_the_rotated_token_and_the_old_one_is_refused() {
    let (http, sessions) = server(TokenSource::Bearer).await;
    let anon = send(&http, Method::POST, "/start", None, None).await.body;
    send(&http, Method::POST, "/start", Some(&anon), None).await;
    let r = send(&http, Method::POST, "/login", Some(&anon), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let alice = r.body;
    assert_eq!(alice.len(), 43);
    assert_ne!(alice, anon);
    assert_eq!(
        send(&http, Method::GET, "/me", Some(&alice), None)
            .await
            .body,
        "2 alice"
    );
    assert_eq!(
        send(&http, Method::GET, "/me", Some(&anon), None)
            .await
            .body,
        "none"
    );
    // Login without any token: a session is created and logged in.
    let fresh = send(&http, Method::POST, "/login", None, None).await.body;
    assert_eq!(
        send(&http, Method::GET, "/me", Some(&fresh), None)
            .await
            .body,
        "0 alice"
    );
    // An explicit rotation too.
    let rotated = send(&http, Method::POST, "/rotate", Some(&alice), None)
        .await
        .body;
    assert_eq!(
        send(&http, Method::GET, "/me", Some(&rotated), None)
            .await
            .body,
        "2 alice"
    );
    assert_eq!(
        send(&http, Method::GET, "/me", Some(&alice), None)
            .await
            .body,
        "none"
    );
    assert_eq!(sessions.len(), 2);
}

/// `CookieOrBearer`: a request with an `Authorization` header is judged by
/// it alone; one without is a cookie request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_or_bearer_prefers_the_header_and_never_falls_back() {
    let (http, sessions) = server(TokenSource::CookieOrBearer).await;
    let (by_cookie, _) = sessions.create(10).unwrap();
    let (by_header, _) = sessions.create(20).unwrap();
    let (c, h) = (by_cookie.as_str(), by_header.as_str());
    let r = send(&http, Method::GET, "/me", Some(h), Some(c)).await;
    assert_eq!(r.body, "20 anonymous", "the header wins over the cookie");
    assert_eq!(
        send(&http, Method::GET, "/me", None, Some(c)).await.body,
        "10 anonymous"
    );
    assert_eq!(
        send(&http, Method::GET, "/me", Some(h), None).await.body,
        "20 anonymous"
    );
    // A dead or malformed header does not fall back to the cookie.
    let dead = sesame::SessionToken::generate();
    let r = send(&http, Method::GET, "/me", Some(dead.as_str()), Some(c)).await;
    assert_eq!(r.body, "none");
    let rb = http
        .request(Method::GET, "/me", Some(c))
        .header(AUTHORIZATION, "Basic YWxpY2U6cHc=");
    assert_eq!(http.send(rb).await.body, "none");
    // A login with the header: token in the body, no cookie.
    let r = send(&http, Method::POST, "/login", Some(h), Some(c)).await;
    assert_eq!(r.body.len(), 43);
    assert!(r.set_cookies().is_empty(), "{r:?}");
    assert_eq!(
        send(&http, Method::GET, "/me", Some(&r.body), None)
            .await
            .body,
        "20 alice"
    );
    // A login with the cookie: a new cookie, and no token in the body.
    let r = send(&http, Method::POST, "/login", None, Some(c)).await;
    assert_eq!(
        r.body, "-",
        "a cookie request's token stays in the HttpOnly cookie"
    );
    let new_cookie = r.token().expect("a cookie request gets its cookie");
    assert_eq!(
        send(&http, Method::GET, "/me", None, Some(&new_cookie))
            .await
            .body,
        "10 alice"
    );
    // A logout by header leaves the cookie alone.
    let r = send(
        &http,
        Method::POST,
        "/logout",
        Some(&new_cookie),
        Some(&new_cookie),
    )
    .await;
    assert_eq!(r.body, "true");
    assert!(
        r.set_cookies().is_empty(),
        "no clearing cookie for a bearer request"
    );
}

/// `renew_after` rotates cookie sessions as responses are produced; a
/// bearer client could never learn that token, so bearer requests are not
/// renewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_requests_are_not_renewed_behind_the_clients_back() {
    let clock = ManualClock::new();
    let sessions = Engine::builder().clock(clock.clone()).build().unwrap();
    let layer = SessionLayer::new(sessions.clone())
        .token_source(TokenSource::Bearer)
        .renew_after(Duration::from_secs(60))
        .rolling(true);
    let http = serve(app(&sessions, layer)).await;
    let (token, _) = sessions.create(3).unwrap();
    clock.advance(Duration::from_secs(61));
    for _ in 0..2 {
        let r = send(&http, Method::GET, "/me", Some(token.as_str()), None).await;
        assert_eq!(r.body, "3 anonymous", "the token still works");
        assert!(r.set_cookies().is_empty());
    }
}
