//! Per-tier rows and bytes and the GPU tier's counters in `strata status`, from a dev server
//! and summed over a cluster's shard servers. GPU tables are served from the CPU reference
//! of the device table (`--gpu-reference`), so this runs without a device.

use std::time::Duration;

use strata_proto::v1 as pb;
use strata_tests::cluster::{wait_status, Cluster};
use strata_tests::{cli, last_json, table_spec, DevServer};

/// Device memory for about a thousand dim-4 rows: 2,000 ids do not all fit.
const GPU_FLAGS: [&str; 3] = ["--gpu-reference", "--gpu-memory-budget", "64KiB"];

fn gpu_spec(name: &str) -> pb::TableSpec {
    pb::TableSpec {
        tier: "gpu".into(),
        ..table_spec(name, 4, "sgd", 1.0)
    }
}

/// Pulls 2,000 ids, pulls the last 100 again (resident by then), pushes every id.
async fn exercise(client: &strata_client::Client, table: &str) {
    let ids: Vec<u64> = (0..2000).collect();
    client.pull(table, &ids).await.expect("pull");
    client.pull(table, &ids[1900..]).await.expect("pull again");
    client
        .push(table, &ids, &vec![1.0; ids.len() * 4])
        .await
        .expect("push");
}

fn table_json<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no table {name} in {status}"))
}

fn tier_rows(table: &serde_json::Value, tier: &str) -> u64 {
    table["tiers"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["tier"] == tier))
        .and_then(|t| t["rows"].as_u64())
        .unwrap_or_else(|| panic!("no {tier} tier in {table}"))
}

#[tokio::test]
async fn dev_status_shows_rows_per_tier_hit_rate_and_device_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &GPU_FLAGS).expect("start");
    let client = server.client().await.expect("client");
    client.create_table(gpu_spec("g")).await.expect("create g");
    client
        .create_table(table_spec("h", 4, "sgd", 1.0))
        .await
        .expect("create h");
    exercise(&client, "g").await;
    exercise(&client, "h").await;

    let status = last_json(&cli(&server.address, &["status", "--json"]));
    let g = table_json(&status, "g");
    assert_eq!(tier_rows(g, "host"), 2000, "every row is in the host tier");
    let resident = tier_rows(g, "gpu");
    assert!(resident > 0 && resident < 2000, "hot rows only: {g}");
    let cache = &g["cache"];
    let (hits, misses) = (cache["hits"].as_u64(), cache["misses"].as_u64());
    assert!(
        hits.is_some_and(|h| h >= 100),
        "the repeated ids hit: {cache}"
    );
    assert_eq!(
        hits.unwrap_or(0) + misses.unwrap_or(0),
        2000 + 100 + 2000,
        "one lookup per distinct id of each request: {cache}"
    );
    assert!(cache["admissions"].as_u64().is_some_and(|a| a >= resident));
    assert!(
        cache["evictions"].as_u64().is_some_and(|e| e > 0),
        "{cache}"
    );
    assert!(
        cache["device_ms"].as_f64().is_some_and(|t| t > 0.0),
        "{cache}"
    );
    let rate = cache["hit_rate"].as_f64().unwrap_or(-1.0);
    assert!((0.0..=1.0).contains(&rate), "{cache}");

    let h = table_json(&status, "h");
    assert_eq!(tier_rows(h, "host"), 2000);
    assert!(h["cache"].is_null(), "a host table has no cache: {h}");

    let text = String::from_utf8_lossy(&cli(&server.address, &["status"]).stdout).to_string();
    assert!(text.contains("cache: hit rate"), "{text}");
    assert!(text.contains("device time"), "{text}");
}

#[tokio::test]
async fn cluster_status_sums_tiers_and_counters_over_shard_servers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start_with(dir.path(), 2, &[], &GPU_FLAGS)
        .await
        .expect("cluster");
    let client = cluster.client().await.expect("client");
    client.create_table(gpu_spec("g")).await.expect("create");
    exercise(&client, "g").await;

    // Nodes report in heartbeats (1 s); wait until both reports carry every row.
    let status = wait_status(
        cluster.coordinator.address(),
        Duration::from_secs(20),
        "reporting every row",
        |s| {
            s.tables.iter().any(|t| {
                t.tiers.iter().any(|u| u.tier == "host" && u.rows == 2000)
                    && t.cache.as_ref().is_some_and(|c| c.hits + c.misses == 4100)
            })
        },
    )
    .await
    .expect("status");
    let g = &status.tables[0];
    let gpu = g.tiers.iter().find(|u| u.tier == "gpu").expect("gpu tier");
    assert!(gpu.rows > 0 && gpu.bytes > 0, "{g:?}");
    let cache = g.cache.as_ref().expect("cache counters");
    assert!(
        cache.hits >= 100 && cache.admissions > 0 && cache.device_ns > 0,
        "{cache:?}"
    );
    assert_eq!(g.rows, 2000, "rows count each id once (host tier): {g:?}");
}
