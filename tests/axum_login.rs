//! An axum-login app on `SesameStore`, served over TCP to a real client:
//! login (with axum-login's id cycling), a `login_required!` route, logout,
//! and a second user on the same client after the first logged out.
//!
//! The app is what an axum-login user writes (its own `AuthUser` and
//! `AuthnBackend`, two users); the only sesame line is the store.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::Query;
use axum::routing::{get, post};
use axum_login::tower_sessions::{Session, SessionManagerLayer, SessionStore};
use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend, login_required};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use sesame::Sessions;
use sesame::tower_sessions::SesameStore;

#[derive(Clone)]
struct User {
    id: u64,
    name: &'static str,
    password: &'static str,
}

// Never prints the password.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("id", &self.id).finish()
    }
}

impl AuthUser for User {
    type Id = u64;

    fn id(&self) -> u64 {
        self.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        self.password.as_bytes()
    }
}

#[derive(Clone)]
struct Backend {
    users: Arc<HashMap<u64, User>>,
}

#[derive(Clone, Deserialize)]
struct Credentials {
    name: String,
    password: String,
}

impl Backend {
    fn two_users() -> Self {
        let users = [
            User {
                id: 1,
                name: "alice",
                password: "alice-pw",
            },
            User {
                id: 2,
                name: "bob",
                password: "bob-pw",
            },
        ];
        Self {
            users: Arc::new(users.into_iter().map(|u| (u.id, u)).collect()),
        }
    }
}

#[async_trait]
impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = Infallible;

    async fn authenticate(&self, c: Credentials) -> Result<Option<User>, Infallible> {
        Ok(self
            .users
            .values()
            .find(|u| u.name == c.name && u.password == c.password)
            .cloned())
    }

    async fn get_user(&self, id: &u64) -> Result<Option<User>, Infallible> {
        Ok(self.users.get(id).cloned())
    }
}

type Auth = AuthSession<Backend>;

/// The app, on any tower-sessions store.
fn app(store: impl SessionStore + Clone) -> Router {
    let sessions = SessionManagerLayer::new(store).with_secure(false);
    let auth = AuthManagerLayerBuilder::new(Backend::two_users(), sessions).build();
    let protected = Router::new()
        .route("/me", get(me))
        .route("/note", post(set_note))
        .route_layer(login_required!(Backend));
    let redirecting = Router::new()
        .route("/account", get(me))
        .route_layer(login_required!(Backend, login_url = "/login"));
    Router::new()
        .merge(protected)
        .merge(redirecting)
        .route("/visit", get(visit))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(auth)
}

async fn visit(session: Session) -> String {
    let n: u32 = session.get("visits").await.unwrap().unwrap_or(0) + 1;
    session.insert("visits", n).await.unwrap();
    n.to_string()
}

async fn login(mut auth: Auth, Query(c): Query<Credentials>) -> StatusCode {
    match auth.authenticate(c).await.unwrap() {
        Some(user) => {
            auth.login(&user).await.unwrap();
            StatusCode::OK
        }
        None => StatusCode::UNAUTHORIZED,
    }
}

async fn logout(mut auth: Auth) -> StatusCode {
    auth.logout().await.unwrap();
    StatusCode::OK
}

#[derive(Deserialize)]
struct Note {
    text: String,
}

async fn set_note(session: Session, Query(n): Query<Note>) -> StatusCode {
    session.insert("note", n.text).await.unwrap();
    StatusCode::OK
}

/// `name:note:visits`, from the logged-in user and the session's data.
async fn me(auth: Auth, session: Session) -> String {
    let note: Option<String> = session.get("note").await.unwrap();
    let visits: Option<u32> = session.get("visits").await.unwrap();
    format!(
        "{}:{}:{}",
        auth.user.map_or("-", |u| u.name),
        note.as_deref().unwrap_or("-"),
        visits.map_or("-".to_string(), |v| v.to_string())
    )
}

/// A real client over TCP that keeps the session cookie itself, so the
/// test sees (and can replay) every cookie the server set.
struct Client {
    http: reqwest::Client,
    base: String,
    /// The `id` cookie's value the client holds.
    cookie: Option<String>,
}

struct Reply {
    status: StatusCode,
    /// What `Set-Cookie: id=…` said, if it came: `Some("")` removes it.
    set: Option<String>,
    body: String,
}

impl Client {
    async fn serve(router: Router) -> Self {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            base: format!("http://{addr}"),
            cookie: None,
        }
    }

    /// Sends with `cookie` (not the held one) and changes nothing held.
    async fn send_with(&self, method: Method, path: &str, cookie: Option<&str>) -> Reply {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = cookie {
            rb = rb.header(COOKIE, format!("id={c}"));
        }
        let response = rb.send().await.unwrap();
        let status = response.status();
        let set = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("id="))
            .map(|v| v.split(';').next().unwrap_or("").to_string())
            .next_back();
        let body = response.text().await.unwrap();
        Reply { status, set, body }
    }

    /// Another client of the same server, holding no cookie.
    fn clone_client(&self) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            cookie: None,
        }
    }

    /// Sends with the held cookie and keeps what the server sets.
    async fn send(&mut self, method: Method, path: &str) -> Reply {
        let reply = self.send_with(method, path, self.cookie.as_deref()).await;
        if let Some(v) = &reply.set {
            self.cookie = (!v.is_empty()).then(|| v.clone());
        }
        reply
    }
}

fn store() -> SesameStore {
    SesameStore::new(Sessions::builder().max_sessions(1000).build().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_reaches_the_protected_route_and_logout_ends_it() {
    let store = store();
    let mut c = Client::serve(app(store.clone())).await;

    // Without login: 401, or a redirect to the login page.
    let r = c.send(Method::GET, "/me").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = c.send(Method::GET, "/account").await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);

    // An anonymous session first: its id is the one login must replace.
    let r = c.send(Method::GET, "/visit").await;
    assert_eq!(r.body, "1");
    let anonymous = c.cookie.clone().expect("a session cookie");
    assert_eq!(anonymous.len(), 22, "tower-sessions' 128-bit id");
    assert_eq!(store.sessions().len(), 1);

    let r = c
        .send(Method::POST, "/login?name=alice&password=wrong")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = c
        .send(Method::POST, "/login?name=alice&password=alice-pw")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let alice = c.cookie.clone().unwrap();
    assert_ne!(alice, anonymous, "login cycles the id (session fixation)");
    assert_eq!(store.sessions().len(), 1, "the pre-login session is gone");

    // The protected route, with the data the anonymous session had.
    let r = c.send(Method::GET, "/me").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "alice:-:1"));
    assert_eq!(c.send(Method::GET, "/account").await.status, StatusCode::OK);
    assert_eq!(
        c.send(Method::POST, "/note?text=alice-secret").await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.send(Method::GET, "/me").await.body,
        "alice:alice-secret:1"
    );

    // The pre-login id is refused: a fixated cookie gets nothing.
    let r = c.send_with(Method::GET, "/me", Some(&anonymous)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Logout: the cookie is removed, and the old one, replayed, is refused.
    let r = c.send(Method::POST, "/logout").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.set.as_deref(), Some(""), "the cookie is removed");
    assert!(c.cookie.is_none());
    let r = c.send_with(Method::GET, "/me", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(store.sessions().len(), 0);

    // Bob on the same client: a new id, and none of alice's data.
    let r = c
        .send(Method::POST, "/login?name=bob&password=bob-pw")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let bob = c.cookie.clone().unwrap();
    assert!(bob != alice && bob != anonymous);
    let r = c.send(Method::GET, "/me").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "bob:-:-"));
    let r = c.send_with(Method::GET, "/me", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "alice's id stays ended");
}

/// What axum-login 0.17 does (not the store) when bob logs in on a browser
/// alice did not log out of: it cycles the id only when nobody was logged
/// in, so the id stays, and bob's session still holds what alice put in it.
/// Documented in `sesame::tower_sessions` (sesame's own `login` rotates and
/// resets the data for a new principal); this test keeps that claim true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_users_without_logout_keeps_the_id_in_axum_login() {
    let store = store();
    let mut c = Client::serve(app(store.clone())).await;
    c.send(Method::POST, "/login?name=alice&password=alice-pw")
        .await;
    let alice = c.cookie.clone().unwrap();
    c.send(Method::POST, "/note?text=alice-secret").await;
    let r = c
        .send(Method::POST, "/login?name=bob&password=bob-pw")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(c.cookie.as_deref(), Some(alice.as_str()), "no new id");
    let r = c.send(Method::GET, "/me").await;
    assert_eq!(r.body, "bob:alice-secret:-", "alice's data stays");
    assert_eq!(store.sessions().len(), 1);
}

/// Cookies that are not ids, or ids nobody was given, reach nothing and
/// break nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_cookies_reach_nothing() {
    let store = store();
    let c = Client::serve(app(store.clone())).await;
    let forged = [
        "",
        "garbage",
        "AAAAAAAAAAAAAAAAAAAAAA", // a well-formed id nobody was given
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", // too long
        "%%%%",
        "////////////////////////",
    ];
    for cookie in forged {
        let r = c.send_with(Method::GET, "/me", Some(cookie)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{cookie:?}");
        let r = c.send_with(Method::GET, "/visit", Some(cookie)).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (StatusCode::OK, "1"),
            "{cookie:?}"
        );
        let new = r.set.expect("a new session");
        assert_ne!(new, cookie, "never the presented id");
    }
    assert_eq!(store.sessions().len(), forged.len());
}

/// With `with_axum_login`, the store binds each session to the user id
/// axum-login keeps in it: "log out everywhere" reaches every browser of
/// that user, and a flood of anonymous sessions at capacity evicts only
/// anonymous ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_axum_login_the_store_logs_a_user_out_everywhere_and_keeps_logged_in_sessions() {
    let sessions = Sessions::builder()
        .max_sessions(4)
        .max_sessions_per_user(2)
        .build()
        .unwrap();
    let store = SesameStore::new(sessions).with_axum_login();
    let mut laptop = Client::serve(app(store.clone())).await;
    let mut phone = laptop.clone_client();
    let mut other = laptop.clone_client();
    for (c, who) in [
        (&mut laptop, "alice"),
        (&mut phone, "alice"),
        (&mut other, "bob"),
    ] {
        let r = c
            .send(
                Method::POST,
                &format!("/login?name={who}&password={who}-pw"),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(store.sessions_of(&1u64).len(), 2);
    assert_eq!(store.sessions_of(&2u64).len(), 1);

    // Anonymous visitors at capacity: they evict each other, never a
    // logged-in session.
    for _ in 0..20 {
        let r = laptop.send_with(Method::GET, "/visit", None).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(store.sessions().len(), 4);
    for c in [&mut laptop, &mut phone, &mut other] {
        assert_eq!(c.send(Method::GET, "/me").await.status, StatusCode::OK);
    }

    // Alice changes her password: every one of her sessions ends at once.
    assert_eq!(store.revoke_user(&1u64), 2);
    assert_eq!(
        laptop.send(Method::GET, "/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        phone.send(Method::GET, "/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = other.send(Method::GET, "/me").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "bob:-:-"));

    // Logout: the session leaves the index with the store.
    other.send(Method::POST, "/logout").await;
    assert!(store.sessions_of(&2u64).is_empty());
}
