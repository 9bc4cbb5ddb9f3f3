//! Incremental checkpoints through a real dev server: a base, then deltas of the rows
//! changed since; kill -9 and restart restores the chain exactly, optimizer state included.

use std::path::Path;

use strata_tests::{table_spec, DevServer};

const DIM: usize = 16;
const ROWS: u64 = 20_000;

/// The node checkpoints on disk, oldest first: (kind, bytes of their data files).
fn node_checkpoints(data_dir: &Path) -> Vec<(String, u64)> {
    let mut dirs: Vec<_> = std::fs::read_dir(data_dir.join("checkpoints"))
        .expect("checkpoints dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("MANIFEST.json").is_file())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|dir| {
            let text = std::fs::read_to_string(dir.join("MANIFEST.json")).expect("manifest");
            let json: serde_json::Value = serde_json::from_str(&text).expect("manifest JSON");
            let kind = json["manifest"]["kind"]
                .as_str()
                .unwrap_or("base")
                .to_owned();
            let bytes = std::fs::read_dir(dir)
                .expect("checkpoint dir")
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
                .map(|e| e.metadata().expect("meta").len())
                .sum();
            (kind, bytes)
        })
        .collect()
}

fn grads(n: usize, salt: f32) -> Vec<f32> {
    (0..n * DIM)
        .map(|i| ((i % 97) as f32 - 48.0) / 100.0 + salt)
        .collect()
}

#[tokio::test]
async fn deltas_of_one_percent_are_small_and_restore_exactly_after_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let twin_dir = tempfile::tempdir().expect("twin");
    let mut server = DevServer::start(dir.path(), &["--keep-checkpoints", "10"]).expect("start");
    let twin = DevServer::start(twin_dir.path(), &[]).expect("twin");
    let (client, tc) = (
        server.client().await.expect("client"),
        twin.client().await.expect("twin client"),
    );
    let spec = table_spec("e", DIM as u32, "adagrad", 0.1);
    client.create_table(spec.clone()).await.expect("create");
    tc.create_table(spec).await.expect("create twin");
    let all: Vec<u64> = (0..ROWS).map(|i| i * 7_919).collect();
    for ids in all.chunks(5_000) {
        let g = grads(ids.len(), 0.0);
        client.push("e", ids, &g).await.expect("push");
        tc.push("e", ids, &g).await.expect("push twin");
    }
    let base = client.checkpoint().await.expect("base checkpoint");
    assert_eq!(base.state, "ok");
    // Three rounds: 1% of the rows change, then a checkpoint (a delta).
    for round in 0..3u64 {
        let ids: Vec<u64> = all
            .iter()
            .copied()
            .skip(round as usize * 37)
            .step_by(100)
            .collect();
        let g = grads(ids.len(), round as f32 * 0.1);
        client.push("e", &ids, &g).await.expect("push");
        tc.push("e", &ids, &g).await.expect("push twin");
        let info = client.checkpoint().await.expect("delta checkpoint");
        assert_eq!(info.state, "ok");
        assert_eq!(info.rows, ROWS, "a delta reports the rows it restores");
    }
    let before = client.pull("e", &all).await.expect("pull");
    server.kill();

    let on_disk = node_checkpoints(dir.path());
    let kinds: Vec<&str> = on_disk.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["base", "delta", "delta", "delta"], "{on_disk:?}");
    let base_bytes = on_disk[0].1;
    for (_, bytes) in &on_disk[1..] {
        assert!(
            *bytes * 5 < base_bytes,
            "a delta of 1% of the rows: {bytes} bytes, base {base_bytes} bytes"
        );
    }
    eprintln!("node checkpoints on disk (kind, data bytes): {on_disk:?}");

    let server = DevServer::start(dir.path(), &[]).expect("restart");
    let client = server.client().await.expect("client again");
    assert_eq!(client.pull("e", &all).await.expect("pull"), before);
    // Optimizer state came back too: one more push gives what it gives on the twin.
    let g = grads(all.len(), 0.3);
    client
        .push("e", &all, &g)
        .await
        .expect("push after restart");
    tc.push("e", &all, &g).await.expect("push twin");
    assert_eq!(
        client.pull("e", &all).await.expect("pull"),
        tc.pull("e", &all).await.expect("pull twin")
    );
    // The chain continues after the restart: the next checkpoint is a delta again.
    client.checkpoint().await.expect("checkpoint after restart");
    let kinds: Vec<String> = node_checkpoints(dir.path())
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds.last().map(String::as_str), Some("delta"), "{kinds:?}");
}
