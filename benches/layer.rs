//! The session layer's request path on the in-process engine: a request
//! with a valid session cookie through `SessionLayer` (the cookie parsed,
//! the token validated through the store, the response finished), and one
//! without a cookie. The inner service ignores the session, so this
//! measures what the layer adds to every request; the same source runs
//! against the synchronous layer of before and the async one of after.
//!
//! Run: `cargo bench --features axum --bench layer`.

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, header};
use sesame::Sessions;
use sesame::tower::SessionLayer;
use tower::{Layer as _, ServiceExt as _, service_fn};

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sessions = Sessions::<u64>::builder()
        .reaper_interval(None)
        .build()
        .unwrap();
    for i in 0..10_000 {
        sessions.create(i).unwrap();
    }
    let (token, _) = sessions.create(7).unwrap();
    let cookie = format!("__Host-id={}", token.as_str());
    let svc = SessionLayer::new(sessions.clone()).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));

    let mut group = c.benchmark_group("layer");
    group.bench_function("validate_hit/sesame", |b| {
        b.iter(|| {
            let req = Request::get("/")
                .header(header::COOKIE, cookie.as_str())
                .body(())
                .unwrap();
            let r = rt.block_on(svc.clone().oneshot(req)).unwrap();
            black_box(r)
        })
    });
    group.bench_function("no_cookie/sesame", |b| {
        b.iter(|| {
            let req = Request::get("/").body(()).unwrap();
            let r = rt.block_on(svc.clone().oneshot(req)).unwrap();
            black_box(r)
        })
    });
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
