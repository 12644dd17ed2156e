//! A throwaway Redis Cluster for tests: six `redis-server --cluster-enabled
//! yes` nodes on free loopback ports, joined by `redis-cli --cluster create
//! --cluster-replicas 1` (three masters, each with one replica), every node
//! killed and its directory removed on drop.
//!
//! Like [`super::RedisServer::start`], [`RedisCluster::start`] returns
//! `None` when the cluster cannot start (the test returns early, saying so)
//! except under CI, where it panics.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{RedisServer, under_ci};

/// How long the nodes may take to agree on a healthy cluster.
const HEALTHY_DEADLINE: Duration = Duration::from_secs(20);
/// Node timeout: how long a master may be unreachable before its replica
/// is promoted. Short, so failover tests finish in seconds.
const NODE_TIMEOUT_MS: &str = "1000";
/// Hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// A port whose cluster bus port (port + 10000) is free as well.
pub fn free_port_pair() -> u16 {
    for _ in 0..1000 {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = l.local_addr().map(|a| a.port()) else {
            continue;
        };
        if port < 55_536 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair (port, port + 10000) on 127.0.0.1");
}

/// Six nodes: three masters, three replicas.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts six nodes and joins them into one healthy cluster.
    pub fn start() -> Option<Self> {
        match Self::try_start() {
            Ok(cluster) => Some(cluster),
            Err(e) if under_ci() => panic!("redis cluster could not start under CI: {e}"),
            Err(e) => {
                eprintln!("skipping: redis cluster could not start ({e})");
                None
            }
        }
    }

    fn try_start() -> Result<Self, String> {
        let mut nodes = Vec::with_capacity(6);
        for _ in 0..6 {
            let node = RedisServer::start_with_args(
                false,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    NODE_TIMEOUT_MS,
                    // A replica always stands for election, however long
                    // its link was down (a test kills masters early).
                    "--cluster-replica-validity-factor",
                    "0",
                ],
            )
            .ok_or("a node did not start")?;
            nodes.push(node);
        }
        let cluster = Self { nodes };
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        if !cluster.wait_healthy(HEALTHY_DEADLINE) {
            return Err("the cluster did not become healthy within 20 s".into());
        }
        // Every replica has synced with its master: a failover then loses
        // nothing acknowledged before the test's writes began.
        let start = Instant::now();
        while !cluster.replicas_synced() {
            if start.elapsed() > HEALTHY_DEADLINE {
                return Err("the replicas did not sync within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    /// Every node's URL (`redis://127.0.0.1:port/`), masters and replicas.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    /// Node `i`'s mutable handle (to kill or restart it).
    pub fn node_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// `CLUSTER INFO` and `CLUSTER NODES` of node `i`, if it answers.
    fn query(&self, i: usize, what: &str) -> Option<String> {
        let client = redis::Client::open(self.nodes[i].url()).ok()?;
        let mut con = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        redis::cmd("CLUSTER").arg(what).query(&mut con).ok()
    }

    /// Whether every node that answers says `cluster_state:ok`, sees 16384
    /// slots served, and sees three masters that are neither failing nor
    /// unreachable (a killed master's link drops at once; its replica is
    /// promoted a node timeout or two later).
    pub fn is_healthy(&self) -> bool {
        let mut answered = 0;
        for i in 0..self.nodes.len() {
            let (Some(info), Some(nodes)) = (self.query(i, "INFO"), self.query(i, "NODES")) else {
                continue;
            };
            answered += 1;
            let ok = info.lines().any(|l| l.trim() == "cluster_state:ok")
                && info.lines().any(|l| l.trim() == "cluster_slots_ok:16384");
            let masters = nodes
                .lines()
                .filter(|l| {
                    let fields: Vec<&str> = l.split(' ').collect();
                    let flags = fields.get(2).copied().unwrap_or_default();
                    let linked = flags.contains("myself") || fields.get(7) == Some(&"connected");
                    flags.contains("master") && !flags.contains("fail") && linked
                })
                .count();
            if !ok || masters != 3 {
                return false;
            }
        }
        answered > 0
    }

    /// Whether three nodes are replicas whose link to their master is up.
    fn replicas_synced(&self) -> bool {
        let synced = (0..self.nodes.len())
            .filter(|&i| {
                let Ok(client) = redis::Client::open(self.nodes[i].url()) else {
                    return false;
                };
                let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(500))
                else {
                    return false;
                };
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut con)
                    .unwrap_or_default();
                info.lines().any(|l| l.trim() == "role:slave")
                    && info.lines().any(|l| l.trim() == "master_link_status:up")
            })
            .count();
        synced == 3
    }

    /// What each node that answers says of the cluster (for failure
    /// messages).
    pub fn describe(&self) -> String {
        (0..self.nodes.len())
            .filter_map(|i| {
                let info = self.query(i, "INFO")?;
                let state = info.lines().find(|l| l.starts_with("cluster_state"))?;
                Some(format!("node {i}: {state}\n{}", self.query(i, "NODES")?))
            })
            .collect()
    }

    /// Polls [`RedisCluster::is_healthy`] until it holds or `within` passes.
    pub fn wait_healthy(&self, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.is_healthy() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The nodes that are masters now, as node indices (asked of the first
    /// node that answers).
    pub fn masters(&self) -> Vec<usize> {
        let Some(nodes) = (0..self.nodes.len()).find_map(|i| self.query(i, "NODES")) else {
            return Vec::new();
        };
        let mut out: Vec<usize> = nodes
            .lines()
            .filter_map(|l| {
                let mut fields = l.split(' ');
                let addr = fields.nth(1)?;
                let flags = fields.next()?;
                if !flags.contains("master") || flags.contains("fail") {
                    return None;
                }
                let port: u16 = addr.split([':', '@']).nth(1)?.parse().ok()?;
                self.nodes.iter().position(|n| n.port() == port)
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// The node serving `slot` as master now.
    pub fn master_of_slot(&self, slot: u16) -> Option<usize> {
        let nodes = (0..self.nodes.len()).find_map(|i| self.query(i, "NODES"))?;
        nodes.lines().find_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let flags = fields.get(2)?;
            if !flags.contains("master") || flags.contains("fail") {
                return None;
            }
            let serves = fields.iter().skip(8).any(|range| {
                let mut ends = range.split('-').map(|n| n.parse::<u16>());
                match (ends.next(), ends.next()) {
                    (Some(Ok(a)), Some(Ok(b))) => (a..=b).contains(&slot),
                    (Some(Ok(a)), None) => a == slot,
                    _ => false,
                }
            });
            if !serves {
                return None;
            }
            let port: u16 = fields.get(1)?.split([':', '@']).nth(1)?.parse().ok()?;
            self.nodes.iter().position(|n| n.port() == port)
        })
    }
}
