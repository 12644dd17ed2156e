//! Issue 11 on the Redis backend: a new principal starts from fresh data
//! there too (the engine's rule, tests/lifecycle.rs).

mod redis_support;

use std::time::Duration;

use redis_support::{RedisServer, eventually_async};
use serde::{Deserialize, Serialize};
use sesame::SecretKey;
use sesame::redis::RedisSessions;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Cart {
    items: Vec<u32>,
}

async fn store(server: &RedisServer, key: &SecretKey) -> RedisSessions<Cart, String> {
    let s = RedisSessions::builder(&server.url())
        .secret_key(key.clone())
        .build()
        .expect("valid options");
    assert!(s.wait_ready(Duration::from_secs(5)).await, "subscribed");
    s
}

/// Broke: bob's login on a session alice left logged in kept alice's cart,
/// on the server that ran it and on every other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_as_another_principal_starts_from_fresh_data_on_every_server() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let (a, b) = (store(&server, &key).await, store(&server, &key).await);
    let (anon, _) = a.create(Cart { items: vec![1] }).await.unwrap();
    let alice = a.login(&anon, "alice".to_string()).await.unwrap();
    assert_eq!(
        b.get(&alice).await.unwrap(),
        Some(Cart { items: vec![1] }),
        "anonymous data kept"
    );
    a.update(&alice, |c| c.items.push(2)).await.unwrap();
    let again = a.login(&alice, "alice".to_string()).await.unwrap();
    assert_eq!(
        b.get(&again).await.unwrap().unwrap().items,
        vec![1, 2],
        "same principal keeps data"
    );
    let bob = b.login(&again, "bob".to_string()).await.unwrap();
    assert_eq!(
        a.get(&bob).await.unwrap(),
        Some(Cart::default()),
        "bob sees alice's cart"
    );
    assert_eq!(b.get(&bob).await.unwrap(), Some(Cart::default()));
    assert!(a.validate(&again).await.unwrap().is_none());
    // Updates after the reset start from the fresh data.
    b.update(&bob, |c| c.items.push(9)).await.unwrap();
    assert_eq!(b.get(&bob).await.unwrap(), Some(Cart { items: vec![9] }));
    // Another server's copy follows within the invalidation bound.
    let seen = eventually_async(Duration::from_secs(1), async || {
        a.get(&bob).await.unwrap() == Some(Cart { items: vec![9] })
    })
    .await;
    assert!(seen.is_some(), "server A never saw bob's update");
}

/// The principal index became a sorted set (scored by login time, for the
/// per-user limit); an index an earlier version left as a plain set is
/// converted in place by the first script that touches it: listing,
/// logging in and revoking all still find its sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_index_left_as_a_plain_set_still_works() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let s = store(&server, &key).await;
    let alice = "alice".to_string();
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let (t, _) = s.create(Cart::default()).await.unwrap();
        tokens.push(s.login(&t, alice.clone()).await.unwrap());
    }
    // Rewrite the index as the old layout did: a plain set of hex digests.
    let mut con = server.connection();
    // The index sits under the principal's hash tag: `sesame:u:{TT}"alice"`.
    let indexes: Vec<String> = redis::cmd("KEYS")
        .arg("sesame:u:*")
        .query(&mut con)
        .unwrap();
    assert_eq!(indexes.len(), 1);
    assert!(indexes[0].ends_with("}\"alice\""), "{indexes:?}");
    let index = indexes[0].as_str();
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(index)
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(members.len(), 2);
    let _: () = redis::cmd("DEL").arg(index).query(&mut con).unwrap();
    let _: () = redis::cmd("SADD")
        .arg(index)
        .arg(&members)
        .query(&mut con)
        .unwrap();
    assert_eq!(s.sessions_of(&alice).await.unwrap().len(), 2);
    let kind: String = redis::cmd("TYPE").arg(index).query(&mut con).unwrap();
    assert_eq!(kind, "zset");
    let (t, _) = s.create(Cart::default()).await.unwrap();
    tokens.push(s.login(&t, alice.clone()).await.unwrap());
    assert_eq!(s.revoke_user(&alice).await.unwrap(), 3);
    for t in &tokens {
        assert_eq!(s.validate(t).await.unwrap(), None);
    }
}

/// The policies are Redis's, not one server's: a login on server B ends,
/// by the per-user limit, a session server A holds a copy of; a create on
/// B evicts, for capacity, an anonymous session A holds a copy of; a token
/// in its grace window after a rotation on A works on B until the window
/// ends. A reports the first two as refused within the invalidation bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_hold_across_servers() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let build = || {
        RedisSessions::<Cart, String>::builder(&server.url())
            .secret_key(key.clone())
            .max_sessions(3)
            .max_sessions_per_user(1)
            .rotation_grace(Duration::from_millis(500))
            .build()
            .expect("valid options")
    };
    let (a, b) = (build(), build());
    assert!(a.wait_ready(Duration::from_secs(5)).await);
    assert!(b.wait_ready(Duration::from_secs(5)).await);
    let alice = "alice".to_string();
    let (t, _) = a.create(Cart::default()).await.unwrap();
    let on_a = a.login(&t, alice.clone()).await.unwrap();
    assert!(a.validate(&on_a).await.unwrap().is_some(), "cached on A");
    let (t, _) = b.create(Cart::default()).await.unwrap();
    let on_b = b.login(&t, alice.clone()).await.unwrap();
    let gone = eventually_async(Duration::from_secs(1), async || {
        a.validate(&on_a).await.unwrap().is_none()
    })
    .await;
    assert!(gone.is_some(), "A still serves the session B's login ended");
    assert!(a.validate(&on_b).await.unwrap().is_some());

    // Capacity 3: on_b, anon (cached on A), then two more on B evict anon.
    let (anon, _) = a.create(Cart::default()).await.unwrap();
    assert!(a.validate(&anon).await.unwrap().is_some(), "cached on A");
    tokio::time::sleep(Duration::from_millis(3)).await;
    let (fresh, _) = b.create(Cart::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    b.create(Cart::default()).await.unwrap();
    let gone = eventually_async(Duration::from_secs(1), async || {
        a.validate(&anon).await.unwrap().is_none()
    })
    .await;
    assert!(gone.is_some(), "A still serves the session B evicted");
    assert!(a.validate(&fresh).await.unwrap().is_some());

    // Grace window: rotated on A, the old token works on B, then not.
    assert!(b.validate(&fresh).await.unwrap().is_some(), "cached on B");
    let new = a.rotate(&fresh).await.unwrap();
    assert!(b.validate(&fresh).await.unwrap().is_some(), "no grace on B");
    // B learns of the rotation within the invalidation bound (until then
    // its copy still says current).
    let learnt = eventually_async(Duration::from_millis(300), async || {
        !b.is_current(&fresh).await.unwrap()
    })
    .await;
    assert!(learnt.is_some(), "B still calls the rotated token current");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        b.validate(&fresh).await.unwrap().is_none(),
        "alias outlived its window on B"
    );
    assert!(b.validate(&new).await.unwrap().is_some());
}
