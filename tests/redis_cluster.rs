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
