//! The validate path allocates nothing (design rule: one shard read lock,
//! no allocation, no wheel work), counted by `allocation-counter`'s global
//! allocator.

use sesame::{SessionToken, Sessions};

#[test]
fn validate_hit_and_miss_allocate_nothing() {
    let s = Sessions::<Vec<u8>>::builder()
        .reaper_interval(None)
        .build()
        .unwrap();
    let mut tokens = Vec::new();
    for _ in 0..1000 {
        tokens.push(s.create(vec![1, 2, 3]).unwrap().0);
    }
    let text = tokens[7].as_str().to_owned();
    let stranger = SessionToken::generate();
    let info = allocation_counter::measure(|| {
        for t in &tokens {
            assert!(s.validate(t).is_some());
        }
        assert!(s.validate(text.as_str()).is_some());
        assert!(s.validate(&stranger).is_none());
        assert!(s.validate("malformed").is_none());
        assert_eq!(s.with(&tokens[3], |v| v.len()), Some(3));
        s.update(&tokens[4], |v| v[0] = 9).unwrap();
    });
    assert_eq!(info.count_total, 0, "the hot path allocated: {info:?}");
}

#[test]
fn the_counter_does_count() {
    // Guard against a vacuous pass: a path that allocates is seen.
    let s = Sessions::<Vec<u8>>::builder()
        .reaper_interval(None)
        .build()
        .unwrap();
    let (t, _) = s.create(vec![1]).unwrap();
    let info = allocation_counter::measure(|| {
        assert_eq!(s.get(&t), Some(vec![1]));
    });
    assert!(info.count_total >= 1);
}

/// The adapters reach the engine through `sesame::store::Store`: its
/// futures are ready ones, so the layer's validate path stays
/// allocation-free (polled here once, as an executor would).
#[test]
fn store_trait_validate_allocates_nothing() {
    use sesame::store::Store;
    use std::future::Future as _;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    let s = Sessions::<Vec<u8>>::builder()
        .reaper_interval(None)
        .build()
        .unwrap();
    let (token, _) = s.create(vec![1, 2, 3]).unwrap();
    let stranger = SessionToken::generate();
    let mut cx = Context::from_waker(Waker::noop());
    let info = allocation_counter::measure(|| {
        for _ in 0..100 {
            let hit = pin!(Store::validate(&s, &token)).poll(&mut cx);
            assert!(matches!(hit, Poll::Ready(Ok(Some(_)))));
            let miss = pin!(Store::validate(&s, &stranger)).poll(&mut cx);
            assert!(matches!(miss, Poll::Ready(Ok(None))));
            let len = pin!(Store::with(&s, &token, |v: &Vec<u8>| v.len())).poll(&mut cx);
            assert!(matches!(len, Poll::Ready(Ok(Some(3)))));
            let current = pin!(Store::is_current(&s, &token)).poll(&mut cx);
            assert!(matches!(current, Poll::Ready(Ok(true))));
        }
    });
    assert_eq!(info.count_total, 0, "the trait's path allocated: {info:?}");
}
