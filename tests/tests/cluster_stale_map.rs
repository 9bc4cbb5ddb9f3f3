//! A client holding a stale map is corrected by the server and succeeds transparently.

use strata_tests::cluster::{
    apply, finished, settled, wait_status, CoordinatorProcess, ShardProcess, SETTLE_DEADLINE,
};
use strata_tests::table_spec;

#[tokio::test]
async fn stale_client_is_refused_with_the_epoch_refreshes_and_succeeds() {
    let root = tempfile::tempdir().expect("tempdir");
    let coordinator =
        CoordinatorProcess::start("127.0.0.1:0", &root.path().join("c"), &[]).expect("coordinator");
    let first =
        ShardProcess::start(coordinator.address(), &root.path().join("s0"), &[]).expect("shard 0");
    wait_status(coordinator.address(), SETTLE_DEADLINE, "one node", |s| {
        settled(s, 1)
    })
    .await
    .expect("one node");
    // This client's map puts every shard on the first node.
    let stale = strata_client::Client::connect(coordinator.address())
        .await
        .expect("client");
    stale
        .create_table(table_spec("e", 4, "sgd", 0.1))
        .await
        .expect("create");
    let old_epoch = stale.epoch();

    // Two more nodes join; a rebalance moves shards to them (no rows yet: by count).
    let _more: Vec<ShardProcess> = (1..3)
        .map(|i| {
            ShardProcess::start(
                coordinator.address(),
                &root.path().join(format!("s{i}")),
                &[],
            )
            .expect("shard")
        })
        .collect();
    wait_status(coordinator.address(), SETTLE_DEADLINE, "three up", |s| {
        strata_tests::cluster::up_count(s) == 3
    })
    .await
    .expect("three up");
    let operator = strata_client::Client::connect(coordinator.address())
        .await
        .expect("operator client");
    let plan = operator.plan_rebalance("").await.expect("plan");
    let id = apply(&operator, plan.plan_json, 0).await.expect("apply");
    finished(coordinator.address(), &id)
        .await
        .expect("rebalanced");
    let status = wait_status(coordinator.address(), SETTLE_DEADLINE, "three nodes", |s| {
        settled(s, 3)
    })
    .await
    .expect("three nodes");
    assert!(status.epoch > old_epoch);
    assert_eq!(stale.epoch(), old_epoch, "the client has not looked yet");

    // Sent with the old map, the first node refuses slots it lost; the client refreshes.
    let ids: Vec<u64> = (0..500).collect();
    stale
        .push("e", &ids, &vec![1.0; ids.len() * 4])
        .await
        .expect("push with a stale map");
    let rows = stale.pull("e", &ids).await.expect("pull");
    assert!(rows.iter().all(|&v| v == -0.1), "each row pushed once");
    assert_eq!(stale.epoch(), status.epoch, "map refreshed");
    drop(first);
}
