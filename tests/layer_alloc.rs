//! The allocation budget of one request through the session layer on the
//! in-process engine (the inner service ignores the session), counted by
//! `allocation-counter`'s global allocator, beyond building the request.
//!
//! The synchronous layer made 4 allocations (316 bytes) per request: the
//! request's shared state, the handle in the extensions (the extension map
//! and its box), and the response's. The async layer makes the same 4 for
//! a request without a session cookie (nothing to ask the store), and one
//! more for a request with one: its future is boxed (the store's futures
//! have no nameable type), about 1.3 KB. The engine's own validation
//! allocates nothing (tests/hot_path.rs).

use std::convert::Infallible;

use http::{Request, Response, header};
use sesame::Sessions;
use sesame::tower::SessionLayer;
use tower::{Layer as _, ServiceExt as _, service_fn};

/// The synchronous layer's 4, plus the boxed future when the store is
/// asked.
const WITH_COOKIE: u64 = 5;
const WITHOUT_COOKIE: u64 = 4;

#[test]
fn a_layer_request_stays_within_its_allocation_budget() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sessions = Sessions::<u64>::builder()
        .reaper_interval(None)
        .build()
        .unwrap();
    let (token, _) = sessions.create(7).unwrap();
    let cookie = format!("__Host-id={}", token.as_str());
    let svc = SessionLayer::new(sessions.clone()).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let with_cookie = || {
        Request::get("/")
            .header(header::COOKIE, cookie.as_str())
            .body(())
            .unwrap()
    };
    let bare = || Request::get("/").body(()).unwrap();
    // Warm up (lazy statics, the runtime's first use).
    let _ = rt.block_on(svc.clone().oneshot(with_cookie())).unwrap();
    for (what, req, budget) in [
        (
            "valid cookie",
            &with_cookie as &dyn Fn() -> Request<()>,
            WITH_COOKIE,
        ),
        ("no cookie", &bare, WITHOUT_COOKIE),
    ] {
        let building = allocation_counter::measure(|| drop(req()));
        let serving = allocation_counter::measure(|| {
            let r = rt.block_on(svc.clone().oneshot(req())).unwrap();
            drop(r);
        });
        let count = serving.count_total - building.count_total;
        let bytes = serving.bytes_total - building.bytes_total;
        eprintln!("{what}: {count} allocations, {bytes} bytes");
        assert!(
            count <= budget,
            "{what}: {count} allocations ({bytes} bytes)"
        );
    }
    assert_eq!(sessions.len(), 1, "the layer created nothing");
}

#[test]
fn the_counter_sees_the_layer() {
    // Guard against a vacuous pass: the layer's request path is counted.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let svc = SessionLayer::new(Sessions::<u64>::new()).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let info = allocation_counter::measure(|| {
        let _ = rt.block_on(svc.clone().oneshot(Request::new(())));
    });
    assert!(info.count_total >= 1);
}
