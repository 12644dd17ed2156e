//! Events: what happened to which session, for audit logs and metrics.
//!
//! Each subscriber has its own bounded channel. The engine never blocks on a
//! subscriber: when a channel is full the event is dropped and counted
//! ([`crate::Stats::events_dropped`]); a subscriber that went away is
//! forgotten. With no subscriber an event costs one atomic load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{Sender, TrySendError};

/// The receiving end of an event subscription ([`crate::Sessions::subscribe`],
/// [`crate::store::Store::subscribe`]): crossbeam's channel, re-exported so
/// that a store implemented elsewhere can name it.
pub use crossbeam_channel::Receiver;
use parking_lot::RwLock;

use crate::Handle;

/// Something that happened to a session. Carries the session's public
/// [`Handle`] and principal, never a token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event<P> {
    /// What happened.
    pub kind: EventKind,
    /// Which session (a non-secret handle, stable across rotation).
    pub handle: Handle,
    /// Who it belonged to, if anyone had logged in.
    pub principal: Option<P>,
}

/// The kinds of [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A session was created.
    Created,
    /// Its token was rotated (plain rotation, or login).
    Rotated,
    /// It logged in: rotated and bound to a principal (or, for a session
    /// with a caller-chosen id, bound by `Sessions::bind_by_id`).
    LoggedIn,
    /// It expired.
    Expired(ExpiryReason),
    /// It was destroyed (logout).
    Destroyed,
    /// It was evicted.
    Evicted(EvictionReason),
    /// It was revoked (log out everywhere, or ended by handle).
    Revoked,
}

/// Why a session expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExpiryReason {
    /// No use for longer than the idle timeout.
    Idle,
    /// Older than the absolute timeout (since creation or the last login).
    Absolute,
}

/// Why a session was evicted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EvictionReason {
    /// The store was at `max_sessions`; this anonymous session was among the
    /// least recently seen.
    Capacity,
    /// Its principal went over `max_sessions_per_user`; this was their oldest.
    PerUser,
}

pub(crate) struct Bus<P> {
    any: AtomicBool,
    subscribers: RwLock<Vec<Sender<Event<P>>>>,
    pub(crate) dropped: AtomicU64,
}

impl<P: Clone> Bus<P> {
    pub(crate) fn new() -> Self {
        Self {
            any: AtomicBool::new(false),
            subscribers: RwLock::new(Vec::new()),
            dropped: AtomicU64::new(0),
        }
    }

    pub(crate) fn subscribe(&self, capacity: usize) -> Receiver<Event<P>> {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let mut subs = self.subscribers.write();
        subs.push(tx);
        self.any.store(true, Ordering::Release);
        rx
    }

    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// Sends to every subscriber without blocking.
    pub(crate) fn emit(&self, kind: EventKind, handle: Handle, principal: Option<&P>) {
        if !self.active() {
            return;
        }
        let event = Event {
            kind,
            handle,
            principal: principal.cloned(),
        };
        let mut gone: Vec<Sender<Event<P>>> = Vec::new();
        {
            let subs = self.subscribers.read();
            for tx in subs.iter() {
                match tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => gone.push(tx.clone()),
                }
            }
        }
        if !gone.is_empty() {
            let mut subs = self.subscribers.write();
            subs.retain(|tx| !gone.iter().any(|g| g.same_channel(tx)));
            self.any.store(!subs.is_empty(), Ordering::Release);
        }
    }
}
