//! The axum extractor: handlers take a [`Session`] argument.
//!
//! ```
//! use axum::{Router, routing::get};
//! use sesame::Sessions;
//! use sesame::tower::{Session, SessionLayer};
//!
//! async fn visit(session: Session<u32>) -> String {
//!     let n = session.update(|n| { *n += 1; *n }).unwrap_or(0);
//!     format!("visit {n}")
//! }
//!
//! let sessions = Sessions::<u32>::new();
//! let app: Router = Router::new()
//!     .route("/", get(visit))
//!     .layer(SessionLayer::new(sessions));
//! # let _ = app;
//! ```
//!
//! The extractor only reads the handle the [`crate::tower::SessionLayer`]
//! put in the request's extensions. A route without the layer answers
//! `500 Internal Server Error` ([`MissingSessionLayer`]): a wiring bug, not
//! a client error.

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::Principal;
use crate::tower::{Session, Store};

/// The request reached a handler that takes a [`Session`] without passing
/// through [`crate::tower::SessionLayer`] (or one with other `T`/`P`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingSessionLayer;

impl std::fmt::Display for MissingSessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no session: expected sesame::tower::SessionLayer with the same types")
    }
}

impl std::error::Error for MissingSessionLayer {}

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S, T, P, St> FromRequestParts<S> for Session<T, P, St>
where
    S: Send + Sync,
    T: Send + 'static,
    P: Principal,
    St: Store<Data = T, Principal = P>,
{
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session<T, P, St>>()
            .cloned()
            .ok_or(MissingSessionLayer)
    }
}
