//! Traffic accounting end to end: trainers declare where they run, shard servers count
//! their bytes per table, shard and location, and `strata status --traffic --json` shows
//! them under those locations.

use std::time::{Duration, Instant};

use strata_client::{Client, ClientOptions};
use strata_tests::cluster::Cluster;
use strata_tests::{cli, last_json, table_spec};

/// Longest wait for the rates to show.
const DEADLINE: Duration = Duration::from_secs(60);

/// Sum of `field` over the traffic rows of `location`.
fn total(traffic: &serde_json::Value, location: &str, field: &str) -> f64 {
    traffic["traffic"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["location"] == location)
                .map(|r| r[field].as_f64().unwrap_or(0.0))
                .sum()
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn status_shows_each_trainers_bytes_under_its_location() {
    let root = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start_with(
        root.path(),
        2,
        &["--shards", "4"],
        &["--traffic-window", "30s"],
    )
    .await
    .expect("cluster");
    let address = cluster.coordinator.address().to_string();
    let labelled = |labels: &str| {
        let address = address.clone();
        let options = ClientOptions {
            labels: Some(labels.to_string()),
            ..ClientOptions::default()
        };
        async move {
            Client::connect_with(&address, options)
                .await
                .expect("connect")
        }
    };
    let pusher = labelled("zone=z1, rack=r1").await;
    assert_eq!(pusher.location(), Some("rack=r1,zone=z1"), "keys sorted");
    let puller = labelled("rack=r2,zone=z1").await;
    pusher
        .create_table(table_spec("emb", 8, "sgd", 0.1))
        .await
        .expect("create");
    let ids: Vec<u64> = (0..2000).collect();
    let grads = vec![0.01f32; ids.len() * 8];
    let deadline = Instant::now() + DEADLINE;
    let mut seen = serde_json::Value::Null;
    // Traffic keeps flowing until the rates show both locations (bounded in rounds and time).
    for _ in 0..120 {
        pusher.push("emb", &ids, &grads).await.expect("push");
        puller.pull("emb", &ids).await.expect("pull");
        let out = cli(&address, &["status", "--traffic", "--json"]);
        assert!(out.status.success(), "{out:?}");
        seen = last_json(&out);
        if total(&seen, "rack=r1,zone=z1", "push_bytes_per_s") > 0.0
            && total(&seen, "rack=r2,zone=z1", "pull_bytes_per_s") > 0.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "no traffic shown: {seen}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        total(&seen, "rack=r1,zone=z1", "push_bytes_per_s") > 0.0,
        "{seen}"
    );
    assert_eq!(
        total(&seen, "rack=r1,zone=z1", "pull_bytes_per_s"),
        0.0,
        "{seen}"
    );
    assert!(
        total(&seen, "rack=r2,zone=z1", "pull_bytes_per_s") > 0.0,
        "{seen}"
    );
    assert_eq!(
        total(&seen, "rack=r2,zone=z1", "push_bytes_per_s"),
        0.0,
        "{seen}"
    );
    // Each row names its shard and the node that serves it; both nodes saw traffic.
    let rows = seen["traffic"].as_array().expect("rows");
    let nodes: std::collections::BTreeSet<_> = rows
        .iter()
        .map(|r| r["node"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(nodes.len(), 2, "{seen}");
    assert!(rows
        .iter()
        .all(|r| r["table"] == "emb" && r["shard"].is_u64()));
    // Node rates are real now.
    let status = last_json(&cli(&address, &["status", "--json"]));
    let pushed: f64 = status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["push_rows_per_s"].as_f64().unwrap_or(0.0))
        .sum();
    assert!(pushed > 0.0, "{status}");
    // The text form names both locations.
    let text = cli(&address, &["status", "--traffic"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("rack=r1,zone=z1") && text.contains("rack=r2,zone=z1"),
        "{text}"
    );
}
