//! Where the store's connections go: one server named by a URL, or the
//! primary that Redis Sentinel names at the moment of connecting.
//!
//! # Failover behind Sentinel
//!
//! Every new connection (a command connection after a failure, the
//! invalidation subscription after a gap) asks the sentinels for the
//! current primary and checks its `ROLE` before using it. When the primary
//! dies, requests fail ([`crate::ErrorKind::Unavailable`]), the pool drops
//! its connections and backs off, and once the sentinels have promoted a
//! replica the next connection goes to it: service resumes by itself. A
//! former primary that comes back as a replica answers writes with
//! `READONLY`, which counts as a broken connection (see `conn`), so
//! nothing keeps talking to it. The subscription's connection dies with
//! the old primary, and nothing cached before that gap is served again.
//!
//! Replication is asynchronous: a write the old primary acknowledged may
//! be missing on the promoted replica. For logouts and revocations that
//! would bring an ended session back, so writes can wait for replicas
//! (`RedisBuilder::replica_acks`, on by default behind Sentinel; see
//! `conn`).

use redis::RedisResult;
use redis::sentinel::SentinelClient;

/// See the [module docs](self).
pub(crate) enum Target {
    /// One server (or a primary reached through a fixed address).
    Direct(redis::Client),
    /// The primary of a Sentinel-monitored service. The lock serialises
    /// the lookups (each is a few round trips to the sentinels); callers
    /// bound their wait with their connect timeout.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    /// A Redis Cluster: the client knows the seed nodes and learns the
    /// slot map from them on each connect (and on `MOVED`). `nodes` keeps
    /// the seeds' connection details for the subscriber, which talks to
    /// each master on its own (see `subscriber`).
    Cluster {
        client: redis::cluster::ClusterClient,
        nodes: Vec<redis::ConnectionInfo>,
    },
}

impl Target {
    /// A client for the current primary (not for a cluster: see
    /// `subscriber` and `conn`).
    pub(crate) async fn client(&self) -> RedisResult<redis::Client> {
        match self {
            Self::Direct(client) => Ok(client.clone()),
            Self::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await,
            Self::Cluster { .. } => Err(redis::RedisError::from((
                redis::ErrorKind::ClientError,
                "a cluster has no single primary",
            ))),
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the address or credentials.
        f.write_str(match self {
            Self::Direct(_) => "Direct",
            Self::Sentinel(_) => "Sentinel",
            Self::Cluster { .. } => "Cluster",
        })
    }
}
