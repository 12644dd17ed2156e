//! The invalidation subscriber: one thread per [`super::RedisSessions`],
//! holding one pub/sub connection.
//!
//! It marks the near cache trusted once `SUBSCRIBE` is confirmed and
//! untrusted the moment the connection fails (a read error, a failed ping),
//! then reconnects with the same backoff as the command pool. It holds only
//! a weak reference to the engine and exits within [`POLL`] of the engine's
//! drop.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Shared;
use super::conn::Backoff;
use crate::key::SessionKey;

/// Read timeout of the subscription: how often the thread wakes when no
/// message comes, to notice the engine's drop and to ping.
pub(crate) const POLL: Duration = Duration::from_millis(100);
/// Quiet polls between pings (a ping a second): a connection that died
/// without a FIN (a partition) is noticed within about [`POLL`] times this
/// plus the I/O timeout.
const PING_EVERY: u32 = 10;

pub(crate) fn spawn<T, P>(shared: Weak<Shared<T, P>>, client: redis::Client, channel: String)
where
    T: Send + Sync + 'static,
    P: Send + Sync + 'static,
{
    let spawned = std::thread::Builder::new()
        .name("sesame-redis-invalidations".into())
        .spawn(move || run(&shared, &client, &channel));
    // Without the thread the cache is never trusted: every read goes to
    // Redis. Slower, still correct.
    drop(spawned);
}

fn run<T, P>(shared: &Weak<Shared<T, P>>, client: &redis::Client, channel: &str) {
    let mut backoff = Backoff::default();
    loop {
        let Some(s) = shared.upgrade() else { return };
        let (connect_timeout, io_timeout) = (s.pool.connect_timeout, s.pool.io_timeout);
        drop(s);
        match listen(
            shared,
            client,
            channel,
            connect_timeout,
            io_timeout,
            &mut backoff,
        ) {
            Exit::Dropped => return,
            Exit::Failed => {
                let Some(s) = shared.upgrade() else { return };
                s.cache.distrust();
                drop(s);
                backoff.fail(Instant::now());
                // Sleep out the backoff in POLL steps, to exit promptly.
                let until = Instant::now() + backoff.delay();
                while Instant::now() < until {
                    if shared.strong_count() == 0 {
                        return;
                    }
                    std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
                }
            }
        }
    }
}

enum Exit {
    Dropped,
    Failed,
}

fn listen<T, P>(
    shared: &Weak<Shared<T, P>>,
    client: &redis::Client,
    channel: &str,
    connect_timeout: Duration,
    io_timeout: Duration,
    backoff: &mut Backoff,
) -> Exit {
    let Ok(mut con) = client.get_connection_with_timeout(connect_timeout) else {
        return Exit::Failed;
    };
    if con.set_write_timeout(Some(io_timeout)).is_err()
        || con.set_read_timeout(Some(io_timeout)).is_err()
    {
        return Exit::Failed;
    }
    let mut sub = con.as_pubsub();
    if sub.subscribe(channel).is_err() || sub.set_read_timeout(Some(POLL)).is_err() {
        return Exit::Failed;
    }
    match shared.upgrade() {
        Some(s) => {
            s.cache.trust();
            s.stats.subscriptions.fetch_add(1, Ordering::Relaxed);
        }
        None => return Exit::Dropped,
    }
    backoff.succeed();
    let mut quiet = 0;
    loop {
        match sub.get_message() {
            Ok(msg) => {
                quiet = 0;
                let Some(s) = shared.upgrade() else {
                    return Exit::Dropped;
                };
                for key in parse_keys(msg.get_payload_bytes()) {
                    s.cache.invalidate(&key);
                    s.stats.invalidations.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) if e.is_timeout() => {
                if shared.strong_count() == 0 {
                    return Exit::Dropped;
                }
                quiet += 1;
                if quiet >= PING_EVERY {
                    quiet = 0;
                    if sub.set_read_timeout(Some(io_timeout)).is_err()
                        || sub.ping::<redis::Value>().is_err()
                        || sub.set_read_timeout(Some(POLL)).is_err()
                    {
                        return Exit::Failed;
                    }
                }
            }
            Err(_) => return Exit::Failed,
        }
    }
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
