//! The engine's counters and events on the Redis backend: the same
//! [`Stats`] and [`Event`] types as [`crate::Sessions`], with the same
//! meaning per field, counted and emitted by the server that ran the
//! operation.
//!
//! What a Redis store cannot report: expiry. Redis's TTL ends sessions
//! without telling the server, so `Stats::expired_idle` and
//! `Stats::expired_absolute` stay zero and no [`crate::EventKind::Expired`]
//! is emitted.

use std::sync::atomic::Ordering;

use crossbeam_channel::Receiver;
use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{RedisSessions, array, scripts, uint};
use crate::Principal;
use crate::error::Error;
use crate::events::Event;
use crate::stats::Stats;

impl<T, P> RedisSessions<T, P>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    P: Principal + Serialize + DeserializeOwned,
{
    /// The engine's counters, as [`crate::Sessions::stats`]: `live` and
    /// `anonymous` count the whole Redis session space (every server, this
    /// prefix; one round trip, which first drops the sessions whose
    /// deadline passed); the other counters count this server's operations
    /// since the store was built (sum them over servers for the cluster).
    /// `expired_idle` and `expired_absolute` stay zero: Redis's TTL ends
    /// sessions without a word. The Redis-only counters are
    /// [`RedisSessions::redis_stats`].
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Unavailable`] when Redis cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// let (token, _) = sessions.create(Vec::new()).await?;
    /// sessions.validate("forged-or-malformed").await?;
    /// sessions.logout(&token).await?;
    /// let stats = sessions.stats().await?;
    /// assert_eq!((stats.created, stats.destroyed, stats.rejected), (1, 1, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stats(&self) -> Result<Stats, Error> {
        let s = &*self.shared;
        // One scope on a single instance, one per tag on a cluster (run
        // concurrently: the cluster connection pipelines them per node).
        let tags: Vec<u8> = if s.pool.clustered() {
            (0..=u8::MAX).collect()
        } else {
            vec![0]
        };
        let counts = futures_util::future::try_join_all(tags.into_iter().map(|t| async move {
            let (all, anon) = s.scope(t);
            let reply: Value = s.invoke(scripts::COUNT.key(all).key(anon)).await?;
            let counts = array(&reply);
            Ok::<_, Error>((
                counts.first().and_then(uint).unwrap_or(0),
                counts.get(1).and_then(uint).unwrap_or(0),
            ))
        }))
        .await?;
        let mut stats = Stats {
            live: counts.iter().map(|c| c.0).sum(),
            anonymous: counts.iter().map(|c| c.1).sum(),
            rejected: s.rejected.load(Ordering::Relaxed),
            events_dropped: s.bus.dropped.load(Ordering::Relaxed),
            ..Stats::default()
        };
        s.counted.snapshot(&mut stats);
        Ok(stats)
    }

    /// Subscribes to this server's events through a channel of `capacity`,
    /// as [`crate::Sessions::subscribe`]: what this server did (created,
    /// rotated, logged in, destroyed, revoked, and evicted for capacity or
    /// the per-user limit, in the order the engine reports them), never a
    /// token. Other servers' operations reach their own subscribers; no
    /// expiry is reported (see [`RedisSessions::stats`]). A full channel
    /// drops events (counted in [`Stats::events_dropped`]); the store never
    /// waits for a subscriber.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = sesame::redis::RedisSessions::<Vec<u32>>::builder("redis://127.0.0.1:6379/").build()?;
    /// use sesame::EventKind;
    /// let events = sessions.subscribe(16);
    /// let (token, handle) = sessions.create(Vec::new()).await?;
    /// sessions.logout(&token).await?;
    /// let kinds: Vec<_> = events.try_iter().map(|e| (e.kind, e.handle)).collect();
    /// assert_eq!(kinds, [(EventKind::Created, handle), (EventKind::Destroyed, handle)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(&self, capacity: usize) -> Receiver<Event<P>> {
        self.shared.bus.subscribe(capacity)
    }

    /// A client presented a value that is not a well-formed token: counted
    /// among the rejected lookups, as the engine does.
    pub(crate) fn note_malformed(&self) {
        self.shared.reject();
    }
}
