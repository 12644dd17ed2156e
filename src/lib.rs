//! # sesame
//!
//! An embedded session engine for Rust servers: what you reach for instead of
//! an in-memory store that keeps raw IDs, or a Redis round trip on every
//! request.
//!
//! ```
//! use std::time::Duration;
//! use sesame::Sessions;
//!
//! #[derive(Clone, Default)]
//! struct Cart { items: Vec<u32> }
//!
//! let sessions = Sessions::<Cart>::builder()
//!     .idle_timeout(Duration::from_secs(30 * 60))
//!     .absolute_timeout(Duration::from_secs(12 * 3600))
//!     .max_sessions(100_000)
//!     .build()?;
//!
//! let (token, _handle) = sessions.create(Cart::default())?;   // anonymous session
//! sessions.update(&token, |cart| cart.items.push(7))?;       // in place, atomic
//! let token = sessions.login(&token, "alice".to_string())?;  // new ID, bound to alice
//! assert_eq!(sessions.get(&token).unwrap().items, vec![7]);
//! assert_eq!(sessions.revoke_user(&"alice".to_string()), 1); // log out everywhere
//! assert!(sessions.validate(&token).is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Policies
//!
//! - **Tokens** are 256 bits from a CSPRNG ([`SessionToken`]), sent as 43
//!   base64url characters. The engine stores only a keyed blake3 digest of
//!   each ([`key`]): a memory dump or snapshot holds no usable ID. Tokens
//!   never appear in `Debug` output, events, errors or stats.
//! - **Idle timeout** (default 30 minutes): a session unused for this long
//!   expires. **Absolute timeout** (default 12 hours): a session expires this
//!   long after creation or its last [`Sessions::login`], however busy. The
//!   defaults are NIST SP 800-63B's limits at AAL2 (30 minutes of
//!   inactivity, re-authentication every 12 hours); OWASP's session
//!   management cheat sheet asks for both timeouts, with 15–30 minutes idle
//!   for low-risk applications and less for high-value ones. An expired
//!   session is never returned, whether or not the reaper has removed it yet.
//! - **Rotation on login**: [`Sessions::login`] issues a new token and the
//!   old one stops working at once (OWASP: "renew the session ID after any
//!   privilege level change"), defeating session fixation. The pre-login
//!   token never carries the logged-in principal, whatever the grace window.
//!   An optional [`Builder::rotation_grace`] window (off by default, at most
//!   a minute) lets requests already in flight finish with the old token of
//!   a *plain* rotation ([`Sessions::rotate`]); a session has at most one
//!   such alias, reaped when its window ends.
//! - **A new principal starts fresh**: logging in as another principal than
//!   the one bound resets the data to `T::default()` (Django's `login()`
//!   flushes the session the same way); [`Sessions::login_with`] lets the
//!   application carry something over. An anonymous session keeps its data
//!   when it logs in (the cart survives).
//! - **Capacity**: at most [`Builder::max_sessions`] live sessions (default
//!   one million). At capacity, creating a session first reclaims sessions
//!   whose deadline has passed (whether or not the reaper has run; to the
//!   wheel's one-second resolution), then evicts an anonymous one,
//!   approximately the least recently seen; logged-in sessions are never
//!   evicted for room. When there is nothing to reclaim or evict, creation
//!   fails with [`ErrorKind::Full`].
//! - **Per-user limit**: a principal holds at most
//!   [`Builder::max_sessions_per_user`] live sessions — by default
//!   [`config::DEFAULT_MAX_SESSIONS_PER_USER`] (100, or a tenth of the
//!   capacity if that is fewer), so that one account cannot fill the store
//!   and lock every new visitor out. A login beyond it ends the principal's
//!   session that logged in longest ago, never the new one, also under
//!   concurrent logins. NIST SP 800-63B sets no number and OWASP leaves it to
//!   the application; the default only has to keep one account from taking
//!   the store.
//! - **Device lists**: [`Sessions::sessions_of`] lists a principal's
//!   sessions (metadata, never tokens), each with the device it was created
//!   or logged in from when one was recorded ([`Sessions::set_device`]; the
//!   tower layer's `record_devices`): user agent and client address,
//!   personal data kept only beside the session, dropped when it ends,
//!   never logged nor written to a snapshot, not recorded unless enabled
//!   ([`device`]). [`Sessions::logout_others`] signs out of every other
//!   device; [`Sessions::revoke`] ends one.
//! - **User code** (your principal's `Hash`/`Eq`/`Clone`, the closures of
//!   `update`, `with` and `login_with`) that panics never leaves the
//!   engine's counters or index wrong.
//! - **Time** comes only from the [`Clock`]; a clock that goes backwards
//!   resurrects nothing (the engine's time never decreases).
//!
//! # Features
//!
//! The core has no HTTP dependency. Which feature serves which framework:
//!
//! | your server | feature | what you add |
//! |---|---|---|
//! | axum | `axum` | `SessionLayer` (via `sesame::axum::SessionRouterExt::session_layer`), handlers take `sesame::tower::Session` |
//! | any tower service (hyper, tonic, …) | `tower` | `sesame::tower::SessionLayer`, the handle in the request's extensions |
//! | actix-web | `actix` | `.wrap(sesame::actix::SessionMiddleware::new(store))`, handlers take `sesame::actix::Session` |
//! | tower-sessions apps, axum-login | `tower-sessions` | `SessionManagerLayer::new(sesame::tower_sessions::SesameStore::new(..))` |
//! | anything else | `cookie` | `sesame::cookie` to read and write the cookie around [`Sessions`] |
//! | many servers | `redis` | `sesame::redis::RedisSessions` in place of [`Sessions`] (any of the above) |
//! | restarts | `snapshot` | `sesame::snapshot::SnapshotStore` beside [`Sessions`] |
//!
//! The CSRF guard (`sesame::csrf`) comes with `cookie`, as a tower layer with
//! `tower` and as actix middleware with `actix`. In detail:
//!
//! - `cookie`: `sesame::cookie` helpers, framework-agnostic: read the token from
//!   `Cookie` headers, write `Set-Cookie` with secure defaults (`__Host-id`,
//!   `HttpOnly`, `Secure`, `SameSite=Lax`); `sesame::bearer`, the same for
//!   tokens in `Authorization: Bearer`; `sesame::csrf`, a CSRF guard
//!   (`Sec-Fetch-Site` and an exact `Origin` allow-list), with the `tower`
//!   feature also as a layer.
//!   With it, `sesame::device::DeviceConfig` reads a request's device (user
//!   agent; client address from the connection, or from `X-Forwarded-For` /
//!   `Forwarded` only as far as the configured trusted hops).
//! - `tower`: `sesame::tower::SessionLayer`, which gives each request a lazily
//!   created `sesame::tower::Session` and writes the cookie only when it changes.
//!   With `SessionLayer::token_source` it reads the token from
//!   `Authorization: Bearer` instead of (or as well as) the cookie, for API
//!   clients, and writes no cookie for them.
//!   Both run on any [`store::Store`] (the in-process [`Sessions`], or Redis),
//!   whose operations are futures: the handle's methods are `async` and return
//!   `Result`, and no runtime worker ever blocks on a remote store's I/O.
//! - `axum`: `sesame::tower::Session` as an axum extractor, and [`Error`] as a
//!   response (`503` with `Retry-After` when the store cannot answer), so
//!   handlers use `?`. The extractor takes its store type from the router's
//!   state, so a handler whose session type does not match the store's is a
//!   compile-time error (`sesame::axum::SessionRouterExt`). The demo server:
//!   `cargo run --example demo --features axum,snapshot`.
//! - `actix`: `sesame::actix::SessionMiddleware`, an actix-web middleware,
//!   and `sesame::actix::Session`, its extractor (typed by the store): the
//!   tower layer's cookie policy and handle, natively on actix-web, on any
//!   [`store::Store`]; [`Error`] is an actix-web `ResponseError`. The demo
//!   on actix-web: `cargo run --example actix_demo --features actix`.
//! - `snapshot`: `sesame::snapshot::SnapshotStore` saves every live session
//!   to an encrypted file crash-safely (digests, never tokens) and restores
//!   them after a restart, so users stay logged in, while a journal keeps
//!   every logout and revocation ended across a crash and an older file put
//!   back is refused; `Sessions::save_snapshot` and
//!   `Sessions::load_snapshot` are the same without the journal. See
//!   `sesame::snapshot`.
//! - `redis`: `sesame::redis::RedisSessions`, one session space for many
//!   servers: Redis is the source of truth, each server a near cache kept
//!   honest by invalidation messages. The policies above (grace window,
//!   per-user limit, capacity with anonymous sessions evicted first), the
//!   events and the [`Stats`] are the same on both stores, each policy
//!   enforced atomically by the write's Lua script (`tests/behaviour.rs`
//!   runs one behaviour suite on both). One instance, a Sentinel primary,
//!   or a Redis Cluster (hash-tagged keys: each script in one slot). See
//!   `sesame::redis`.
//! - `tower-sessions`: `sesame::tower_sessions::SesameStore`, a store for
//!   tower-sessions (and so for axum-login): an app swaps `MemoryStore` for
//!   it in one line and gets ids hashed at rest, bounded memory and expiry
//!   that frees memory, and with `.with_axum_login()` the principal index
//!   (logged-in sessions kept at capacity, per-user limit, log out
//!   everywhere); [`Sessions::insert_with_id`] and its siblings are the
//!   engine's methods keyed by a caller-chosen id beneath it.
//!
//! # Locking
//!
//! A validation takes one shard read lock, reads one 64-byte cache line
//! (the session's line in the shard's own open-addressing table: 16 bytes
//! of the keyed digest, the deadlines, the handle; the data and principal
//! sit out of line) and allocates nothing. User code
//! (the closures of [`Sessions::update`] and [`Sessions::with`]) runs under
//! the session's own mutex only, never under a shard lock; it must not touch
//! the same session again.
#![deny(missing_docs)]
// `deny`, not `forbid`: `rng` allows the one `unsafe` call (registering a
// fork handler), measured as needed there.
#![deny(unsafe_code)]

// The crate's layout shows its architecture. At the root, the core types
// (token, key, clock, config, error, events, stats, session) and the
// backend seam (`store`); `engine/` the in-process engine and its parts
// (shard, wheel, principal index, reaper); `redis/` the remote backend;
// `http/` the HTTP adapters; `snapshot/` persistence; `model/` the test
// model. Dependencies point down: adapters → store → engine → core.
pub mod clock;
pub mod config;
pub mod device;
mod engine;
pub mod error;
pub mod events;
#[cfg(any(feature = "cookie", feature = "tower-sessions"))]
mod http;
pub mod key;
#[cfg(feature = "model")]
#[doc(hidden)]
pub mod model;
#[cfg(feature = "redis")]
pub mod redis;
mod rng;
mod session;
#[cfg(feature = "snapshot")]
pub mod snapshot;
pub mod stats;
pub mod store;
pub mod token;

// The HTTP adapters keep their public paths (`sesame::cookie`, …).
#[cfg(feature = "actix")]
pub use http::actix;
#[cfg(feature = "axum")]
pub use http::axum;
#[cfg(feature = "cookie")]
pub use http::bearer;
#[cfg(feature = "cookie")]
pub use http::cookie;
#[cfg(feature = "cookie")]
pub use http::csrf;
#[cfg(feature = "tower")]
pub use http::tower;
#[cfg(feature = "tower-sessions")]
pub use http::tower_sessions;
// The engine's parts, by their short paths inside the crate.
use engine::{reaper, shard, users, wheel};

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{BuildError, BuildOption, Builder};
pub use device::Device;
pub use engine::{MAX_ID_LEN, MIN_ID_LEN, Sessions};
pub use error::{Error, ErrorKind};
pub use events::{Event, EventKind, EvictionReason, ExpiryReason};
pub use key::SecretKey;
pub use session::{Handle, HandleParseError, SessionInfo};
pub use stats::Stats;
pub use token::{SessionToken, TokenError, TokenInput};

/// What can log in: a user ID, a name, an account key.
///
/// Implemented for every type with the listed bounds (`String`, `u64`, your
/// own `UserId`). Principals appear in events and listings; they are not
/// secret.
pub trait Principal:
    Clone + Eq + std::hash::Hash + std::fmt::Debug + Send + Sync + 'static
{
}

impl<P> Principal for P where
    P: Clone + Eq + std::hash::Hash + std::fmt::Debug + Send + Sync + 'static
{
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
