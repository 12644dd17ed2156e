//! A throwaway `redis-server` for tests and benches: a free loopback port,
//! no persistence unless asked, killed (and its directory removed) on drop.
//!
//! When `redis-server` cannot start, [`RedisServer::start`] returns `None`
//! (the test returns early, saying so on stderr) — except under CI
//! (`CI=true`), where it panics: CI must fail, never skip.
#![allow(dead_code)]

pub mod cluster;
pub mod sentinel;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after start.
const START_DEADLINE: Duration = Duration::from_secs(10);

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    persistent: bool,
    /// More `redis-server` arguments (a cluster node's, say).
    extra: Vec<String>,
}

pub(crate) fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// A server without persistence.
    pub fn start() -> Option<Self> {
        Self::start_with(false)
    }

    /// A server with an append-only file fsynced on every write, so a
    /// SIGKILL loses nothing and a restart brings the data back.
    pub fn start_persistent() -> Option<Self> {
        Self::start_with(true)
    }

    fn start_with(persistent: bool) -> Option<Self> {
        Self::start_with_args(persistent, &[])
    }

    /// A server without persistence, with more `redis-server` arguments.
    pub fn start_with_args(persistent: bool, extra: &[&str]) -> Option<Self> {
        let mut last = String::new();
        let clustered = extra.contains(&"--cluster-enabled");
        for _ in 0..5 {
            // A cluster node also listens on its port + 10000 (the cluster
            // bus): both must be free, so below 55536.
            let port = if clustered {
                cluster::free_port_pair()
            } else {
                free_port()
            };
            let dir = std::env::temp_dir().join(format!(
                "sesame-redis-{}-{port}-{}",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let mut server = RedisServer {
                child: None,
                port,
                dir,
                persistent,
                extra: extra.iter().map(|a| (*a).to_owned()).collect(),
            };
            match server.spawn() {
                Ok(()) => return Some(server),
                Err(e) => last = e,
            }
        }
        if under_ci() {
            panic!("redis-server could not start under CI: {last}");
        }
        eprintln!("skipping: redis-server could not start ({last}); install it to run this test");
        None
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .arg("--daemonize")
            .arg("no")
            .arg("--logfile")
            .arg("")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.args(&self.extra);
        let child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("exited at start with {status}"));
            }
            if self.ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        Err("no answer to PING within 10 s".into())
    }

    fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut con).is_ok()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A plain connection, for inspecting what is stored.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("connect to the test redis")
    }

    /// The server's process id (to freeze it with SIGSTOP, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGSTOP: the server keeps its sockets open (connections are still
    /// accepted by the kernel) but answers nothing, as a hung host does.
    /// The guard sends SIGCONT when dropped, also when a test fails.
    pub fn freeze(&self) -> Frozen {
        let pid = self.pid().expect("a running redis-server");
        assert!(signal("-STOP", pid), "kill -STOP {pid}");
        Frozen { pid }
    }

    /// SIGKILL, and reap the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => panic!("redis-server restart: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// A frozen server (see [`RedisServer::freeze`]); thawed on drop.
pub struct Frozen {
    pid: u32,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-CONT", self.pid);
    }
}

/// `kill <sig> <pid>`; whether it succeeded.
fn signal(sig: &str, pid: u32) -> bool {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// Polls `f` every millisecond until it returns true or `within` passes.
/// Returns the time it took, or `None` on timeout.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// [`eventually`] for async checks: awaits `f` every millisecond (a tokio
/// sleep, so the runtime's other tasks run) until it returns true or
/// `within` passes. Returns the time it took, or `None` on timeout.
pub async fn eventually_async(
    within: Duration,
    mut f: impl AsyncFnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f().await {
            return Some(start.elapsed());
        }
        if start.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
