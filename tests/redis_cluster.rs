//! The test Redis Cluster itself (tests/redis_support/cluster.rs): six real
//! nodes start, serve every slot, survive a master's death by promoting its
//! replica, and are all stopped when the cluster is dropped. The cluster
//! backend's tests (issue 14) build on it.

mod redis_support;

use std::time::Duration;

use redis_support::cluster::{RedisCluster, SLOTS};

fn slot_of(con: &mut redis::Connection, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(con)
        .expect("CLUSTER KEYSLOT")
}

#[test]
fn six_nodes_serve_every_slot_and_fail_over() {
    let Some(mut cluster) = RedisCluster::start() else {
        return;
    };
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "three masters: {masters:?}");
    for slot in [0, 5000, 10_000, SLOTS - 1] {
        assert!(cluster.master_of_slot(slot).is_some(), "slot {slot}");
    }
    // Keys with one hash tag share a slot; the tag is all that counts.
    let mut con = cluster.node(masters[0]).connection();
    let a = slot_of(&mut con, "sesame:s:{7f}:aaaa");
    let b = slot_of(&mut con, "sesame:u:{7f}");
    assert_eq!(a, b);
    assert_ne!(
        slot_of(&mut con, "sesame:s:aaaa"),
        slot_of(&mut con, "sesame:s:bbbb")
    );

    // Kill the master of slot 0: its replica takes over and the cluster is
    // healthy again, with three masters, within a few node timeouts.
    let victim = cluster.master_of_slot(0).expect("slot 0 is served");
    let pids: Vec<u32> = (0..6).filter_map(|i| cluster.node(i).pid()).collect();
    cluster.node_mut(victim).kill();
    assert!(
        cluster.wait_healthy(Duration::from_secs(20)),
        "no failover within 20 s: {}",
        cluster.describe()
    );
    let promoted = cluster.master_of_slot(0).expect("slot 0 served again");
    assert_ne!(promoted, victim);

    // Dropping the cluster stops every node it started.
    drop(cluster);
    for pid in pids {
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "));
        assert!(!alive, "redis-server {pid} still running");
    }
}

// --- the cluster backend (issue 14) ------------------------------------------

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redis_support::eventually_async;
use sesame::redis::RedisSessions;
use sesame::{Error, ErrorKind, SecretKey, SessionToken};

type Store = RedisSessions<u64, String>;

const TIMEOUT: Duration = Duration::from_millis(500);
const READY: Duration = Duration::from_secs(10);
/// Node timeout (1 s) plus the election and promotion, plus the store's
/// backoff (at most 1 s), with slack for a loaded machine.
const FAILOVER: Duration = Duration::from_secs(30);

fn store(cluster: &RedisCluster, key: &SecretKey, prefix: &str) -> Store {
    let urls = cluster.urls();
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisSessions::cluster_builder(&nodes)
        .secret_key(key.clone())
        .key_prefix(prefix)
        .connect_timeout(TIMEOUT)
        .io_timeout(TIMEOUT)
        .replica_acks(1, TIMEOUT)
        .build()
        .expect("valid options")
}

/// Sets the flag when dropped, so the load tasks stop if the test fails.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Steady logins, updates and logouts on `s` until `stop`: the tokens whose
/// logout returned `Ok(true)`, every error, and how many logouts found no
/// session that a returned login had made.
async fn load(s: Store, stop: Arc<AtomicBool>, who: u64) -> (Vec<SessionToken>, Vec<Error>, usize) {
    let (mut ended, mut errors, mut lost) = (Vec::new(), Vec::new(), 0);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let step = async {
            let (t, _) = s.create(n).await?;
            let t = s.login(&t, format!("user{}", (n + who) % 7)).await?;
            s.update(&t, |v| *v += 1).await?;
            if s.logout(&t).await? {
                ended.push(t);
            } else {
                lost += 1;
            }
            Ok::<(), Error>(())
        };
        if let Err(e) = step.await {
            errors.push(e);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    (ended, errors, lost)
}

/// Issue 14 item 3: a master dies under a steady load of logins, updates
/// and logouts on two servers. Its replica is promoted; no error but
/// `Unavailable` reaches a caller during the switch; service resumes by
/// itself; no session whose logout returned `Ok` is accepted afterwards,
/// by the servers that saw the traffic or by a new one. Writes wait for a
/// replica (`replica_acks`), so the killed master's slots take writes again
/// once it is back as the new master's replica (a supervisor restarts it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_traffic_undoes_no_logout_and_service_resumes() {
    let Some(mut cluster) = RedisCluster::start() else {
        return;
    };
    let key = SecretKey::generate();
    let (a, b) = (
        store(&cluster, &key, "failover"),
        store(&cluster, &key, "failover"),
    );
    assert!(a.wait_ready(READY).await && b.wait_ready(READY).await);
    let stop = Arc::new(AtomicBool::new(false));
    let _guard = StopOnDrop(Arc::clone(&stop));
    let loads: Vec<_> = [(&a, 0), (&b, 3)]
        .into_iter()
        .map(|(s, who)| tokio::spawn(load(s.clone(), Arc::clone(&stop), who)))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Every slot is busy (sessions spread over 256 tags): kill the master
    // of slot 0.
    let victim = cluster.master_of_slot(0).expect("slot 0 is served");
    cluster.node_mut(victim).kill();
    let healthy = tokio::task::block_in_place(|| cluster.wait_healthy(FAILOVER));
    assert!(healthy, "no failover: {}", cluster.describe());
    // The old master comes back (empty: no persistence) and joins as the
    // new master's replica.
    tokio::task::block_in_place(|| cluster.node_mut(victim).restart());
    for s in [&a, &b] {
        let resumed = eventually_async(FAILOVER, async || {
            let step = async {
                let (t, _) = s.create(7).await?;
                let t = s.login(&t, "resumed".to_owned()).await?;
                s.update(&t, |v| *v += 1).await?;
                s.logout(&t).await
            };
            if step.await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            false
        })
        .await;
        assert!(
            resumed.is_some(),
            "service resumed after the failover: {}",
            cluster.describe()
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ended, mut errors, mut lost) = (Vec::new(), Vec::new(), 0);
    for l in loads {
        let (e, r, n) = l.await.expect("the load task ran");
        ended.extend(e);
        errors.extend(r);
        lost += n;
    }
    assert_eq!(lost, 0, "a session a login returned was gone at its logout");
    eprintln!(
        "{} logouts, {} errors during the switch",
        ended.len(),
        errors.len()
    );
    assert!(ended.len() > 20, "traffic flowed: {} logouts", ended.len());
    assert!(!errors.is_empty(), "the kill was felt");
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e:?}");
    }
    let fresh = store(&cluster, &key, "failover");
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
