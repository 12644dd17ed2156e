//! The HTTP adapters, each behind its feature: framework-agnostic cookie
//! helpers, a tower layer with its per-request `Session` handle, the
//! axum extractor, bearer tokens and the CSRF guard. They use only the
//! public [`crate::store::Store`] seam.

#[cfg(feature = "axum")]
pub mod axum;
pub mod bearer;
pub mod cookie;
pub mod csrf;
#[cfg(feature = "tower")]
pub mod tower;
