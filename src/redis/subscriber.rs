//! The invalidation subscriber: one tokio task per [`super::RedisSessions`],
//! holding one pub/sub connection.
//!
//! It marks the near cache trusted once `SUBSCRIBE` is confirmed and
//! untrusted the moment the connection fails (the stream ends, a ping or a
//! check fails), then reconnects with the same backoff as the command
//! connections. It holds only a weak reference to the store and exits as
//! soon as the store is dropped (a `watch` channel closes).
//!
//! # Removals sesame did not make
//!
//! - **Keyspace notifications.** On each subscription the task asks Redis
//!   for `notify-keyspace-events` with at least `Egxe` (generic commands such
//!   as `DEL`, expiry, eviction; the flags already set are kept) and
//!   subscribes to `__keyevent@<db>__:del`, `:expired` and `:evicted`. A
//!   session key named there is invalidated like a published digest, within
//!   the pub/sub delivery. If Redis refuses `CONFIG` (many managed
//!   services do), [`super::RedisSessions::keyspace_notifications`] is
//!   false and copies live at most the fallback cache TTL (default 1 s).
//! - **`FLUSHDB`/`FLUSHALL`** emit no per-key notification. A marker key
//!   (`{prefix}:live`, a random value written with `SET NX` when the task
//!   subscribes) is read every [`CHECK`] on the task's own connection; a missing or changed marker (a
//!   flush, or the marker itself deleted or evicted, which its `del` or
//!   `evicted` event also reports at once) counts as a gap in the
//!   invalidation stream: every copy is dropped and the task subscribes
//!   again. So a flush stops being served within [`CHECK`] plus a round
//!   trip.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::MultiplexedConnection;
use tokio::sync::watch;

use super::Shared;
use super::conn::Backoff;
use super::target::Target;
use crate::key::SessionKey;

/// How often the task checks the marker key (flush detection).
pub(crate) const CHECK: Duration = Duration::from_millis(250);
/// Checks between pings of the pub/sub connection (a ping a second): a
/// connection that died without a FIN (a partition) is noticed within
/// about [`CHECK`] times this plus the I/O timeout.
const PING_EVERY: u32 = 4;
/// The keyspace-notification classes sesame needs: keyevent channels,
/// generic commands (`DEL`, `UNLINK`, ...), expired, evicted.
const NOTIFY_FLAGS: &str = "Egxe";

pub(crate) fn spawn<T, P>(
    runtime: &tokio::runtime::Handle,
    shared: Weak<Shared<T, P>>,
    target: Arc<Target>,
    stopped: watch::Receiver<()>,
) where
    T: Send + Sync + 'static,
    P: Send + Sync + 'static,
{
    drop(runtime.spawn(run(shared, target, stopped)));
}

async fn run<T, P>(
    shared: Weak<Shared<T, P>>,
    target: Arc<Target>,
    mut stopped: watch::Receiver<()>,
) where
    T: Send + Sync + 'static,
    P: Send + Sync + 'static,
{
    // However the task ends (its runtime shut down, say), nobody will
    // apply invalidations any more: stop serving copies.
    let _distrust = DistrustOnDrop(shared.clone());
    let mut backoff = Backoff::default();
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            () = listen(&shared, &target, &mut backoff) => {}
        }
        let Some(s) = shared.upgrade() else { return };
        s.cache.distrust();
        drop(s);
        backoff.fail(std::time::Instant::now());
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(backoff.delay()) => {}
        }
    }
}

/// Marks the cache untrusted when the task ends.
struct DistrustOnDrop<T, P>(Weak<Shared<T, P>>);

impl<T, P> Drop for DistrustOnDrop<T, P> {
    fn drop(&mut self) {
        if let Some(s) = self.0.upgrade() {
            s.cache.distrust();
        }
    }
}

/// What the task needs of the store, copied out so that it holds no strong
/// reference while it waits.
struct Setup {
    channel: String,
    prefix: String,
    connect_timeout: Duration,
    io_timeout: Duration,
}

/// One subscription (on a cluster, one per master), until any fails (or
/// the store is dropped).
async fn listen<T, P>(shared: &Weak<Shared<T, P>>, target: &Target, backoff: &mut Backoff)
where
    T: Send + Sync + 'static,
    P: Send + Sync + 'static,
{
    let Some(setup) = shared.upgrade().map(|s| Setup {
        channel: s.channel.clone(),
        prefix: s.prefix.clone(),
        connect_timeout: s.pool.connect_timeout,
        io_timeout: s.pool.io_timeout,
    }) else {
        return;
    };
    let mut nodes = Vec::new();
    let mut topology = None;
    if let Target::Cluster { nodes: seeds, .. } = target {
        // The masters of the moment, read afresh after every gap: a
        // failover's promoted replica is found here.
        let Some(masters) = masters(seeds, &setup).await else {
            return;
        };
        topology = Some((seeds, addrs(&masters)));
        for (i, (info, ranges)) in masters.into_iter().enumerate() {
            let Ok(client) = redis::Client::open(info) else {
                return;
            };
            let marker_key = format!("{}:live:{{{}}}", setup.prefix, tag_in(&ranges));
            // Sesame's own messages are broadcast to every node (classic
            // `PUBLISH`): one subscription hears them all.
            let Some(node) = connect(&client, &setup, i == 0, marker_key).await else {
                return;
            };
            nodes.push(node);
        }
    } else {
        // Behind Sentinel, the primary of the moment (see `target`).
        let Ok(Ok(client)) = tokio::time::timeout(setup.connect_timeout, target.client()).await
        else {
            return;
        };
        let marker_key = format!("{}:live", setup.prefix);
        let Some(node) = connect(&client, &setup, true, marker_key).await else {
            return;
        };
        nodes.push(node);
    }
    match shared.upgrade() {
        Some(s) => {
            s.notified
                .store(nodes.iter().all(|n| n.notified), Ordering::Relaxed);
            s.cache.trust();
            s.stats.subscriptions.fetch_add(1, Ordering::Relaxed);
        }
        None => return,
    }
    backoff.succeed();
    // A gap in any node's stream is a gap: the first watcher to end ends
    // them all, and the caller distrusts the cache. On a cluster, so does a
    // change of masters seen without a failure (a graceful failover, a
    // master added): the subscriptions are made again on the new ones.
    let mut watchers: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>> = nodes
        .into_iter()
        .map(|n| Box::pin(watch_node(shared, &setup, n)) as _)
        .collect();
    if let Some((seeds, known)) = topology {
        let setup = &setup;
        watchers.push(Box::pin(async move {
            loop {
                tokio::time::sleep(TOPOLOGY_CHECK).await;
                match masters(seeds, setup).await {
                    Some(now) if addrs(&now) == known => {}
                    _ => return,
                }
            }
        }));
    }
    futures_util::future::select_all(watchers).await;
}

/// How often a cluster's masters are read again while every subscription
/// is up.
const TOPOLOGY_CHECK: Duration = Duration::from_secs(1);

/// The masters' addresses, in a stable order.
fn addrs(masters: &[(redis::ConnectionInfo, Vec<(u16, u16)>)]) -> Vec<String> {
    let mut out: Vec<String> = masters.iter().map(|(i, _)| i.addr.to_string()).collect();
    out.sort_unstable();
    out
}

/// One node's subscription, set up and checked.
struct Node {
    sink: redis::aio::PubSubSink,
    stream: redis::aio::PubSubStream,
    con: MultiplexedConnection,
    marker_key: String,
    marker: String,
    notified: bool,
}

/// Subscribes to one node: sesame's channel (if `with_channel`) and its
/// keyevent channels, turns notifications on, places the marker.
async fn connect(
    client: &redis::Client,
    setup: &Setup,
    with_channel: bool,
    marker_key: String,
) -> Option<Node> {
    let io = setup.io_timeout;
    let Ok(Ok(pubsub)) =
        tokio::time::timeout(setup.connect_timeout + io, client.get_async_pubsub()).await
    else {
        return None;
    };
    let (mut sink, stream) = pubsub.split();
    let db = client.get_connection_info().redis.db;
    let mut channels: Vec<String> = ["del", "expired", "evicted"]
        .iter()
        .map(|e| format!("__keyevent@{db}__:{e}"))
        .collect();
    if with_channel {
        channels.insert(0, setup.channel.clone());
    }
    if !matches!(
        tokio::time::timeout(io, sink.subscribe(&channels)).await,
        Ok(Ok(()))
    ) {
        return None;
    }
    // Its own command connection, on this task's runtime whatever runtime
    // the store's callers use: notifications and the marker.
    let mut con = command_connection(client, setup).await?;
    let notified = enable_notifications(&mut con, io).await;
    let fresh = format!("{:016x}", rand::random::<u64>());
    let set: Option<redis::Value> = query(
        &mut con,
        io,
        redis::cmd("SET").arg(&marker_key).arg(&fresh).arg("NX"),
    )
    .await;
    let got: Option<Option<String>> = query(&mut con, io, redis::cmd("GET").arg(&marker_key)).await;
    let (Some(_), Some(Some(marker))) = (set, got) else {
        return None;
    };
    Some(Node {
        sink,
        stream,
        con,
        marker_key,
        marker,
        notified,
    })
}

/// Applies one node's invalidations and checks its marker and link, until
/// either fails (or the store is dropped).
async fn watch_node<T, P>(shared: &Weak<Shared<T, P>>, setup: &Setup, node: Node)
where
    T: Send + Sync + 'static,
    P: Send + Sync + 'static,
{
    let io = setup.io_timeout;
    let Node {
        mut sink,
        mut stream,
        mut con,
        marker_key,
        marker,
        ..
    } = node;
    let session_prefix = format!("{}:s:", setup.prefix);
    let mut tick = tokio::time::interval(CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut ticks = 0u32;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return };
                let Some(s) = shared.upgrade() else { return };
                let payload = msg.get_payload_bytes();
                if msg.get_channel_name() == setup.channel {
                    for key in parse_keys(payload) {
                        s.cache.invalidate(&key);
                        s.stats.invalidations.fetch_add(1, Ordering::Relaxed);
                    }
                } else if payload == marker_key.as_bytes() {
                    return; // the marker is gone: as good as a flush
                } else if let Some(key) = payload
                    .strip_prefix(session_prefix.as_bytes())
                    .and_then(untag)
                {
                    s.cache.invalidate(&key);
                    s.stats.invalidations.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ = tick.tick() => {
                if shared.strong_count() == 0 {
                    return;
                }
                let got: Option<Option<String>> =
                    query(&mut con, io, redis::cmd("GET").arg(&marker_key)).await;
                if got.flatten().as_deref() != Some(marker.as_str()) {
                    return;
                }
                ticks += 1;
                if ticks >= PING_EVERY {
                    ticks = 0;
                    if !matches!(
                        tokio::time::timeout(io, sink.ping::<redis::Value>()).await,
                        Ok(Ok(_))
                    ) {
                        return;
                    }
                }
            }
        }
    }
}

/// The cluster's masters now, each with its slot ranges, asked of the
/// first seed node that answers `CLUSTER SLOTS`. The seeds' credentials
/// and database apply to every node.
async fn masters(
    seeds: &[redis::ConnectionInfo],
    setup: &Setup,
) -> Option<Vec<(redis::ConnectionInfo, Vec<(u16, u16)>)>> {
    let io = setup.io_timeout;
    for seed in seeds {
        let Ok(client) = redis::Client::open(seed.clone()) else {
            continue;
        };
        let Some(mut con) = command_connection(&client, setup).await else {
            continue;
        };
        let Some(slots) =
            query::<redis::Value>(&mut con, io, redis::cmd("CLUSTER").arg("SLOTS")).await
        else {
            continue;
        };
        let mut out: Vec<(redis::ConnectionInfo, Vec<(u16, u16)>)> = Vec::new();
        for range in array(&slots) {
            let fields = array(&range);
            let (Some(start), Some(end), Some(master)) = (
                fields.first().and_then(num),
                fields.get(1).and_then(num),
                fields.get(2).map(array),
            ) else {
                continue;
            };
            let (Some(host), Some(port)) =
                (master.first().and_then(text), master.get(1).and_then(num))
            else {
                continue;
            };
            let mut info = seed.clone();
            info.addr = redis::ConnectionAddr::Tcp(host, port);
            match out.iter_mut().find(|(i, _)| i.addr == info.addr) {
                Some((_, ranges)) => ranges.push((start, end)),
                None => out.push((info, vec![(start, end)])),
            }
        }
        if !out.is_empty() {
            return Some(out);
        }
    }
    None
}

/// A hash tag (text between braces) whose slot lies in `ranges`: where a
/// master's marker key goes.
fn tag_in(ranges: &[(u16, u16)]) -> String {
    (0u32..)
        .map(|n| format!("m{n}"))
        .find(|t| {
            let slot = super::conn::slot_of(t.as_bytes());
            ranges.iter().any(|&(a, b)| (a..=b).contains(&slot))
        })
        .unwrap_or_default()
}

fn array(v: &redis::Value) -> Vec<redis::Value> {
    match v {
        redis::Value::Array(items) => items.clone(),
        _ => Vec::new(),
    }
}

fn num(v: &redis::Value) -> Option<u16> {
    match v {
        redis::Value::Int(n) => u16::try_from(*n).ok(),
        _ => None,
    }
}

fn text(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Turns on the keyspace notifications sesame needs, keeping the flags
/// already set. Whether they are on.
async fn enable_notifications(con: &mut MultiplexedConnection, io: Duration) -> bool {
    let current: Option<Vec<String>> = query(
        con,
        io,
        redis::cmd("CONFIG")
            .arg("GET")
            .arg("notify-keyspace-events"),
    )
    .await;
    let Some(current) = current else {
        return false;
    };
    let mut flags = current.get(1).cloned().unwrap_or_default();
    let has = |f: &str, c: char| f.contains(c) || (f.contains('A') && "g$lshzxet".contains(c));
    let missing: Vec<char> = NOTIFY_FLAGS.chars().filter(|&c| !has(&flags, c)).collect();
    if missing.is_empty() {
        return true;
    }
    flags.extend(missing);
    let set = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg(&flags)
        .clone();
    query::<()>(con, io, &set).await.is_some()
}

/// A command on the task's own connection, bounded by the I/O timeout.
async fn query<R: redis::FromRedisValue>(
    con: &mut MultiplexedConnection,
    io: Duration,
    cmd: &redis::Cmd,
) -> Option<R> {
    tokio::time::timeout(io, cmd.query_async(con))
        .await
        .ok()?
        .ok()
}

/// The digest of a session key's tail, `{TT}{hex}` (layout: `scripts`).
fn untag(tail: &[u8]) -> Option<SessionKey> {
    match tail {
        [b'{', _, _, b'}', hex @ ..] => super::unhex_key(hex),
        _ => None,
    }
}

/// The digests named by a message: space-separated 64-digit hex. Anything
/// else is skipped.
pub(crate) fn parse_keys(payload: &[u8]) -> impl Iterator<Item = SessionKey> + '_ {
    payload.split(|&b| b == b' ').filter_map(super::unhex_key)
}

/// A command connection to `client`'s server for the subscriber task, the
/// connect and each reply bounded by the store's timeouts.
async fn command_connection(
    client: &redis::Client,
    setup: &Setup,
) -> Option<MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(setup.connect_timeout)
        .set_response_timeout(setup.io_timeout);
    tokio::time::timeout(
        setup.connect_timeout + setup.io_timeout,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .ok()?
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_key_tails_give_their_digest() {
        let k = SessionKey::from_bytes([0xAB; 32]);
        let hex = super::super::hex_key(&k);
        let tail = format!("{{ab}}{hex}");
        assert_eq!(untag(tail.as_bytes()).unwrap().as_bytes(), k.as_bytes());
        assert!(untag(hex.as_bytes()).is_none(), "untagged: the old layout");
        assert!(untag(format!("{{ab{hex}").as_bytes()).is_none());
        assert!(untag(b"{ab}").is_none());
    }

    #[test]
    fn parses_hex_digests_and_skips_junk() {
        let a = super::super::hex_key(&SessionKey::from_bytes([0xAB; 32]));
        let b = super::super::hex_key(&SessionKey::from_bytes([0x01; 32]));
        let msg = format!("{a} junk {b} {}", &a[..10]);
        let keys: Vec<_> = parse_keys(msg.as_bytes()).collect();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].as_bytes(), &[0xAB; 32]);
        assert_eq!(keys[1].as_bytes(), &[0x01; 32]);
    }
}
