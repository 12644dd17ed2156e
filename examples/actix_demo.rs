//! The sesame demo on actix-web: anonymous visit counting, login, logout,
//! "log out everywhere" and a list of the user's sessions, the routes of
//! `examples/demo.rs` (the axum demo) on the in-process store.
//!
//! ```sh
//! cargo run --example actix_demo --features actix
//! ```
//!
//! Listens on `127.0.0.1:3000` unless `SESAME_ADDR` says otherwise. Demo
//! users: alice / wonderland and bob / builder. The session cookie is
//! `__Host-id`, `Secure`: browsers (and curl) accept it over plain HTTP from
//! `localhost` only, so open <http://localhost:3000>.
//!
//! `SameSite=Lax` keeps the cookie off cross-site `POST`s, and sesame's CSRF
//! guard ([`csrf`]) refuses state-changing requests from other origins, as
//! in the axum demo.
//!
//! `tests/actix_e2e.rs` includes this very file and drives [`routes`] over
//! TCP, on the in-process store and on Redis.

use actix_web::http::header;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;
use serde_json::json;
use sesame::actix::{CsrfMiddleware, Session, SessionMiddleware};
use sesame::csrf::{CsrfGuard, Scheme};
use sesame::store::Store;
use sesame::{Error, Handle, Sessions};
use std::time::{SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq as _;

/// What a session holds: how often this visitor has seen `/`.
#[derive(Clone, Debug, Default, serde::Serialize, Deserialize)]
pub struct Visits {
    /// Visits of `/` in this session.
    pub count: u64,
}

/// The demo's engine: sessions of [`Visits`], logged in as user names.
pub type DemoSessions = Sessions<Visits, String>;

/// A store the demo's routes run on: the in-process engine, or Redis.
pub trait DemoStore: Store<Data = Visits, Principal = String> {}
impl<S: Store<Data = Visits, Principal = String>> DemoStore for S {}

/// The demo users and their passwords. A real application stores password
/// hashes (argon2id), never passwords.
const USERS: [(&str, &str); 2] = [("alice", "wonderland"), ("bob", "builder")];

fn main() -> std::io::Result<()> {
    let addr = std::env::var("SESAME_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let sessions = DemoSessions::new();
    println!("sesame actix demo on http://{addr}");
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(sessions.clone()))
            .wrap(SessionMiddleware::new(sessions.clone()))
            .wrap(csrf())
            .configure(routes::<DemoSessions>)
            .route("/healthz", web::get().to(healthz))
    });
    actix_web::rt::System::new().block_on(server.bind(addr)?.run())
}

/// The CSRF guard (`sesame::csrf`): state-changing requests must come from
/// `http://` and the request's own `Host` (a server browsers reach
/// directly; behind a proxy, name the public origin with `allow_origin`).
pub fn csrf() -> CsrfMiddleware {
    let guard = CsrfGuard::builder()
        .same_origin_as_host(Scheme::Http)
        .build()
        .expect("one origin is allowed");
    CsrfMiddleware::new(guard)
}

/// The demo's routes; wrap them in a [`SessionMiddleware`] over `S`.
pub fn routes<S: DemoStore>(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index::<S>))
        .route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login::<S>))
        .route("/protected", web::get().to(protected::<S>))
        .route("/logout", web::post().to(logout::<S>))
        .route("/logout-all", web::post().to(logout_all::<S>))
        .route("/logout-others", web::post().to(logout_others::<S>))
        .route("/api/me", web::get().to(me::<S>))
        .route("/api/sessions", web::get().to(list_sessions::<S>))
        .route("/api/sessions/{handle}", web::delete().to(end_session::<S>));
}

type Reply = Result<HttpResponse, Error>;

fn page(title: &str, body: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}</h1>{body}</body></html>\n"
        ))
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({ "error": "not logged in" }))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `GET /`: counts this session's visits (the first visit creates it).
async fn index<S: DemoStore>(session: Session<S>) -> Reply {
    let count = session
        .update(|v| {
            v.count += 1;
            v.count
        })
        .await?;
    // User names come from the fixed list: nothing to escape.
    let who = match session.principal().await? {
        Some(user) => format!(
            "Logged in as <strong id=\"user\">{user}</strong>. <a href=\"/protected\">Your page</a>."
        ),
        None => "Not logged in. <a href=\"/login\">Log in</a>.".to_owned(),
    };
    Ok(page(
        "sesame demo",
        &format!(
            "<p>Visits in this session: <strong id=\"visits\">{count}</strong></p><p>{who}</p>"
        ),
    ))
}

/// `GET /login`: the form. Creates no session.
async fn login_form() -> HttpResponse {
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
async fn login<S: DemoStore>(session: Session<S>, form: web::Form<Credentials>) -> Reply {
    let Some(user) = authenticate(&form) else {
        let mut r = page(
            "Log in",
            "<p>Wrong user name or password. <a href=\"/login\">Try again</a>.</p>",
        );
        *r.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
        return Ok(r);
    };
    session.login(user.to_owned()).await?;
    Ok(redirect("/protected"))
}

/// `GET /protected`: the user's page, or `303` to `/login`.
async fn protected<S: DemoStore>(session: Session<S>) -> Reply {
    let Some(user) = session.principal().await? else {
        return Ok(redirect("/login"));
    };
    Ok(page(
        "Your page",
        &format!(
            "<p>Hello, <strong id=\"user\">{user}</strong>.</p>\
             <form method=\"post\" action=\"/logout\"><button>Log out</button></form>\
             <form method=\"post\" action=\"/logout-all\"><button>Log out everywhere</button></form>\
             <p><a href=\"/api/sessions\">Your sessions</a></p>"
        ),
    ))
}

/// `GET /api/me`: the user and the session's times, or `401`.
async fn me<S: DemoStore>(session: Session<S>) -> Reply {
    Ok(match session.info().await? {
        Some(info) if info.principal.is_some() => HttpResponse::Ok().json(json!({
            "user": info.principal,
            "session": info.handle.to_string(),
            "created": unix(info.created),
            "expires": unix(info.expires),
            "absolute_expires": unix(info.absolute_expires),
        })),
        _ => unauthorized(),
    })
}

/// `POST /logout`: destroys the session, clears the cookie, `303` to `/`.
async fn logout<S: DemoStore>(session: Session<S>) -> Reply {
    session.logout().await?;
    Ok(redirect("/"))
}

/// `POST /logout-all`: ends every session of the current user, `303` to
/// `/`; `401` when not logged in.
async fn logout_all<S: DemoStore>(session: Session<S>) -> Reply {
    if session.principal().await?.is_none() {
        return Ok(unauthorized());
    }
    session.logout_everywhere().await?;
    Ok(redirect("/"))
}

/// `POST /logout-others`: "sign out of all other devices"; this session
/// stays.
async fn logout_others<S: DemoStore>(session: Session<S>) -> Reply {
    if session.principal().await?.is_none() {
        return Ok(unauthorized());
    }
    session.logout_others().await?;
    Ok(redirect("/protected"))
}

/// `GET /api/sessions`: the current user's sessions (never tokens).
async fn list_sessions<S: DemoStore>(session: Session<S>) -> Reply {
    let Some(current) = session.info().await? else {
        return Ok(unauthorized());
    };
    let Some(user) = current.principal.as_ref() else {
        return Ok(unauthorized());
    };
    let list: Vec<_> = session
        .store()
        .sessions_of(user)
        .await?
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
    Ok(HttpResponse::Ok().json(json!({ "user": user, "sessions": list })))
}

/// `DELETE /api/sessions/{handle}`: ends one of the user's own sessions:
/// `204`, or `404` for a handle that is not one of theirs.
async fn end_session<S: DemoStore>(session: Session<S>, handle: web::Path<String>) -> Reply {
    let Some(current) = session.info().await? else {
        return Ok(unauthorized());
    };
    let Some(user) = current.principal else {
        return Ok(unauthorized());
    };
    let Ok(handle) = handle.parse::<Handle>() else {
        return Ok(HttpResponse::NotFound().finish());
    };
    let ended = if handle == current.handle {
        session.logout().await?
    } else {
        session.store().revoke(&user, handle).await?
    };
    Ok(if ended {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::NotFound().finish()
    })
}

/// `GET /healthz`: the store's counters. Takes no session.
pub async fn healthz(sessions: web::Data<DemoSessions>) -> HttpResponse {
    let s = sessions.stats();
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "live": s.live,
        "anonymous": s.anonymous,
        "created": s.created,
        "rotated": s.rotated,
        "destroyed": s.destroyed,
        "revoked": s.revoked,
        "rejected": s.rejected,
        "refused_full": s.refused_full,
    }))
}
