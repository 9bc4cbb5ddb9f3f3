//! Coordinator restart with the file store: the map, tables and data survive, and a client
//! connected before the restart carries on.

use strata_tests::cluster::{settled, wait_status, Cluster, CoordinatorProcess, SETTLE_DEADLINE};
use strata_tests::table_spec;

#[tokio::test]
async fn coordinator_restart_keeps_map_tables_and_data() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::start(root.path(), 3, &["--heartbeat-timeout", "2s"])
        .await
        .expect("cluster");
    let client = cluster.client().await.expect("client");
    client
        .create_table(table_spec("e", 4, "sgd", 0.5))
        .await
        .expect("create");
    let ids: Vec<u64> = (0..200).collect();
    client
        .push("e", &ids, &vec![1.0; ids.len() * 4])
        .await
        .expect("push");
    let before_rows = client.pull("e", &ids).await.expect("pull");
    let before = client.status().await.expect("status");

    let address = cluster.coordinator.address().to_string();
    cluster.coordinator.kill();
    // The data path does not need the coordinator.
    let during = client.pull("e", &ids).await.expect("pull while it is down");
    assert_eq!(during, before_rows);

    cluster.coordinator = CoordinatorProcess::start(
        &address,
        &root.path().join("coordinator"),
        &["--heartbeat-timeout", "2s"],
    )
    .expect("restart coordinator");
    let after = wait_status(&address, SETTLE_DEADLINE, "settled after restart", |s| {
        settled(s, 3) && s.tables.first().is_some_and(|t| t.rows == 200)
    })
    .await
    .expect("settled");
    assert_eq!(layout(&after), layout(&before), "same placement");
    assert!(after.epoch >= before.epoch, "epochs never go back");
    let names: Vec<_> = after
        .tables
        .iter()
        .filter_map(|t| t.spec.as_ref().map(|s| s.name.clone()))
        .collect();
    assert_eq!(names, vec!["e".to_string()]);

    // The same client carries on: data and control plane.
    client
        .push("e", &ids, &vec![1.0; ids.len() * 4])
        .await
        .expect("push after restart");
    let rows = client.pull("e", &ids).await.expect("pull after restart");
    for (a, b) in rows.iter().zip(&before_rows) {
        assert_eq!(*a, b - 0.5, "one more SGD step of lr 0.5");
    }
    client
        .create_table(table_spec("f", 2, "adagrad", 0.1))
        .await
        .expect("create after restart");
    assert_eq!(client.pull("f", &[1, 2]).await.expect("pull f").len(), 4);
}

/// Shard ranges and primaries (the live row counts in status are not part of placement).
fn layout(s: &strata_proto::v1::StatusResponse) -> Vec<(u32, u32, u32, String)> {
    s.shards
        .iter()
        .map(|sh| (sh.id, sh.slot_start, sh.slot_end, sh.primary.clone()))
        .collect()
}
