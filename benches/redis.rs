//! Many servers on one Redis: what a validation costs through sesame's near
//! cache, against a Redis GET per request (what connect-redis and most
//! Redis-backed session stores do) and tower-sessions' Redis store; what a
//! validation that must read Redis costs (`validate_miss`); what the writes
//! cost now that their scripts keep the capacity sorted sets, the principal
//! index and the per-user limit (`create`, `login`, `logout`, beside the
//! in-process engine and tower-sessions' Redis store); what waiting for a
//! replica's acknowledgement adds to a write (`replica_acks`: a primary with
//! one replica); what a plain rotation costs on one instance and on a
//! cluster (`rotate`; on a cluster it draws tokens to keep its hash tag,
//! `tag_draw`); then how long a logout on one server takes to be refused
//! on another.
//!
//! Starts its own `redis-server`s on free loopback ports (skips if there is
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
    // A plain rotation (no grace window) of one of 1,000 sessions, round
    // robin, each new token replacing the old: one `ROTATE` script, plus on
    // a cluster the draw that keeps the session's hash tag.
    let mut group = c.benchmark_group("rotate");
    for (label, clustered) in [("single", false), ("cluster", true)] {
        let store = build(clustered, Duration::from_secs(600));
        let tokens: Vec<String> = rt.block_on(async {
            assert!(store.wait_ready(Duration::from_secs(10)).await);
            let mut out = Vec::with_capacity(N);
            for i in 0..N {
                let (token, _) = store.create(cart(i)).await.expect("create");
                out.push(token.as_str().to_owned());
            }
            out
        });
        let (store, tokens) = (&store, std::cell::RefCell::new(tokens));
        let i = Cell::new(0);
        group.bench_function(BenchmarkId::new("sesame_redis", label), |b| {
            b.to_async(rt).iter(|| {
                i.set((i.get() + 1) % N);
                let at = i.get();
                let old = tokens.borrow()[at].clone();
                let tokens = &tokens;
                async move {
                    let new = store.rotate(old.as_str()).await.expect("rotate");
                    tokens.borrow_mut()[at] = new.as_str().to_owned();
                }
            })
        });
    }
    group.finish();
    // What keeps a rotation in its slot on a cluster (a single instance
    // draws one token): tokens drawn until the digest's first byte (the
    // hash tag) is a given one, 256 draws on average. The
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

/// A store on `url` under `prefix`, whose local copies live `cache_ttl`.
fn redis_sessions(
    url: &str,
    prefix: &str,
    key: &SecretKey,
    rt: &Runtime,
    cache_ttl: Duration,
) -> RedisSessions<Cart> {
    RedisSessions::<Cart>::builder(url)
        .secret_key(key.clone())
        .key_prefix(prefix)
        .cache_capacity(2 * SESSIONS)
        .cache_ttl(cache_ttl)
        .runtime(rt.handle().clone())
        .build()
        .expect("options")
}

/// tower-sessions' Redis store on `url` (fred pool of one connection).
fn tower_store(url: &str, rt: &Runtime) -> RedisStore<Pool> {
    rt.block_on(async {
        let config = Config::from_url(url).expect("url");
        let pool = Pool::new(config, None, None, None, 1).expect("pool");
        drop(pool.connect());
        pool.wait_for_connect().await.expect("connect");
        RedisStore::new(pool)
    })
}

/// A tower-sessions record holding `cart(i)`, as its `Session` saves one.
fn ts_record(i: usize) -> Record {
    let mut record = Record {
        id: Id::default(),
        data: Default::default(),
        expiry_date: OffsetDateTime::now_utc() + TimeDuration::minutes(30),
    };
    record
        .data
        .insert("cart".into(), serde_json::to_value(cart(i)).expect("json"));
    record
}

/// A validation that must read Redis. `sesame_expired_copy`: a store whose
/// local copies live 1 ms asks for live sessions (another store made them),
/// round robin over 10k, so every call runs one `FETCH` script that finds
/// the session (and caches it, uselessly here). `sesame_unknown`:
/// well-formed tokens Redis never held (one `FETCH` that finds nothing).
/// tower-sessions' Redis store has no cache: its `validate_hit` figure is
/// already one `GET` per call.
fn bench_miss(c: &mut Criterion, server: &RedisServer, rt: &Runtime) {
    let key = SecretKey::generate();
    let url = server.url();
    let writer = redis_sessions(&url, "bench-miss", &key, rt, Duration::from_secs(600));
    let cold = redis_sessions(&url, "bench-miss", &key, rt, Duration::from_millis(1));
    let tokens: Vec<String> = rt.block_on(async {
        assert!(writer.wait_ready(Duration::from_secs(5)).await);
        assert!(cold.wait_ready(Duration::from_secs(5)).await);
        let mut out = Vec::with_capacity(SESSIONS);
        for i in 0..SESSIONS {
            let (token, _) = writer.create(cart(i)).await.expect("create");
            out.push(token.as_str().to_owned());
        }
        out
    });
    let unknown: Vec<String> = (0..SESSIONS)
        .map(|_| sesame::SessionToken::generate().as_str().to_owned())
        .collect();
    let fetches_before = cold.redis_stats().fetches;
    let mut group = c.benchmark_group("validate_miss");
    let (cold, tokens, unknown) = (&cold, &tokens, &unknown);
    let i = Cell::new(0);
    let next = || {
        i.set((i.get() + 1) % SESSIONS);
        i.get()
    };
    let ran = Cell::new(false); // not when a filter skips it
    group.bench_function(BenchmarkId::new("sesame_expired_copy", "10k"), |b| {
        ran.set(true);
        b.to_async(rt).iter(|| {
            let token = tokens[next()].as_str();
            async move {
                let found = cold.validate(token).await.expect("redis up");
                assert!(found.is_some(), "a live session");
                black_box(found)
            }
        })
    });
    group.bench_function(BenchmarkId::new("sesame_unknown", "10k"), |b| {
        b.to_async(rt).iter(|| {
            let token = unknown[next()].as_str();
            async move {
                let found = cold.validate(token).await.expect("redis up");
                assert!(found.is_none(), "never created");
                black_box(found)
            }
        })
    });
    group.finish();
    assert!(
        !ran.get() || cold.redis_stats().fetches > fetches_before,
        "the misses read Redis"
    );
}

/// Principals of the `login` benches: 100 of them, each holding
/// `max_sessions_per_user` (100) sessions once `bench_writes` filled its stores.
const PRINCIPALS: usize = 100;

fn principal(n: u64) -> String {
    format!("user-{}", n as usize % PRINCIPALS)
}

/// Creates and logout: each timed call on a store that holds 10k sessions,
/// what it creates removed outside the timed part. Login: 100 principals
/// each at the per-user limit (100 sessions, 10k in all), so every login
/// rotates the anonymous session (made outside the timed part), indexes it
/// under its principal and ends that principal's oldest session, and the
/// store stays at 10k (`_first`: the same login for a principal with no
/// session yet, made and logged out outside the timed part). On Redis each is one script and one round trip:
/// `create` also adds the session to the capacity sorted sets
/// (`{prefix}:all`, `{prefix}:anon`) and checks `max_sessions`; `login`
/// keeps the grace alias, the principal's sorted set and the limit.
fn bench_writes(c: &mut Criterion, server: &RedisServer, rt: &Runtime) {
    let label = "10k";
    let local = sesame::Sessions::<Cart>::new();
    for n in 0..SESSIONS as u64 {
        let (token, _) = local.create(cart(n as usize)).expect("create");
        local.login(&token, principal(n)).expect("login");
    }
    let key = SecretKey::generate();
    let remote = redis_sessions(
        &server.url(),
        "bench-writes",
        &key,
        rt,
        Duration::from_secs(600),
    );
    rt.block_on(async {
        assert!(remote.wait_ready(Duration::from_secs(5)).await);
        for n in 0..SESSIONS as u64 {
            let (token, _) = remote.create(cart(n as usize)).await.expect("create");
            remote.login(&token, principal(n)).await.expect("login");
        }
    });
    let store = tower_store(&server.url(), rt);
    rt.block_on(async {
        for i in 0..SESSIONS {
            store.create(&mut ts_record(i)).await.expect("create");
        }
    });
    let (local, remote, store) = (&local, &remote, &store);

    let mut group = c.benchmark_group("create");
    group.bench_function(BenchmarkId::new("sesame_local", label), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let made: Vec<_> = (0..iters)
                .map(|n| local.create(cart(n as usize)).expect("create").0)
                .collect();
            let took = start.elapsed();
            made.iter().for_each(|t| assert!(local.logout(t)));
            took
        })
    });
    group.bench_function(BenchmarkId::new("sesame_redis", label), |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut made = Vec::with_capacity(iters as usize);
            let start = Instant::now();
            for n in 0..iters {
                made.push(remote.create(cart(n as usize)).await.expect("create").0);
            }
            let took = start.elapsed();
            for t in &made {
                assert!(remote.logout(t).await.expect("logout"));
            }
            took
        })
    });
    group.bench_function(BenchmarkId::new("tower_sessions_redis", label), |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut records: Vec<Record> = (0..iters as usize).map(ts_record).collect();
            let start = Instant::now();
            for r in &mut records {
                store.create(r).await.expect("create");
            }
            let took = start.elapsed();
            for r in &records {
                store.delete(&r.id).await.expect("delete");
            }
            took
        })
    });
    group.finish();

    let mut group = c.benchmark_group("login");
    let at_limit = Cell::new(false); // not when a filter skips it
    group.bench_function(BenchmarkId::new("sesame_local", label), |b| {
        b.iter_custom(|iters| {
            let anon: Vec<_> = (0..iters)
                .map(|n| local.create(cart(n as usize)).expect("create").0)
                .collect();
            let start = Instant::now();
            for (n, t) in anon.iter().enumerate() {
                black_box(local.login(t, principal(n as u64)).expect("login"));
            }
            start.elapsed()
        })
    });
    group.bench_function(BenchmarkId::new("sesame_redis", label), |b| {
        at_limit.set(true);
        b.to_async(rt).iter_custom(|iters| async move {
            let mut anon = Vec::with_capacity(iters as usize);
            for n in 0..iters {
                anon.push(remote.create(cart(n as usize)).await.expect("create").0);
            }
            let start = Instant::now();
            for (n, t) in anon.iter().enumerate() {
                black_box(remote.login(t, principal(n as u64)).await.expect("login"));
            }
            start.elapsed()
        })
    });
    // The same login for a principal holding no session yet: what the
    // rotation and the index cost without the limit's walk over the
    // principal's sessions. The sessions made are logged out outside the
    // timed part (the store stays at 10k).
    let fresh = Cell::new(0u64);
    let fresh_principal = || {
        fresh.set(fresh.get() + 1);
        format!("fresh-{}", fresh.get())
    };
    group.bench_function(BenchmarkId::new("sesame_local_first", label), |b| {
        b.iter_custom(|iters| {
            let anon: Vec<_> = (0..iters)
                .map(|n| local.create(cart(n as usize)).expect("create").0)
                .collect();
            let names: Vec<String> = (0..iters).map(|_| fresh_principal()).collect();
            let start = Instant::now();
            let made: Vec<_> = anon
                .iter()
                .zip(names)
                .map(|(t, p)| local.login(t, p).expect("login"))
                .collect();
            let took = start.elapsed();
            made.iter().for_each(|t| assert!(local.logout(t)));
            took
        })
    });
    group.bench_function(BenchmarkId::new("sesame_redis_first", label), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let names: Vec<String> = (0..iters).map(|_| fresh_principal()).collect();
            async move {
                let mut anon = Vec::with_capacity(iters as usize);
                for n in 0..iters {
                    anon.push(remote.create(cart(n as usize)).await.expect("create").0);
                }
                let mut made = Vec::with_capacity(iters as usize);
                let start = Instant::now();
                for (t, p) in anon.iter().zip(names) {
                    made.push(remote.login(t, p).await.expect("login"));
                }
                let took = start.elapsed();
                for t in &made {
                    assert!(remote.logout(t).await.expect("logout"));
                }
                took
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("logout");
    group.bench_function(BenchmarkId::new("sesame_local", label), |b| {
        b.iter_custom(|iters| {
            let made: Vec<_> = (0..iters)
                .map(|n| local.create(cart(n as usize)).expect("create").0)
                .collect();
            let start = Instant::now();
            for t in &made {
                assert!(local.logout(t));
            }
            start.elapsed()
        })
    });
    group.bench_function(BenchmarkId::new("sesame_redis", label), |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut made = Vec::with_capacity(iters as usize);
            for n in 0..iters {
                made.push(remote.create(cart(n as usize)).await.expect("create").0);
            }
            let start = Instant::now();
            for t in &made {
                assert!(remote.logout(t).await.expect("logout"));
            }
            start.elapsed()
        })
    });
    group.bench_function(BenchmarkId::new("tower_sessions_redis", label), |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut records: Vec<Record> = (0..iters as usize).map(ts_record).collect();
            for r in &mut records {
                store.create(r).await.expect("create");
            }
            let start = Instant::now();
            for r in &records {
                store.delete(&r.id).await.expect("delete");
            }
            start.elapsed()
        })
    });
    group.finish();
    let stats = rt.block_on(remote.stats()).expect("stats");
    assert_eq!(
        (stats.live, stats.anonymous),
        (SESSIONS as u64, 0),
        "the store stayed at its size, every session logged in"
    );
    assert!(
        !at_limit.get() || stats.evicted_per_user > 0,
        "logins ended sessions for the limit"
    );
}

/// What `RedisBuilder::replica_acks` adds to a write: a primary with one
/// replica (`redis-server --replicaof`), two stores on the primary, one
/// whose writes wait for the replica's acknowledgement (`WAIT 1 500`) and
/// one whose writes do not (`replica_acks(0, ..)`); create and logout on
/// each, same run, 10k sessions in the primary.
fn bench_replica_acks(c: &mut Criterion, rt: &Runtime) {
    let Some(primary) = RedisServer::start() else {
        return;
    };
    let port = primary.port().to_string();
    let Some(replica) = RedisServer::start_with_args(false, &["--replicaof", "127.0.0.1", &port])
    else {
        return;
    };
    let synced = redis_support::eventually(Duration::from_secs(10), || {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut replica.connection())
            .unwrap_or_default();
        info.lines().any(|l| l.trim() == "master_link_status:up")
    });
    if synced.is_none() {
        eprintln!("skipping replica_acks: the replica did not sync");
        return;
    }
    let key = SecretKey::generate();
    let build = |acks: u32| {
        RedisSessions::<Cart>::builder(&primary.url())
            .secret_key(key.clone())
            .key_prefix("bench-acks")
            .replica_acks(acks, Duration::from_millis(if acks == 0 { 1 } else { 500 }))
            .runtime(rt.handle().clone())
            .build()
            .expect("options")
    };
    let (none, wait_1) = (build(0), build(1));
    rt.block_on(async {
        assert!(none.wait_ready(Duration::from_secs(5)).await);
        assert!(wait_1.wait_ready(Duration::from_secs(5)).await);
        for i in 0..SESSIONS {
            none.create(cart(i)).await.expect("create");
        }
    });
    let mut group = c.benchmark_group("replica_acks");
    let (none, wait_1) = (&none, &wait_1);
    for (label, s) in [("none", none), ("wait_1", wait_1)] {
        group.bench_function(BenchmarkId::new("create", label), |b| {
            b.to_async(rt).iter_custom(|iters| async move {
                let mut made = Vec::with_capacity(iters as usize);
                let start = Instant::now();
                for n in 0..iters {
                    made.push(s.create(cart(n as usize)).await.expect("create").0);
                }
                let took = start.elapsed();
                for t in &made {
                    assert!(none.logout(t).await.expect("logout"));
                }
                took
            })
        });
        group.bench_function(BenchmarkId::new("logout", label), |b| {
            b.to_async(rt).iter_custom(|iters| async move {
                let mut made = Vec::with_capacity(iters as usize);
                for n in 0..iters {
                    made.push(none.create(cart(n as usize)).await.expect("create").0);
                }
                let start = Instant::now();
                for t in &made {
                    assert!(s.logout(t).await.expect("logout"));
                }
                start.elapsed()
            })
        });
    }
    group.finish();
    drop(replica);
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
    bench_miss(&mut c, &server, &rt);
    bench_writes(&mut c, &server, &rt);
    bench_replica_acks(&mut c, &rt);
    c.final_summary();
}
