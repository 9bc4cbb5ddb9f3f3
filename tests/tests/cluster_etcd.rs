//! The etcd metadata store and coordinator leader election: a coordinator restart keeps
//! the map, tables and data in etcd; with two coordinators on one etcd, kill -9 of the
//! leader hands over to the standby and a client keeps pulling and pushing.
//!
//! Each test starts its own etcd on free loopback ports and skips (with a printed note)
//! when `etcd` is not installed.

use std::time::{Duration, Instant};

use strata_tests::cluster::{
    settled, wait_status, Cluster, CoordinatorProcess, ShardProcess, SETTLE_DEADLINE,
};
use strata_tests::etcd::EtcdProcess;
use strata_tests::table_spec;

/// A standby must lead this soon after the leader died (lease TTL 2 s plus slack).
const TAKEOVER_DEADLINE: Duration = Duration::from_secs(15);

fn etcd_args<'a>(url: &'a str, prefix: &'a str) -> Vec<&'a str> {
    vec![
        "--etcd",
        url,
        "--etcd-prefix",
        prefix,
        "--lease-ttl",
        "2s",
        "--heartbeat-timeout",
        "3s",
    ]
}

#[tokio::test]
async fn coordinator_restart_with_etcd_keeps_map_tables_and_data() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(etcd) = EtcdProcess::start(&root.path().join("etcd")).expect("etcd") else {
        return;
    };
    let args = etcd_args(&etcd.url, "/strata/restart");
    let mut cluster = Cluster::start(root.path(), 3, &args)
        .await
        .expect("cluster");
    // A fresh data dir: everything must come from etcd.
    let fresh = root.path().join("coordinator-new");
    let after = cluster
        .check_coordinator_restart(|address| CoordinatorProcess::start(address, &fresh, &args))
        .await
        .expect("the restart keeps map, tables and data");
    assert_eq!(after.leader, cluster.coordinator.address());
}

#[tokio::test]
async fn standby_takes_over_when_the_leader_is_killed() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(etcd) = EtcdProcess::start(&root.path().join("etcd")).expect("etcd") else {
        return;
    };
    let args = etcd_args(&etcd.url, "/strata/failover");
    let mut leader =
        CoordinatorProcess::start("127.0.0.1:0", &root.path().join("c1"), &args).expect("c1");
    wait_status(leader.address(), SETTLE_DEADLINE, "leading", |_| true)
        .await
        .expect("c1 leads");
    let standby =
        CoordinatorProcess::start("127.0.0.1:0", &root.path().join("c2"), &args).expect("c2");
    let both = format!("{},{}", standby.address(), leader.address());
    let mut shards = Vec::new();
    for i in 0..3 {
        let dir = root.path().join(format!("shard-{i}"));
        shards.push(ShardProcess::start(&both, &dir, &[]).expect("shard"));
    }
    wait_status(leader.address(), SETTLE_DEADLINE, "settled", |s| {
        settled(s, 3)
    })
    .await
    .expect("settled");

    // The client is given the standby first: it must follow the hint to the leader.
    let client = strata_client::Client::connect(&both).await.expect("client");
    assert_eq!(client.coordinator_address(), leader.address());
    let status = client.status().await.expect("status");
    assert_eq!(status.leader, leader.address());
    client
        .create_table(table_spec("e", 2, "sgd", 1.0))
        .await
        .expect("create");

    // Every acknowledged push subtracts exactly 1 from each of its rows (SGD, lr 1, grad 1).
    let ids: Vec<u64> = (0..64).collect();
    let grads = vec![1.0; ids.len() * 2];
    let (mut acked, mut failed) = (0u32, 0u32);
    let mut killed_at = None;
    for step in 0..60u32 {
        match client.push("e", &ids, &grads).await {
            Ok(_) => acked += 1,
            Err(e) => {
                eprintln!("push {step} failed: {e}");
                failed += 1;
            }
        }
        let rows = client.pull("e", &ids).await.expect("pull during failover");
        assert_eq!(rows.len(), ids.len() * 2);
        if step == 10 {
            leader.kill();
            killed_at = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_at = killed_at.expect("killed");

    let after = wait_status(standby.address(), TAKEOVER_DEADLINE, "taken over", |s| {
        settled(s, 3)
    })
    .await
    .expect("standby leads and every node is up");
    assert_eq!(after.leader, standby.address());
    assert!(
        killed_at.elapsed() < TAKEOVER_DEADLINE + Duration::from_secs(10),
        "takeover took {:?}",
        killed_at.elapsed()
    );

    // The same client follows the new leader: control plane and data path.
    let status = client.status().await.expect("status after failover");
    assert_eq!(status.leader, standby.address());
    assert_eq!(client.coordinator_address(), standby.address());
    client
        .create_table(table_spec("f", 2, "adagrad", 0.1))
        .await
        .expect("create after failover");
    client.refresh_map().await.expect("refresh after failover");
    for _ in 0..5 {
        client
            .push("e", &ids, &grads)
            .await
            .expect("push after failover");
        acked += 1;
    }
    let rows = client.pull("e", &ids).await.expect("pull after failover");
    for v in rows {
        let applied = -v;
        assert!(
            applied >= acked as f32 && applied <= (acked + failed) as f32,
            "row moved by {applied}, acknowledged {acked}, unknown {failed}"
        );
    }
    assert_eq!(failed, 0, "the data path does not need the coordinator");
    assert_eq!(client.pull("f", &[1]).await.expect("pull f").len(), 2);
}
