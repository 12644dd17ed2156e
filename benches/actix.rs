//! The actix-web middleware's request path on the in-process engine: a
//! request with a valid session cookie through `SessionMiddleware` (the
//! cookie parsed, the token validated through the store, the response
//! finished), one without a cookie, and the same app without the
//! middleware as the baseline. The handler ignores the session, so the
//! difference is what the middleware adds to every request.
//!
//! Run: `cargo bench --features actix --bench actix`.

use std::hint::black_box;

use actix_web::{App, HttpResponse, test, web};
use criterion::{Criterion, criterion_group, criterion_main};
use sesame::Sessions;
use sesame::actix::SessionMiddleware;

async fn ok() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn middleware(c: &mut Criterion) {
    let system = actix_web::rt::System::new();
    let sessions = Sessions::<u64>::builder()
        .reaper_interval(None)
        .build()
        .unwrap();
    for i in 0..10_000 {
        sessions.create(i).unwrap();
    }
    let (token, _) = sessions.create(7).unwrap();
    let cookie = format!("__Host-id={}", token.as_str());
    let with = system.block_on(test::init_service(
        App::new()
            .wrap(SessionMiddleware::new(sessions.clone()))
            .route("/", web::get().to(ok)),
    ));
    let bare = system.block_on(test::init_service(App::new().route("/", web::get().to(ok))));

    let mut group = c.benchmark_group("actix");
    group.bench_function("validate_hit/sesame", |b| {
        b.iter(|| {
            let req = test::TestRequest::get()
                .insert_header(("cookie", cookie.as_str()))
                .to_request();
            black_box(system.block_on(test::call_service(&with, req)))
        })
    });
    group.bench_function("no_cookie/sesame", |b| {
        b.iter(|| {
            let req = test::TestRequest::get().to_request();
            black_box(system.block_on(test::call_service(&with, req)))
        })
    });
    group.bench_function("no_cookie/bare", |b| {
        b.iter(|| {
            let req = test::TestRequest::get().to_request();
            black_box(system.block_on(test::call_service(&bare, req)))
        })
    });
    group.bench_function("cookie/bare", |b| {
        b.iter(|| {
            let req = test::TestRequest::get()
                .insert_header(("cookie", cookie.as_str()))
                .to_request();
            black_box(system.block_on(test::call_service(&bare, req)))
        })
    });
    group.finish();
}

criterion_group!(benches, middleware);
criterion_main!(benches);
