//! `strata checkpoint restore` on a cluster of processes: every node goes back to the same
//! cluster checkpoint (rows, optimizer state, shard layout), and a checkpoint a node lacks
//! is refused naming that node, with nothing changed.

use strata_tests::cluster::{layout, resize, wait_status, Cluster, SETTLE_DEADLINE};
use strata_tests::{cli, last_json, table_spec};

/// Creates table `e` and pushes one Adagrad step for ids 0..400; returns the ids.
async fn trained(client: &strata_client::Client) -> Vec<u64> {
    client
        .create_table(table_spec("e", 4, "adagrad", 0.1))
        .await
        .expect("create");
    let ids: Vec<u64> = (0..400).collect();
    client
        .push("e", &ids, &vec![0.5; ids.len() * 4])
        .await
        .expect("push");
    ids
}

/// Makes a cluster checkpoint with the CLI and returns its id.
fn checkpoint(coordinator: &str) -> String {
    let out = cli(coordinator, &["checkpoint", "create", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let id = last_json(&out)["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(id.starts_with("cluster-"), "{out:?}");
    id
}

#[tokio::test]
async fn restore_puts_every_node_back_to_one_checkpoint_and_layout() {
    let root = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(root.path(), 3, &[]).await.expect("cluster");
    let address = cluster.coordinator.address().to_string();
    let client = cluster.client().await.expect("client");
    let ids = trained(&client).await;
    let id = checkpoint(&address);
    let at_checkpoint = client.pull("e", &ids).await.expect("pull");
    let layout_at_checkpoint = layout(&client.status().await.expect("status"));

    // After the checkpoint: more steps, a new table, and a resize that moves rows.
    client
        .push("e", &ids, &vec![-1.0; ids.len() * 4])
        .await
        .expect("push after");
    client
        .create_table(table_spec("later", 2, "sgd", 1.0))
        .await
        .expect("later table");
    let resized = resize(&client, &address, 12).await.expect("resize");
    assert_eq!(resized.shards.len(), 12);
    assert_ne!(client.pull("e", &ids).await.expect("pull"), at_checkpoint);

    let out = cli(&address, &["checkpoint", "restore", &id, "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = wait_status(&address, SETTLE_DEADLINE, "restored layout applied", |s| {
        s.shards.len() == layout_at_checkpoint.len()
            && s.nodes
                .iter()
                .all(|n| n.applied_epoch == s.epoch && n.shards > 0)
    })
    .await
    .expect("settled");
    assert_eq!(layout(&restored), layout_at_checkpoint);
    let names: Vec<String> = restored
        .tables
        .iter()
        .filter_map(|t| t.spec.as_ref().map(|s| s.name.clone()))
        .collect();
    assert_eq!(
        names,
        vec!["e".to_string()],
        "the catalog of the checkpoint"
    );
    assert_eq!(client.pull("e", &ids).await.expect("pull"), at_checkpoint);

    // Optimizer state came back too: the same step from here gives the same rows twice.
    client
        .push("e", &ids, &vec![0.5; ids.len() * 4])
        .await
        .expect("push");
    let once = client.pull("e", &ids).await.expect("pull");
    let out = cli(&address, &["checkpoint", "restore", &id, "--yes"]);
    assert!(out.status.success(), "{out:?}");
    client
        .push("e", &ids, &vec![0.5; ids.len() * 4])
        .await
        .expect("push");
    assert_eq!(client.pull("e", &ids).await.expect("pull"), once);
}

#[tokio::test]
async fn restore_names_the_node_that_lacks_its_part_and_changes_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(root.path(), 3, &[]).await.expect("cluster");
    let address = cluster.coordinator.address().to_string();
    let client = cluster.client().await.expect("client");
    let ids = trained(&client).await;
    let id = checkpoint(&address);
    client
        .push("e", &ids, &vec![-1.0; ids.len() * 4])
        .await
        .expect("push after");
    let before = client.pull("e", &ids).await.expect("pull");
    let status = client.status().await.expect("status");

    // The second shard process loses its checkpoints (deleted by hand, a restored backup).
    let victim_dir = root.path().join("shard-1").join("checkpoints");
    for entry in std::fs::read_dir(&victim_dir).expect("the node's checkpoints") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).expect("remove a checkpoint");
        }
    }
    let victim = status
        .nodes
        .iter()
        .filter_map(|n| n.node.as_ref())
        .find(|n| n.address == cluster.shards[1].address())
        .map(|n| n.id.clone())
        .expect("the victim's node id");

    let out = cli(&address, &["checkpoint", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let listed = last_json(&out);
    let state = listed["checkpoints"][0]["state"]
        .as_str()
        .unwrap_or_default();
    assert!(
        state.starts_with("missing") && state.contains(&victim),
        "{listed}"
    );

    let out = cli(&address, &["checkpoint", "restore", &id, "--yes"]);
    assert!(!out.status.success(), "restore must be refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&victim) && err.contains("nothing was changed"),
        "{err}"
    );
    let after = client.status().await.expect("status");
    assert_eq!(after.epoch, status.epoch, "no new map");
    assert_eq!(layout(&after), layout(&status));
    assert_eq!(client.pull("e", &ids).await.expect("pull"), before);
}
