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

/// One subscription, until it fails (or the store is dropped).
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
    let io = setup.io_timeout;
    // Behind Sentinel, the primary of the moment (see `target`).
    let Ok(Ok(client)) = tokio::time::timeout(setup.connect_timeout, target.client()).await else {
        return;
    };
    let client = &client;
    let Ok(Ok(pubsub)) =
        tokio::time::timeout(setup.connect_timeout + io, client.get_async_pubsub()).await
    else {
        return;
    };
    let (mut sink, mut stream) = pubsub.split();
    let db = client.get_connection_info().redis.db;
    let events: Vec<String> = ["del", "expired", "evicted"]
        .iter()
        .map(|e| format!("__keyevent@{db}__:{e}"))
        .collect();
    let mut channels = vec![setup.channel.clone()];
    channels.extend(events.iter().cloned());
    if !matches!(
        tokio::time::timeout(io, sink.subscribe(&channels)).await,
        Ok(Ok(()))
    ) {
        return;
    }
    // Its own command connection, on this task's runtime whatever runtime
    // the store's callers use: notifications and the marker.
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(setup.connect_timeout)
        .set_response_timeout(io);
    let Ok(Ok(mut con)) = tokio::time::timeout(
        setup.connect_timeout + io,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    else {
        return;
    };
    let marker_key = format!("{}:live", setup.prefix);
    let session_prefix = format!("{}:s:", setup.prefix);
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
        return;
    };
    match shared.upgrade() {
        Some(s) => {
            s.notified.store(notified, Ordering::Relaxed);
            s.cache.trust();
            s.stats.subscriptions.fetch_add(1, Ordering::Relaxed);
        }
        None => return,
    }
    backoff.succeed();
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
                    .and_then(super::unhex_key)
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

/// The digests named by a message: space-separated 64-digit hex. Anything
/// else is skipped.
pub(crate) fn parse_keys(payload: &[u8]) -> impl Iterator<Item = SessionKey> + '_ {
    payload.split(|&b| b == b' ').filter_map(super::unhex_key)
}

#[cfg(test)]
mod tests {
    use super::*;

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
