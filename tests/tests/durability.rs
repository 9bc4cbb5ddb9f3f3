//! Checkpoints through real processes: restart restores the newest good checkpoint; a
//! corrupt checkpoint is reported, never loaded; initial rows are the same everywhere.

use strata_proto::v1 as pb;
use strata_tests::{cli, last_json, table_spec, DevServer};

fn uniform_spec(name: &str, seed: u64) -> pb::TableSpec {
    let mut spec = table_spec(name, 8, "adagrad", 0.1);
    spec.initializer = Some(pb::InitializerSpec {
        kind: "uniform".into(),
        scale: 0.5,
    });
    spec.seed = seed;
    spec
}

#[tokio::test]
async fn initial_rows_are_identical_across_restarts_and_processes() {
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let ids: Vec<u64> = (0..64).map(|i| i * 1_000_003).collect();
    let mut a = DevServer::start(a_dir.path(), &[]).expect("start a");
    let b = DevServer::start(b_dir.path(), &[]).expect("start b");
    let (ca, cb) = (a.client().await.expect("a"), b.client().await.expect("b"));
    ca.create_table(uniform_spec("e", 7))
        .await
        .expect("create a");
    cb.create_table(uniform_spec("e", 7))
        .await
        .expect("create b");
    let first = ca.pull("e", &ids).await.expect("pull a");
    assert!(first.iter().any(|&v| v != 0.0));
    assert!(first.iter().all(|v| (-0.5..0.5).contains(v)));
    assert_eq!(
        first,
        cb.pull("e", &ids).await.expect("pull b"),
        "another process"
    );

    // A restart without a checkpoint keeps the table (catalog) and re-creates equal rows.
    a.kill();
    let a = DevServer::start(a_dir.path(), &[]).expect("restart a");
    let ca = a.client().await.expect("a again");
    assert_eq!(first, ca.pull("e", &ids).await.expect("pull after restart"));

    cb.create_table(uniform_spec("other-seed", 8))
        .await
        .expect("create");
    assert_ne!(first, cb.pull("other-seed", &ids).await.expect("pull"));
}

#[tokio::test]
async fn restart_restores_the_newest_checkpoint_with_optimizer_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = DevServer::start(dir.path(), &[]).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(uniform_spec("e", 1))
        .await
        .expect("create");
    client
        .create_dense(pb::DenseSpec {
            name: "w".into(),
            shape: vec![4],
            optimizer: table_spec("x", 1, "adam", 0.1).optimizer,
            initializer: None,
            seed: 3,
        })
        .await
        .expect("dense");
    let ids: Vec<u64> = (0..500).collect();
    let grads = vec![0.25f32; ids.len() * 8];
    client.push("e", &ids, &grads).await.expect("push");
    client.push_dense("w", &[1.0; 4]).await.expect("push dense");
    let info = client.checkpoint().await.expect("checkpoint");
    assert_eq!(info.state, "ok");
    assert_eq!(info.rows, 500);
    let at_checkpoint = client.pull("e", &ids).await.expect("pull");
    let dense_at_checkpoint = client.pull_dense("w").await.expect("dense").0;

    // Updates after the checkpoint are lost on a crash (no replication yet).
    client.push("e", &ids, &grads).await.expect("push after");
    server.kill();
    let server = DevServer::start(dir.path(), &[]).expect("restart");
    let client = server.client().await.expect("client");
    assert_eq!(client.pull("e", &ids).await.expect("pull"), at_checkpoint);
    assert_eq!(
        client.pull_dense("w").await.expect("dense").0,
        dense_at_checkpoint
    );

    // Optimizer state came back too: the same push gives the same result as on a twin
    // that never restarted.
    let twin_dir = tempfile::tempdir().expect("twin");
    let twin = DevServer::start(twin_dir.path(), &[]).expect("twin");
    let tc = twin.client().await.expect("twin client");
    tc.create_table(uniform_spec("e", 1)).await.expect("create");
    tc.push("e", &ids, &grads).await.expect("push");
    tc.push("e", &ids, &grads).await.expect("push");
    client.push("e", &ids, &grads).await.expect("push");
    assert_eq!(
        client.pull("e", &ids).await.expect("a"),
        tc.pull("e", &ids).await.expect("b")
    );
}

#[tokio::test]
async fn corrupt_checkpoint_is_reported_and_the_previous_one_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = DevServer::start(dir.path(), &[]).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("e", 4, "sgd", 1.0))
        .await
        .expect("create");
    client.push("e", &[1, 2], &[1.0; 8]).await.expect("push");
    let good = client.checkpoint().await.expect("first");
    client.push("e", &[1, 2], &[1.0; 8]).await.expect("push");
    let bad = client.checkpoint().await.expect("second");
    assert_ne!(good.id, bad.id);
    server.kill();

    // Flip one byte in a data file of the node's part of the newest checkpoint (the newest
    // node checkpoint: ids sort by creation).
    let ckpt_dir = std::fs::read_dir(dir.path().join("checkpoints"))
        .expect("checkpoints dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .max()
        .expect("a node checkpoint");
    let data = std::fs::read_dir(&ckpt_dir)
        .expect("checkpoint dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "bin"))
        .expect("a data file");
    let mut bytes = std::fs::read(&data).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&data, bytes).expect("write");

    let server = DevServer::start(dir.path(), &[]).expect("restart");
    let client = server.client().await.expect("client");
    assert_eq!(
        client.pull("e", &[1, 2]).await.expect("pull"),
        vec![-1.0; 8],
        "older good checkpoint"
    );
    let out = cli(&server.address, &["checkpoint", "list", "--json"]);
    let list = last_json(&out);
    let states: Vec<String> = list["checkpoints"]
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["state"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(states[0].starts_with("corrupt"), "{states:?}");
    assert_eq!(states[1], "ok");
    let err = client.restore(&bad.id).await.expect_err("corrupt restore");
    assert_eq!(err.code(), Some(tonic::Code::DataLoss), "{err}");
    let out = cli(
        &server.address,
        &["checkpoint", "restore", &good.id, "--yes"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Flips one byte in every data file of every node checkpoint under `data_dir`.
fn corrupt_every_checkpoint(data_dir: &std::path::Path) {
    for ckpt in std::fs::read_dir(data_dir.join("checkpoints")).expect("checkpoints dir") {
        let ckpt = ckpt.expect("entry").path();
        if !ckpt.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&ckpt).expect("checkpoint dir") {
            let file = file.expect("entry").path();
            if file.extension().is_some_and(|e| e == "bin") {
                let mut bytes = std::fs::read(&file).expect("read");
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xFF;
                std::fs::write(&file, bytes).expect("write");
            }
        }
    }
}

#[tokio::test]
async fn a_data_dir_whose_checkpoints_all_fail_is_not_silently_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = DevServer::start(dir.path(), &["--keep-checkpoints", "2"]).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("e", 4, "sgd", 1.0))
        .await
        .expect("create");
    client.push("e", &[1, 2], &[1.0; 8]).await.expect("push");
    client.checkpoint().await.expect("first");
    client.push("e", &[1, 2], &[1.0; 8]).await.expect("push");
    client.checkpoint().await.expect("second");
    server.kill();
    corrupt_every_checkpoint(dir.path());

    // Refused: the error names the checkpoints and the way out; the process ends.
    let mut child = std::process::Command::new(strata_tests::binary("strata-server"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a dev server over corrupt checkpoints must not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(!status.success());
    assert!(
        stderr.contains("fails verification")
            && stderr.contains("ckpt-")
            && stderr.contains("--accept-data-loss"),
        "{stderr}"
    );

    // Accepted on request: empty tables; the corrupt checkpoints survive retention.
    let server = DevServer::start(
        dir.path(),
        &["--keep-checkpoints", "2", "--accept-data-loss"],
    )
    .expect("start with --accept-data-loss");
    let client = server.client().await.expect("client");
    assert_eq!(client.pull("e", &[1, 2]).await.expect("pull"), vec![0.0; 8]);
    let corrupt: Vec<_> = std::fs::read_dir(dir.path().join("checkpoints"))
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    for _ in 0..4 {
        client.checkpoint().await.expect("checkpoint");
    }
    for path in &corrupt {
        assert!(path.is_dir(), "{} was pruned", path.display());
    }
}
