//! The CSRF guard's cost per request: `check_request/sesame/<case>`.
//! A safe method returns before any header is read; a state-changing one
//! reads three headers and compares origins without allocating.
//!
//! Run: `cargo bench --features cookie --bench csrf`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Method, Request};
use sesame::csrf::{CsrfGuard, Origin, Scheme};

fn request(method: Method, origin: Option<&str>, site: Option<&str>) -> Request<()> {
    let mut rb = Request::builder()
        .method(method)
        .uri("/logout")
        .header("host", "app.example")
        .header("user-agent", "Mozilla/5.0")
        .header("accept", "text/html")
        .header("cookie", "__Host-id=x");
    if let Some(o) = origin {
        rb = rb.header("origin", o);
    }
    if let Some(s) = site {
        rb = rb.header("sec-fetch-site", s);
    }
    rb.body(()).expect("request")
}

fn bench(c: &mut Criterion) {
    let listed = CsrfGuard::builder()
        .allow_origin(Origin::parse("https://www.example").expect("origin"))
        .allow_origin(Origin::parse("https://app.example").expect("origin"))
        .build()
        .expect("guard");
    let by_host = CsrfGuard::builder()
        .same_origin_as_host(Scheme::Https)
        .build()
        .expect("guard");
    let cases = [
        ("get", request(Method::GET, None, Some("cross-site"))),
        (
            "post_same_origin",
            request(
                Method::POST,
                Some("https://app.example"),
                Some("same-origin"),
            ),
        ),
        (
            "post_cross_site",
            request(
                Method::POST,
                Some("https://evil.example"),
                Some("cross-site"),
            ),
        ),
        (
            "post_foreign_origin",
            request(Method::POST, Some("https://evil.example"), None),
        ),
    ];
    let mut group = c.benchmark_group("check_request");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for (name, req) in &cases {
        group.bench_function(format!("sesame/listed/{name}"), |b| {
            b.iter(|| black_box(listed.check_request(black_box(req))).is_ok())
        });
    }
    let (_, same) = &cases[1];
    group.bench_function("sesame/by_host/post_same_origin", |b| {
        b.iter(|| black_box(by_host.check_request(black_box(same))).is_ok())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
