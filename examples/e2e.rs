//! End-to-end bench server: one axum handler that reads and updates a
//! session counter, behind sesame's layer or tower-sessions (its
//! `MemoryStore` or its moka store). Driven by `benches/e2e.sh`.
//!
//! ```text
//! cargo run --release --features axum --example e2e -- STORE PORT SESSIONS COOKIE_FILE
//! ```
//!
//! `STORE` is `sesame`, `tower_sessions` or `tower_sessions_moka`, or, with
//! the feature `tower-sessions`, `tower_sessions_sesame` (the same
//! tower-sessions app as `tower_sessions`, on `sesame::tower_sessions::SesameStore`
//! instead of `MemoryStore`). The server creates `SESSIONS` sessions before it
//! listens and writes one `Cookie` header value per line to `COOKIE_FILE`, so
//! that the load generator spreads its requests over live sessions (no
//! creation in the measured loop, the same for every store). It prints the
//! resident memory the sessions took, per session, to stderr
//! (`rss_per_session=… B`). It listens on 127.0.0.1 only and runs until killed.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use sesame::Sessions;
use sesame::axum::SessionRouterExt as _;
use sesame::tower::{Session, SessionLayer};
use tower_sessions::session::{Id, Record};
use tower_sessions::{MemoryStore, SessionManagerLayer, SessionStore};
use tower_sessions_moka_store::MokaStore;

/// sesame: the counter lives in the engine, updated in place.
async fn sesame_visit(session: Session<u64>) -> String {
    session
        .update(|n| {
            *n += 1;
            n.to_string()
        })
        .await
        .unwrap_or_default()
}

/// tower-sessions: read the counter, write it back (saved by the layer).
async fn tower_visit(session: tower_sessions::Session) -> String {
    let n: u64 = session.get("n").await.ok().flatten().unwrap_or(0);
    let _ = session.insert("n", n + 1).await;
    (n + 1).to_string()
}

async fn tower_fill(store: &impl SessionStore, n: usize) -> Vec<String> {
    let mut cookies = Vec::with_capacity(n);
    for _ in 0..n {
        let mut r = Record {
            id: Id::default(),
            data: HashMap::from([("n".to_owned(), 0u64.into())]),
            expiry_date: time::OffsetDateTime::now_utc() + Duration::from_secs(3600),
        };
        store.create(&mut r).await.expect("store");
        cookies.push(format!("id={}", r.id));
    }
    cookies
}

/// The process's resident memory in bytes (Linux; `None` elsewhere).
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, store, port, n, cookie_file] = args.as_slice() else {
        return Err("usage: e2e STORE PORT SESSIONS COOKIE_FILE".into());
    };
    let n: usize = n.parse()?;
    let before = rss();
    let (app, cookies): (Router, Vec<String>) = match store.as_str() {
        "sesame" => {
            let sessions = Sessions::<u64>::builder()
                .idle_timeout(Duration::from_secs(3600))
                .max_sessions(n * 2 + 1024)
                .build()?;
            let cookies = (0..n)
                .map(|_| {
                    let (t, _) = sessions.create(0).expect("room");
                    format!("__Host-id={}", t.as_str())
                })
                .collect();
            let app = Router::new()
                .route("/", get(sesame_visit))
                .session_layer(SessionLayer::new(sessions.clone()))
                .with_state(sessions);
            (app, cookies)
        }
        "tower_sessions" => {
            let store = MemoryStore::default();
            let cookies = tower_fill(&store, n).await;
            let app = Router::new()
                .route("/", get(tower_visit))
                .layer(SessionManagerLayer::new(store));
            (app, cookies)
        }
        "tower_sessions_moka" => {
            let store = MokaStore::new(Some(n as u64 * 2 + 1024));
            let cookies = tower_fill(&store, n).await;
            let app = Router::new()
                .route("/", get(tower_visit))
                .layer(SessionManagerLayer::new(store));
            (app, cookies)
        }
        #[cfg(feature = "tower-sessions")]
        "tower_sessions_sesame" => {
            let store = sesame::tower_sessions::SesameStore::new(
                Sessions::builder()
                    .idle_timeout(Duration::from_secs(3600))
                    .max_sessions(n * 2 + 1024)
                    .build()?,
            );
            let cookies = tower_fill(&store, n).await;
            let app = Router::new()
                .route("/", get(tower_visit))
                .layer(SessionManagerLayer::new(store));
            (app, cookies)
        }
        other => return Err(format!("unknown store {other}").into()),
    };
    if let (Some(before), Some(after)) = (before, rss()) {
        // The sessions' share: less the cookie list kept for the file.
        let list = cookies.capacity() * std::mem::size_of::<String>()
            + cookies.iter().map(String::capacity).sum::<usize>();
        let bytes = after.saturating_sub(before).saturating_sub(list as u64);
        eprintln!("rss_per_session={} B", bytes / n.max(1) as u64);
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(cookie_file)?);
    for c in &cookies {
        writeln!(f, "{c}")?;
    }
    f.flush()?;
    drop(f);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>()?)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
