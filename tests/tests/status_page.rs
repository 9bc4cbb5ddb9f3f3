//! The status page (`--http-listen`) of real processes: in headless Chromium a coordinator's
//! page shows every node, every table and a killed node marked down (a screenshot is kept
//! under the target dir), `/api/status` is `strata status -o json`, a dev server serves the
//! same page, and bad `--http-listen` values are refused with a clear error.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_proto::v1 as pb;
use strata_tests::browser::{artifacts_dir, chromium, dump_dom, http_get, screenshot};
use strata_tests::cluster::{
    settled, wait_status, CoordinatorProcess, ShardProcess, SETTLE_DEADLINE,
};
use strata_tests::{binary, cli, last_json, table_spec, DevServer};

/// A table name with markup in it: the page must show it as text.
const MARKUP_TABLE: &str = "ads<b>&\"x\"";

/// Fields of `status -o json` that change between two calls to an idle cluster: ages and
/// rates measured at the moment of each call.
const MOMENTARY: [&str; 6] = [
    "last_heartbeat_ms_ago",
    "checkpoint_age_ms",
    "pull_rows_per_s",
    "push_rows_per_s",
    "bytes_per_s",
    "eta_s",
];

/// `value` without the [`MOMENTARY`] fields, at any depth.
fn without_momentary(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(k, _)| !MOMENTARY.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), without_momentary(v)))
            .collect(),
        serde_json::Value::Array(items) => items.iter().map(without_momentary).collect(),
        other => other.clone(),
    }
}

/// The opening tag of the element with `attr="value"` in `dom`.
fn tag_with<'a>(dom: &'a str, attr: &str, value: &str) -> Option<&'a str> {
    let at = dom.find(&format!("{attr}=\"{value}\""))?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    Some(&dom[start..=end])
}

fn node_id_at(s: &pb::StatusResponse, address: &str) -> String {
    s.nodes
        .iter()
        .filter_map(|n| n.node.as_ref())
        .find(|n| n.address == address)
        .map(|n| n.id.clone())
        .unwrap_or_else(|| panic!("no node at {address}: {s:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_nodes_tables_and_a_killed_node_down_and_serves_status_json() {
    let browser = chromium().unwrap_or_else(|e| panic!("{e:#}"));
    let root = tempfile::tempdir().expect("tempdir");
    let coordinator = CoordinatorProcess::start(
        "127.0.0.1:0",
        &root.path().join("coordinator"),
        &["--heartbeat-timeout", "3s", "--http-listen", "127.0.0.1:0"],
    )
    .expect("coordinator");
    let page = coordinator.0.http_address.clone().expect("page address");
    let mut shards = Vec::new();
    for (i, rack) in ["r1", "r2"].iter().enumerate() {
        let labels = format!("zone=z1,rack={rack},host=h{i}");
        shards.push(
            ShardProcess::start(
                coordinator.address(),
                &root.path().join(format!("shard-{i}")),
                &["--labels", &labels, "--memory-reserve", "0"],
            )
            .expect("shard"),
        );
    }
    let status = wait_status(coordinator.address(), SETTLE_DEADLINE, "settled", |s| {
        settled(s, 2)
    })
    .await
    .expect("settled");
    let live = node_id_at(&status, shards[0].address());
    let victim = node_id_at(&status, shards[1].address());

    let client = strata_client::Client::connect(coordinator.address())
        .await
        .expect("client");
    for name in ["clicks", MARKUP_TABLE] {
        client
            .create_table(table_spec(name, 8, "sgd", 0.1))
            .await
            .expect("create table");
    }
    let ids: Vec<u64> = (0..100).collect();
    client
        .push("clicks", &ids, &vec![0.5; ids.len() * 8])
        .await
        .expect("push");

    shards[1].kill();
    wait_status(
        coordinator.address(),
        Duration::from_secs(30),
        "showing the killed node down",
        |s| {
            s.nodes
                .iter()
                .filter_map(|n| n.node.as_ref())
                .any(|n| n.id == victim && n.state == "down")
        },
    )
    .await
    .expect("killed node shown down");

    let url = format!("http://{page}/");
    let dom = dump_dom(&browser, root.path(), &url).expect("DOM of the page");
    for id in [&live, &victim] {
        assert!(
            tag_with(&dom, "data-node", id).is_some(),
            "node {id} missing from the page:\n{dom}"
        );
    }
    let down = tag_with(&dom, "data-node", &victim).unwrap_or_default();
    assert!(
        down.contains("data-state=\"down\""),
        "{victim} not marked down: {down}"
    );
    let up = tag_with(&dom, "data-node", &live).unwrap_or_default();
    assert!(
        up.contains("data-state=\"up\""),
        "{live} not marked up: {up}"
    );
    assert!(
        dom.contains("DOWN"),
        "no text marker of the down node:\n{dom}"
    );
    assert!(
        dom.contains(&format!("Node {victim} is DOWN")),
        "the health list does not name the down node:\n{dom}"
    );
    assert!(
        tag_with(&dom, "data-table", "clicks").is_some(),
        "table clicks missing:\n{dom}"
    );
    // The markup in a table name arrives as text: escaped in the serialized DOM, no <b>.
    assert!(
        dom.contains("ads&lt;b&gt;&amp;\"x\""),
        "the table name with markup is not shown as text:\n{dom}"
    );
    assert!(!dom.contains("<b>"), "a table name became markup:\n{dom}");
    assert!(
        dom.contains("zone z1") && dom.contains("rack r2"),
        "nodes not grouped:\n{dom}"
    );
    assert!(
        dom.contains("class=\"connection live\""),
        "the page did not load the status:\n{dom}"
    );

    let png = artifacts_dir().join("status-page.png");
    screenshot(&browser, root.path(), &url, &png).expect("screenshot");
    println!("status page screenshot: {}", png.display());

    let (code, body) = http_get(&page, "/api/status")
        .await
        .expect("GET /api/status");
    assert_eq!(code, 200, "{body}");
    let api: serde_json::Value = serde_json::from_str(&body).expect("api/status is JSON");
    let out = cli(coordinator.address(), &["status", "-o", "json"]);
    assert!(out.status.success(), "{out:?}");
    let printed = last_json(&out);
    assert_eq!(
        without_momentary(&api),
        without_momentary(&printed),
        "/api/status differs from `strata status -o json` beyond ages and rates"
    );
    assert_eq!(api["tables"].as_array().map(Vec::len), Some(2), "{api}");
}

#[tokio::test]
async fn a_dev_server_serves_the_page_and_its_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(
        dir.path(),
        &["--http-listen", "127.0.0.1:0", "--memory-reserve", "0"],
    )
    .expect("dev server");
    let page = server.http_address.clone().expect("page address");
    server.client().await.expect("dev server answers");
    let (code, html) = http_get(&page, "/").await.expect("GET /");
    assert_eq!(code, 200);
    assert!(html.contains("status.js"), "{html}");
    let (code, body) = http_get(&page, "/api/status")
        .await
        .expect("GET /api/status");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["nodes"][0]["state"], "up", "{v}");
    assert_eq!(v["leader"], server.address.as_str(), "{v}");
    let (code, _) = http_get(&page, "/api/nothing").await.expect("GET unknown");
    assert_eq!(code, 404);
}

/// Runs `strata-server ARGS` that must fail fast; returns its stderr.
fn failing_start(args: &[&str]) -> String {
    let mut child = Command::new(binary("strata-server"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("strata-server {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success(), "strata-server {args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_http_listen_addresses_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("d");
    let data = data.to_str().expect("utf-8 path");
    let err = failing_start(&[
        "dev",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--http-listen",
        "nowhere",
    ]);
    assert!(err.contains("--http-listen"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let err = failing_start(&[
        "coordinator",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--http-listen",
        &addr,
    ]);
    assert!(
        err.contains(&format!("binding status page {addr}")),
        "{err}"
    );
}
