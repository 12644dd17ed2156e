//! Two `RedisSessions` on one real `redis-server`, standing for two servers
//! behind a load balancer.

mod guard;
mod redis_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use guard::StopOnDrop;
use redis_support::{RedisServer, eventually_async};
use serde::{Deserialize, Serialize};
use sesame::redis::RedisSessions;
use sesame::{ErrorKind, ManualClock, SecretKey, SessionToken};

/// How fast another server must stop accepting an ended session.
const INVALIDATION_BOUND: Duration = Duration::from_millis(100);
/// Readiness deadline for a store's invalidation subscription.
const READY: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Cart {
    items: Vec<u32>,
    visits: u64,
}

type Store = RedisSessions<Cart, String>;

async fn store(server: &RedisServer, key: &SecretKey) -> Store {
    let s = RedisSessions::builder(&server.url())
        .secret_key(key.clone())
        .build()
        .expect("valid options");
    assert!(s.wait_ready(READY).await, "invalidation channel subscribed");
    s
}

async fn pair(server: &RedisServer) -> (Store, Store) {
    let key = SecretKey::generate();
    (store(server, &key).await, store(server, &key).await)
}

fn alice() -> String {
    "alice".to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_on_a_is_read_on_b() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    let cart = Cart {
        items: vec![1, 2, 3],
        visits: 0,
    };
    let (token, handle) = a.create(cart.clone()).await.unwrap();
    assert_eq!(b.validate(&token).await.unwrap(), Some(handle));
    assert_eq!(b.get(token.as_str()).await.unwrap(), Some(cart));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_makes_no_round_trip() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    let (token, handle) = a.create(Cart::default()).await.unwrap();
    assert_eq!(b.validate(&token).await.unwrap(), Some(handle)); // B reads Redis once
    let (fa, fb) = (a.redis_stats().fetches, b.redis_stats().fetches);
    for _ in 0..1_000 {
        assert_eq!(a.validate(&token).await.unwrap(), Some(handle));
        assert_eq!(b.validate(&token).await.unwrap(), Some(handle));
        assert!(b.with(&token, |c| c.visits).await.unwrap().is_some());
    }
    assert_eq!(
        a.redis_stats().fetches,
        fa,
        "the creator cached its session"
    );
    assert_eq!(b.redis_stats().fetches, fb, "B cached after one read");
    assert_eq!(a.redis_stats().touches + b.redis_stats().touches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_on_b_is_seen_on_a() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    let (token, _) = a.create(Cart::default()).await.unwrap();
    assert_eq!(
        a.get(&token).await.unwrap().unwrap().items,
        Vec::<u32>::new()
    ); // cached on A
    b.update(&token, |c| c.items.push(42)).await.unwrap();
    let took = eventually_async(INVALIDATION_BOUND, async || {
        a.get(&token).await.unwrap().unwrap().items == vec![42]
    })
    .await;
    assert!(took.is_some(), "A sees B's update within 100 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_a_is_refused_on_b_within_100ms() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    let (token, _) = a.create(Cart::default()).await.unwrap();
    assert!(b.validate(&token).await.unwrap().is_some()); // cached on B
    assert!(b.validate(&token).await.unwrap().is_some());
    assert!(a.logout(&token).await.unwrap());
    let took = eventually_async(INVALIDATION_BOUND, async || {
        b.validate(&token).await.unwrap().is_none()
    })
    .await;
    assert!(took.is_some(), "B refuses within 100 ms");
    assert!(a.validate(&token).await.unwrap().is_none());
    assert!(!a.logout(&token).await.unwrap(), "already gone");
    assert!(b.redis_stats().invalidations >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_on_a_rotates_on_b() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    let (anon, handle) = a.create(Cart::default()).await.unwrap();
    a.update(&anon, |c| c.items.push(7)).await.unwrap();
    assert!(b.validate(&anon).await.unwrap().is_some()); // cached on B
    let token = a.login(&anon, alice()).await.unwrap();
    let took = eventually_async(INVALIDATION_BOUND, async || {
        b.validate(&anon).await.unwrap().is_none()
    })
    .await;
    assert!(took.is_some(), "the pre-login token dies everywhere");
    assert!(a.validate(&anon).await.unwrap().is_none());
    let info = b.info(&token).await.unwrap().unwrap();
    assert_eq!(info.handle, handle, "the handle survives rotation");
    assert_eq!(info.principal.as_deref(), Some("alice"));
    assert_eq!(
        b.get(&token).await.unwrap().unwrap().items,
        vec![7],
        "the data moved"
    );
    assert_eq!(a.sessions_of(&alice()).await.unwrap().len(), 1);
    let rotated = b.rotate(&token).await.unwrap();
    assert!(a.validate(&token).await.unwrap().is_none());
    assert_eq!(
        a.info(&rotated).await.unwrap().unwrap().principal,
        Some(alice())
    );
    assert_eq!(
        b.sessions_of(&alice()).await.unwrap().len(),
        1,
        "index follows rotation"
    );
    assert_eq!(
        a.login(&anon, alice()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_on_b_ends_sessions_on_a() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    let mut tokens: Vec<SessionToken> = Vec::new();
    for _ in 0..3 {
        let (t, _) = a.create(Cart::default()).await.unwrap();
        tokens.push(a.login(&t, alice()).await.unwrap());
    }
    let (bob, _) = a.create(Cart::default()).await.unwrap();
    let bob = a.login(&bob, "bob".to_string()).await.unwrap();
    for t in tokens.iter().chain([&bob]) {
        assert!(a.validate(t).await.unwrap().is_some()); // cached on A
    }
    assert_eq!(b.sessions_of(&alice()).await.unwrap().len(), 3);
    assert_eq!(b.revoke_user(&alice()).await.unwrap(), 3);
    let took = eventually_async(INVALIDATION_BOUND, async || {
        for t in &tokens {
            if a.validate(t).await.unwrap().is_some() {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        took.is_some(),
        "A refuses all of alice's sessions within 100 ms"
    );
    assert!(
        a.validate(&bob).await.unwrap().is_some(),
        "bob is untouched"
    );
    assert!(a.sessions_of(&alice()).await.unwrap().is_empty());
    assert_eq!(a.revoke_user(&alice()).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_by_handle_ends_only_that_session() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    let (t1, _) = a.create(Cart::default()).await.unwrap();
    let t1 = a.login(&t1, alice()).await.unwrap();
    let (t2, h2) = a.create(Cart::default()).await.unwrap();
    let t2 = a.login(&t2, alice()).await.unwrap();
    assert!(a.validate(&t2).await.unwrap().is_some());
    assert!(
        !b.revoke(&"bob".to_string(), h2).await.unwrap(),
        "not bob's session"
    );
    assert!(b.revoke(&alice(), h2).await.unwrap());
    let took = eventually_async(INVALIDATION_BOUND, async || {
        a.validate(&t2).await.unwrap().is_none()
    })
    .await;
    assert!(took.is_some());
    assert!(a.validate(&t1).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_from_two_servers_all_land() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    let (token, _) = a.create(Cart::default()).await.unwrap();
    const EACH: u64 = 100;
    let mut writers = tokio::task::JoinSet::new();
    for (store, id) in [(a.clone(), 1u32), (b.clone(), 2u32)] {
        let token = token.clone();
        writers.spawn(async move {
            for _ in 0..EACH {
                store
                    .update(&token, |c| {
                        c.visits += 1;
                        c.items.push(id);
                    })
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("a writer failed");
    }
    for store in [&a, &b] {
        let cart = eventually_async(INVALIDATION_BOUND, async || {
            store.get(&token).await.unwrap().unwrap().visits == 2 * EACH
        })
        .await;
        assert!(cart.is_some(), "every update landed");
        let cart = store.get(&token).await.unwrap().unwrap();
        assert_eq!(cart.items.iter().filter(|&&i| i == 1).count() as u64, EACH);
        assert_eq!(cart.items.iter().filter(|&&i| i == 2).count() as u64, EACH);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_tokens_are_refused() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, _) = pair(&server).await;
    assert_eq!(a.validate("nope").await.unwrap(), None);
    assert_eq!(a.validate(&SessionToken::generate()).await.unwrap(), None);
    assert_eq!(
        a.update("x", |c| c.visits += 1).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(!a.logout(&SessionToken::generate()).await.unwrap());
    let other = store(&server, &SecretKey::generate()).await;
    let (token, _) = a.create(Cart::default()).await.unwrap();
    assert_eq!(
        other.validate(&token).await.unwrap(),
        None,
        "another secret finds nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ttl_is_min_of_idle_and_absolute_and_touch_is_rate_limited() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let clock = ManualClock::new();
    let idle = Duration::from_secs(600);
    let a: Store = RedisSessions::builder(&server.url())
        .secret_key(key)
        .idle_timeout(idle)
        .absolute_timeout(Duration::from_secs(3600))
        .cache_ttl(Duration::from_secs(3600))
        .clock(clock.clone())
        .build()
        .unwrap();
    assert!(a.wait_ready(READY).await);
    let (token, _) = a.create(Cart::default()).await.unwrap();
    let mut con = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("sesame:s:*")
        .query(&mut con)
        .unwrap();
    assert_eq!(keys.len(), 1);
    let pttl = |con: &mut redis::Connection| -> i64 {
        redis::cmd("PTTL").arg(&keys[0]).query(con).unwrap()
    };
    let ttl = pttl(&mut con);
    assert!(
        ttl > 590_000 && ttl <= 600_000,
        "TTL is the idle timeout: {ttl}"
    );

    // Reads within the first half of the idle timeout write nothing.
    clock.advance(Duration::from_secs(290));
    for _ in 0..100 {
        assert!(a.validate(&token).await.unwrap().is_some());
    }
    assert_eq!(a.redis_stats().touches, 0);
    // Past half: one read refreshes the deadline in Redis, the rest do not.
    redis::cmd("PEXPIRE")
        .arg(&keys[0])
        .arg(400_000)
        .query::<i64>(&mut con)
        .unwrap();
    clock.advance(Duration::from_secs(20));
    for _ in 0..100 {
        assert!(a.validate(&token).await.unwrap().is_some());
    }
    assert_eq!(a.redis_stats().touches, 1);
    let ttl = pttl(&mut con);
    assert!(ttl > 590_000, "the touch renewed the TTL: {ttl}");
    assert_eq!(a.redis_stats().fetches, 0, "all served from the near cache");

    // Near the absolute deadline the TTL is what is left of it.
    let now: (String, String) = redis::cmd("TIME").query(&mut con).unwrap();
    let now_ms = now.0.parse::<u64>().unwrap() * 1000 + now.1.parse::<u64>().unwrap() / 1000;
    redis::cmd("HSET")
        .arg(&keys[0])
        .arg("a")
        .arg(now_ms + 5_000)
        .query::<i64>(&mut con)
        .unwrap();
    clock.advance(Duration::from_secs(400));
    assert!(a.validate(&token).await.unwrap().is_some());
    assert_eq!(a.redis_stats().touches, 2);
    let ttl = pttl(&mut con);
    assert!(
        ttl > 0 && ttl <= 5_000,
        "TTL capped by the absolute deadline: {ttl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principal_index_is_pruned_of_expired_sessions() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, _) = pair(&server).await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let (t, _) = a.create(Cart::default()).await.unwrap();
        tokens.push(a.login(&t, alice()).await.unwrap());
    }
    let mut con = server.connection();
    // The index sits under the principal's hash tag: `sesame:u:{TT}"alice"`.
    let indexes: Vec<String> = redis::cmd("KEYS")
        .arg("sesame:u:*")
        .query(&mut con)
        .unwrap();
    assert_eq!(indexes.len(), 1);
    let set = indexes[0].as_str();
    assert_eq!(
        redis::cmd("ZCARD").arg(set).query::<i64>(&mut con).unwrap(),
        3
    );
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(set)
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    // Let one session expire in Redis.
    let victim = format!("sesame:s:{{{}}}{}", &members[0][..2], members[0]);
    redis::cmd("PEXPIRE")
        .arg(&victim)
        .arg(1)
        .query::<i64>(&mut con)
        .unwrap();
    let gone = eventually_async(Duration::from_secs(5), async || {
        redis::cmd("EXISTS")
            .arg(&victim)
            .query::<i64>(&mut con)
            .unwrap()
            == 0
    })
    .await;
    assert!(gone.is_some());
    assert_eq!(a.sessions_of(&alice()).await.unwrap().len(), 2);
    assert_eq!(
        redis::cmd("ZCARD").arg(set).query::<i64>(&mut con).unwrap(),
        2,
        "listing pruned the expired member"
    );
    let set_ttl: i64 = redis::cmd("PTTL").arg(set).query(&mut con).unwrap();
    assert!(set_ttl > 0, "the index set expires with its sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_token_text() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    // Listen to the invalidation channel too: messages must not carry tokens.
    let mut sub_con = server.connection();
    sub_con
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut sub = sub_con.as_pubsub();
    sub.subscribe("sesame:inv").unwrap();

    let mut tokens: Vec<SessionToken> = Vec::new();
    for i in 0..20u32 {
        let (t, _) = a
            .create(Cart {
                items: vec![i],
                visits: 0,
            })
            .await
            .unwrap();
        b.update(&t, |c| c.visits += 1).await.unwrap();
        tokens.push(t.clone());
        let t2 = if i % 2 == 0 {
            a.login(&t, format!("user{}", i % 3)).await.unwrap()
        } else {
            b.rotate(&t).await.unwrap()
        };
        tokens.push(t2.clone());
        if i % 5 == 0 {
            a.logout(&t2).await.unwrap();
        }
    }
    b.revoke_user(&"user1".to_string()).await.unwrap();

    let mut messages = Vec::new();
    while let Ok(msg) = sub.get_message() {
        messages.push(msg.get_payload_bytes().to_vec());
    }
    assert!(!messages.is_empty(), "invalidations were published");

    let mut con = server.connection();
    let mut stored: Vec<Vec<u8>> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(100)
            .query(&mut con)
            .unwrap();
        for k in keys {
            let kind: String = redis::cmd("TYPE").arg(&k).query(&mut con).unwrap();
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "hash" => redis::cmd("HGETALL").arg(&k).query(&mut con).unwrap(),
                "set" => redis::cmd("SMEMBERS").arg(&k).query(&mut con).unwrap(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .query(&mut con)
                    .unwrap(),
                // The flush marker: a random value, no token.
                "string" if k == "sesame:live" => {
                    vec![redis::cmd("GET").arg(&k).query(&mut con).unwrap()]
                }
                other => panic!("unexpected key type {other}"),
            };
            stored.push(k.into_bytes());
            stored.extend(values);
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert!(stored.len() > 20, "sessions were stored");
    let haystack: Vec<&[u8]> = stored.iter().chain(&messages).map(Vec::as_slice).collect();
    for t in &tokens {
        let text = t.as_str().as_bytes();
        let raw = t.as_bytes();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        for h in &haystack {
            assert!(!contains(h, text), "token text stored in Redis");
            assert!(!contains(h, raw), "raw token bytes stored in Redis");
            assert!(!contains(h, hex.as_bytes()), "token hex stored in Redis");
            assert!(!contains(h, &text[..16]), "token prefix stored in Redis");
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_errors_name_their_option() {
    use sesame::redis::RedisOption;
    let b =
        || RedisSessions::<Cart>::builder("redis://127.0.0.1:1/").secret_key(SecretKey::generate());
    assert_eq!(
        RedisSessions::<Cart>::builder("redis://127.0.0.1:1/")
            .build()
            .unwrap_err()
            .option(),
        RedisOption::SecretKey
    );
    assert_eq!(
        RedisSessions::<Cart>::builder("not a url")
            .secret_key(SecretKey::generate())
            .build()
            .unwrap_err()
            .option(),
        RedisOption::Url
    );
    assert_eq!(
        b().idle_timeout(Duration::ZERO)
            .build()
            .unwrap_err()
            .option(),
        RedisOption::IdleTimeout
    );
    assert_eq!(
        b().cache_capacity(0).build().unwrap_err().option(),
        RedisOption::CacheCapacity
    );
    assert_eq!(
        b().cache_ttl(Duration::ZERO).build().unwrap_err().option(),
        RedisOption::CacheTtl
    );
    assert_eq!(
        b().key_prefix("a b").build().unwrap_err().option(),
        RedisOption::KeyPrefix
    );
    assert_eq!(
        b().io_timeout(Duration::ZERO).build().unwrap_err().option(),
        RedisOption::IoTimeout
    );
    let e = RedisSessions::<Cart>::builder("redis://:hunter2@127.0.0.1:1/")
        .secret_key(SecretKey::generate())
        .key_prefix("")
        .build()
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writing_server_reads_its_own_writes_despite_concurrent_readers() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    let (token, _) = a.create(Cart::default()).await.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    // Stops the readers however this test ends (a failed assertion below
    // included): they check the flag on every iteration.
    let stop = StopOnDrop(&done);
    // Readers on both servers keep fetching and caching copies, some of
    // them read just before a write lands. Tasks on the runtime's two
    // workers, while the writer runs on the test's own thread.
    let mut readers = Vec::new();
    for (store, on_a) in [(a.clone(), true), (a.clone(), true), (b.clone(), false)] {
        let (token, done) = (token.clone(), Arc::clone(&done));
        readers.push(tokio::spawn(async move {
            let mut last = 0;
            while !done.load(Ordering::Acquire) {
                let seen = store.get(&token).await.unwrap().unwrap().visits;
                if on_a {
                    assert!(
                        seen >= last,
                        "a server's reads never go back: {seen} < {last}"
                    );
                }
                last = seen;
                tokio::task::yield_now().await;
            }
        }));
    }
    for i in 1..=200 {
        a.update(&token, |c| c.visits += 1).await.unwrap();
        assert_eq!(
            a.get(&token).await.unwrap().unwrap().visits,
            i,
            "read your own write"
        );
    }
    drop(stop);
    for reader in readers {
        reader.await.expect("a reader failed");
    }
    assert!(
        eventually_async(INVALIDATION_BOUND, async || b
            .get(&token)
            .await
            .unwrap()
            .unwrap()
            .visits
            == 200)
        .await
        .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_is_served_at_most_cache_ttl() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::new();
    let a: Store = RedisSessions::builder(&server.url())
        .secret_key(SecretKey::generate())
        .cache_ttl(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
        .unwrap();
    assert!(a.wait_ready(READY).await);
    let (token, _) = a.create(Cart::default()).await.unwrap();
    assert!(a.validate(&token).await.unwrap().is_some());
    clock.advance(Duration::from_secs(9));
    assert!(a.validate(&token).await.unwrap().is_some());
    assert_eq!(a.redis_stats().fetches, 0, "within the TTL: the local copy");
    clock.advance(Duration::from_secs(1));
    assert!(a.validate(&token).await.unwrap().is_some());
    assert_eq!(
        a.redis_stats().fetches,
        1,
        "past the TTL: read again from Redis"
    );
    assert!(a.validate(&token).await.unwrap().is_some());
    assert_eq!(a.redis_stats().fetches, 1, "and cached again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_expires_everywhere() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let build = async || -> Store {
        let s = RedisSessions::builder(&server.url())
            .secret_key(key.clone())
            .idle_timeout(Duration::from_secs(1))
            .absolute_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        assert!(s.wait_ready(READY).await);
        s
    };
    let (a, b) = (build().await, build().await);
    let (token, _) = a.create(Cart::default()).await.unwrap();
    assert!(b.validate(&token).await.unwrap().is_some());
    let mut con = server.connection();
    // Real time, and no use meanwhile (a validation is a use): Redis drops
    // the key by its TTL, and neither server serves its copy past the idle
    // deadline it knows of.
    let expired = eventually_async(Duration::from_secs(5), async || {
        let left: Vec<String> = redis::cmd("KEYS")
            .arg("sesame:s:*")
            .query(&mut con)
            .unwrap();
        left.is_empty()
    })
    .await;
    assert!(expired.is_some(), "Redis dropped the key by its TTL");
    assert!(a.validate(&token).await.unwrap().is_none());
    assert!(b.validate(&token).await.unwrap().is_none());
}

/// Issue 12 item 3: how long another server may serve a session that was
/// removed in Redis without a message from sesame (`DEL`, eviction,
/// expiry), with keyspace notifications on: the pub/sub delivery.
const NOTIFIED_REMOVAL_BOUND: Duration = Duration::from_millis(100);
/// ... after `FLUSHDB`: the marker check period (250 ms) plus a round trip,
/// with slack for a loaded two-core machine.
const FLUSH_BOUND: Duration = Duration::from_millis(1_000);

/// The session keys in Redis.
fn session_keys(con: &mut redis::Connection) -> Vec<String> {
    redis::cmd("KEYS").arg("sesame:s:*").query(con).unwrap()
}

/// Caches `token` on `s` and checks that the next read is a hit.
async fn cached_on(s: &Store, token: &SessionToken) {
    assert!(s.validate(token).await.unwrap().is_some());
    let f = s.redis_stats().fetches;
    assert!(s.validate(token).await.unwrap().is_some());
    assert_eq!(s.redis_stats().fetches, f, "served from the near cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_deleted_in_redis_stops_being_served_within_the_bound() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    assert!(
        a.keyspace_notifications() && b.keyspace_notifications(),
        "a local redis-server lets sesame turn notifications on"
    );
    let mut con = server.connection();
    for how in ["DEL", "UNLINK", "PEXPIRE"] {
        let (token, _) = a.create(Cart::default()).await.unwrap();
        cached_on(&b, &token).await;
        // Remove it behind sesame's back: one command, no message.
        let keys = session_keys(&mut con);
        assert_eq!(keys.len(), 1);
        let mut cmd = redis::cmd(how);
        cmd.arg(&keys[0]);
        if how == "PEXPIRE" {
            cmd.arg(1);
        }
        cmd.query::<i64>(&mut con).unwrap();
        // Each server hears of it on its own subscription.
        let took = eventually_async(NOTIFIED_REMOVAL_BOUND, async || {
            a.validate(&token).await.unwrap().is_none()
                && b.validate(&token).await.unwrap().is_none()
        })
        .await;
        assert!(took.is_some(), "a session removed by {how} was served");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushdb_stops_every_copy_within_the_bound() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    let mut con = server.connection();
    for _ in 0..3 {
        let (token, _) = a.create(Cart::default()).await.unwrap();
        cached_on(&a, &token).await;
        cached_on(&b, &token).await;
        redis::cmd("FLUSHDB").query::<()>(&mut con).unwrap();
        let took = eventually_async(FLUSH_BOUND, async || {
            a.validate(&token).await.unwrap().is_none()
                && b.validate(&token).await.unwrap().is_none()
        })
        .await;
        assert!(took.is_some(), "a copy outlived FLUSHDB");
        eprintln!("FLUSHDB refused after {took:?}");
        // And the stores work on afterwards, caching again.
        assert!(a.wait_ready(READY).await && b.wait_ready(READY).await);
        let (fresh, _) = a.create(Cart::default()).await.unwrap();
        cached_on(&b, &fresh).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keyspace_notifications_copies_live_at_most_the_fallback_ttl() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // A user that may not run CONFIG, as on managed Redis.
    let mut admin = server.connection();
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(">secret")
        .arg("~*")
        .arg("allchannels")
        .arg("+@all")
        .arg("-config")
        .query::<()>(&mut admin)
        .unwrap();
    let url = format!("redis://app:secret@127.0.0.1:{}/", server.port());
    let key = SecretKey::generate();
    let build = async || -> Store {
        let s = RedisSessions::builder(&url)
            .secret_key(key.clone())
            .build()
            .unwrap();
        assert!(s.wait_ready(READY).await);
        s
    };
    let (a, b) = (build().await, build().await);
    assert!(!b.keyspace_notifications(), "CONFIG was refused");
    let (token, _) = a.create(Cart::default()).await.unwrap();
    cached_on(&b, &token).await;
    let start = std::time::Instant::now();
    for k in session_keys(&mut admin) {
        redis::cmd("DEL").arg(&k).query::<i64>(&mut admin).unwrap();
    }
    let bound = sesame::redis::DEFAULT_FALLBACK_CACHE_TTL + Duration::from_millis(200);
    let took = eventually_async(bound, async || b.validate(&token).await.unwrap().is_none()).await;
    assert!(
        took.is_some(),
        "B served a deleted session past the fallback TTL"
    );
    eprintln!(
        "DEL without notifications refused after {:?}",
        start.elapsed()
    );
    // Invalidations published by sesame itself still work at once.
    let (t2, _) = a.create(Cart::default()).await.unwrap();
    cached_on(&b, &t2).await;
    assert!(a.logout(&t2).await.unwrap());
    assert!(
        eventually_async(INVALIDATION_BOUND, async || b
            .validate(&t2)
            .await
            .unwrap()
            .is_none())
        .await
        .is_some()
    );
}

/// `logout`, `revoke` and `revoke_user` are final on the server that ran
/// them when the call returns, even with readers busy on that server; on
/// the other server within the invalidation bound. 200 trials; prints the
/// p50/p99 delay on the other server, measured from the call's return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endings_are_final_at_return_here_and_within_the_bound_there() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    const TRIALS: usize = 200;
    let mut delays = Vec::with_capacity(TRIALS);
    for trial in 0..TRIALS {
        let user = format!("user{trial}");
        let (anon, _) = a.create(Cart::default()).await.unwrap();
        let token = a.login(&anon, user.clone()).await.unwrap();
        let handle = a.validate(&token).await.unwrap().unwrap();
        cached_on(&a, &token).await;
        cached_on(&b, &token).await;
        // Readers on A keep validating (and re-caching) while A ends it.
        let ended = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let stop = StopOnDrop(&done);
        let mut readers = Vec::new();
        for _ in 0..2 {
            let (a, token, ended, done) = (
                a.clone(),
                token.clone(),
                Arc::clone(&ended),
                Arc::clone(&done),
            );
            readers.push(tokio::spawn(async move {
                while !done.load(Ordering::Acquire) {
                    let after = ended.load(Ordering::SeqCst);
                    let live = a.validate(&token).await.unwrap().is_some();
                    assert!(!(after && live), "served after the ending returned");
                    tokio::task::yield_now().await;
                }
            }));
        }
        tokio::task::yield_now().await;
        match trial % 3 {
            0 => assert!(a.logout(&token).await.unwrap()),
            1 => assert!(a.revoke(&user, handle).await.unwrap()),
            _ => assert_eq!(a.revoke_user(&user).await.unwrap(), 1),
        }
        ended.store(true, Ordering::SeqCst);
        let returned = std::time::Instant::now();
        assert!(
            a.validate(&token).await.unwrap().is_none(),
            "final here at return"
        );
        let mut refused = None;
        while returned.elapsed() < Duration::from_secs(1) {
            if b.validate(&token).await.unwrap().is_none() {
                refused = Some(returned.elapsed());
                break;
            }
            tokio::task::yield_now().await;
        }
        drop(stop);
        for r in readers {
            r.await.expect("a reader saw an ended session");
        }
        delays.push(refused.expect("B refused within 1 s"));
    }
    delays.sort();
    let pct = |p: f64| delays[((delays.len() as f64 * p) as usize).min(delays.len() - 1)];
    let (p50, p99, max) = (pct(0.50), pct(0.99), delays[TRIALS - 1]);
    eprintln!(
        "ending on A refused on B after A's return: n={TRIALS} p50={p50:?} p99={p99:?} max={max:?}"
    );
    assert!(p99 <= INVALIDATION_BOUND, "p99 {p99:?} over the bound");
}

/// The cache hit stays synchronous and allocation-free: the future of a
/// hit completes on its first poll (no I/O, no yield) and allocates
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_completes_on_first_poll_without_allocating() {
    use futures_util::FutureExt as _;
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, _) = pair(&server).await;
    let (token, handle) = a.create(Cart::default()).await.unwrap();
    cached_on(&a, &token).await;
    let info = allocation_counter::measure(|| {
        for _ in 0..100 {
            let hit = a.validate(&token).now_or_never();
            assert!(
                matches!(hit, Some(Ok(Some(h))) if h == handle),
                "ready at once"
            );
            let visits = a.with(&token, |c| c.visits).now_or_never();
            assert!(matches!(visits, Some(Ok(Some(0)))));
        }
    });
    assert_eq!(info.count_total, 0, "a hit allocated");
}

/// Drives two servers through the core `Store` trait only, as the HTTP
/// adapters do.
async fn through_the_store_trait<S>(a: S, b: S)
where
    S: sesame::store::Store<Data = Cart, Principal = String>,
{
    let anon = a.create(Cart::default()).await.unwrap();
    assert!(b.is_current(&anon).await.unwrap());
    let handle = b.validate(&anon).await.unwrap().expect("live on B");
    b.update(&anon, |c| c.items.push(5)).await.unwrap();
    assert_eq!(
        b.with(&anon, |c| c.items.clone()).await.unwrap(),
        Some(vec![5]),
        "B reads its own write"
    );
    // (A loop, not `eventually_async`: its async closure's future is not
    // provably `Send` inside a generic spawned future.)
    let start = std::time::Instant::now();
    while a.with(&anon, |c| c.items.clone()).await.unwrap() != Some(vec![5]) {
        assert!(
            start.elapsed() < INVALIDATION_BOUND,
            "A reads B's write within the bound"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let token = a.login(&anon, alice()).await.unwrap();
    assert!(
        !a.is_current(&anon).await.unwrap(),
        "the pre-login token died"
    );
    let info = b.info(&token).await.unwrap().expect("logged in");
    assert_eq!((info.handle, info.principal), (handle, Some(alice())));
    let rotated = b.rotate(&token).await.unwrap();
    assert!(!b.is_current(&token).await.unwrap(), "no grace alias");
    assert!(a.is_current(&rotated).await.unwrap());
    assert_eq!(a.sessions_of(&alice()).await.unwrap().len(), 1);
    assert!(!a.revoke(&"bob".to_string(), handle).await.unwrap());
    assert!(a.revoke(&alice(), handle).await.unwrap());
    assert_eq!(a.validate(&rotated).await.unwrap(), None, "final here");
    let other = a.create(Cart::default()).await.unwrap();
    let other = a.login(&other, alice()).await.unwrap();
    assert_eq!(b.revoke_user(&alice()).await.unwrap(), 1);
    assert_eq!(b.validate(&other).await.unwrap(), None);
    let last = b.create(Cart::default()).await.unwrap();
    assert!(a.logout(&last).await.unwrap());
    assert!(!a.logout(&last).await.unwrap(), "already gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sessions_implement_the_core_store_trait() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = pair(&server).await;
    // Spawned: the trait's futures are `Send`.
    tokio::spawn(through_the_store_trait(a, b))
        .await
        .expect("the store-trait scenario failed");
}
