//! A shard server killed with SIGKILL: `strata status --json` shows it down within the
//! heartbeat timeout; requests to its shards fail naming the node and its shards; after a
//! restart its shards serve again with their data as of the last checkpoint.

use std::time::{Duration, Instant};

use strata_client::ClientError;
use strata_tests::cluster::{settled, wait_status, Cluster, ShardProcess, SETTLE_DEADLINE};
use strata_tests::{cli, last_json, table_spec};

/// Ids whose slot a node serves: the ids of `all` routed to `node` by the status map.
fn ids_on(status: &strata_proto::v1::StatusResponse, node: &str, all: &[u64]) -> Vec<u64> {
    let num_slots = 4096u64;
    all.iter()
        .copied()
        .filter(|&id| {
            let slot = (strata_client::routing::splitmix64(id) % num_slots) as u32;
            status
                .shards
                .iter()
                .any(|s| s.primary == node && s.slot_start <= slot && slot < s.slot_end)
        })
        .collect()
}

#[tokio::test]
async fn killed_shard_is_reported_down_fails_clearly_and_comes_back_from_checkpoint() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::start(root.path(), 3, &["--heartbeat-timeout", "2s"])
        .await
        .expect("cluster");
    let client = cluster.client().await.expect("client");
    client
        .create_table(table_spec("e", 4, "adagrad", 0.1))
        .await
        .expect("create");
    let all: Vec<u64> = (0..300).collect();
    client
        .push("e", &all, &vec![0.5; all.len() * 4])
        .await
        .expect("push");
    let checkpoint = cli(cluster.coordinator.address(), &["checkpoint", "create"]);
    assert!(checkpoint.status.success(), "{checkpoint:?}");
    let at_checkpoint = client.pull("e", &all).await.expect("pull");
    // Writes after the checkpoint are lost with the killed node (no replication yet).
    client
        .push("e", &all, &vec![0.25; all.len() * 4])
        .await
        .expect("push after checkpoint");

    let status = client.status().await.expect("status");
    let victim = status.nodes[1].node.clone().expect("node");
    let victim_ids = ids_on(&status, &victim.id, &all);
    assert!(!victim_ids.is_empty());
    // Node ids follow registration order, not start order: kill the process behind it.
    let process = cluster
        .process_of(&status, &victim.id)
        .expect("the victim is one of the shard processes");
    let killed_at = Instant::now();
    cluster.shards[process].kill();
    // Before the coordinator notices: a push on the dead connection is ambiguous (it may
    // have been written before the node died) or refused; a pull names the node.
    let early = client
        .push("e", &victim_ids, &vec![1.0; victim_ids.len() * 4])
        .await
        .expect_err("node is gone");
    assert!(
        matches!(
            early,
            ClientError::NodeUnavailable { .. } | ClientError::Ambiguous { .. }
        ),
        "unexpected error: {early}"
    );
    let early = client
        .pull("e", &victim_ids)
        .await
        .expect_err("node is gone");
    assert!(
        matches!(&early, ClientError::NodeUnavailable { node, .. } if *node == victim.id),
        "unexpected error: {early}"
    );

    // Down within the timeout (2 s) plus one sweep and one poll.
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let out = cli(cluster.coordinator.address(), &["status", "--json"]);
        assert!(out.status.success(), "{out:?}");
        let json = last_json(&out);
        let state = json["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["id"] == victim.id.as_str()))
            .map(|n| n["state"].clone());
        if state == Some("down".into()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node not reported down after {:?}: {json}",
            killed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(killed_at.elapsed() < Duration::from_secs(6));

    // Requests to its shards fail fast and name the node and its shards.
    let started = Instant::now();
    let err = client
        .pull("e", &victim_ids)
        .await
        .expect_err("node is down");
    assert!(started.elapsed() < Duration::from_secs(5), "no hang");
    match &err {
        ClientError::NodeUnavailable { node, shards, .. } => {
            assert_eq!(node, &victim.id);
            assert!(!shards.is_empty());
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(err.to_string().contains(&victim.id), "{err}");
    let push = client
        .push("e", &victim_ids, &vec![1.0; victim_ids.len() * 4])
        .await
        .expect_err("push to a down node");
    assert!(
        matches!(push, ClientError::NodeUnavailable { .. }),
        "a push never sent is not ambiguous: {push}"
    );
    let cli_pull = cli(
        cluster.coordinator.address(),
        &["pull", "--table", "e", "--ids", &victim_ids[0].to_string()],
    );
    assert!(!cli_pull.status.success());
    assert!(String::from_utf8_lossy(&cli_pull.stderr).contains(&victim.id));

    // Restarted from its data dir: the same node id, its data as of the checkpoint.
    let dir = cluster.shards[process].0.data_dir.clone();
    cluster.shards[process] =
        ShardProcess::start(cluster.coordinator.address(), &dir, &[]).expect("restart shard");
    wait_status(
        cluster.coordinator.address(),
        SETTLE_DEADLINE,
        "settled after restart",
        |s| settled(s, 3),
    )
    .await
    .expect("settled");
    let back = client
        .pull("e", &victim_ids)
        .await
        .expect("pull after restart");
    let expected: Vec<f32> = all
        .iter()
        .enumerate()
        .filter(|(_, id)| victim_ids.contains(id))
        .flat_map(|(i, _)| at_checkpoint[i * 4..(i + 1) * 4].to_vec())
        .collect();
    assert_eq!(back, expected, "data as of the last checkpoint");
}
