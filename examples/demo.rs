//! The sesame demo: an axum server with anonymous visit counting, login,
//! logout, "log out everywhere" and a list of the user's sessions.
//!
//! ```sh
//! cargo run --example demo --features axum
//! ```
//!
//! Listens on `127.0.0.1:3000` unless `SESAME_ADDR` says otherwise; the idle
//! timeout is `SESAME_IDLE_SECS` seconds (default 1800). Demo users: alice /
//! wonderland and bob / builder.
//!
//! The session cookie is `__Host-id`, `Secure`: browsers (and curl) accept
//! it over plain HTTP from `localhost` only, so open
//! <http://localhost:3000>.
//!
//! The tests (`tests/demo_e2e.rs`) include this very file and drive
//! [`router`] over TCP, so what they check is what `cargo run` serves.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sesame::tower::{Session, SessionLayer};
use sesame::{ErrorKind, Handle, Sessions};
use subtle::ConstantTimeEq as _;

/// What a session holds: how often this visitor has seen `/`.
#[derive(Clone, Debug, Default)]
pub struct Visits {
    /// Visits of `/` in this session.
    pub count: u64,
}

/// The demo's engine: sessions of [`Visits`], logged in as user names.
pub type DemoSessions = Sessions<Visits, String>;

type DemoSession = Session<Visits, String>;

/// The demo users and their passwords. A real application stores password
/// hashes (argon2id), never passwords.
const USERS: [(&str, &str); 2] = [("alice", "wonderland"), ("bob", "builder")];

/// The demo's routes, behind the session layer, the cross-site check and
/// the request log (outermost).
pub fn router(sessions: DemoSessions) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login_form).post(login))
        .route("/protected", get(protected))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/api/me", get(me))
        .route("/api/sessions", get(list_sessions))
        .route("/api/sessions/{handle}", delete(end_session))
        .route("/healthz", get(healthz))
        .layer(SessionLayer::new(sessions.clone()))
        .layer(middleware::from_fn(refuse_cross_site))
        .layer(middleware::from_fn(log_request))
        .with_state(sessions)
}

/// Builds the engine from the environment: `SESAME_IDLE_SECS` (default 1800).
pub fn sessions_from_env() -> Result<DemoSessions, Box<dyn std::error::Error>> {
    let idle = match std::env::var("SESAME_IDLE_SECS") {
        Ok(s) => s
            .parse::<u64>()
            .map_err(|_| format!("SESAME_IDLE_SECS: expected whole seconds, got {s:?}"))?,
        Err(_) => 1800,
    };
    let idle = Duration::from_secs(idle);
    let absolute = idle.max(sesame::config::DEFAULT_ABSOLUTE_TIMEOUT);
    Ok(DemoSessions::builder()
        .idle_timeout(idle)
        .absolute_timeout(absolute)
        .build()?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_target(false).init();
    let addr: SocketAddr = match std::env::var("SESAME_ADDR") {
        Ok(s) => s
            .parse()
            .map_err(|_| format!("SESAME_ADDR: expected host:port, got {s:?}"))?,
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 3000)),
    };
    let sessions = sessions_from_env()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("sesame demo listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(sessions))
        .with_graceful_shutdown(async {
            // If the handler cannot be installed, run until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            tracing::info!("Ctrl-C: finishing requests in flight, then exiting");
        })
        .await?;
    Ok(())
}

/// Logs method, path, status and latency. Never headers or query strings:
/// the `Cookie` header carries the token.
async fn log_request(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let start = Instant::now();
    let response = next.run(req).await;
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// Refuses cross-site state-changing requests with `403` (CSRF defence in
/// depth on top of `SameSite=Lax`). Browsers send `Sec-Fetch-Site` (all
/// current ones) or at least `Origin` with every `POST`/`DELETE`; a request
/// with neither is not from a browser page and carries no ambient
/// credentials to abuse (curl, scripts), so it passes.
async fn refuse_cross_site(req: Request, next: Next) -> Response {
    let safe = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if !safe && is_cross_site(req.headers()) {
        return (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response();
    }
    next.run(req).await
}

fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        // `same-site` (a sibling subdomain) is refused too.
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers.get(header::HOST).map(|h| h.as_bytes());
    let origin = origin.as_bytes();
    let authority = origin
        .strip_prefix(b"http://")
        .or_else(|| origin.strip_prefix(b"https://"));
    match (authority, host) {
        (Some(a), Some(h)) => !a.eq_ignore_ascii_case(h),
        // `Origin: null` (sandboxed frames, some redirects), or no `Host`.
        _ => true,
    }
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1>{body}</body></html>\n"
    ))
}

/// Escapes text for HTML (user names come from a fixed list, but a habit
/// is a habit).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn unavailable(kind: ErrorKind) -> Response {
    let status = match kind {
        ErrorKind::Full => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, "session store unavailable\n").into_response()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "not logged in" })),
    )
        .into_response()
}

/// `GET /`: counts this session's visits (the first visit creates it).
async fn index(session: DemoSession) -> Response {
    let count = match session.update(|v| {
        v.count += 1;
        v.count
    }) {
        Ok(n) => n,
        Err(e) => return unavailable(e.kind()),
    };
    let who = match session.principal() {
        Some(user) => format!(
            "Logged in as <strong id=\"user\">{}</strong>. <a href=\"/protected\">Your page</a>.",
            escape(&user)
        ),
        None => "Not logged in. <a href=\"/login\">Log in</a>.".to_owned(),
    };
    page(
        "sesame demo",
        &format!(
            "<p>Visits in this session: <strong id=\"visits\">{count}</strong></p><p>{who}</p>"
        ),
    )
    .into_response()
}

/// `GET /login`: the form. Creates no session.
async fn login_form() -> Html<String> {
    page(
        "Log in",
        "<form method=\"post\" action=\"/login\">\
         <label>User <input name=\"username\" autocomplete=\"username\"></label> \
         <label>Password <input name=\"password\" type=\"password\" \
         autocomplete=\"current-password\"></label> \
         <button>Log in</button></form>\
         <p>Try alice / wonderland or bob / builder.</p>",
    )
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// Checks a user's password without leaking, through timing, which byte
/// differs (a real application compares password hashes).
fn authenticate(c: &Credentials) -> Option<&'static str> {
    let mut found = None;
    for (user, password) in USERS {
        let ok = user.as_bytes().ct_eq(c.username.as_bytes())
            & password.as_bytes().ct_eq(c.password.as_bytes());
        if bool::from(ok) {
            found = Some(user);
        }
    }
    found
}

/// `POST /login`: on success rotates the ID, binds the user, `303` to
/// `/protected`; on failure `401` and the session unchanged.
async fn login(session: DemoSession, Form(credentials): Form<Credentials>) -> Response {
    let Some(user) = authenticate(&credentials) else {
        tracing::info!("failed login");
        return (
            StatusCode::UNAUTHORIZED,
            page(
                "Log in",
                "<p>Wrong user name or password. <a href=\"/login\">Try again</a>.</p>",
            ),
        )
            .into_response();
    };
    match session.login(user.to_owned()) {
        Ok(()) => Redirect::to("/protected").into_response(),
        Err(e) => unavailable(e.kind()),
    }
}

/// `GET /protected`: the user's page, or `303` to `/login`.
async fn protected(session: DemoSession) -> Response {
    let Some(user) = session.principal() else {
        return Redirect::to("/login").into_response();
    };
    page(
        "Your page",
        &format!(
            "<p>Hello, <strong id=\"user\">{}</strong>.</p>\
             <form method=\"post\" action=\"/logout\"><button>Log out</button></form>\
             <form method=\"post\" action=\"/logout-all\"><button>Log out everywhere</button></form>\
             <p><a href=\"/api/sessions\">Your sessions</a></p>",
            escape(&user)
        ),
    )
    .into_response()
}

/// `GET /api/me`: the user and the session's times, or `401`.
async fn me(session: DemoSession) -> Response {
    match session.info() {
        Some(info) if info.principal.is_some() => Json(json!({
            "user": info.principal,
            "session": info.handle.to_string(),
            "created": unix(info.created),
            "expires": unix(info.expires),
            "absolute_expires": unix(info.absolute_expires),
        }))
        .into_response(),
        _ => unauthorized(),
    }
}

/// `POST /logout`: destroys the session, clears the cookie, `303` to `/`.
async fn logout(session: DemoSession) -> Redirect {
    session.logout();
    Redirect::to("/")
}

/// `POST /logout-all`: ends every session of the current user, `303` to
/// `/`; `401` when not logged in.
async fn logout_all(session: DemoSession) -> Response {
    if session.principal().is_none() {
        return unauthorized();
    }
    let ended = session.logout_everywhere();
    tracing::info!(ended, "logged out everywhere");
    Redirect::to("/").into_response()
}

/// `GET /api/sessions`: the current user's sessions (never tokens).
async fn list_sessions(session: DemoSession) -> Response {
    let Some(current) = session.info() else {
        return unauthorized();
    };
    let Some(user) = current.principal.as_ref() else {
        return unauthorized();
    };
    let list: Vec<_> = session
        .sessions()
        .sessions_of(user)
        .into_iter()
        .map(|s| {
            json!({
                "handle": s.handle.to_string(),
                "created": unix(s.created),
                "last_seen": unix(s.last_seen),
                "expires": unix(s.expires),
                "current": s.handle == current.handle,
            })
        })
        .collect();
    Json(json!({ "user": user, "sessions": list })).into_response()
}

/// `DELETE /api/sessions/{handle}`: ends one of the user's own sessions:
/// `204`, or `404` for a handle that is not one of theirs.
async fn end_session(session: DemoSession, Path(handle): Path<String>) -> Response {
    let Some(current) = session.info() else {
        return unauthorized();
    };
    let Some(user) = current.principal else {
        return unauthorized();
    };
    let Ok(handle) = handle.parse::<Handle>() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let ended = if handle == current.handle {
        session.logout()
    } else {
        session.sessions().revoke(&user, handle)
    };
    if ended {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// `GET /healthz`: the engine's counters. Takes no session.
async fn healthz(State(sessions): State<DemoSessions>) -> Json<serde_json::Value> {
    let s = sessions.stats();
    Json(json!({
        "status": "ok",
        "live": s.live,
        "anonymous": s.anonymous,
        "created": s.created,
        "rotated": s.rotated,
        "destroyed": s.destroyed,
        "revoked": s.revoked,
        "expired_idle": s.expired_idle,
        "expired_absolute": s.expired_absolute,
        "evicted_capacity": s.evicted_capacity,
        "rejected": s.rejected,
        "refused_full": s.refused_full,
    }))
}
