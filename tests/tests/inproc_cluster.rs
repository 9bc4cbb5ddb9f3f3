//! A whole cluster in the test's process ([`InProcessCluster`]): nodes with their own row
//! memory side by side, live moves between in-process nodes under load, and a cluster
//! checkpoint restored across three nodes.

use std::time::Duration;

use strata_server::metrics::Metrics;
use strata_storage::host::RowMemoryConfig;
use strata_storage::slot::slot_of;
use strata_tests::cluster::{apply, finished, layout, resize, up_count, wait_status};
use strata_tests::inproc::InProcessCluster;
use strata_tests::table_spec;
use strata_tests::trainers::{
    assert_no_errors, check_rows, per_row_updates, sgd_expected, start_trainers, stop_trainers,
    TrainerSpec,
};

/// Bytes of one reserve chunk.
const CHUNK: u64 = 2 << 20;
const DIM: usize = 4;

/// A bounded wait for a test step.
const STEP: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_one_process_fill_and_count_their_own_reserves() {
    let root = tempfile::tempdir().expect("tempdir");
    let cluster = InProcessCluster::start_in(root.path(), 2, 4, |i| RowMemoryConfig {
        reserve_bytes: (2 + i as u64) * CHUNK,
        huge_pages: false,
    })
    .await
    .expect("cluster");
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (ra, rb) = (a.engine().row_memory(), b.engine().row_memory());
    assert!(
        ra.wait_filled(STEP) && rb.wait_filled(STEP),
        "both reserves fill"
    );
    assert_eq!((ra.reserve().capacity(), rb.reserve().capacity()), (2, 3));
    assert_eq!((ra.reserve().chunks(), rb.reserve().chunks()), (2, 3));
    assert_eq!((ra.reserve().taken(), rb.reserve().taken()), (0, 0));
    // Each node's /metrics reads its own reserve.
    let text = Metrics::for_node(b.engine().clone()).openmetrics();
    assert!(
        text.contains(&format!("strata_memory_reserve_bytes {}", 3 * CHUNK)),
        "{text}"
    );

    // Rows of node a's slots take chunks from a's reserve only.
    let client = cluster.client().await.expect("client");
    client
        .create_table(table_spec("t", DIM as u32, "sgd", 1.0))
        .await
        .expect("create");
    let num_slots = a.engine().ownership().num_slots();
    let of = |node: &strata_server::roles::local::LocalShard, id: u64| {
        let slot = slot_of(id, num_slots);
        node.engine().ownership().serves_all(slot, slot + 1)
    };
    let ids_a: Vec<u64> = (0..5000u64).filter(|&id| of(a, id)).take(500).collect();
    let ids_b: Vec<u64> = (0..5000u64).filter(|&id| of(b, id)).take(500).collect();
    assert!(
        ids_a.len() == 500 && ids_b.len() == 500,
        "both nodes own slots"
    );
    client.pull("t", &ids_a).await.expect("pull a's rows");
    assert!(ra.reserve().taken() > 0, "a's rows took a's chunks");
    assert_eq!(rb.reserve().taken(), 0, "b's reserve untouched");
    client.pull("t", &ids_b).await.expect("pull b's rows");
    assert!(rb.reserve().taken() > 0, "b's rows took b's chunks");
    let rows = |node: &strata_server::roles::local::LocalShard| {
        node.engine().table("t").expect("table").stats().rows
    };
    assert_eq!((rows(a), rows(b)), (500, 500));
    // Both refill threads replace what was taken, each up to its own capacity.
    assert!(ra.wait_filled(STEP) && rb.wait_filled(STEP), "both refill");
    assert_eq!((ra.reserve().chunks(), rb.reserve().chunks()), (2, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_move_between_in_process_nodes_while_trainers_push_and_none_is_lost() {
    let mut cluster = InProcessCluster::start(2, 8).await.expect("cluster");
    let client = cluster.client().await.expect("client");
    client
        .create_table(table_spec("emb", DIM as u32, "sgd", 1.0))
        .await
        .expect("create");
    let spec = TrainerSpec {
        trainers: 2,
        keys: 4000,
        dim: DIM,
        batch: 32,
        max_steps: 20_000,
        max_time: Duration::from_secs(90),
        pause: Duration::from_millis(2),
    };
    let (handles, stop) = start_trainers(&client, "emb", spec);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A third node joins; the rebalance moves shards (and their rows) onto it.
    let joined = cluster
        .add_node(RowMemoryConfig::default())
        .await
        .expect("third node")
        .address()
        .to_string();
    wait_status(&cluster.address, STEP, "3 up", |s| up_count(s) == 3)
        .await
        .expect("third node up");
    // A heartbeat with range sizes, so the plan sees the bytes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let plan = client.plan_rebalance("").await.expect("plan rebalance");
    let id = apply(&client, plan.plan_json, 0).await.expect("apply");
    let s = finished(&cluster.address, &id).await.expect("rebalance");
    let shards_on_joined = s
        .nodes
        .iter()
        .find(|n| n.node.as_ref().is_some_and(|x| x.address == joined))
        .map_or(0, |n| n.shards);
    assert!(shards_on_joined > 0, "the joined node got shards: {s:?}");
    let node = cluster.node_at(&joined).expect("the joined node");
    let moved_in = node.engine().table("emb").expect("table").stats().rows;
    assert!(moved_in > 0, "rows moved into the joined node's engine");

    // Then a resize that merges shards across nodes.
    let s = resize(&client, &cluster.address, 5).await.expect("resize");
    assert_eq!(s.shards.len(), 5);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = stop_trainers(handles, &stop).await;
    assert_no_errors(&logs);
    let pushes: usize = logs.iter().map(|l| l.acked.len()).sum();
    assert!(pushes > 50, "trainers kept pushing ({pushes} acknowledged)");
    let updates = per_row_updates(&logs, DIM);
    let rows = check_rows(&client, "emb", &updates, DIM, 0.0, |u| sgd_expected(u, DIM))
        .await
        .expect("every acknowledged push is in its row");
    assert!(rows > 500, "{rows} rows checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_checkpoint_restores_across_three_in_process_nodes() {
    let cluster = InProcessCluster::start(3, 6).await.expect("cluster");
    let client = cluster.client().await.expect("client");
    client
        .create_table(table_spec("e", DIM as u32, "adagrad", 0.1))
        .await
        .expect("create");
    let ids: Vec<u64> = (0..3000).collect();
    client
        .push("e", &ids, &vec![0.5; ids.len() * DIM])
        .await
        .expect("push");
    let held: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|n| n.engine().table("e").expect("table").stats().rows)
        .collect();
    assert!(
        held.iter().all(|&r| r > 0),
        "every node holds rows: {held:?}"
    );
    assert_eq!(held.iter().sum::<u64>(), 3000);

    let checkpoint = client.checkpoint().await.expect("checkpoint");
    let at_checkpoint = client.pull("e", &ids).await.expect("pull");
    let layout_at_checkpoint = layout(&client.status().await.expect("status"));

    // After it: another step, a new table and a resize that moves rows.
    client
        .push("e", &ids, &vec![-1.0; ids.len() * DIM])
        .await
        .expect("push after");
    client
        .create_table(table_spec("later", 2, "sgd", 1.0))
        .await
        .expect("later table");
    resize(&client, &cluster.address, 9).await.expect("resize");
    assert_ne!(client.pull("e", &ids).await.expect("pull"), at_checkpoint);

    client.restore(&checkpoint.id).await.expect("restore");
    let restored = wait_status(&cluster.address, STEP, "restored layout applied", |s| {
        s.shards.len() == layout_at_checkpoint.len()
            && s.nodes
                .iter()
                .all(|n| n.applied_epoch == s.epoch && n.shards > 0)
    })
    .await
    .expect("settled");
    assert_eq!(layout(&restored), layout_at_checkpoint);
    assert_eq!(client.pull("e", &ids).await.expect("pull"), at_checkpoint);
    assert!(
        cluster
            .nodes
            .iter()
            .all(|n| n.engine().table("later").is_err()),
        "every node is back to the checkpoint's catalog"
    );
}
