//! Redis behind Sentinel (a primary, one replica, one sentinel), killed
//! mid-traffic: the store follows the promotion by itself, no error but
//! `Unavailable` reaches the caller during the switch, and no session
//! whose logout returned `Ok` is ever accepted again — not even one whose
//! logout the dead primary had not yet passed to the replica, which is what
//! `replica_acks` (on by default behind Sentinel) is for. Writes wait for a
//! replica, so with one replica they resume once the old primary is back
//! as the new one's replica (a supervisor restarts it; the sentinel turns
//! it into a replica).

mod redis_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis_support::eventually_async;
use redis_support::sentinel::{RedisSentinel, SERVICE};
use sesame::redis::{BackendError, BackendErrorKind, RedisSessions};
use sesame::{Error, ErrorKind, SecretKey, SessionToken};

type Store = RedisSessions<u64, String>;

const TIMEOUT: Duration = Duration::from_millis(300);
const READY: Duration = Duration::from_secs(5);
/// Down-after (500 ms) plus the election and promotion, plus the store's
/// backoff (at most 1 s), with slack for a loaded machine.
const FAILOVER: Duration = Duration::from_secs(40);
/// How long a write waits for the replica in these tests: longer than the
/// default (500 ms), so two busy loops competing for the cores do not turn
/// a slow acknowledgement into `NotReplicated`.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

fn store(sentinel: &RedisSentinel, key: &SecretKey, acks: Option<u32>) -> Store {
    let url = sentinel.sentinel_url();
    let mut b = RedisSessions::sentinel_builder(&[url.as_str()], SERVICE)
        .secret_key(key.clone())
        .connect_timeout(TIMEOUT)
        .io_timeout(TIMEOUT);
    if let Some(n) = acks {
        b = b.replica_acks(n, ACK_TIMEOUT);
    }
    b.build().expect("valid options")
}

fn cause(e: &Error) -> Option<BackendErrorKind> {
    std::error::Error::source(e)
        .and_then(|c| c.downcast_ref::<BackendError>())
        .map(BackendError::kind)
}

/// Sets the flag when dropped, so the load task stops if the test fails.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_mid_traffic_undoes_no_logout_and_resumes_by_itself() {
    let Some(mut deployment) = RedisSentinel::start() else {
        return;
    };
    let key = SecretKey::generate();
    let (a, b) = (
        store(&deployment, &key, None),
        store(&deployment, &key, None),
    );
    assert!(a.wait_ready(READY).await && b.wait_ready(READY).await);

    // Steady traffic on `a`: logins, updates, logouts. Every token whose
    // logout returned Ok is kept; every error must be `Unavailable`.
    let stop = Arc::new(AtomicBool::new(false));
    let _guard = StopOnDrop(Arc::clone(&stop));
    let load = tokio::spawn({
        let (a, stop) = (a.clone(), Arc::clone(&stop));
        async move {
            let (mut ended, mut errors) = (Vec::<SessionToken>::new(), Vec::<Error>::new());
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let step = async {
                    let (t, _) = a.create(n).await?;
                    let t = a.login(&t, format!("user{}", n % 7)).await?;
                    a.update(&t, |v| *v += 1).await?;
                    if a.logout(&t).await? {
                        ended.push(t);
                    }
                    Ok::<(), Error>(())
                };
                if let Err(e) = step.await {
                    errors.push(e);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            (ended, errors)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    deployment.primary.kill();
    assert!(
        deployment.wait_promoted(FAILOVER),
        "the sentinel promoted the replica"
    );
    // Reads of sessions made before the switch work at once; writes wait
    // for a replica: the old primary, restarted (empty: no persistence),
    // which the sentinel turns into the new primary's replica.
    deployment.primary.restart();
    // Service resumes by itself on both stores.
    for s in [&a, &b] {
        let resumed = eventually_async(FAILOVER, async || {
            let Ok((t, h)) = s.create(7).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return false;
            };
            s.validate(&t).await.ok().flatten() == Some(h)
        })
        .await;
        assert!(resumed.is_some(), "service resumed after the failover");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let (ended, errors) = load.await.expect("the load task ran");
    assert!(ended.len() > 10, "traffic flowed: {} logouts", ended.len());
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e:?}");
    }
    // No ended session is accepted: not by the stores that saw traffic,
    // not by a new one that has cached nothing.
    let fresh = store(&deployment, &key, None);
    assert!(fresh.wait_ready(READY).await);
    for t in &ended {
        for s in [&a, &b, &fresh] {
            assert_eq!(
                s.validate(t).await.unwrap(),
                None,
                "an ended session came back"
            );
        }
    }
}

/// The failover that asynchronous replication cannot survive alone: the
/// replica is frozen (a slow link), a logout lands on the primary only, the
/// primary dies, and the replica is promoted with the session still in it.
/// Without acknowledgements the logout returned `Ok` and the session works
/// again; with them (the Sentinel default) the logout reports
/// `Unavailable` (`NotReplicated`): it never claims an end it cannot keep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_that_returned_ok_survives_a_failover() {
    for acks in [Some(0), Some(1)] {
        let Some(mut deployment) = RedisSentinel::start() else {
            return;
        };
        let key = SecretKey::generate();
        let a = store(&deployment, &key, acks);
        assert!(a.wait_ready(READY).await);
        let (t, _) = a.create(1).await.unwrap();
        let t = a.login(&t, "alice".to_owned()).await.unwrap();
        assert!(
            deployment.wait_replicated(READY),
            "the replica has the session"
        );
        // The replica is cut off (frozen, and its link closed by the
        // primary), so the logout reaches the primary only.
        let frozen = deployment.replica.freeze();
        deployment.cut_replica_link();
        let logout = a.logout(&t).await;
        deployment.primary.kill();
        drop(frozen);
        assert!(deployment.wait_promoted(FAILOVER), "promoted");
        let fresh = store(&deployment, &key, acks);
        let back = eventually_async(FAILOVER, async || fresh.validate(&t).await.is_ok()).await;
        assert!(back.is_some(), "service resumed");
        let alive = fresh.validate(&t).await.unwrap().is_some();
        match acks {
            Some(0) => {
                // The hole, shown: Ok, and yet the session is back.
                assert!(matches!(logout, Ok(true)), "{logout:?}");
                assert!(alive, "without acknowledgements the logout was lost");
            }
            _ => {
                let e = logout.expect_err("the logout is not known to be durable");
                assert_eq!(e.kind(), ErrorKind::Unavailable);
                assert_eq!(cause(&e), Some(BackendErrorKind::NotReplicated));
            }
        }
    }
}
