//! Faults: Redis killed with SIGKILL and restarted, the invalidation
//! channel lost while Redis is up, Redis down at start-up. Through all of
//! them: typed errors, no panic, and no revoked session ever accepted.

mod redis_support;

use std::time::{Duration, Instant};

use redis_support::{RedisServer, eventually_async};
use sesame::redis::{BackendError, BackendErrorKind, RedisSessions};
use sesame::{Error, ErrorKind, Handle, SecretKey, SessionToken};

type Store = RedisSessions<u64, String>;

const IO_TIMEOUT: Duration = Duration::from_millis(300);
const READY: Duration = Duration::from_secs(5);
/// Recovery bound after Redis returns: the longest backoff (1 s) plus
/// slack for a loaded machine.
const RECOVERY: Duration = Duration::from_secs(10);

async fn store(url: &str, key: &SecretKey) -> Store {
    RedisSessions::builder(url)
        .secret_key(key.clone())
        .connect_timeout(IO_TIMEOUT)
        .io_timeout(IO_TIMEOUT)
        .build()
        .expect("valid options")
}

fn unavailable<T>(r: Result<T, Error>) -> bool {
    matches!(r, Err(e) if e.kind() == ErrorKind::Unavailable)
}

/// Fails the test if `token` is ever accepted by `s`.
async fn never_accepted(s: &Store, token: &SessionToken) {
    if let Ok(Some(_)) = s.validate(token).await {
        panic!("a revoked session was accepted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_restart_fail_closed_then_recover() {
    let Some(mut server) = RedisServer::start_persistent() else {
        return;
    };
    let key = SecretKey::generate();
    let (a, b) = (
        store(&server.url(), &key).await,
        store(&server.url(), &key).await,
    );
    assert!(a.wait_ready(READY).await && b.wait_ready(READY).await);

    let (live, handle) = a.create(1).await.unwrap();
    let (revoked, _) = a.create(2).await.unwrap();
    for s in [&a, &b] {
        assert_eq!(s.validate(&live).await.unwrap(), Some(handle)); // cached everywhere
        assert!(s.validate(&revoked).await.unwrap().is_some());
    }
    assert!(b.logout(&revoked).await.unwrap());
    assert!(
        eventually_async(Duration::from_millis(100), async || a
            .validate(&revoked)
            .await
            .unwrap()
            .is_none())
        .await
        .is_some()
    );

    server.kill();
    for s in [&a, &b] {
        let down = eventually_async(RECOVERY, async || {
            never_accepted(s, &revoked).await;
            !s.redis_stats().cache_trusted && unavailable(s.validate(&live).await)
        })
        .await;
        assert!(down.is_some(), "the store noticed Redis is gone");
    }
    // While Redis is down: typed errors, quickly, for every operation.
    for _ in 0..50 {
        for s in [&a, &b] {
            let start = Instant::now();
            assert!(
                unavailable(s.validate(&live).await),
                "fail closed: no unchecked session"
            );
            assert!(unavailable(s.get(&live).await));
            assert!(unavailable(s.create(3).await));
            assert!(unavailable(s.update(&live, |n| *n += 1).await));
            assert!(unavailable(s.logout(&live).await));
            assert!(unavailable(s.revoke_user(&"alice".to_string()).await));
            assert!(start.elapsed() < 6 * IO_TIMEOUT, "calls stay bounded");
            never_accepted(s, &revoked).await;
        }
    }
    assert!(a.redis_stats().unavailable > 0);

    server.restart();
    for s in [&a, &b] {
        let back = eventually_async(RECOVERY, async || {
            never_accepted(s, &revoked).await;
            matches!(s.validate(&live).await, Ok(Some(h)) if h == handle)
        })
        .await;
        assert!(
            back.is_some(),
            "service resumed by itself; the session survived"
        );
        assert!(
            s.wait_ready(RECOVERY).await,
            "the invalidation channel is back"
        );
    }
    assert_eq!(a.get(&live).await.unwrap(), Some(1));
    // Invalidation works again: logout on B is refused on A within 100 ms.
    assert_eq!(a.validate(&live).await.unwrap(), Some(handle));
    assert!(b.logout(&live).await.unwrap());
    assert!(
        eventually_async(Duration::from_millis(100), async || a
            .validate(&live)
            .await
            .unwrap()
            .is_none())
        .await
        .is_some()
    );
    never_accepted(&a, &revoked).await;
    never_accepted(&b, &revoked).await;
    let (fresh, _) = a.create(4).await.unwrap();
    assert_eq!(b.get(&fresh).await.unwrap(), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_invalidation_channel_reads_go_through() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let (a, b) = (
        store(&server.url(), &key).await,
        store(&server.url(), &key).await,
    );
    assert!(a.wait_ready(READY).await && b.wait_ready(READY).await);
    let (token, handle): (SessionToken, Handle) = a.create(7).await.unwrap();
    assert_eq!(a.validate(&token).await.unwrap(), Some(handle)); // cached on A
    assert_eq!(b.validate(&token).await.unwrap(), Some(handle)); // and keeps a pooled connection

    // Keep the subscribers from coming back: no new connections. Each
    // subscriber holds two (pub/sub, and its own command connection, closed
    // when the subscription fails).
    let mut admin = server.connection();
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    let open = clients.lines().count();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(open - 4)
        .query::<()>(&mut admin)
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut admin)
        .unwrap();
    assert_eq!(killed, 2);
    assert!(
        eventually_async(READY, async || !a.redis_stats().cache_trusted)
            .await
            .is_some()
    );

    // A still answers, from Redis each time.
    let f0 = a.redis_stats().fetches;
    assert_eq!(a.validate(&token).await.unwrap(), Some(handle));
    assert_eq!(a.validate(&token).await.unwrap(), Some(handle));
    assert_eq!(
        a.redis_stats().fetches,
        f0 + 2,
        "no copy served while the channel is down"
    );
    // B's logout publishes to nobody, and A refuses anyway.
    assert!(b.logout(&token).await.unwrap());
    assert_eq!(a.validate(&token).await.unwrap(), None);

    // The channel comes back by itself; copies from before the gap are gone.
    let (other, h2) = a.create(8).await.unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(1000)
        .query::<()>(&mut admin)
        .unwrap();
    assert!(a.wait_ready(RECOVERY).await && b.wait_ready(RECOVERY).await);
    let f1 = a.redis_stats().fetches;
    assert_eq!(a.validate(&other).await.unwrap(), Some(h2));
    assert_eq!(a.redis_stats().fetches, f1 + 1, "re-read after the gap");
    assert_eq!(a.validate(&other).await.unwrap(), Some(h2));
    assert_eq!(a.redis_stats().fetches, f1 + 1, "then cached again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_subscription_drops_copies_from_before_the_gap() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let a = store(&server.url(), &key).await;
    assert!(a.wait_ready(READY).await);
    let mut admin = server.connection();
    for round in 0..5 {
        let (token, handle) = a.create(round).await.unwrap();
        assert_eq!(a.validate(&token).await.unwrap(), Some(handle));
        let subs = a.redis_stats().subscriptions;
        let f0 = a.redis_stats().fetches;
        assert_eq!(a.validate(&token).await.unwrap(), Some(handle));
        assert_eq!(a.redis_stats().fetches, f0, "cached");
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query(&mut admin)
            .unwrap();
        assert!(
            eventually_async(RECOVERY, async || a.redis_stats().subscriptions > subs)
                .await
                .is_some()
        );
        assert!(a.wait_ready(RECOVERY).await);
        assert_eq!(a.validate(&token).await.unwrap(), Some(handle));
        assert_eq!(
            a.redis_stats().fetches,
            f0 + 1,
            "the copy from before the gap was not served"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_then_service_starts_by_itself() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    server.kill(); // the port is known and nothing listens on it
    let key = SecretKey::generate();
    let a = store(&server.url(), &key).await;
    assert!(!a.wait_ready(Duration::from_millis(50)).await);
    let start = Instant::now();
    for _ in 0..1_000 {
        assert!(unavailable(a.validate(&SessionToken::generate()).await));
        assert!(unavailable(a.create(1).await));
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "backoff fails fast instead of queueing: {:?}",
        start.elapsed()
    );
    server.restart();
    let created = eventually_async(RECOVERY, async || a.create(1).await.is_ok()).await;
    assert!(created.is_some(), "service started by itself");
    assert!(a.wait_ready(RECOVERY).await);
}

/// Resumes a SIGSTOPped process when dropped, so a failing test never
/// leaves a frozen server behind.
struct Thaw(i32);

impl Drop for Thaw {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a pid this test started and a valid signal
        // touches no memory of ours.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// A frozen Redis (SIGSTOP: the socket stays open, nothing answers) gives
/// `Unavailable` within the I/O timeout, for every operation, never a hang;
/// once it thaws, service resumes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_gives_unavailable_within_the_io_timeout() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let a = store(&server.url(), &key).await;
    assert!(a.wait_ready(READY).await);
    let (token, handle) = a.create(1).await.unwrap();
    let pid = i32::try_from(server.pid().expect("running")).unwrap();
    // SAFETY: as in `Thaw::drop`.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let thaw = Thaw(pid);
    let fresh = SessionToken::generate(); // not cached: needs Redis
    let start = Instant::now();
    let r = tokio::time::timeout(10 * IO_TIMEOUT, a.validate(&fresh))
        .await
        .expect("a call on a frozen Redis hung");
    let took = start.elapsed();
    assert!(unavailable(r), "a frozen Redis is unavailable");
    assert!(
        took < IO_TIMEOUT * 2,
        "bounded by the I/O timeout: {took:?}"
    );
    // Then every operation fails fast (backoff) or within the timeout.
    for _ in 0..20 {
        let start = Instant::now();
        let r = tokio::time::timeout(10 * IO_TIMEOUT, a.update(&token, |n| *n += 1))
            .await
            .expect("hung");
        assert!(unavailable(r), "fail closed while frozen");
        assert!(start.elapsed() < IO_TIMEOUT * 2);
    }
    drop(thaw);
    let back = eventually_async(RECOVERY, async || {
        matches!(a.validate(&fresh).await, Ok(None))
            && matches!(a.validate(&token).await, Ok(Some(h)) if h == handle)
    })
    .await;
    assert!(back.is_some(), "service resumed after the thaw");
}

/// The subscriber's runtime shuts down while the store lives on (served
/// from another runtime): nobody applies invalidations any more, so the
/// store stops serving copies rather than serve stale ones.
#[test]
fn a_store_whose_subscriber_runtime_ended_serves_no_copies() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let first = tokio::runtime::Runtime::new().unwrap();
    let a = RedisSessions::<u64, String>::builder(&server.url())
        .secret_key(key.clone())
        .runtime(first.handle().clone())
        .build()
        .unwrap();
    let other = tokio::runtime::Runtime::new().unwrap();
    let (b, token) = other.block_on(async {
        assert!(a.wait_ready(READY).await);
        let b = store(&server.url(), &key).await;
        assert!(b.wait_ready(READY).await);
        let (token, _) = b.create(1).await.unwrap();
        assert!(a.validate(&token).await.unwrap().is_some()); // cached on A
        (b, token)
    });
    drop(first);
    other.block_on(async {
        assert!(!a.redis_stats().cache_trusted, "no subscriber, no trust");
        assert!(b.logout(&token).await.unwrap());
        assert_eq!(a.validate(&token).await.unwrap(), None, "read through");
    });
}

/// Every `Display` and `Debug` of an error and its causes, joined.
fn chain(e: &Error) -> String {
    let mut out = format!("{e} {e:?}");
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(&format!(" | {c} {c:?}"));
        cause = c.source();
    }
    out
}

/// A wrong password and a refused connection are both
/// `ErrorKind::Unavailable` (the engine fails closed either way), but the
/// cause (`source()`) tells them apart, so an operator is not sent hunting
/// for an outage when the password is wrong. No text of the error names the
/// password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failure_and_refusal_have_different_causes() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("right-password")
        .query(&mut server.connection())
        .unwrap();
    let key = SecretKey::generate();
    let wrong = store(
        &format!("redis://:hunter2-wrong@127.0.0.1:{}/", server.port()),
        &key,
    )
    .await;
    let auth = wrong.create(1).await.unwrap_err();
    assert_eq!(auth.kind(), ErrorKind::Unavailable);
    let auth_text = chain(&auth);
    assert!(!auth_text.contains("hunter2"), "{auth_text}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nobody = store(&format!("redis://:hunter2-wrong@127.0.0.1:{port}/"), &key).await;
    let refused = nobody.create(1).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unavailable);
    let refused_text = chain(&refused);
    assert!(!refused_text.contains("hunter2"), "{refused_text}");

    let cause = |e: &Error| std::error::Error::source(e).map(|c| c.to_string());
    assert!(
        cause(&auth).is_some_and(|c| c.contains("authentication")),
        "{auth_text}"
    );
    assert!(
        cause(&refused).is_some_and(|c| c.contains("refused")),
        "{refused_text}"
    );
    let kind = |e: &Error| {
        std::error::Error::source(e)
            .and_then(|c| c.downcast_ref::<BackendError>())
            .map(BackendError::kind)
    };
    assert_eq!(kind(&auth), Some(BackendErrorKind::Auth));
    assert_eq!(kind(&refused), Some(BackendErrorKind::Refused));
}
