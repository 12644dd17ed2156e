//! The sesame demo: an axum server with anonymous visit counting, login,
//! logout, "log out everywhere", a list of the user's sessions with the
//! device of each, and "sign out of all other devices".
//!
//! ```sh
//! cargo run --example demo --features axum,snapshot
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
//! # Surviving a restart
//!
//! With `SESAME_SNAPSHOT=path` the server restores the sessions saved in
//! `path` at start, saves them every minute and once more after a graceful
//! shutdown (Ctrl-C, or SIGTERM on Unix): a logged-in browser stays logged
//! in across a restart. The secret key that makes old cookies valid again
//! lives in its own file, `SESAME_SECRET_FILE` (default `<path>.key`),
//! created with mode `0600` on first start; a key file another user owns or
//! others can read is refused. Beside the key, `<key file>.state` records
//! the newest snapshot's generation and journals every logout and
//! revocation before it is answered, so a crash (even SIGKILL, between two
//! saves) never brings an ended login back, and an older snapshot put back
//! in place is refused. The snapshot is encrypted under the key. A snapshot
//! that does not load (another key, damaged, older, another version) is
//! moved aside to `<path>.rejected` and the server starts empty.
//! Without `SESAME_SNAPSHOT` (and without `SESAME_SECRET_FILE`) each process
//! draws a random key and nothing touches the disk.
//!
//! # Many servers, one Redis
//!
//! Built with the `redis` feature too
//! (`--features axum,snapshot,redis`), `SESAME_REDIS_URL=redis://host:port/`
//! keeps the sessions in Redis instead of in the process (a Redis Cluster:
//! `redis+cluster://host:port/`, seeds separated by commas): any number of demo
//! servers on that Redis share logins, logouts and "log out everywhere".
//! They must share the secret key too: `SESAME_SECRET_FILE` is then
//! required (the same file for all, created by the first). Snapshots do not
//! apply (Redis keeps the sessions); `SESAME_SNAPSHOT` is ignored, with a
//! warning. When Redis cannot be reached, requests that need a session
//! answer `503 Service Unavailable`, never a session that was not checked.
//! No call to Redis blocks a runtime worker (`tests/layer_nonblocking.rs`
//! freezes Redis and checks that other routes keep answering); each is
//! bounded by the store's timeouts.
//!
//! # Devices
//!
//! The session layer records each session's device (its `User-Agent`, cut
//! to 256 bytes, and the client's address from the connection) when the
//! session is created and when it logs in; `/api/sessions` and the user's
//! page list them, and `POST /logout-others` ends every other session of
//! the user. The device is personal data: sesame keeps it only beside its
//! session, drops it when the session ends, never logs it and never writes
//! it to a snapshot (after a restart a session shows no device until its
//! next login). Behind a proxy, the address is the proxy's: an application
//! there reads a header it can trust with
//! `sesame::device::ClientAddress::XForwardedFor { trusted_hops }`.
//!
//! # Behind a proxy
//!
//! State-changing requests (`POST`, `DELETE`) from another site are refused
//! with `403` by sesame's CSRF guard (`sesame::csrf::CsrfLayer`, see
//! [`csrf_guard`]): `Sec-Fetch-Site` must not say `cross-site` or
//! `same-site`, and the `Origin` header, when sent, must name this server's
//! origin (scheme, host and port). By default that is `http://` and the request's `Host`,
//! which is right when browsers reach the demo directly. Behind a proxy
//! that terminates TLS, or under another name, set `SESAME_PUBLIC_ORIGIN`
//! to the address browsers use, e.g. `https://demo.example.com`.
//!
//! The tests (`tests/demo_e2e.rs`, `tests/demo_restart.rs`,
//! `tests/demo_redis.rs`) include this very file and drive [`router`], [`start`] and [`serve`] over TCP, so what
//! they check is what `cargo run` serves.

use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sesame::axum::SessionRouterExt as _;
pub use sesame::csrf::Origin;
use sesame::csrf::{CsrfGuard, CsrfLayer, Scheme};
use sesame::device::DeviceConfig;
use sesame::snapshot::{LoadReport, SaveReport, SnapshotError, SnapshotStore, SnapshotTask};
use sesame::store::Store;
use sesame::tower::{Session, SessionLayer};
use sesame::{Error, Handle, SessionInfo, Sessions};
use subtle::ConstantTimeEq as _;

/// What a session holds: how often this visitor has seen `/`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Visits {
    /// Visits of `/` in this session.
    pub count: u64,
}

/// The demo's engine: sessions of [`Visits`], logged in as user names.
pub type DemoSessions = Sessions<Visits, String>;

/// The demo's store on Redis (`SESAME_REDIS_URL`).
#[cfg(feature = "redis")]
pub type DemoRedis = sesame::redis::RedisSessions<Visits, String>;

/// A store the demo runs on: the in-process engine, or Redis.
pub trait DemoStore: Store<Data = Visits, Principal = String> {
    /// What `/healthz` shows: the store's counters.
    fn health(&self) -> serde_json::Value;
}

impl DemoStore for DemoSessions {
    fn health(&self) -> serde_json::Value {
        let s = self.stats();
        json!({
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
        })
    }
}

#[cfg(feature = "redis")]
impl DemoStore for DemoRedis {
    fn health(&self) -> serde_json::Value {
        // The Redis backend's own counters: no round trip (the engine's
        // counters, `stats().await`, cost one).
        let s = self.redis_stats();
        json!({
            "status": "ok",
            "backend": "redis",
            "fetches": s.fetches,
            "touches": s.touches,
            "invalidations": s.invalidations,
            "conflicts": s.conflicts,
            "unavailable": s.unavailable,
            "subscriptions": s.subscriptions,
            "cached": s.cached,
            "cache_trusted": s.cache_trusted,
        })
    }
}

type DemoSession<S> = Session<Visits, String, S>;

/// The error of the demo's startup and serving.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The demo users and their passwords. A real application stores password
/// hashes (argon2id), never passwords.
const USERS: [(&str, &str); 2] = [("alice", "wonderland"), ("bob", "builder")];

/// How often a snapshot is saved while serving: a crash (not a graceful
/// shutdown, which saves) loses at most this much session activity.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(60);

/// The demo's routes, behind the session layer, the cross-site check and
/// the request log (outermost), on either store. Same-origin requests are
/// those whose `Origin` is `http://` and their `Host` (see [`router_for`]).
pub fn router<S: DemoStore>(sessions: S) -> Router {
    router_for(sessions, None)
}

/// [`router`] for an application that browsers reach at `public_origin`
/// (`SESAME_PUBLIC_ORIGIN`): state-changing requests from any other
/// origin are refused. `None`: `http://` and the request's `Host`.
pub fn router_for<S: DemoStore>(sessions: S, public_origin: Option<Origin>) -> Router {
    Router::new()
        .route("/", get(index::<S>))
        .route("/login", get(login_form).post(login::<S>))
        .route("/protected", get(protected::<S>))
        .route("/logout", post(logout::<S>))
        .route("/logout-all", post(logout_all::<S>))
        .route("/logout-others", post(logout_others::<S>))
        .route("/api/me", get(me::<S>))
        .route("/api/sessions", get(list_sessions::<S>))
        .route("/api/sessions/{handle}", delete(end_session::<S>))
        .route("/healthz", get(healthz::<S>))
        .session_layer(SessionLayer::new(sessions.clone()).record_devices(devices()))
        .layer(CsrfLayer::new(csrf_guard(public_origin)))
        .layer(middleware::from_fn(log_request))
        .with_state(sessions)
}

/// The CSRF guard (`sesame::csrf`): state-changing requests must come from
/// `public_origin`, or without one from `http://` and the request's `Host`.
pub fn csrf_guard(public_origin: Option<Origin>) -> CsrfGuard {
    let builder = CsrfGuard::builder();
    let builder = match public_origin {
        Some(origin) => builder.allow_origin(origin),
        None => builder.same_origin_as_host(Scheme::Http),
    };
    builder.build().expect("one origin is allowed")
}

/// What the demo records about each session's device: the user agent (up
/// to 256 bytes) and the connection's address, which axum hands over as
/// `ConnectInfo` when served by [`serve`] (a router served without it
/// records no address).
pub fn devices() -> DeviceConfig {
    DeviceConfig::new().peer(|ext| {
        ext.get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
    })
}

/// The demo's settings, read from `SESAME_*` environment variables (an
/// empty variable counts as unset).
#[derive(Clone, Debug)]
pub struct Config {
    /// `SESAME_ADDR`: where to listen (default `127.0.0.1:3000`).
    pub addr: SocketAddr,
    /// `SESAME_IDLE_SECS`: the idle timeout (default 30 minutes).
    pub idle: Duration,
    /// `SESAME_SNAPSHOT`: the snapshot file; `None`: no snapshots.
    pub snapshot: Option<PathBuf>,
    /// `SESAME_SECRET_FILE`, else `<snapshot>.key` when there is a
    /// snapshot: the secret key's file; `None`: a random key per process.
    pub secret_file: Option<PathBuf>,
    /// How often a snapshot is saved while serving.
    pub snapshot_every: Duration,
    /// `SESAME_REDIS_URL`: keep the sessions in this Redis (needs the
    /// `redis` feature and `SESAME_SECRET_FILE`); `None`: in the process.
    pub redis_url: Option<String>,
    /// `SESAME_PUBLIC_ORIGIN`: the origin browsers use to reach the demo
    /// (`https://host[:port]`); `None`: `http://` and the request's `Host`.
    pub public_origin: Option<Origin>,
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, BoxError> {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// Reads the settings through `var`, which looks up a variable by name
    /// (tests pass a map; the process environment is shared by all tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Result<Self, BoxError> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let text = |name: &str| -> Result<Option<String>, BoxError> {
            match var(name) {
                None => Ok(None),
                Some(v) => v
                    .into_string()
                    .map(Some)
                    .map_err(|v| format!("{name}: expected UTF-8, got {v:?}").into()),
            }
        };
        let addr = match text("SESAME_ADDR")? {
            Some(s) => s
                .parse()
                .map_err(|_| format!("SESAME_ADDR: expected host:port, got {s:?}"))?,
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        let idle = match text("SESAME_IDLE_SECS")? {
            Some(s) => s
                .parse::<u64>()
                .map_err(|_| format!("SESAME_IDLE_SECS: expected whole seconds, got {s:?}"))?,
            None => 1800,
        };
        let snapshot = var("SESAME_SNAPSHOT").map(PathBuf::from);
        let secret_file = var("SESAME_SECRET_FILE")
            .map(PathBuf::from)
            .or_else(|| snapshot.as_deref().map(|p| with_suffix(p, ".key")));
        Ok(Self {
            addr,
            idle: Duration::from_secs(idle),
            snapshot,
            secret_file,
            snapshot_every: SNAPSHOT_EVERY,
            redis_url: text("SESAME_REDIS_URL")?,
            public_origin: text("SESAME_PUBLIC_ORIGIN")?
                .map(|s| {
                    Origin::parse(&s).map_err(|_| {
                        format!("SESAME_PUBLIC_ORIGIN: expected http(s)://host[:port], got {s:?}")
                    })
                })
                .transpose()?,
        })
    }
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// What [`start`] did with the snapshot file.
#[derive(Debug)]
pub enum Restore {
    /// No `SESAME_SNAPSHOT`: snapshots are off.
    Off,
    /// No file yet (a first start): the server starts empty.
    NoFile,
    /// The file was loaded.
    Loaded(LoadReport),
    /// The file did not load; the server starts empty. The file was moved
    /// to `moved_to` so that no save overwrites it; when it could not be
    /// moved (`None`), snapshots are off for this run, for the same reason.
    Rejected {
        /// Why the file did not load.
        error: SnapshotError,
        /// Where the refused file now is.
        moved_to: Option<PathBuf>,
    },
}

/// A started demo: the engine with its sessions restored, and the periodic
/// snapshot task when snapshots are on. Hand it to [`serve`].
#[derive(Debug)]
pub struct Demo {
    /// The engine.
    pub sessions: DemoSessions,
    /// What happened to the snapshot file.
    pub restore: Restore,
    task: Option<SnapshotTask<Visits, String>>,
    /// With `SESAME_REDIS_URL`: the Redis store, which then serves every
    /// request (`sessions` stays empty and unused).
    #[cfg(feature = "redis")]
    pub redis: Option<DemoRedis>,
    /// The origin browsers use (`SESAME_PUBLIC_ORIGIN`), for the
    /// cross-site check.
    pub public_origin: Option<Origin>,
}

/// Builds the engine from `config`: reads (or creates) the secret key file,
/// opens the snapshot store (its state file beside the key: generation and
/// revocation journal), restores the snapshot, saves it back at once (so
/// that an unwritable snapshot path stops the server now rather than losing
/// every session at shutdown) and starts the periodic snapshot task.
///
/// A snapshot that does not load is not an error (see [`Restore`]); an
/// unusable key file, an unwritable snapshot or a bad setting is.
pub fn start(config: &Config) -> Result<Demo, BoxError> {
    if let Some(url) = &config.redis_url {
        return start_redis(config, url);
    }
    let mut builder = DemoSessions::builder()
        .idle_timeout(config.idle)
        .absolute_timeout(config.idle.max(sesame::config::DEFAULT_ABSOLUTE_TIMEOUT));
    if let Some(file) = &config.secret_file {
        let key = sesame::snapshot::load_or_create_key(file)
            .map_err(|e| format!("secret key file {}: {}", file.display(), describe(&e)))?;
        builder = builder.secret_key(key);
    }
    let sessions = builder.build()?;
    let Some(path) = &config.snapshot else {
        return Ok(Demo {
            sessions,
            restore: Restore::Off,
            task: None,
            #[cfg(feature = "redis")]
            redis: None,
            public_origin: config.public_origin.clone(),
        });
    };
    // `from_vars` derives a key file whenever there is a snapshot.
    let key_file = config
        .secret_file
        .as_deref()
        .ok_or("SESAME_SNAPSHOT needs a secret key file")?;
    let state = with_suffix(key_file, ".state");
    let store = SnapshotStore::open(&sessions, path, &state)
        .map_err(|e| format!("snapshot state file {}: {}", state.display(), describe(&e)))?;
    let restore = restore(&store);
    let task = match &restore {
        Restore::Rejected { moved_to: None, .. } => None,
        _ => {
            store.save().map_err(|e| {
                format!(
                    "SESAME_SNAPSHOT {}: cannot save: {}",
                    path.display(),
                    describe(&e)
                )
            })?;
            Some(store.save_every(config.snapshot_every))
        }
    };
    Ok(Demo {
        sessions,
        restore,
        task,
        #[cfg(feature = "redis")]
        redis: None,
        public_origin: config.public_origin.clone(),
    })
}

/// [`start`] with `SESAME_REDIS_URL`: the sessions live in Redis, under the
/// key from `SESAME_SECRET_FILE` that every server on this Redis shares.
#[cfg(feature = "redis")]
fn start_redis(config: &Config, url: &str) -> Result<Demo, BoxError> {
    let Some(file) = &config.secret_file else {
        return Err("SESAME_REDIS_URL needs SESAME_SECRET_FILE: \
                    every server on one Redis must share the secret key"
            .into());
    };
    if let Some(path) = &config.snapshot {
        tracing::warn!(
            "SESAME_SNAPSHOT {} ignored: with SESAME_REDIS_URL the sessions live in Redis",
            path.display()
        );
    }
    let key = sesame::snapshot::load_or_create_key(file)
        .map_err(|e| format!("secret key file {}: {}", file.display(), describe(&e)))?;
    // `redis+cluster://host:port/` (seeds separated by commas): a cluster.
    let redis = sesame::redis::RedisSessions::builder(url)
        .secret_key(key)
        .idle_timeout(config.idle)
        .absolute_timeout(config.idle.max(sesame::config::DEFAULT_ABSOLUTE_TIMEOUT))
        .build()
        .map_err(|e| format!("SESAME_REDIS_URL: {e}"))?;
    // `start` runs inside the server's runtime: the store's connections and
    // its invalidation task live there. Readiness is only logged; requests
    // needing a session answer 503 until Redis answers.
    let probe = redis.clone();
    tokio::spawn(async move {
        if !probe.wait_ready(Duration::from_secs(2)).await {
            tracing::warn!(
                "Redis not reachable yet: requests needing a session answer 503 until it is"
            );
        }
    });
    tracing::info!("sessions live in Redis");
    Ok(Demo {
        sessions: DemoSessions::new(),
        restore: Restore::Off,
        task: None,
        redis: Some(redis),
        public_origin: config.public_origin.clone(),
    })
}

#[cfg(not(feature = "redis"))]
fn start_redis(_: &Config, _: &str) -> Result<Demo, BoxError> {
    Err("SESAME_REDIS_URL needs the demo built with `--features axum,snapshot,redis`".into())
}

/// Loads the store's snapshot, less what its journal says ended, logging
/// what it did; a file that does not load is moved aside.
fn restore(store: &SnapshotStore<Visits, String>) -> Restore {
    let path = store.path();
    let shown = path.display();
    match store.load() {
        Ok(None) => {
            tracing::info!("no snapshot at {shown} yet: starting empty");
            Restore::NoFile
        }
        Ok(Some(r)) => {
            tracing::info!(
                restored = r.restored,
                expired = r.expired,
                duplicates = r.duplicates,
                refused_full = r.refused_full,
                ended = r.ended,
                "snapshot {shown} loaded"
            );
            Restore::Loaded(r)
        }
        Err(error) => {
            let why = describe(&error);
            let moved_to = match set_aside(path) {
                Ok(to) => {
                    tracing::warn!(
                        "snapshot {shown} refused ({why}): moved to {}, starting empty",
                        to.display()
                    );
                    Some(to)
                }
                Err(e) => {
                    tracing::error!(
                        "snapshot {shown} refused ({why}) and not moved aside ({e}): \
                         starting empty, snapshots off for this run so that it is not overwritten"
                    );
                    None
                }
            };
            Restore::Rejected { error, moved_to }
        }
    }
}

/// Renames a refused snapshot to `<path>.rejected` (or `.rejected.1`, ...:
/// an earlier refused file is kept too).
fn set_aside(path: &std::path::Path) -> std::io::Result<PathBuf> {
    for n in 0..100 {
        let to = match n {
            0 => with_suffix(path, ".rejected"),
            n => with_suffix(path, &format!(".rejected.{n}")),
        };
        if !to.try_exists()? {
            std::fs::rename(path, &to)?;
            return Ok(to);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "100 rejected snapshots already kept",
    ))
}

/// A snapshot error with its cause (an I/O error's text).
fn describe(e: &SnapshotError) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Serves `demo` on `listener` until `shutdown` completes, lets requests in
/// flight finish, then saves the final snapshot (when snapshots are on) and
/// returns what it saved.
///
/// # Errors
///
/// When serving or the final save fails (both are logged).
pub async fn serve(
    listener: tokio::net::TcpListener,
    demo: Demo,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Option<SaveReport>, BoxError> {
    let Demo {
        sessions,
        task,
        public_origin,
        ..
    } = demo;
    #[cfg(feature = "redis")]
    let app = match demo.redis {
        Some(redis) => router_for(redis, public_origin),
        None => router_for(sessions, public_origin),
    };
    #[cfg(not(feature = "redis"))]
    let app = router_for(sessions, public_origin);
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    if let Err(e) = &served {
        tracing::error!("serving failed: {e}");
    }
    let Some(task) = task else {
        return Ok(served.map(|()| None)?);
    };
    // Joins the saver thread and writes a file: not on the async runtime.
    match tokio::task::spawn_blocking(move || task.finish()).await? {
        Ok(report) => {
            tracing::info!(saved = report.saved, bytes = report.bytes, "snapshot saved");
            served?;
            Ok(Some(report))
        }
        Err(e) => {
            tracing::error!(
                "final snapshot failed, the previous one stays: {}",
                describe(&e)
            );
            served?;
            Err(e.into())
        }
    }
}

/// Completes on Ctrl-C, or on SIGTERM on Unix (what `kill`, systemd and
/// container runtimes send).
async fn shutdown_signal() {
    // If a handler cannot be installed, wait for the other one.
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: finishing requests in flight, then exiting"),
        () = term => tracing::info!("SIGTERM: finishing requests in flight, then exiting"),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt().with_target(false).init();
    let config = Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let demo = start(&config)?;
    tracing::info!("sesame demo listening on http://{}", listener.local_addr()?);
    serve(listener, demo, shutdown_signal()).await?;
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

/// The response to a store error, logged: `sesame::Error`'s own (`503`
/// with `Retry-After` when the store is full or cannot be reached, `409`
/// when the session ended or changed hands while the request ran, `500`
/// for data that does not decode; fixed bodies).
fn unavailable(e: Error) -> Response {
    tracing::warn!("session store: {e}");
    e.into_response()
}

/// `?` for store results in handlers.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return unavailable(e),
        }
    };
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "not logged in" })),
    )
        .into_response()
}

/// `GET /`: counts this session's visits (the first visit creates it).
async fn index<S: DemoStore>(session: DemoSession<S>) -> Response {
    let count = tri!(
        session
            .update(|v| {
                v.count += 1;
                v.count
            })
            .await
    );
    let who = match tri!(session.principal().await) {
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
async fn login<S: DemoStore>(
    session: DemoSession<S>,
    Form(credentials): Form<Credentials>,
) -> Response {
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
    match session.login(user.to_owned()).await {
        Ok(()) => Redirect::to("/protected").into_response(),
        Err(e) => unavailable(e),
    }
}

/// `GET /protected`: the user's page, with their devices, or `303` to
/// `/login`.
async fn protected<S: DemoStore>(session: DemoSession<S>) -> Response {
    let Some(current) = tri!(session.info().await) else {
        return Redirect::to("/login").into_response();
    };
    let Some(user) = current.principal.as_ref() else {
        return Redirect::to("/login").into_response();
    };
    let devices: String = tri!(session.store().sessions_of(user).await)
        .iter()
        .map(|s| {
            let (agent, address) = device_text(s);
            let this = if s.handle == current.handle {
                " <strong>(this device)</strong>"
            } else {
                ""
            };
            format!(
                "<li>{} from {}, last seen {}{this}</li>",
                escape(&agent),
                escape(&address),
                unix(s.last_seen)
            )
        })
        .collect();
    page(
        "Your page",
        &format!(
            "<p>Hello, <strong id=\"user\">{}</strong>.</p>\
             <form method=\"post\" action=\"/logout\"><button>Log out</button></form>\
             <form method=\"post\" action=\"/logout-all\"><button>Log out everywhere</button></form>\
             <h2>Your devices</h2><ul id=\"devices\">{devices}</ul>\
             <form method=\"post\" action=\"/logout-others\">\
             <button>Sign out of all other devices</button></form>\
             <p><a href=\"/api/sessions\">Your sessions</a></p>",
            escape(user)
        ),
    )
    .into_response()
}

/// A session's device as text for the page: user agent and address, or
/// "unknown" for what was not recorded.
fn device_text(s: &SessionInfo<String>) -> (String, String) {
    let device = s.device.as_ref();
    let agent = device.and_then(|d| d.user_agent.clone());
    let address = device.and_then(|d| d.address).map(|a| a.to_string());
    (
        agent.unwrap_or_else(|| "unknown browser".to_owned()),
        address.unwrap_or_else(|| "unknown address".to_owned()),
    )
}

/// `GET /api/me`: the user and the session's times, or `401`.
async fn me<S: DemoStore>(session: DemoSession<S>) -> Response {
    match tri!(session.info().await) {
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
async fn logout<S: DemoStore>(session: DemoSession<S>) -> Response {
    tri!(session.logout().await);
    Redirect::to("/").into_response()
}

/// `POST /logout-all`: ends every session of the current user, `303` to
/// `/`; `401` when not logged in.
async fn logout_all<S: DemoStore>(session: DemoSession<S>) -> Response {
    if tri!(session.principal().await).is_none() {
        return unauthorized();
    }
    let ended = tri!(session.logout_everywhere().await);
    tracing::info!(ended, "logged out everywhere");
    Redirect::to("/").into_response()
}

/// `POST /logout-others`: ends every other session of the current user
/// ("sign out of all other devices") and keeps this one, `303` to
/// `/protected`; `401` when not logged in.
async fn logout_others<S: DemoStore>(session: DemoSession<S>) -> Response {
    if tri!(session.principal().await).is_none() {
        return unauthorized();
    }
    let ended = tri!(session.logout_others().await);
    tracing::info!(ended, "signed out of other devices");
    Redirect::to("/protected").into_response()
}

/// `GET /api/sessions`: the current user's sessions with their devices
/// (never tokens).
async fn list_sessions<S: DemoStore>(session: DemoSession<S>) -> Response {
    let Some(current) = tri!(session.info().await) else {
        return unauthorized();
    };
    let Some(user) = current.principal.as_ref() else {
        return unauthorized();
    };
    let list: Vec<_> = tri!(session.store().sessions_of(user).await)
        .into_iter()
        .map(|s| {
            let device = s.device.as_ref();
            json!({
                "handle": s.handle.to_string(),
                "user_agent": device.and_then(|d| d.user_agent.as_deref()),
                "address": device.and_then(|d| d.address).map(|a| a.to_string()),
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
async fn end_session<S: DemoStore>(
    session: DemoSession<S>,
    Path(handle): Path<String>,
) -> Response {
    let Some(current) = tri!(session.info().await) else {
        return unauthorized();
    };
    let Some(user) = current.principal else {
        return unauthorized();
    };
    let Ok(handle) = handle.parse::<Handle>() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let ended = if handle == current.handle {
        tri!(session.logout().await)
    } else {
        tri!(session.store().revoke(&user, handle).await)
    };
    if ended {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// `GET /healthz`: the store's counters. Takes no session.
async fn healthz<S: DemoStore>(State(sessions): State<S>) -> Json<serde_json::Value> {
    Json(sessions.health())
}
