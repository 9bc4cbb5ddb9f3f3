//! Faults during a live migration: the destination killed, the coordinator restarted, the
//! plan cancelled. Trainers push SGD (lr 1) throughout; afterwards ownership is consistent
//! and every row equals minus the sum of its acknowledged gradients.

use std::time::Duration;

use strata_proto::v1 as pb;
use strata_tests::cluster::{
    apply, wait_plan, wait_status, Cluster, CoordinatorProcess, ShardProcess,
};
use strata_tests::table_spec;
use strata_tests::trainers::{
    assert_no_errors, check_rows, per_row_updates, sgd_expected, start_trainers, stop_trainers,
    TrainerSpec,
};

const DIM: usize = 16;
/// Throttle so a move of the preloaded rows takes seconds.
const SLOW: u64 = 150 << 10;

fn spec() -> TrainerSpec {
    TrainerSpec {
        trainers: 2,
        keys: 40_000,
        dim: DIM,
        batch: 32,
        max_steps: 20_000,
        max_time: Duration::from_secs(120),
        pause: Duration::from_millis(3),
    }
}

/// Three nodes, a table with 40k preloaded rows, and a fourth, empty node.
async fn setup(root: &std::path::Path) -> (Cluster, strata_client::Client) {
    let mut cluster = Cluster::start(root, 3, &["--shards", "6"])
        .await
        .expect("cluster");
    let client = cluster.client().await.expect("client");
    client
        .create_table(table_spec("emb", DIM as u32, "sgd", 1.0))
        .await
        .expect("create");
    let all: Vec<u64> = (0..spec().keys).collect();
    for part in all.chunks(8192) {
        client.pull("emb", part).await.expect("preload");
    }
    let coordinator = cluster.coordinator.address().to_string();
    cluster
        .shards
        .push(ShardProcess::start(&coordinator, &root.join("shard-3"), &[]).expect("fourth node"));
    wait_status(
        &coordinator,
        Duration::from_secs(30),
        "4 up with sizes",
        |s| strata_tests::cluster::up_count(s) == 4 && s.shards.iter().all(|sh| sh.rows > 0),
    )
    .await
    .expect("fourth node up");
    (cluster, client)
}

/// Starts a throttled rebalance onto the fourth node and waits until a move is copying.
async fn slow_rebalance(client: &strata_client::Client, coordinator: &str) -> String {
    let plan = client.plan_rebalance("").await.expect("plan");
    let id = apply(client, plan.plan_json, SLOW).await.expect("apply");
    wait_status(coordinator, Duration::from_secs(30), "copying", |s| {
        s.migrations
            .iter()
            .any(|m| m.state == "copying" && m.bytes_copied > 0)
    })
    .await
    .expect("a move is copying");
    id
}

/// Every shard has a primary that is up, and no shard is on `gone`.
fn consistent(s: &pb::StatusResponse, gone: &str) -> bool {
    let up = |id: &str| {
        s.nodes.iter().any(|n| {
            n.node
                .as_ref()
                .is_some_and(|x| x.id == id && x.state == "up")
        })
    };
    s.shards
        .iter()
        .all(|sh| sh.primary != gone && up(&sh.primary))
}

async fn check(cluster: &Cluster, logs: &[strata_tests::trainers::TrainerLog]) {
    assert_no_errors(logs);
    let client = cluster.client().await.expect("client");
    let updates = per_row_updates(logs, DIM);
    let rows = check_rows(&client, "emb", &updates, DIM, 0.0, |u| sgd_expected(u, DIM))
        .await
        .expect("exact rows");
    assert!(rows > 100, "{rows} rows checked");
}

#[tokio::test]
async fn destination_killed_mid_copy_aborts_and_the_source_keeps_its_rows() {
    let root = tempfile::tempdir().expect("tempdir");
    let (mut cluster, client) = setup(root.path()).await;
    let coordinator = cluster.coordinator.address().to_string();
    let (handles, stop) = start_trainers(&client, "emb", spec());
    let id = slow_rebalance(&client, &coordinator).await;
    let s = client.status().await.expect("status");
    let dest = s
        .migrations
        .iter()
        .find(|m| m.state == "copying")
        .map(|m| m.to.clone())
        .unwrap_or_default();
    let victim = cluster
        .process_of(&s, &dest)
        .expect("the destination is one of the shard processes");
    cluster.shards[victim].kill();
    let s = wait_plan(&coordinator, &id, Duration::from_secs(60))
        .await
        .expect("plan ends");
    let plan = s.plan.clone().unwrap_or_default();
    assert_eq!(plan.state, "failed", "{plan:?}");
    assert!(
        s.migrations.iter().any(|m| m.state == "aborted"),
        "the move was aborted: {:?}",
        s.migrations
    );
    let s = wait_status(&coordinator, Duration::from_secs(20), "consistent", |s| {
        consistent(s, &dest)
    })
    .await
    .expect("no shard on the dead destination");
    assert!(s.shards.iter().all(|sh| sh.primary != dest));
    let logs = stop_trainers(handles, &stop).await;
    check(&cluster, &logs).await;
}

#[tokio::test]
async fn coordinator_restarted_mid_migration_rolls_back_and_resumes_the_plan() {
    let root = tempfile::tempdir().expect("tempdir");
    let (mut cluster, client) = setup(root.path()).await;
    let coordinator = cluster.coordinator.address().to_string();
    let (handles, stop) = start_trainers(&client, "emb", spec());
    let id = slow_rebalance(&client, &coordinator).await;
    cluster.coordinator.kill();
    cluster.coordinator = CoordinatorProcess::start(
        &coordinator,
        &root.path().join("coordinator"),
        &["--shards", "6"],
    )
    .expect("coordinator restarts on the same address");
    let s = wait_plan(&coordinator, &id, Duration::from_secs(120))
        .await
        .expect("resumed plan ends");
    let plan = s.plan.clone().unwrap_or_default();
    assert_eq!(plan.state, "done", "{plan:?}");
    let logs = stop_trainers(handles, &stop).await;
    check(&cluster, &logs).await;
}

#[tokio::test]
async fn cancel_mid_migration_rolls_back_cleanly() {
    let root = tempfile::tempdir().expect("tempdir");
    let (cluster, client) = setup(root.path()).await;
    let coordinator = cluster.coordinator.address().to_string();
    let (handles, stop) = start_trainers(&client, "emb", spec());
    let id = slow_rebalance(&client, &coordinator).await;
    let c = client.cancel_plan().await.expect("cancel");
    assert_eq!(c.plan_id, id);
    let s = wait_plan(&coordinator, &id, Duration::from_secs(30))
        .await
        .expect("plan ends");
    let plan = s.plan.clone().unwrap_or_default();
    assert_eq!(plan.state, "cancelled", "{plan:?}");
    assert!(s
        .migrations
        .iter()
        .all(|m| m.state == "done" || m.state == "cancelled"));
    assert!(consistent(&s, ""));
    let logs = stop_trainers(handles, &stop).await;
    check(&cluster, &logs).await;
}

#[tokio::test]
async fn source_killed_mid_copy_fails_the_move_and_its_shards_are_reported_unavailable() {
    let root = tempfile::tempdir().expect("tempdir");
    let (mut cluster, client) = setup(root.path()).await;
    let coordinator = cluster.coordinator.address().to_string();
    let id = slow_rebalance(&client, &coordinator).await;
    let s = client.status().await.expect("status");
    let mv = s
        .migrations
        .iter()
        .find(|m| m.state == "copying")
        .cloned()
        .expect("a copying move");
    let victim = cluster
        .process_of(&s, &mv.from)
        .expect("the source is one of the shard processes");
    cluster.shards[victim].kill();
    let s = wait_plan(&coordinator, &id, Duration::from_secs(60))
        .await
        .expect("plan ends");
    assert_eq!(s.plan.clone().unwrap_or_default().state, "failed");
    let s = wait_status(&coordinator, Duration::from_secs(20), "source down", |s| {
        s.nodes
            .iter()
            .filter_map(|n| n.node.as_ref())
            .any(|n| n.id == mv.from && n.state == "down")
    })
    .await
    .expect("the source is reported down");
    // Its range was not committed away: it stays the source's, unavailable, not served stale.
    let owner = s
        .shards
        .iter()
        .find(|sh| sh.slot_start <= mv.slot_start && mv.slot_start < sh.slot_end)
        .map(|sh| sh.primary.clone())
        .unwrap_or_default();
    assert_eq!(owner, mv.from);
    let in_range: Vec<u64> = (0..spec().keys)
        .filter(|&id| {
            let slot = strata_proto::routing::slot_of(id, 4096);
            slot >= mv.slot_start && slot < mv.slot_end
        })
        .take(10)
        .collect();
    let fresh = cluster.client().await.expect("client");
    match fresh.pull("emb", &in_range).await {
        Err(strata_client::ClientError::NodeUnavailable { node, .. }) => assert_eq!(node, mv.from),
        other => panic!("expected NodeUnavailable naming {}, got {other:?}", mv.from),
    }
}
