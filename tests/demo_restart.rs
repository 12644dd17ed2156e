//! The demo with `SESAME_SNAPSHOT`: a login survives a graceful restart of
//! the server, a logout or revocation survives a SIGKILL, a snapshot the
//! server cannot load is moved aside (never overwritten) and the server
//! starts empty, and a bad key file stops the start. Each server runs the
//! demo's own [`demo::start`] and [`demo::serve`] (what `main` runs) on an
//! ephemeral loopback port, stopped through the same graceful-shutdown path
//! as Ctrl-C; for the SIGKILL test, in a child process (this test binary,
//! re-run as [`demo_child_process`]) that receives real signals.

#[allow(dead_code)] // `main` and the router-only helpers are the binary's
#[path = "../examples/demo.rs"]
mod demo;
mod support;

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use demo::{BoxError, Config, Restore};
use reqwest::StatusCode;
use sesame::snapshot::{SaveReport, SnapshotErrorKind};
use support::{Http, LogBuffer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::instrument::WithSubscriber as _;

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("sesame-demo-restart-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The demo's settings from these environment variables only.
fn config(vars: &[(&str, &Path)]) -> Config {
    let vars: HashMap<&str, OsString> = vars
        .iter()
        .map(|&(k, v)| (k, v.as_os_str().to_owned()))
        .collect();
    Config::from_vars(|name| vars.get(name).cloned()).expect("valid settings")
}

/// A demo server running on its own task.
struct Running {
    http: Http,
    log: LogBuffer,
    stop: oneshot::Sender<()>,
    done: JoinHandle<Result<Option<SaveReport>, BoxError>>,
}

impl Running {
    /// Starts the demo as `main` does, but on an ephemeral port and with a
    /// shutdown signal the test controls.
    async fn launch(config: &Config) -> (Self, Restore) {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind an ephemeral loopback port");
        let addr = listener.local_addr().expect("local addr");
        // This server's own log: what `start` logs, and what `serve` logs
        // itself (not its per-connection tasks, so not the request log).
        let log = LogBuffer::default();
        let dispatch = tracing::Dispatch::new(
            tracing_subscriber::fmt()
                .with_writer(log.clone())
                .with_ansi(false)
                .finish(),
        );
        let mut started = tracing::dispatcher::with_default(&dispatch, || demo::start(config))
            .expect("the demo starts");
        let restore = std::mem::replace(&mut started.restore, Restore::Off);
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let done = tokio::spawn(demo::serve(listener, started, shutdown).with_subscriber(dispatch));
        let running = Self {
            http: Http::new(addr),
            log,
            stop,
            done,
        };
        (running, restore)
    }

    /// Shuts the server down gracefully; returns its final save and its
    /// log.
    async fn shut_down(self) -> (Option<SaveReport>, String) {
        self.stop.send(()).expect("the server is still running");
        let saved = tokio::time::timeout(Duration::from_secs(20), self.done)
            .await
            .expect("graceful shutdown within 20 s")
            .expect("the server task did not panic")
            .expect("serving and the final save succeed");
        (saved, self.log.text())
    }
}

fn assert_no_token_in(file: &Path, tokens: &[&str]) {
    let bytes = std::fs::read(file).expect("read file");
    for token in tokens {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "a token in {}",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_survives_a_graceful_restart() {
    let dir = TempDir::new("survives");
    let snap = dir.join("sessions.snap");
    let config = config(&[("SESAME_SNAPSHOT", &snap)]);
    let key_file = dir.join("sessions.snap.key");
    assert_eq!(config.secret_file.as_deref(), Some(key_file.as_path()));

    let (first, restore) = Running::launch(&config).await;
    assert!(matches!(restore, Restore::NoFile), "{restore:?}");
    let alice = first.http.login("alice", "wonderland").await;
    assert_eq!(first.http.get("/", Some(&alice)).await.visits(), 1);
    assert_eq!(first.http.get("/", Some(&alice)).await.visits(), 2);
    let anon = first.http.get("/", None).await.token().expect("a session");
    let (saved, log) = first.shut_down().await;
    let saved = saved.expect("snapshots are on");
    assert_eq!(saved.saved, 2, "alice's session and the anonymous one");
    assert!(
        log.contains("no snapshot at") && log.contains("starting empty"),
        "{log}"
    );
    assert!(log.contains("snapshot saved saved=2"), "{log}");
    let mut logs = vec![log];

    // Tokens never touch the disk; the key file is private.
    assert_no_token_in(&snap, &[&alice, &anon]);
    assert_no_token_in(&key_file, &[&alice, &anon]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    }

    let (second, restore) = Running::launch(&config).await;
    match restore {
        Restore::Loaded(r) => {
            assert_eq!((r.restored, r.expired, r.duplicates), (2, 0, 0), "{r:?}");
        }
        other => panic!("expected the snapshot loaded, got {other:?}"),
    }
    let page = second.http.get("/protected", Some(&alice)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"user\">alice<"), "{}", page.body);
    assert!(page.set_cookies().is_empty(), "the same cookie, kept");
    let me = second.http.get("/api/me", Some(&alice)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["user"], "alice");
    // The session data came back too.
    assert_eq!(second.http.get("/", Some(&alice)).await.visits(), 3);
    assert_eq!(second.http.get("/", Some(&anon)).await.visits(), 2);
    let stats = second.http.get("/healthz", None).await.json();
    assert_eq!(
        (stats["live"].as_u64(), stats["created"].as_u64()),
        (Some(2), Some(0))
    );
    let (saved, log) = second.shut_down().await;
    assert_eq!(saved.map(|r| r.saved), Some(2));
    assert!(log.contains("restored=2 expired=0"), "{log}");
    logs.push(log);
    for log in &logs {
        assert!(
            !log.contains(&alice) && !log.contains(&anon),
            "a token in the log:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_under_another_key_is_moved_aside_and_the_server_starts_empty() {
    let dir = TempDir::new("foreign");
    let snap = dir.join("sessions.snap");
    let (key_a, key_b) = (dir.join("a.key"), dir.join("b.key"));
    let config_a = config(&[("SESAME_SNAPSHOT", &snap), ("SESAME_SECRET_FILE", &key_a)]);
    let config_b = config(&[("SESAME_SNAPSHOT", &snap), ("SESAME_SECRET_FILE", &key_b)]);

    let (first, _) = Running::launch(&config_a).await;
    let alice = first.http.login("alice", "wonderland").await;
    assert_eq!(first.shut_down().await.0.map(|r| r.saved), Some(1));
    let original = std::fs::read(&snap).unwrap();

    let (second, restore) = Running::launch(&config_b).await;
    let rejected = dir.join("sessions.snap.rejected");
    match restore {
        Restore::Rejected { error, moved_to } => {
            assert_eq!(error.kind(), SnapshotErrorKind::ForeignKey);
            assert_eq!(moved_to.as_deref(), Some(rejected.as_path()));
        }
        other => panic!("expected the snapshot refused, got {other:?}"),
    }
    assert_eq!(std::fs::read(&rejected).unwrap(), original, "kept intact");
    let health = second.http.get("/healthz", None).await.json();
    assert_eq!(health["live"], 0, "started empty");
    let me = second.http.get("/api/me", Some(&alice)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert!(me.set_cookies().is_empty(), "a dead cookie is left alone");
    let page = second.http.get("/protected", Some(&alice)).await;
    assert_eq!(page.location(), Some("/login"));
    let (saved, log) = second.shut_down().await;
    assert_eq!(saved.map(|r| r.saved), Some(0));
    assert!(
        log.contains("refused (snapshot written under another secret key")
            && log.contains("moved to ")
            && log.contains("sessions.snap.rejected, starting empty"),
        "{log}"
    );

    // The refused file still holds alice's session for its own key.
    assert_eq!(std::fs::read(&rejected).unwrap(), original);
    let with_a = demo::start(&config(&[("SESAME_SECRET_FILE", &key_a)])).unwrap();
    let report = with_a.sessions.load_snapshot(&rejected).unwrap();
    assert_eq!(report.restored, 1);
    assert_eq!(
        with_a
            .sessions
            .info(alice.as_str())
            .unwrap()
            .principal
            .as_deref(),
        Some("alice")
    );
    // And the path now holds key b's (empty) snapshot.
    let with_b = demo::start(&config(&[("SESAME_SECRET_FILE", &key_b)])).unwrap();
    assert_eq!(with_b.sessions.load_snapshot(&snap).unwrap().restored, 0);
}

#[test]
fn damaged_snapshots_are_moved_aside_one_by_one() {
    let dir = TempDir::new("damaged");
    let snap = dir.join("sessions.snap");
    let config = config(&[("SESAME_SNAPSHOT", &snap)]);
    let damaged: [&[u8]; 2] = [b"not a snapshot", &[0x5a; 4096]];
    let aside = [
        dir.join("sessions.snap.rejected"),
        dir.join("sessions.snap.rejected.1"),
    ];
    for (bytes, aside) in damaged.iter().zip(&aside) {
        std::fs::write(&snap, bytes).unwrap();
        let started = demo::start(&config).expect("a bad snapshot does not stop the start");
        match &started.restore {
            Restore::Rejected { moved_to, .. } => assert_eq!(moved_to.as_ref(), Some(aside)),
            other => panic!("expected the snapshot refused, got {other:?}"),
        }
        assert!(started.sessions.is_empty());
        // A fresh, loadable snapshot took its place at start.
        assert_eq!(
            started.sessions.load_snapshot(&snap).unwrap().restored,
            0,
            "saved at start"
        );
    }
    for (bytes, aside) in damaged.iter().zip(&aside) {
        assert_eq!(
            &std::fs::read(aside).unwrap(),
            bytes,
            "each refused file kept"
        );
    }
}

#[test]
fn settings_choose_the_key_file_and_default_to_a_random_key() {
    let dir = TempDir::new("settings");
    let none = config(&[]);
    assert_eq!(none.addr, SocketAddr::from(([127, 0, 0, 1], 3000)));
    assert_eq!(none.idle, Duration::from_secs(1800));
    assert_eq!(
        (none.snapshot.as_ref(), none.secret_file.as_ref()),
        (None, None)
    );
    let empty = config(&[("SESAME_SNAPSHOT", Path::new(""))]);
    assert_eq!(empty.snapshot, None, "an empty variable counts as unset");
    let snap = dir.join("s.snap");
    let key = dir.join("elsewhere.key");
    let both = config(&[("SESAME_SNAPSHOT", &snap), ("SESAME_SECRET_FILE", &key)]);
    assert_eq!(both.secret_file.as_ref(), Some(&key));
    assert!(
        Config::from_vars(|n| (n == "SESAME_IDLE_SECS").then(|| "soon".into())).is_err(),
        "a bad setting is an error"
    );

    // Without either variable each start draws its own key and writes nothing.
    let one = demo::start(&none).unwrap();
    let two = demo::start(&none).unwrap();
    assert!(matches!(one.restore, Restore::Off));
    let (token, _) = one.sessions.create(demo::Visits { count: 7 }).unwrap();
    let mut bytes = Vec::new();
    one.sessions.write_snapshot(&mut bytes).unwrap();
    let foreign = two.sessions.load_snapshot_bytes(&bytes).unwrap_err();
    assert_eq!(foreign.kind(), SnapshotErrorKind::ForeignKey);

    // With only SESAME_SECRET_FILE, the key is kept (no snapshot written).
    let keyed = config(&[("SESAME_SECRET_FILE", &key)]);
    assert_eq!(keyed.snapshot, None);
    let one = demo::start(&keyed).unwrap();
    let two = demo::start(&keyed).unwrap();
    assert!(matches!(one.restore, Restore::Off));
    let (token2, _) = one.sessions.create(demo::Visits { count: 8 }).unwrap();
    bytes.clear();
    one.sessions.write_snapshot(&mut bytes).unwrap();
    assert_eq!(
        two.sessions.load_snapshot_bytes(&bytes).unwrap().restored,
        1
    );
    assert_eq!(two.sessions.get(&token2).map(|v| v.count), Some(8));
    assert!(two.sessions.get(&token).is_none(), "not from another key");
    let files: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(files.len(), 1, "only the key file: {files:?}");
}

#[test]
fn an_unusable_key_file_or_snapshot_path_stops_the_start() {
    let dir = TempDir::new("unusable");
    let snap = dir.join("sessions.snap");
    let key = dir.join("sessions.snap.key");
    let settings = config(&[("SESAME_SNAPSHOT", &snap)]);

    std::fs::create_dir(&key).unwrap();
    let err = demo::start(&settings).unwrap_err().to_string();
    assert!(err.starts_with("secret key file"), "{err}");
    std::fs::remove_dir(&key).unwrap();

    let missing = dir.join("no-such-dir").join("sessions.snap");
    let err = demo::start(&config(&[
        ("SESAME_SNAPSHOT", &missing),
        ("SESAME_SECRET_FILE", &key),
    ]))
    .unwrap_err()
    .to_string();
    assert!(err.contains("cannot save"), "{err}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        drop(demo::start(&settings).expect("creates the key and a snapshot"));
        let saved = std::fs::read(&snap).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = demo::start(&settings).unwrap_err().to_string();
        assert!(err.contains("0600"), "{err}");
        assert_eq!(
            std::fs::read(&snap).unwrap(),
            saved,
            "the snapshot is untouched"
        );
    }
}

/// Set in a child process: run the demo server instead of the test.
const CHILD: &str = "SESAME_DEMO_RESTART_CHILD";

/// Not a check of its own: the body of the child process that
/// [`DemoProcess::spawn`] starts (this binary, run with [`CHILD`] set and
/// this test's name). It serves the demo with the settings in its
/// environment, as `main` does, until SIGTERM (graceful: the final save) or
/// SIGKILL. Without [`CHILD`] it returns at once.
#[test]
fn demo_child_process() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let config = Config::from_env().expect("valid settings");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let started = demo::start(&config).expect("the demo starts");
        println!("DEMO_RESTORE={:?}", started.restore);
        println!("DEMO_ADDR={}", listener.local_addr().expect("addr"));
        let terminate = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            term.recv().await;
        };
        demo::serve(listener, started, terminate).await
    });
    let saved = served.expect("serving and the final save succeed");
    println!("DEMO_SAVED={saved:?}");
    std::process::exit(0);
}

/// What follows `tag` in `line`.
fn after<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    line.find(tag).map(|at| &line[at + tag.len()..])
}

/// A child process, killed (SIGKILL) and reaped on drop.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The demo served by a child process; killed (SIGKILL) on drop.
struct DemoProcess {
    child: KillOnDrop,
    http: Http,
    /// What the child's `start` did with the snapshot (its `Debug`).
    restore: String,
    lines: std::sync::mpsc::Receiver<String>,
}

impl DemoProcess {
    fn spawn(snapshot: &Path) -> Self {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
            .args([
                "demo_child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env("SESAME_SNAPSHOT", snapshot)
            .env_remove("SESAME_SECRET_FILE")
            .env_remove("SESAME_REDIS_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn the demo");
        let stdout = child.stdout.take().expect("piped");
        // Killed on drop from here on, even if this function panics.
        let child = KillOnDrop(child);
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut restore = None;
        let addr = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("the demo child starts within 60 s");
            // libtest may print `test demo_child_process ... ` first on the
            // same line.
            if let Some(r) = after(&line, "DEMO_RESTORE=") {
                restore = Some(r.to_owned());
            }
            if let Some(a) = after(&line, "DEMO_ADDR=") {
                break a.parse::<SocketAddr>().expect("an address");
            }
        };
        Self {
            child,
            http: Http::new(addr),
            restore: restore.expect("the restore is printed first"),
            lines,
        }
    }

    /// SIGTERM, as systemd sends: the demo's graceful shutdown and final
    /// save. Returns the child's report of that save.
    fn terminate(mut self) -> String {
        let pid = self.child.0.id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success());
        let saved = loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .expect("the demo saves and exits within 30 s of SIGTERM");
            if let Some(s) = after(&line, "DEMO_SAVED=") {
                break s.to_owned();
            }
        };
        assert!(self.child.0.wait().expect("reap").success());
        saved
    }

    /// SIGKILL: no shutdown, no save.
    fn kill(mut self) {
        self.child.0.kill().expect("SIGKILL");
        self.child.0.wait().expect("reap");
    }
}

/// Issue 11 item 12: log in, save, log out / "log out everywhere", SIGKILL
/// before the next save, restart: the ended logins stay ended (before the
/// journal, the restart restored them from the snapshot and the old
/// cookies worked again). A login not ended stays logged in.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_and_a_revocation_survive_a_sigkill() {
    let dir = TempDir::new("sigkill");
    let snap = dir.join("sessions.snap");

    // Run 1: four logins; SIGTERM saves them.
    let first = DemoProcess::spawn(&snap);
    assert_eq!(first.restore, "NoFile");
    let alice_out = first.http.login("alice", "wonderland").await;
    let alice_kept = first.http.login("alice", "wonderland").await;
    let bob = [
        first.http.login("bob", "builder").await,
        first.http.login("bob", "builder").await,
    ];
    let saved = first.terminate();
    assert!(saved.contains("saved: 4"), "{saved}");

    // Run 2: restored; alice logs one session out, bob logs out everywhere;
    // then SIGKILL, with no save after.
    let second = DemoProcess::spawn(&snap);
    assert!(second.restore.contains("restored: 4"), "{}", second.restore);
    for t in [&alice_out, &alice_kept, &bob[0], &bob[1]] {
        assert_eq!(
            second.http.get("/api/me", Some(t)).await.status,
            StatusCode::OK
        );
    }
    let r = second.http.post("/logout", Some(&alice_out), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = second.http.post("/logout-all", Some(&bob[1]), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    for t in [&alice_out, &bob[0], &bob[1]] {
        let me = second.http.get("/api/me", Some(t)).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    }
    second.kill();

    // Run 3: the ended logins stay ended; the other one is back.
    let third = DemoProcess::spawn(&snap);
    for t in [&alice_out, &bob[0], &bob[1]] {
        let me = third.http.get("/api/me", Some(t)).await;
        assert_eq!(
            me.status,
            StatusCode::UNAUTHORIZED,
            "an ended login works again after SIGKILL and restart (restore: {})",
            third.restore
        );
    }
    let me = third.http.get("/api/me", Some(&alice_kept)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["user"], "alice");
    assert!(
        third.restore.contains("restored: 1") && third.restore.contains("ended: 3"),
        "{}",
        third.restore
    );
    drop(third);
}
