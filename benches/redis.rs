//! Many servers on one Redis: what a validation costs through sesame's near
//! cache, against a Redis GET per request (what connect-redis and most
//! Redis-backed session stores do) and tower-sessions' Redis store; then
//! how long a logout on one server takes to be refused on another.
//!
//! Starts its own `redis-server` on a free loopback port (skips if there is
//! none). Run: `cargo bench --bench redis --features redis`.

#[path = "../tests/redis_support/mod.rs"]
mod redis_support;

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use redis_support::RedisServer;
use serde::{Deserialize, Serialize};
use sesame::SecretKey;
use sesame::redis::RedisSessions;
use tokio::runtime::Runtime;
use tower_sessions::cookie::time::{Duration as TimeDuration, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::SessionStore;
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};

/// Live sessions in each store.
const SESSIONS: usize = 10_000;
/// Invalidation latency samples.
const SAMPLES: usize = 500;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Cart {
    items: Vec<u32>,
    user: Option<u64>,
}

fn cart(i: usize) -> Cart {
    Cart {
        items: vec![i as u32, 1, 2],
        user: Some(i as u64),
    }
}

fn bench_validate(c: &mut Criterion, server: &RedisServer, rt: &Runtime) {
    let mut group = c.benchmark_group("validate_hit");
    let label = "10k";

    // For scale: the in-process engine alone (no Redis at all).
    let local = sesame::Sessions::<Cart>::new();
    let local_tokens: Vec<String> = (0..SESSIONS)
        .map(|i| local.create(cart(i)).expect("create").0.as_str().to_owned())
        .collect();
    let mut i = 0;
    group.bench_function(BenchmarkId::new("sesame_local", label), |b| {
        b.iter(|| {
            i = (i + 1) % SESSIONS;
            black_box(local.validate(local_tokens[i].as_str()))
        })
    });

    // sesame: Redis is the truth, the hit is served by the near cache. The
    // methods are async; a hit completes on its first poll (no I/O), here
    // awaited through criterion's tokio executor.
    let key = SecretKey::generate();
    let sessions = RedisSessions::<Cart>::builder(&server.url())
        .secret_key(key)
        .cache_capacity(2 * SESSIONS)
        .cache_ttl(Duration::from_secs(600))
        .runtime(rt.handle().clone())
        .build()
        .expect("options");
    let tokens: Vec<String> = rt.block_on(async {
        assert!(sessions.wait_ready(Duration::from_secs(5)).await);
        let mut out = Vec::with_capacity(SESSIONS);
        for i in 0..SESSIONS {
            let (token, _) = sessions.create(cart(i)).await.expect("create");
            out.push(token.as_str().to_owned());
        }
        out
    });
    let sessions = &sessions;
    let i = Cell::new(0);
    group.bench_function(BenchmarkId::new("sesame_near_cache", label), |b| {
        b.to_async(rt).iter(|| {
            i.set((i.get() + 1) % SESSIONS);
            let token = tokens[i.get()].as_str();
            async move { black_box(sessions.validate(token).await.expect("redis up")) }
        })
    });
    group.bench_function(BenchmarkId::new("sesame_near_cache_get", label), |b| {
        b.to_async(rt).iter(|| {
            i.set((i.get() + 1) % SESSIONS);
            let token = tokens[i.get()].as_str();
            async move { black_box(sessions.get(token).await.expect("redis up")) }
        })
    });
    let fetches_before = sessions.redis_stats().fetches;

    // A GET per request, keyed by the raw session ID, JSON value.
    let mut con = server.connection();
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("sess:{i:043}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let value = serde_json::to_vec(&cart(i)).expect("json");
        redis::cmd("SET")
            .arg(id)
            .arg(value)
            .arg("EX")
            .arg(1800)
            .query::<()>(&mut con)
            .expect("set");
    }
    let mut i = 0;
    group.bench_function(BenchmarkId::new("redis_get", label), |b| {
        b.iter(|| {
            i = (i + 1) % SESSIONS;
            let raw: Option<Vec<u8>> = redis::cmd("GET").arg(&ids[i]).query(&mut con).expect("get");
            let cart: Cart = serde_json::from_slice(&raw.expect("present")).expect("json");
            black_box(cart)
        })
    });

    // tower-sessions' Redis store (fred client, async, MessagePack records).
    let store = rt.block_on(async {
        let config = Config::from_url(&server.url()).expect("url");
        let pool = Pool::new(config, None, None, None, 1).expect("pool");
        // The connection task runs detached; wait_for_connect waits for it.
        drop(pool.connect());
        pool.wait_for_connect().await.expect("connect");
        RedisStore::new(pool)
    });
    let ts_ids: Vec<Id> = rt.block_on(async {
        let mut out = Vec::with_capacity(SESSIONS);
        for i in 0..SESSIONS {
            let mut record = Record {
                id: Id::default(),
                data: Default::default(),
                expiry_date: OffsetDateTime::now_utc() + TimeDuration::minutes(30),
            };
            record
                .data
                .insert("cart".into(), serde_json::to_value(cart(i)).expect("json"));
            store.create(&mut record).await.expect("create");
            out.push(record.id);
        }
        out
    });
    let (store, ts_ids) = (&store, &ts_ids);
    let i = Cell::new(0);
    group.bench_function(BenchmarkId::new("tower_sessions_redis", label), |b| {
        b.to_async(rt).iter(|| {
            i.set((i.get() + 1) % SESSIONS);
            let id = &ts_ids[i.get()];
            async move { black_box(store.load(id).await.expect("load")) }
        })
    });
    group.finish();
    assert_eq!(
        sessions.redis_stats().fetches,
        fetches_before,
        "the near cache served every hit"
    );
}

/// Near-cache hit, miss and write (an `update`: one script, one round trip)
/// on a single instance and on a six-node Redis Cluster, same run. Writes
/// do not wait for replicas on either (`replica_acks(0, ..)`), so the two
/// compare the same work. A miss: a store whose copies live 1 ms, read
/// round robin over 1,000 sessions.
fn bench_cluster(c: &mut Criterion, server: &RedisServer, rt: &Runtime) {
    const N: usize = 1_000;
    let Some(cluster) = redis_support::cluster::RedisCluster::start() else {
        return;
    };
    let urls = cluster.urls();
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    let key = SecretKey::generate();
    let build = |cluster: bool, ttl: Duration| {
        let b = if cluster {
            RedisSessions::<Cart>::cluster_builder(&nodes)
        } else {
            RedisSessions::<Cart>::builder(&server.url())
        };
        b.secret_key(key.clone())
            .key_prefix("bench-cluster")
            .cache_capacity(2 * N)
            .cache_ttl(ttl)
            .replica_acks(0, Duration::from_millis(1))
            .runtime(rt.handle().clone())
            .build()
            .expect("options")
    };
    let mut group = c.benchmark_group("near_cache");
    for (label, clustered) in [("single", false), ("cluster", true)] {
        let hot = build(clustered, Duration::from_secs(600));
        let cold = build(clustered, Duration::from_millis(1));
        let tokens: Vec<String> = rt.block_on(async {
            assert!(hot.wait_ready(Duration::from_secs(10)).await);
            assert!(cold.wait_ready(Duration::from_secs(10)).await);
            let mut out = Vec::with_capacity(N);
            for i in 0..N {
                let (token, _) = hot.create(cart(i)).await.expect("create");
                out.push(token.as_str().to_owned());
            }
            out
        });
        let (hot, cold, tokens) = (&hot, &cold, &tokens);
        let i = Cell::new(0);
        let next = || {
            i.set((i.get() + 1) % N);
            tokens[i.get()].as_str()
        };
        group.bench_function(BenchmarkId::new("hit", label), |b| {
            b.to_async(rt).iter(|| {
                let token = next();
                async move { black_box(hot.validate(token).await.expect("redis up")) }
            })
        });
        group.bench_function(BenchmarkId::new("miss", label), |b| {
            b.to_async(rt).iter(|| {
                let token = next();
                async move { black_box(cold.validate(token).await.expect("redis up")) }
            })
        });
        group.bench_function(BenchmarkId::new("write", label), |b| {
            b.to_async(rt).iter(|| {
                let token = next();
                async move {
                    hot.update(token, |c| c.items.push(1))
                        .await
                        .expect("redis up")
                }
            })
        });
    }
    group.finish();
    // What keeps a rotation in its slot: tokens drawn until the digest's
    // first byte (the hash tag) is a given one, 256 draws on average. The
    // same work as `RedisSessions::rotate`'s draw: a token from the CSPRNG
    // and its keyed blake3 digest per draw.
    let secret = [7u8; 32];
    let mut want = 0u8;
    c.bench_function("tag_draw/rotation", |b| {
        b.iter(|| {
            want = want.wrapping_add(1);
            loop {
                let token = sesame::SessionToken::generate();
                let digest = blake3::keyed_hash(&secret, token.as_bytes());
                if digest.as_bytes()[0] == want {
                    break black_box(digest);
                }
            }
        })
    });
}

/// Logout on B, then A polls its own validate until it refuses: the time
/// from the start of B's logout call to A's first refusal.
async fn invalidation_latency(server: &RedisServer) {
    let key = SecretKey::generate();
    let build = async || {
        let s = RedisSessions::<Cart>::builder(&server.url())
            .secret_key(key.clone())
            .build()
            .expect("options");
        assert!(s.wait_ready(Duration::from_secs(5)).await);
        s
    };
    let (a, b) = (build().await, build().await);
    let mut samples = Vec::with_capacity(SAMPLES);
    let mut after_reply = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let (token, _) = b.create(cart(i)).await.expect("create");
        assert!(a.validate(&token).await.expect("up").is_some()); // cached on A
        assert!(a.validate(&token).await.expect("up").is_some());
        let start = Instant::now();
        assert!(b.logout(&token).await.expect("up"));
        let replied = start.elapsed();
        let deadline = start + Duration::from_secs(1);
        while a.validate(&token).await.expect("up").is_some() {
            assert!(Instant::now() < deadline, "invalidation lost");
            tokio::task::yield_now().await;
        }
        let took = start.elapsed();
        samples.push(took);
        after_reply.push(took.saturating_sub(replied));
    }
    samples.sort();
    after_reply.sort();
    let pct = |v: &[Duration], p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    println!(
        "invalidation/logout_on_b_refused_on_a: n={SAMPLES} p50={:?} p99={:?} max={:?} \
         (after B's reply: p50={:?} p99={:?})",
        pct(&samples, 0.50),
        pct(&samples, 0.99),
        samples[SAMPLES - 1],
        pct(&after_reply, 0.50),
        pct(&after_reply, 0.99),
    );
}

fn main() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default().configure_from_args();
    bench_validate(&mut c, &server, &rt);
    bench_cluster(&mut c, &server, &rt);
    rt.block_on(invalidation_latency(&server));
    c.final_summary();
}
