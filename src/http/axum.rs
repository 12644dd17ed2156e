//! The axum extractor: handlers take a [`Session`] argument.
//!
//! ```
//! use axum::{Router, routing::get};
//! use sesame::{Error, Sessions};
//! use sesame::tower::{Session, SessionLayer};
//!
//! async fn visit(session: Session<u32>) -> Result<String, Error> {
//!     let n = session.update(|n| { *n += 1; *n }).await?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! let sessions = Sessions::<u32>::new();
//! let app: Router = Router::new()
//!     .route("/", get(visit))
//!     .layer(SessionLayer::new(sessions));
//! # let _ = app;
//! ```
//!
//! [`crate::Error`] is a response (see its `IntoResponse`): a store that
//! cannot answer gives `503 Service Unavailable` with `Retry-After`, so
//! handlers use `?`.
//!
//! # Wiring errors
//!
//! The extractor only reads the handle the [`crate::tower::SessionLayer`]
//! put in the request's extensions; axum cannot tie a handler's argument
//! type to a layer's at compile time. Two wiring bugs are told apart, at
//! no cost per request (each layer records its session type once, when it
//! is built):
//!
//! - a handler whose session type no layer in the process was built with
//!   (say `Session<Cart>` while the only layer is a `SessionLayer<User>`,
//!   or the store types differ): [`SessionRejection::TypeMismatch`],
//!   naming both types;
//! - otherwise (no layer on the route): [`SessionRejection::MissingLayer`].
//!
//! Both are bugs of the program, not of the request. Each prints its
//! message to stderr once per process and answers `500 Internal Server
//! Error` with a fixed body that names no type. A type mismatch is also a
//! failed debug assertion: in a debug build the first request that meets it
//! panics with both types named, so it shows in development, not in
//! production. Declare the session type once (`type AppSession =
//! Session<Data, User, Store>;`) and use the alias in every handler and in
//! the layer's construction to rule the mismatch out.

use std::sync::atomic::{AtomicBool, Ordering};

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::Principal;
use crate::store::Store;
use crate::tower::{Session, layer_types};

/// A handler takes a [`Session`] the request's layers did not provide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionRejection {
    /// The request did not pass through a
    /// [`crate::tower::SessionLayer`] of the handler's types, and a layer
    /// of those types exists (or none at all does): the route lacks it.
    MissingLayer,
    /// No layer of the handler's session type was ever built; one of
    /// another type was.
    TypeMismatch {
        /// The session type of a layer that was built.
        layer: &'static str,
        /// The session type the handler asked for.
        handler: &'static str,
    },
}

impl std::fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingLayer => {
                f.write_str("no session: the route has no sesame::tower::SessionLayer")
            }
            Self::TypeMismatch { layer, handler } => write!(
                f,
                "session type mismatch: the handler takes {handler}, \
                 which no SessionLayer gives (one gives {layer})"
            ),
        }
    }
}

impl std::error::Error for SessionRejection {}

/// `500 Internal Server Error` with a fixed body: the types are in the
/// log line, not in what the client sees.
impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        let body = match self {
            Self::MissingLayer => "no session: the route has no sesame::tower::SessionLayer",
            Self::TypeMismatch { .. } => "no session: session type mismatch (see the server log)",
        };
        (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
    }
}

/// Whether each wiring error was printed already: once per process.
static REPORTED_MISSING: AtomicBool = AtomicBool::new(false);
static REPORTED_MISMATCH: AtomicBool = AtomicBool::new(false);

/// Prints a wiring bug once per process; a type mismatch also fails a
/// debug assertion (a debug build panics, naming both types).
fn report(rejection: SessionRejection) -> SessionRejection {
    let reported = match rejection {
        SessionRejection::MissingLayer => &REPORTED_MISSING,
        SessionRejection::TypeMismatch { .. } => {
            debug_assert!(false, "sesame: {rejection}");
            &REPORTED_MISMATCH
        }
    };
    if !reported.swap(true, Ordering::Relaxed) {
        eprintln!("sesame: {rejection} (answering 500)");
    }
    rejection
}

impl<S, T, P, St> FromRequestParts<S> for Session<T, P, St>
where
    S: Send + Sync,
    T: Send + 'static,
    P: Principal,
    St: Store<Data = T, Principal = P>,
{
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(session) = parts.extensions.get::<Self>() {
            return Ok(session.clone());
        }
        // No session of this type on the request. If no layer of this type
        // was ever built but one of another type was, the handler's type
        // is wrong; otherwise the route lacks the layer.
        let handler = std::any::type_name::<Self>();
        let built = layer_types();
        Err(report(match built.iter().find(|&&t| t != handler) {
            Some(&layer) if !built.contains(&handler) => {
                SessionRejection::TypeMismatch { layer, handler }
            }
            _ => SessionRejection::MissingLayer,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_answer_500_and_name_nothing() {
        let mismatch = SessionRejection::TypeMismatch {
            layer: "Session<u32>",
            handler: "Session<u64>",
        };
        let message = mismatch.to_string();
        assert!(message.contains("Session<u32>") && message.contains("Session<u64>"));
        for rejection in [SessionRejection::MissingLayer, mismatch] {
            let response = rejection.into_response();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
}
