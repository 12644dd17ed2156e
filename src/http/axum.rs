//! The axum extractor: handlers take a [`Session`] argument.
//!
//! ```
//! use axum::{Router, routing::get};
//! use sesame::{Error, Sessions};
//! use sesame::axum::SessionRouterExt as _;
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
//!     .session_layer(SessionLayer::new(sessions.clone()))
//!     .with_state(sessions);
//! # let _ = app;
//! ```
//!
//! [`crate::Error`] is a response (see its `IntoResponse`): a store that
//! cannot answer gives `503 Service Unavailable` with `Retry-After`, so
//! handlers use `?`.
//!
//! # The session type is checked when the program compiles
//!
//! A handler's `Session<T, P, St>` is extracted only from a router whose
//! state gives the store type `St` (axum's [`FromRef`], the way
//! axum-extra's private cookie jar asks for its `Key`): the store itself
//! as the state (`.with_state(sessions)`), or a field of the application's
//! state with `#[derive(FromRef)]`. A handler that asks for another
//! session type than the state's store does not compile:
//!
//! ```compile_fail
//! use axum::{Router, routing::get};
//! use sesame::Sessions;
//! use sesame::tower::Session;
//!
//! async fn visit(session: Session<u64>) {}   // the state holds Sessions<u32>
//!
//! let sessions = Sessions::<u32>::new();
//! let app: Router = Router::new().route("/", get(visit)).with_state(sessions);
//! ```
//!
//! [`SessionRouterExt::session_layer`] adds the layer and asks the same of
//! it, so handler, state and layer cannot disagree:
//!
//! ```compile_fail
//! use axum::{Router, routing::get};
//! use sesame::Sessions;
//! use sesame::axum::SessionRouterExt as _;
//! use sesame::tower::{Session, SessionLayer};
//!
//! async fn visit(session: Session<u32>) {}
//!
//! let sessions = Sessions::<u32>::new();
//! let app: Router = Router::new()
//!     .route("/", get(visit))
//!     .session_layer(SessionLayer::new(Sessions::<u64>::new())) // not the state's store
//!     .with_state(sessions);
//! ```
//!
//! What is left to the running program is a route the layer does not
//! cover (or a layer added with axum's plain `Router::layer` over another
//! store type): [`SessionRejection::MissingLayer`], printed to stderr once
//! per process and answered `500 Internal Server Error` with a fixed body.

use std::sync::atomic::{AtomicBool, Ordering};

use axum_core::extract::{FromRef, FromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::Principal;
use crate::store::Store;
use crate::tower::{Session, SessionLayer, layer_types};

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
    St: Store<Data = T, Principal = P> + FromRef<S>,
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

/// Adds a [`SessionLayer`] to an axum router whose state gives the
/// layer's store type, so that the layer, the state and every handler's
/// [`Session`] agree on one session type when the program compiles (see
/// the [module docs](self)).
pub trait SessionRouterExt<S> {
    /// [`axum::Router::layer`] for a [`SessionLayer`] over the store type
    /// the router's state gives.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use sesame::Sessions;
    /// use sesame::axum::SessionRouterExt as _;
    /// use sesame::tower::{Session, SessionLayer};
    ///
    /// async fn visit(session: Session<u32>) -> Result<String, sesame::Error> {
    ///     Ok(session.update(|n| { *n += 1; *n }).await?.to_string())
    /// }
    ///
    /// let sessions = Sessions::<u32>::new();
    /// let app: Router = Router::new()
    ///     .route("/", get(visit))
    ///     .session_layer(SessionLayer::new(sessions.clone()))
    ///     .with_state(sessions);
    /// # let _ = app;
    /// ```
    #[must_use]
    fn session_layer<T, P, St>(self, layer: SessionLayer<T, P, St>) -> Self
    where
        T: Send + 'static,
        P: Principal,
        St: Store<Data = T, Principal = P> + FromRef<S>;
}

impl<S> SessionRouterExt<S> for axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn session_layer<T, P, St>(self, layer: SessionLayer<T, P, St>) -> Self
    where
        T: Send + 'static,
        P: Principal,
        St: Store<Data = T, Principal = P> + FromRef<S>,
    {
        self.layer(layer)
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
