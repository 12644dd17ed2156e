//! A throwaway Sentinel deployment for tests: a primary, one replica and
//! one sentinel (quorum 1, a master is down after 500 ms) on free loopback
//! ports; every process killed and every directory removed on drop.
//!
//! Like [`super::RedisServer::start`], [`RedisSentinel::start`] returns
//! `None` when it cannot start, except under CI, where it panics.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{RedisServer, free_port, rand_suffix, under_ci};

/// The monitored service's name.
pub const SERVICE: &str = "sesame-primary";
const DEADLINE: Duration = Duration::from_secs(20);

/// A primary, its replica, and a sentinel watching them.
pub struct RedisSentinel {
    pub primary: RedisServer,
    pub replica: RedisServer,
    sentinel: Option<Child>,
    sentinel_port: u16,
    dir: PathBuf,
}

impl RedisSentinel {
    pub fn start() -> Option<Self> {
        match Self::try_start() {
            Ok(s) => Some(s),
            Err(e) if under_ci() => panic!("redis sentinel could not start under CI: {e}"),
            Err(e) => {
                eprintln!("skipping: redis sentinel could not start ({e})");
                None
            }
        }
    }

    fn try_start() -> Result<Self, String> {
        let primary = RedisServer::start().ok_or("the primary did not start")?;
        let port = primary.port().to_string();
        let replica = RedisServer::start_with_args(false, &["--replicaof", "127.0.0.1", &port])
            .ok_or("the replica did not start")?;
        let dir = std::env::temp_dir().join(format!(
            "sesame-sentinel-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let sentinel_port = free_port();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {port} 1\n\
                 sentinel down-after-milliseconds {SERVICE} 500\n\
                 sentinel failover-timeout {SERVICE} 5000\n\
                 sentinel parallel-syncs {SERVICE} 1\n",
                dir.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn sentinel: {e}"))?;
        let mut me = Self {
            primary,
            replica,
            sentinel: Some(child),
            sentinel_port,
            dir,
        };
        // Ready: the replica has synced and the sentinel knows it (a
        // sentinel promotes only a replica it has discovered).
        let start = Instant::now();
        while !(me.replica_synced() && me.sentinel_knows_replica()) {
            if start.elapsed() > DEADLINE {
                me.kill_sentinel();
                return Err("the replica or the sentinel was not ready within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(me)
    }

    /// The sentinel's URL.
    pub fn sentinel_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.sentinel_port)
    }

    fn sentinel_connection(&self) -> Option<redis::Connection> {
        redis::Client::open(self.sentinel_url())
            .ok()?
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()
    }

    /// The port of the primary the sentinel names now.
    pub fn primary_port(&self) -> Option<u16> {
        let mut con = self.sentinel_connection()?;
        let addr: Vec<String> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(SERVICE)
            .query(&mut con)
            .ok()?;
        addr.get(1)?.parse().ok()
    }

    fn sentinel_knows_replica(&self) -> bool {
        let Some(mut con) = self.sentinel_connection() else {
            return false;
        };
        let replicas: redis::RedisResult<Vec<redis::Value>> = redis::cmd("SENTINEL")
            .arg("replicas")
            .arg(SERVICE)
            .query(&mut con);
        replicas.is_ok_and(|r| !r.is_empty())
    }

    fn replica_synced(&self) -> bool {
        let mut con = self.replica.connection();
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut con)
            .unwrap_or_default();
        info.lines().any(|l| l.trim() == "master_link_status:up")
    }

    /// Closes the primary's connection to its replica (`CLIENT KILL TYPE
    /// replica`): writes made until the replica reconnects reach the primary
    /// only.
    pub fn cut_replica_link(&self) {
        let mut con = self.primary.connection();
        let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("replica")
            .query(&mut con);
    }

    /// Waits until the replica has applied every write the primary has
    /// made so far (replication offsets equal).
    pub fn wait_replicated(&self, within: Duration) -> bool {
        let offset = |server: &RedisServer, field: &str| -> Option<u64> {
            let mut con = server.connection();
            let info: String = redis::cmd("INFO").arg("replication").query(&mut con).ok()?;
            info.lines()
                .find_map(|l| l.trim().strip_prefix(field)?.parse().ok())
        };
        let Some(target) = offset(&self.primary, "master_repl_offset:") else {
            return false;
        };
        let start = Instant::now();
        while start.elapsed() < within {
            if offset(&self.replica, "slave_repl_offset:").is_some_and(|o| o >= target) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Waits until the sentinel names the replica as the primary.
    pub fn wait_promoted(&self, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.primary_port() == Some(self.replica.port()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn kill_sentinel(&mut self) {
        if let Some(mut child) = self.sentinel.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        self.kill_sentinel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
