//! Topology-aware placement end to end: four labelled shard servers in two racks, a trainer
//! in rack r1 pulling and pushing; its traffic shows under its location, `strata rebalance
//! --objective topology --apply` moves the shards it uses into its rack while it keeps
//! pushing, and every row equals the replayed SGD sums afterwards.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strata_client::{Client, ClientOptions};
use strata_proto::v1 as pb;
use strata_tests::cluster::{settled, wait_status, CoordinatorProcess, ShardProcess};
use strata_tests::{cli, last_json, table_spec};

const DIM: usize = 4;
const IDS: u64 = 4000;
/// Longest wait for traffic to show and for the plan to end.
const DEADLINE: Duration = Duration::from_secs(120);

/// Node id → rack, from the status.
fn racks(status: &pb::StatusResponse) -> BTreeMap<String, String> {
    status
        .nodes
        .iter()
        .filter_map(|n| n.node.as_ref())
        .map(|n| {
            (
                n.id.clone(),
                n.labels.get("rack").cloned().unwrap_or_default(),
            )
        })
        .collect()
}

/// One SGD step of gradient `g` on every id, recorded in `expected` (lr 1: w -= g).
async fn step(client: &Client, ids: &[u64], g: f32, expected: &mut [f32]) {
    let grads = vec![g; ids.len() * DIM];
    client.push("emb", ids, &grads).await.expect("push");
    for e in expected.iter_mut() {
        *e -= g;
    }
}

#[tokio::test]
async fn topology_rebalance_moves_a_racks_shards_home_and_loses_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let coordinator = CoordinatorProcess::start(
        "127.0.0.1:0",
        &root.path().join("coordinator"),
        &["--shards", "8"],
    )
    .expect("coordinator");
    let address = coordinator.address().to_string();
    let mut shards = Vec::new();
    for (i, rack) in ["r1", "r1", "r2", "r2"].iter().enumerate() {
        let labels = format!("zone=z1,rack={rack},host=h{i}");
        shards.push(
            ShardProcess::start(
                &address,
                &root.path().join(format!("shard-{i}")),
                &["--labels", &labels, "--traffic-window", "20s"],
            )
            .expect("shard"),
        );
    }
    let status = wait_status(&address, DEADLINE, "settled", |s| settled(s, 4))
        .await
        .expect("settled");
    let rack_of = racks(&status);
    let trainer = Client::connect_with(
        &address,
        ClientOptions {
            labels: Some("zone=z1,rack=r1".into()),
            ..ClientOptions::default()
        },
    )
    .await
    .expect("connect");
    trainer
        .create_table(table_spec("emb", DIM as u32, "sgd", 1.0))
        .await
        .expect("create");
    let ids: Vec<u64> = (0..IDS).collect();
    let mut expected = vec![0.0f32; ids.len() * DIM];
    let mut round = 0u32;
    let grad = |round: u32| 0.25 * (round % 4 + 1) as f32;

    // Traffic until the coordinator sees the trainer's bytes on both racks' nodes.
    let deadline = Instant::now() + DEADLINE;
    loop {
        trainer.pull("emb", &ids).await.expect("pull");
        step(&trainer, &ids, grad(round), &mut expected).await;
        round += 1;
        let seen = last_json(&cli(&address, &["status", "--traffic", "--json"]));
        let nodes: std::collections::BTreeSet<String> = seen["traffic"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter(|r| r["location"] == "rack=r1,zone=z1")
                    .filter_map(|r| r["node"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if nodes.len() == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "traffic not seen on every node: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The dry run predicts less cross-rack traffic and moves only into rack r1 (the bound
    // leaves room for all eight shards on r1's two nodes: 2 of 4 nodes hold 2x the mean,
    // and shards differ a little in bytes).
    let dry = cli(
        &address,
        &[
            "rebalance",
            "--objective",
            "topology",
            "--max-imbalance",
            "2.2",
            "--json",
        ],
    );
    assert!(dry.status.success(), "{dry:?}");
    let plan = last_json(&dry);
    assert_eq!(plan["objective"], "topology");
    let before = plan["predicted"]["cross_rack_bytes_per_s"]["before"]
        .as_f64()
        .expect("before");
    let after = plan["predicted"]["cross_rack_bytes_per_s"]["after"]
        .as_f64()
        .expect("after");
    assert!(before > 0.0 && after < before * 0.5, "{plan}");
    let moves = plan["moves"].as_array().expect("moves");
    assert!(!moves.is_empty(), "{plan}");
    for m in moves {
        let to = m["to"].as_str().expect("to");
        assert_eq!(rack_of[to], "r1", "{plan}");
    }

    // Apply while the trainer keeps pushing.
    let apply = {
        let address = address.clone();
        tokio::task::spawn_blocking(move || {
            cli(
                &address,
                &[
                    "rebalance",
                    "--objective",
                    "topology",
                    "--max-imbalance",
                    "2.2",
                    "--apply",
                    "--yes",
                ],
            )
        })
    };
    let deadline = Instant::now() + DEADLINE;
    while !apply.is_finished() {
        step(&trainer, &ids, grad(round), &mut expected).await;
        round += 1;
        assert!(Instant::now() < deadline, "the plan did not end");
    }
    let out = apply.await.expect("apply");
    assert!(out.status.success(), "{out:?}");

    let status = wait_status(&address, DEADLINE, "done moving", |s| {
        s.plan.as_ref().is_some_and(|p| p.state == "done")
            && s.nodes.iter().all(|n| n.applied_epoch == s.epoch)
    })
    .await
    .expect("status");
    for shard in &status.shards {
        assert_eq!(
            rack_of[&shard.primary], "r1",
            "every shard the r1 trainer uses is in r1: {:?}",
            status.shards
        );
    }
    step(&trainer, &ids, grad(round), &mut expected).await;
    let rows = trainer.pull("emb", &ids).await.expect("pull");
    assert_eq!(rows, expected, "every row equals the replayed SGD sums");
    drop(shards);
}
