//! The HTTP adapters, each behind its feature: framework-agnostic cookie
//! helpers, a tower layer with its per-request `Session` handle, the axum
//! extractor, the actix-web middleware and extractor, bearer tokens, the
//! CSRF guard, and a store for tower-sessions. All but the last use only
//! the public [`crate::store::Store`] seam; the tower-sessions store uses
//! the engine's methods keyed by a caller-chosen id.

#[cfg(feature = "actix")]
pub mod actix;
#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "cookie")]
pub mod bearer;
#[cfg(feature = "cookie")]
pub mod cookie;
#[cfg(feature = "cookie")]
pub mod csrf;
#[cfg(feature = "cookie")]
pub mod device;
#[cfg(feature = "tower")]
pub mod tower;
#[cfg(feature = "tower-sessions")]
pub mod tower_sessions;
