//! The HTTP adapters, each behind its feature: framework-agnostic cookie
//! helpers, a tower layer with its per-request `Session` handle, and the
//! axum extractor. They use only the public [`crate::store::Store`] seam.

#[cfg(feature = "axum")]
pub mod axum;
pub mod cookie;
pub mod device;
#[cfg(feature = "tower")]
pub mod tower;
