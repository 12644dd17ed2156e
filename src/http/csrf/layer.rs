//! [`CsrfLayer`]: the guard as a tower layer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::{CsrfGuard, CsrfRejection};

/// A tower layer that runs [`CsrfGuard::check_request`] on every request
/// and answers a refused one with `403 Forbidden` and an empty body: the
/// inner service is not called. The response says nothing about why (the
/// headers the browser sent are the page's business, not the guard's
/// configuration's); the [`CsrfRejection`] is in the response's extensions
/// for a logging layer outside this one.
///
/// ```
/// use axum::{Router, body::Body, http::{Request, StatusCode}, routing::post};
/// use sesame::csrf::{CsrfGuard, CsrfLayer, CsrfRejection, Origin};
/// use tower::ServiceExt as _;
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let guard = CsrfGuard::builder()
///     .allow_origin(Origin::parse("https://app.example")?)
///     .build()?;
/// let app = Router::new().route("/logout", post(|| async { "bye" })).layer(CsrfLayer::new(guard));
///
/// let ours = Request::post("/logout").header("origin", "https://app.example");
/// let response = app.clone().oneshot(ours.body(Body::empty())?).await?;
/// assert_eq!(response.status(), StatusCode::OK);
///
/// let theirs = Request::post("/logout").header("origin", "https://evil.example");
/// let response = app.oneshot(theirs.body(Body::empty())?).await?;
/// assert_eq!(response.status(), StatusCode::FORBIDDEN);
/// assert!(response.extensions().get::<CsrfRejection>().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct CsrfLayer {
    guard: CsrfGuard,
}

impl CsrfLayer {
    /// A layer applying `guard`.
    pub fn new(guard: CsrfGuard) -> Self {
        Self { guard }
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = CsrfService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CsrfService {
            inner,
            guard: self.guard.clone(),
        }
    }
}

/// The service [`CsrfLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct CsrfService<S> {
    inner: S,
    guard: CsrfGuard,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CsrfService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = CsrfFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match self.guard.check_request(&req) {
            Ok(()) => CsrfFuture {
                inner: Some(self.inner.call(req)),
                refused: None,
            },
            Err(rejection) => {
                let mut response = Response::new(ResBody::default());
                *response.status_mut() = StatusCode::FORBIDDEN;
                response.extensions_mut().insert(rejection);
                CsrfFuture {
                    inner: None,
                    refused: Some(response),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`CsrfService`]: the inner service's response, or the
    /// `403` of a refused request.
    pub struct CsrfFuture<F, B> {
        #[pin]
        inner: Option<F>,
        refused: Option<Response<B>>,
    }
}

impl<F, B> std::fmt::Debug for CsrfFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsrfFuture")
            .field("refused", &self.refused.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for CsrfFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(response) = this.refused.take() {
            return Poll::Ready(Ok(response));
        }
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll(cx),
            None => panic!("CsrfFuture polled after completion"),
        }
    }
}

// The rejection travels in response extensions, which need `Send + Sync`.
const _: fn() = || {
    fn assert_send_sync<X: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<CsrfRejection>();
};
