//! Live resharding under load: trainers push while the shard count goes 8 → 13 → 5, a node
//! is added (rebalance) and another drained; afterwards every row equals the replay of its
//! acknowledged updates — nothing lost, nothing applied twice.

use std::time::Duration;

use strata_tests::cluster::{apply, finished, resize, Cluster, ShardProcess};
use strata_tests::table_spec;
use strata_tests::trainers::{
    adagrad_expected, assert_no_errors, check_rows, per_row_updates, sgd_expected, start_trainers,
    stop_trainers, TrainerSpec,
};

const DIM: usize = 4;

fn spec() -> TrainerSpec {
    TrainerSpec {
        trainers: 3,
        keys: 6000,
        dim: DIM,
        batch: 48,
        max_steps: 20_000,
        max_time: Duration::from_secs(150),
        pause: Duration::from_millis(2),
    }
}

/// Resize 8 → 13, add a node and rebalance, resize 13 → 5, drain a node; trainers push
/// throughout. Returns the logs.
async fn reshape_under_load(
    root: &std::path::Path,
    optimizer: &str,
    lr: f32,
) -> (Cluster, Vec<strata_tests::trainers::TrainerLog>) {
    let mut cluster = Cluster::start(root, 3, &["--shards", "8"])
        .await
        .expect("cluster");
    let client = cluster.client().await.expect("client");
    client
        .create_table(table_spec("emb", DIM as u32, optimizer, lr))
        .await
        .expect("create");
    let coordinator = cluster.coordinator.address().to_string();
    let (handles, stop) = start_trainers(&client, "emb", spec());
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let s = resize(&client, &coordinator, 13)
        .await
        .expect("resize to 13");
    assert_eq!(s.shards.len(), 13);

    cluster
        .shards
        .push(ShardProcess::start(&coordinator, &root.join("shard-3"), &[]).expect("fourth node"));
    strata_tests::cluster::wait_status(&coordinator, Duration::from_secs(30), "4 up", |s| {
        strata_tests::cluster::up_count(s) == 4
    })
    .await
    .expect("fourth node up");
    // Wait for a heartbeat with range sizes, so the rebalance sees the bytes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let plan = client.plan_rebalance("").await.expect("plan rebalance");
    let id = apply(&client, plan.plan_json, 0)
        .await
        .expect("apply rebalance");
    let s = finished(&coordinator, &id).await.expect("rebalance");
    let newest = s.nodes.iter().find(|n| {
        n.node
            .as_ref()
            .is_some_and(|x| x.address == cluster.shards[3].address())
    });
    assert!(
        newest.is_some_and(|n| n.shards > 0),
        "the added node got shards: {s:?}"
    );

    let s = resize(&client, &coordinator, 5).await.expect("resize to 5");
    assert_eq!(s.shards.len(), 5);

    let victim = s.nodes[0].node.clone().unwrap_or_default().id;
    let plan = client.plan_rebalance(&victim).await.expect("plan drain");
    let id = apply(&client, plan.plan_json, 0)
        .await
        .expect("apply drain");
    let s = finished(&coordinator, &id).await.expect("drain");
    eprintln!("drain: {:?}", s.plan);
    let drained = s
        .nodes
        .iter()
        .find(|n| n.node.as_ref().is_some_and(|x| x.id == victim));
    assert!(
        drained.is_some_and(|n| n.shards == 0 && n.draining),
        "drained: {s:?}"
    );
    assert!(s.shards.iter().all(|sh| sh.primary != victim));

    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = stop_trainers(handles, &stop).await;
    assert_no_errors(&logs);
    let pushes: usize = logs.iter().map(|l| l.acked.len()).sum();
    assert!(
        pushes > 100,
        "trainers kept pushing ({pushes} acknowledged)"
    );
    (cluster, logs)
}

#[tokio::test]
async fn sgd_rows_equal_the_sum_of_acknowledged_pushes_across_resize_add_and_drain() {
    let root = tempfile::tempdir().expect("tempdir");
    let (cluster, logs) = reshape_under_load(root.path(), "sgd", 1.0).await;
    let client = cluster.client().await.expect("client");
    let updates = per_row_updates(&logs, DIM);
    let rows = check_rows(&client, "emb", &updates, DIM, 0.0, |u| sgd_expected(u, DIM))
        .await
        .expect("exact rows");
    assert!(rows > 1000, "{rows} rows checked");
}

#[tokio::test]
async fn adagrad_rows_equal_the_replay_of_acknowledged_pushes_across_resize_add_and_drain() {
    let root = tempfile::tempdir().expect("tempdir");
    let (cluster, logs) = reshape_under_load(root.path(), "adagrad", 0.1).await;
    let client = cluster.client().await.expect("client");
    let updates = per_row_updates(&logs, DIM);
    let rows = check_rows(&client, "emb", &updates, DIM, 1e-6, |u| {
        adagrad_expected(u, DIM, 0.1)
    })
    .await
    .expect("replayed rows");
    assert!(rows > 1000, "{rows} rows checked");
}
