//! The CSRF guard ([`crate::csrf`]) as actix-web middleware.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::HttpResponse;
use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header;

use crate::csrf::{CsrfGuard, CsrfRejection};

/// Refuses the state-changing requests a [`CsrfGuard`] refuses, with an
/// empty `403 Forbidden` (never a word of why: the [`CsrfRejection`] is in
/// the response's extensions for a logging middleware outside it); the
/// handler is not called. Safe methods pass untouched.
///
/// ```
/// use actix_web::{App, HttpResponse, test, web};
/// use sesame::actix::CsrfMiddleware;
/// use sesame::csrf::{CsrfGuard, Origin};
///
/// # actix_web::rt::System::new().block_on(async {
/// let guard = CsrfGuard::builder()
///     .allow_origin(Origin::parse("https://app.example").unwrap())
///     .build()
///     .unwrap();
/// let app = test::init_service(
///     App::new()
///         .wrap(CsrfMiddleware::new(guard))
///         .route("/transfer", web::post().to(HttpResponse::Ok)),
/// )
/// .await;
/// let from = |origin| test::TestRequest::post().uri("/transfer").insert_header(("origin", origin));
/// let ok = test::call_service(&app, from("https://app.example").to_request()).await;
/// assert_eq!(ok.status(), 200);
/// let refused = test::call_service(&app, from("https://evil.example").to_request()).await;
/// assert_eq!(refused.status(), 403);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct CsrfMiddleware {
    guard: Rc<CsrfGuard>,
}

impl CsrfMiddleware {
    /// Middleware applying `guard` to every request it wraps.
    pub fn new(guard: CsrfGuard) -> Self {
        Self {
            guard: Rc::new(guard),
        }
    }
}

impl<Svc, B> Transform<Svc, ServiceRequest> for CsrfMiddleware
where
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = CsrfService<Svc>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: Svc) -> Self::Future {
        ready(Ok(CsrfService {
            service,
            guard: Rc::clone(&self.guard),
        }))
    }
}

/// The service [`CsrfMiddleware`] wraps around the inner one.
#[derive(Debug)]
pub struct CsrfService<Svc> {
    service: Svc,
    guard: Rc<CsrfGuard>,
}

impl<Svc, B> Service<ServiceRequest> for CsrfService<Svc>
where
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    /// Boxed, as actix-web's own middleware futures are.
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let headers = req
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()));
        match self.guard.check_fields(req.method().as_str(), headers) {
            Ok(()) => {
                let fut = self.service.call(req);
                Box::pin(async move { fut.await.map(ServiceResponse::map_into_left_body) })
            }
            Err(rejection) => Box::pin(ready(Ok(refuse(req, rejection)))),
        }
    }
}

/// The empty `403`, with the reason in the response's extensions.
fn refuse<B>(req: ServiceRequest, rejection: CsrfRejection) -> ServiceResponse<EitherBody<B>> {
    let mut response = HttpResponse::Forbidden()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish();
    response.extensions_mut().insert(rejection);
    req.into_response(response).map_into_right_body()
}
