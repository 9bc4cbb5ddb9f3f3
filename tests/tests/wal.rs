//! The write-ahead log through real processes: with `--wal`, a dev server killed with
//! SIGKILL comes back with every acknowledged change (pushes, dense pushes, a table created
//! after the last checkpoint), whatever the sync setting; a cut last record is cut off; a
//! checkpoint deletes the log it covers; a data dir with a log refuses a start without
//! `--wal`; a log whose base checkpoint is lost refuses a start unless `--accept-data-loss`
//! drops it and starts from the newest good checkpoint.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use strata_proto::v1 as pb;
use strata_tests::{binary, table_spec, DevServer};

const DIM: usize = 4;
const TRAINERS: u64 = 4;
const PUSHES: u64 = 40;

/// The ids and gradient of push `n` of trainer `t`: small integers, so sums are exact.
fn push_of(t: u64, n: u64) -> (Vec<u64>, Vec<f32>) {
    let ids: Vec<u64> = (0..8).map(|i| (t * 7 + n * 3 + i * 11) % 97).collect();
    let grads = ids
        .iter()
        .flat_map(|&id| (0..DIM).map(move |j| ((id + j as u64 + n) % 5) as f32 - 2.0))
        .collect();
    (ids, grads)
}

/// Segment files of the log in `data_dir`.
fn segments(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(data_dir.join("wal"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".log"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Starts a dev server on `data_dir` with `flags` that must refuse to start: waits (bounded)
/// for it to exit with a failure and returns its stderr.
fn refused_start(data_dir: &Path, flags: &[&str]) -> String {
    let mut child = Command::new(binary("strata-server"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(flags)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("strata-server {flags:?} still runs after 30 s; it should refuse to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read");
    assert!(!status.success(), "{stderr}");
    stderr
}

/// Pushes from `TRAINERS` concurrent tasks to `table` (a checkpoint taken by the first task
/// halfway), then returns what every row must be under SGD with lr 1 from zeros.
async fn push_all(server: &DevServer, table: &str) -> BTreeMap<u64, Vec<f32>> {
    let mut tasks = Vec::new();
    for t in 0..TRAINERS {
        let client = server.client().await.expect("client");
        let table = table.to_string();
        tasks.push(tokio::spawn(async move {
            for n in 0..PUSHES {
                let (ids, grads) = push_of(t, n);
                client.push(&table, &ids, &grads).await.expect("push");
                if t == 0 && n == PUSHES / 2 {
                    client.checkpoint().await.expect("checkpoint");
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("trainer");
    }
    let mut expected: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
    for t in 0..TRAINERS {
        for n in 0..PUSHES {
            let (ids, grads) = push_of(t, n);
            for (k, id) in ids.iter().enumerate() {
                let row = expected.entry(*id).or_insert_with(|| vec![0.0; DIM]);
                for j in 0..DIM {
                    row[j] -= grads[k * DIM + j];
                }
            }
        }
    }
    expected
}

async fn assert_rows(server: &DevServer, table: &str, expected: &BTreeMap<u64, Vec<f32>>) {
    let client = server.client().await.expect("client");
    let ids: Vec<u64> = expected.keys().copied().collect();
    let rows = client.pull(table, &ids).await.expect("pull");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            &rows[i * DIM..(i + 1) * DIM],
            expected[id].as_slice(),
            "row {id} of {table}"
        );
    }
}

#[tokio::test]
async fn killed_server_comes_back_with_every_acknowledged_change() {
    for sync in ["always", "interval:50ms", "never"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let flags = ["--wal", "--wal-sync", sync];
        let mut server = DevServer::start(dir.path(), &flags).expect("start");
        let client = server.client().await.expect("client");
        client
            .create_table(table_spec("emb", DIM as u32, "sgd", 1.0))
            .await
            .expect("create");
        client
            .create_dense(pb::DenseSpec {
                name: "w".into(),
                shape: vec![3],
                optimizer: table_spec("x", 1, "sgd", 1.0).optimizer,
                initializer: table_spec("x", 1, "sgd", 1.0).initializer,
                seed: 1,
            })
            .await
            .expect("dense");
        let expected = push_all(&server, "emb").await;
        // Changes after the last checkpoint: a new table and dense pushes.
        client
            .create_table(table_spec("late", DIM as u32, "sgd", 1.0))
            .await
            .expect("create late");
        client
            .push("late", &[5], &[1.0, 2.0, 3.0, 4.0])
            .await
            .expect("push late");
        client
            .push_dense("w", &[1.0, -2.0, 3.0])
            .await
            .expect("dense");
        client
            .push_dense("w", &[1.0, 1.0, 1.0])
            .await
            .expect("dense");
        server.kill();

        let server = DevServer::start(dir.path(), &flags).expect("restart");
        assert_rows(&server, "emb", &expected).await;
        let client = server.client().await.expect("client");
        assert_eq!(
            client.pull("late", &[5]).await.expect("pull late"),
            vec![-1.0, -2.0, -3.0, -4.0],
            "{sync}: table created after the checkpoint"
        );
        let (w, _) = client.pull_dense("w").await.expect("pull dense");
        assert_eq!(w, vec![-2.0, 1.0, -4.0], "{sync}: dense pushes");
    }
}

#[tokio::test]
async fn a_cut_last_record_is_dropped_and_the_rest_replayed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = ["--wal", "--wal-sync", "never"];
    let mut server = DevServer::start(dir.path(), &flags).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("emb", DIM as u32, "sgd", 1.0))
        .await
        .expect("create");
    client
        .push("emb", &[1, 2], &[1.0; 2 * DIM])
        .await
        .expect("push");
    server.kill();
    // A record cut short by the crash: a frame header that promises more than follows.
    let last = segments(dir.path()).pop().expect("a segment");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("wal").join(&last))
        .expect("open segment");
    f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9])
        .expect("write");
    drop(f);

    let server = DevServer::start(dir.path(), &flags).expect("restart");
    let client = server.client().await.expect("client");
    assert_eq!(
        client.pull("emb", &[1, 2]).await.expect("pull"),
        vec![-1.0; 2 * DIM]
    );
}

#[tokio::test]
async fn a_checkpoint_deletes_the_log_it_covers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = ["--wal", "--wal-sync", "always"];
    let server = DevServer::start(dir.path(), &flags).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("emb", DIM as u32, "sgd", 1.0))
        .await
        .expect("create");
    for n in 0..20u64 {
        client.push("emb", &[n], &[1.0; DIM]).await.expect("push");
    }
    let before = segments(dir.path());
    client.checkpoint().await.expect("checkpoint");
    let after = segments(dir.path());
    assert_eq!(after.len(), 1, "one open segment is left: {after:?}");
    assert!(!before.contains(&after[0]), "{before:?} → {after:?}");
    let base = fs::read_to_string(dir.path().join("wal").join("BASE")).expect("BASE");
    assert!(base.contains("ckpt-"), "{base}");
}

#[tokio::test]
async fn a_data_dir_with_a_log_is_refused_without_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = DevServer::start(dir.path(), &["--wal"]).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("emb", DIM as u32, "sgd", 1.0))
        .await
        .expect("create");
    client.push("emb", &[1], &[1.0; DIM]).await.expect("push");
    server.kill();

    let stderr = refused_start(dir.path(), &[]);
    assert!(stderr.contains("start with --wal"), "{stderr}");

    // With --wal it comes back with the push.
    let server = DevServer::start(dir.path(), &["--wal"]).expect("restart");
    let client = server.client().await.expect("client");
    assert_eq!(
        client.pull("emb", &[1]).await.expect("pull"),
        vec![-1.0; DIM]
    );
}

#[tokio::test]
async fn a_lost_base_checkpoint_is_refused_unless_data_loss_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = ["--wal", "--wal-sync", "always"];
    let mut server = DevServer::start(dir.path(), &flags).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("emb", DIM as u32, "sgd", 1.0))
        .await
        .expect("create");
    client.push("emb", &[1], &[1.0; DIM]).await.expect("push");
    let first = client.checkpoint().await.expect("first checkpoint");
    let as_of_first = client.pull("emb", &[1]).await.expect("pull");
    client.push("emb", &[1], &[1.0; DIM]).await.expect("push");
    client.checkpoint().await.expect("second checkpoint");
    client
        .push("emb", &[1], &[1.0; DIM])
        .await
        .expect("push after");
    server.kill();

    // The log's base is the node's newest checkpoint: remove it.
    let base = fs::read_to_string(dir.path().join("wal").join("BASE")).expect("BASE");
    let checkpoints = dir.path().join("checkpoints");
    let mut parts: Vec<String> = fs::read_dir(&checkpoints)
        .expect("checkpoints")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("ckpt-"))
        .collect();
    parts.sort();
    let newest = parts.last().expect("a checkpoint").clone();
    assert!(base.contains(&newest), "BASE {base:?} names {newest}");
    fs::remove_dir_all(checkpoints.join(&newest)).expect("remove the base");

    let stderr = refused_start(dir.path(), &flags);
    assert!(
        stderr.contains(&format!("applies on checkpoint {newest}"))
            && stderr.contains("--accept-data-loss"),
        "{stderr}"
    );

    // Accepting the loss: the node starts from the older checkpoint, the log dropped.
    let mut accepting = flags.to_vec();
    accepting.push("--accept-data-loss");
    let server = DevServer::start(dir.path(), &accepting).expect("start accepting loss");
    let client = server.client().await.expect("client");
    assert_eq!(
        client.pull("emb", &[1]).await.expect("pull"),
        as_of_first,
        "rows as of {}",
        first.id
    );
    drop(server);
    // The next start needs no flag: the dropped log's base is not looked for again.
    let server = DevServer::start(dir.path(), &flags).expect("start again");
    let client = server.client().await.expect("client");
    assert_eq!(client.pull("emb", &[1]).await.expect("pull"), as_of_first);
}
