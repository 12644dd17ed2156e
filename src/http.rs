//! The HTTP adapters, each behind its feature: framework-agnostic cookie
//! helpers, a tower layer with its per-request `Session` handle, and the
//! axum extractor; the actix-web middleware and extractor. They use only
//! the public [`crate::store::Store`] seam.

#[cfg(feature = "actix")]
pub mod actix;
#[cfg(feature = "axum")]
pub mod axum;
pub mod cookie;
#[cfg(feature = "tower")]
pub mod tower;
