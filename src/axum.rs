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
//! type to a layer's at compile time. Two wiring bugs are told apart:
//!
//! - no layer on the route: [`SessionRejection::MissingLayer`];
//! - a layer whose session type differs from the handler's (say
//!   `Session<Cart>` under a `SessionLayer<User>`, or a store type that
//!   differs): [`SessionRejection::TypeMismatch`], naming both types.
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
use crate::tower::{LayerTypes, Session};

/// A handler takes a [`Session`] the request's layers did not provide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionRejection {
    /// The request did not pass through any
    /// [`crate::tower::SessionLayer`].
    MissingLayer,
    /// It passed through a layer with other types.
    TypeMismatch {
        /// The layer's session type.
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
                "session type mismatch: the handler takes {handler}, the layer gives {layer}"
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
        Err(report(match parts.extensions.get::<LayerTypes>() {
            None => SessionRejection::MissingLayer,
            Some(types) => SessionRejection::TypeMismatch {
                layer: types.session,
                handler: std::any::type_name::<Self>(),
            },
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
