//! The data dir and shutdown through real processes: a second server on a locked data dir is
//! refused; SIGTERM under pushes saves every acknowledged push in a checkpoint on exit (dev
//! and shard); `--checkpoint-interval` checkpoints without a command; a shard node that
//! comes back under its id with an empty data dir is refused unless `--accept-data-loss`.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_client::Client;
use strata_tests::chaos::faults::signal;
use strata_tests::cluster::{
    settled, wait_status, Cluster, CoordinatorProcess, ShardProcess, SETTLE_DEADLINE,
};
use strata_tests::{binary, cli, table_spec, DevServer};

/// How long a process may take to exit after SIGTERM (drain, then the exit checkpoint).
const EXIT_DEADLINE: Duration = Duration::from_secs(30);
/// Pushers, each on its own ids.
const PUSHERS: u64 = 4;
/// Ids per pusher.
const IDS: u64 = 16;

/// Polls `exited` until it returns a status (bounded by [`EXIT_DEADLINE`]), without
/// blocking the test's runtime: the test's clients must answer the server's GOAWAY for it
/// to finish draining.
async fn wait_exit(mut exited: impl FnMut() -> Option<ExitStatus>, what: &str) -> ExitStatus {
    let end = Instant::now() + EXIT_DEADLINE;
    loop {
        if let Some(status) = exited() {
            return status;
        }
        assert!(
            Instant::now() < end,
            "{what} did not exit within {EXIT_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ids of pusher `p`.
fn ids_of(p: u64) -> Vec<u64> {
    (0..IDS).map(|i| p * 1_000 + i).collect()
}

/// What one pusher saw: the sum of its acknowledged gradients, and the gradient of the push
/// that failed (which may or may not have been applied), if any.
struct Pushed {
    acked: f32,
    ambiguous: Option<f32>,
}

/// Pushes small integers (1..=5, every id of the pusher the same) to table `e` (SGD, lr 1,
/// zeros) until a push fails; then stops.
async fn push_until_error(client: Arc<Client>, p: u64) -> Pushed {
    let ids = ids_of(p);
    let mut acked = 0f32;
    for k in 0u64.. {
        let g = (k % 5 + 1) as f32;
        match client.push("e", &ids, &vec![g; ids.len()]).await {
            Ok(_) => acked += g,
            Err(_) => {
                return Pushed {
                    acked,
                    ambiguous: Some(g),
                }
            }
        }
        if k > 100_000 {
            break;
        }
    }
    Pushed {
        acked,
        ambiguous: None,
    }
}

/// Starts the pushers, lets them push for a while, SIGTERMs `pid`, and returns what each saw.
async fn push_then_terminate(client: Client, pid: u32) -> Vec<Pushed> {
    let pushing = tokio::time::sleep(Duration::from_millis(1_500));
    push_then_terminate_when(client, pid, pushing).await
}

/// As [`push_then_terminate`], with the SIGTERM once `ready` resolved.
async fn push_then_terminate_when(
    client: Client,
    pid: u32,
    ready: impl std::future::Future<Output = ()>,
) -> Vec<Pushed> {
    let client = Arc::new(client);
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|p| tokio::spawn(push_until_error(client.clone(), p)))
        .collect();
    ready.await;
    signal(pid, "TERM").expect("SIGTERM");
    let mut seen = Vec::new();
    for p in pushers {
        seen.push(p.await.expect("pusher"));
    }
    seen
}

/// Every acknowledged push is in the rows, each exactly once (the one that failed may be).
async fn check_rows(client: &Client, seen: &[Pushed]) {
    let mut total = 0f32;
    for (p, pushed) in seen.iter().enumerate() {
        let rows = client.pull("e", &ids_of(p as u64)).await.expect("pull");
        total += pushed.acked;
        for v in rows {
            let applied = -v;
            assert!(
                applied == pushed.acked || Some(applied - pushed.acked) == pushed.ambiguous,
                "pusher {p}: row holds {applied}, acknowledged {} (failed push {:?})",
                pushed.acked,
                pushed.ambiguous
            );
        }
    }
    assert!(total > 0.0, "no push was acknowledged before SIGTERM");
}

/// Runs `strata-server dev` on `dir` to its end; returns its status and stderr.
async fn run_dev_to_end(dir: &Path) -> (ExitStatus, String) {
    let mut child = Command::new(binary("strata-server"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the second server");
    let status = wait_exit(|| child.try_wait().ok().flatten(), "the second server").await;
    let out = child.wait_with_output().expect("its output");
    (status, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn a_second_server_on_a_locked_data_dir_is_refused_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = DevServer::start(dir.path(), &[]).expect("first");
    let client = first.client().await.expect("client");
    client
        .create_table(table_spec("e", 2, "sgd", 1.0))
        .await
        .expect("create");

    let (status, stderr) = run_dev_to_end(dir.path()).await;
    assert!(!status.success(), "the second server started: {stderr}");
    assert!(
        stderr.contains(&dir.path().display().to_string())
            && stderr.contains("in use")
            && stderr.contains(&format!("pid {}", first.pid())),
        "{stderr}"
    );

    client
        .push("e", &[1, 2], &[1.0; 4])
        .await
        .expect("the first still serves");
    assert_eq!(client.pull("e", &[1]).await.expect("pull"), vec![-1.0; 2]);
}

#[tokio::test]
async fn sigterm_of_a_dev_server_under_pushes_keeps_every_acknowledged_push() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = DevServer::start(dir.path(), &[]).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("e", 1, "sgd", 1.0))
        .await
        .expect("create");
    let seen = push_then_terminate(client, server.pid()).await;
    let status = wait_exit(|| server.exit_status(), "the dev server").await;
    assert!(status.success(), "exit after SIGTERM: {status}");

    let server = DevServer::start(dir.path(), &[]).expect("restart");
    let client = server.client().await.expect("client again");
    check_rows(&client, &seen).await;
    let listed = client.list_checkpoints().await.expect("list");
    assert_eq!(
        listed.len(),
        1,
        "one checkpoint, written on exit: {listed:?}"
    );
}

#[tokio::test]
async fn no_checkpoint_on_exit_rolls_back_to_the_last_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = DevServer::start(dir.path(), &["--no-checkpoint-on-exit"]).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("e", 1, "sgd", 1.0))
        .await
        .expect("create");
    client.push("e", &[7], &[3.0]).await.expect("push");
    signal(server.pid(), "TERM").expect("SIGTERM");
    assert!(wait_exit(|| server.exit_status(), "the dev server")
        .await
        .success());

    let server = DevServer::start(dir.path(), &[]).expect("restart");
    let client = server.client().await.expect("client again");
    assert_eq!(client.pull("e", &[7]).await.expect("pull"), vec![0.0]);
    assert!(client.list_checkpoints().await.expect("list").is_empty());
}

#[tokio::test]
async fn a_client_that_never_closes_its_connection_does_not_keep_the_exit_checkpoint_out() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = DevServer::start(dir.path(), &["--drain-timeout", "1s"]).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("e", 1, "sgd", 1.0))
        .await
        .expect("create");
    client.push("e", &[7], &[3.0]).await.expect("push");
    // An HTTP/2 connection whose client then never reads nor closes (a stalled process).
    let mut stuck = std::net::TcpStream::connect(&server.address).expect("connect");
    stuck
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .expect("preface and SETTINGS");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    signal(server.pid(), "TERM").expect("SIGTERM");
    let status = wait_exit(|| server.exit_status(), "the dev server").await;
    assert!(status.success(), "exit after SIGTERM: {status}");
    assert!(
        signalled.elapsed() >= Duration::from_millis(900),
        "it did not wait for the open connection"
    );
    drop(stuck);

    let server = DevServer::start(dir.path(), &[]).expect("restart");
    let client = server.client().await.expect("client again");
    assert_eq!(client.pull("e", &[7]).await.expect("pull"), vec![-3.0]);
}

#[tokio::test]
async fn checkpoint_interval_checkpoints_changes_without_a_command_and_skips_no_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &["--checkpoint-interval", "1s"]).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("e", 1, "sgd", 1.0))
        .await
        .expect("create");
    client.push("e", &[1, 2, 3], &[1.0; 3]).await.expect("push");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = client.list_checkpoints().await.expect("list");
        if listed.first().is_some_and(|c| c.rows == 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no periodic checkpoint: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing changes from here: once a heartbeat that was on its way while the checkpoint
    // was written has come (it may bring one more), the newest stays the same.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let newest = |listed: Vec<strata_proto::v1::CheckpointInfo>| {
        listed.first().map(|c| c.id.clone()).unwrap_or_default()
    };
    let before = newest(client.list_checkpoints().await.expect("list"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = newest(client.list_checkpoints().await.expect("list"));
    assert_eq!(before, after, "a periodic checkpoint of no change");
}

/// A coordinator and one shard server (`shard_extra`), settled, with table `e`.
async fn one_shard_cluster(
    root: &Path,
    shard_extra: &[&str],
) -> (CoordinatorProcess, ShardProcess, Client) {
    one_shard_cluster_with(root, &[], shard_extra).await
}

/// [`one_shard_cluster`] with `coordinator_extra` flags for the coordinator.
async fn one_shard_cluster_with(
    root: &Path,
    coordinator_extra: &[&str],
    shard_extra: &[&str],
) -> (CoordinatorProcess, ShardProcess, Client) {
    let mut flags = vec!["--shards", "2"];
    flags.extend_from_slice(coordinator_extra);
    let coordinator = CoordinatorProcess::start("127.0.0.1:0", &root.join("coordinator"), &flags)
        .expect("coordinator");
    let shard = ShardProcess::start(coordinator.address(), &root.join("shard"), shard_extra)
        .expect("shard");
    wait_status(coordinator.address(), SETTLE_DEADLINE, "settled", |s| {
        settled(s, 1)
    })
    .await
    .expect("settled");
    let client = Client::connect(coordinator.address())
        .await
        .expect("client");
    client
        .create_table(table_spec("e", 1, "sgd", 1.0))
        .await
        .expect("create");
    (coordinator, shard, client)
}

/// Waits until the one node is up at `address`, serving its shards at the current epoch.
async fn back_at(coordinator: &str, address: &str) {
    wait_status(
        coordinator,
        SETTLE_DEADLINE,
        "back at the new address",
        |s| {
            settled(s, 1)
                && s.nodes
                    .iter()
                    .any(|n| n.node.as_ref().is_some_and(|n| n.address == address))
        },
    )
    .await
    .expect("the node is back");
}

#[tokio::test]
async fn sigterm_of_a_shard_server_under_pushes_keeps_every_acknowledged_push() {
    let root = tempfile::tempdir().expect("tempdir");
    let (coordinator, mut shard, client) = one_shard_cluster(root.path(), &[]).await;
    let seen = push_then_terminate(client, shard.0.pid()).await;
    let status = wait_exit(|| shard.0.exit_status(), "the shard server").await;
    assert!(status.success(), "exit after SIGTERM: {status}");

    let shard = ShardProcess::start(coordinator.address(), &root.path().join("shard"), &[])
        .expect("restart");
    back_at(coordinator.address(), shard.address()).await;
    let client = Client::connect(coordinator.address())
        .await
        .expect("client");
    client.refresh_map().await.expect("map");
    check_rows(&client, &seen).await;
}

#[tokio::test]
async fn sigterm_of_a_shard_server_moving_shards_out_keeps_every_acknowledged_push() {
    let root = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(root.path(), 2, &["--shards", "4"])
        .await
        .expect("cluster");
    let client = cluster.client().await.expect("client");
    client
        .create_table(table_spec("e", 1, "sgd", 1.0))
        .await
        .expect("create");
    // Rows for the moves to copy, slowly (throttled below).
    let bulk: Vec<u64> = (100_000..160_000).collect();
    client
        .push("e", &bulk, &vec![1.0; bulk.len()])
        .await
        .expect("bulk push");
    let status = client.status().await.expect("status");
    let victim = status.nodes[0].node.clone().expect("node").id;
    let process = cluster.process_of(&status, &victim).expect("its process");
    let plan = client.plan_rebalance(&victim).await.expect("drain plan");
    client
        .apply_plan(strata_proto::v1::ApplyPlanRequest {
            plan_json: plan.plan_json,
            max_bytes_per_s: 256 << 10,
            max_parallel: 1,
        })
        .await
        .expect("apply");
    let mut cluster = cluster;
    let pid = cluster.shards[process].0.pid();
    let coordinator = cluster.coordinator.address().to_string();
    let copying = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        wait_status(&coordinator, SETTLE_DEADLINE, "copying", |s| {
            s.migrations
                .iter()
                .any(|m| m.from == victim && m.state == "copying" && m.rows_copied > 0)
        })
        .await
        .expect("a move out of the victim under way");
    };
    let seen = push_then_terminate_when(client, pid, copying).await;
    let status = wait_exit(|| cluster.shards[process].0.exit_status(), "the source").await;
    assert!(status.success(), "exit after SIGTERM: {status}");

    let data = root.path().join(format!("shard-{process}"));
    let back = ShardProcess::start(cluster.coordinator.address(), &data, &[]).expect("restart");
    let address = back.address().to_string();
    wait_status(
        cluster.coordinator.address(),
        SETTLE_DEADLINE,
        "back",
        |s| {
            s.nodes.iter().all(|n| {
                n.node.as_ref().is_some_and(|x| x.state == "up") && n.applied_epoch == s.epoch
            }) && s
                .nodes
                .iter()
                .any(|n| n.node.as_ref().is_some_and(|x| x.address == address))
        },
    )
    .await
    .expect("the source is back");
    let client = cluster.client().await.expect("client again");
    check_rows(&client, &seen).await;
    let rows = client.pull("e", &bulk).await.expect("pull the moved rows");
    assert!(rows.iter().all(|&v| v == -1.0), "a moved row changed");
}

#[tokio::test]
async fn the_coordinator_checkpoints_the_cluster_every_interval_when_a_node_changed() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_coordinator, _shard, client) = one_shard_cluster_with(
        root.path(),
        &["--checkpoint-interval", "1s"],
        &["--heartbeat-interval", "200ms"],
    )
    .await;
    client.push("e", &[1, 2], &[4.0; 2]).await.expect("push");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = client.list_checkpoints().await.expect("list");
        if listed
            .first()
            .is_some_and(|c| c.rows == 2 && c.state == "ok")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no periodic checkpoint: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_shard_back_with_an_empty_data_dir_is_refused_unless_it_accepts_the_loss() {
    let root = tempfile::tempdir().expect("tempdir");
    let node = ["--node-id", "n1", "--heartbeat-interval", "200ms"];
    let (coordinator, mut shard, client) = one_shard_cluster(root.path(), &node).await;
    client.push("e", &[1, 2, 3], &[2.0; 3]).await.expect("push");
    // The node reports rows in a heartbeat; a checkpoint holds them.
    wait_status(
        coordinator.address(),
        SETTLE_DEADLINE,
        "rows reported",
        |s| s.tables.iter().any(|t| t.rows == 3),
    )
    .await
    .expect("rows");
    let made = cli(coordinator.address(), &["checkpoint", "create"]);
    assert!(made.status.success(), "{made:?}");
    shard.kill();
    let data = root.path().join("shard");
    std::fs::remove_dir_all(&data).expect("wipe the data dir");

    let log = root.path().join("refused.log");
    let mut refused = ShardProcess::launch(coordinator.address(), &data, &node, Some(&log))
        .expect("start on an empty data dir");
    let status = wait_exit(|| refused.0.exit_status(), "the refused shard server").await;
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success(), "it served: {stderr}");
    assert!(
        stderr.contains("node n1")
            && stderr.contains("shards [0, 1]")
            && stderr.contains("--accept-data-loss"),
        "{stderr}"
    );

    let mut accepted = node.to_vec();
    accepted.push("--accept-data-loss");
    let mut shard = ShardProcess::start(coordinator.address(), &data, &accepted)
        .expect("start accepting the loss");
    back_at(coordinator.address(), shard.address()).await;
    assert!(shard.0.exit_status().is_none(), "it serves");
    let client = Client::connect(coordinator.address())
        .await
        .expect("client");
    assert_eq!(
        client.pull("e", &[1]).await.expect("pull"),
        vec![0.0],
        "fresh rows, as accepted"
    );
}
