//! `/metrics` of real processes: a dev server, and a coordinator with three shard servers.
//! Each answers Prometheus text 0.0.4 that `promtool check metrics` accepts, and OpenMetrics
//! when asked for it; the coordinator counts its nodes up and down.
//!
//! promtool comes with Debian's `prometheus` package (scripts/install-deps.sh installs it).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_tests::cluster::Cluster;
use strata_tests::{table_spec, DevServer};

/// How long a metric may take to read what the test waits for.
const METRIC_DEADLINE: Duration = Duration::from_secs(20);
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics` with `accept` (none: no header); returns the Content-Type and the body.
async fn scrape(addr: &str, accept: Option<&str>) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to /metrics at {addr}: {e}"));
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {answer}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (content_type, body.to_string())
}

/// Runs `promtool check metrics` on `body`; fails with its findings.
fn promtool_check(what: &str, body: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool cannot be run ({e}): install Debian's prometheus package \
             (bash scripts/install-deps.sh)"
        ),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics refused the /metrics text of {what}:\n{}{}\n--- text ---\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Scrapes `addr` in both formats: checks the Prometheus text with promtool and the shape of
/// the OpenMetrics text; returns the Prometheus text.
async fn check_both_formats(what: &str, addr: &str) -> String {
    for accept in [None, Some("text/plain"), Some("*/*")] {
        let (content_type, _) = scrape(addr, accept).await;
        assert_eq!(content_type, PROMETHEUS_TEXT, "{what}, Accept {accept:?}");
    }
    let (content_type, text) = scrape(addr, None).await;
    assert_eq!(content_type, PROMETHEUS_TEXT, "{what}");
    assert!(!text.contains("# EOF"), "{what}: {text}");
    promtool_check(what, &text);

    let (content_type, om) = scrape(addr, Some("application/openmetrics-text")).await;
    assert_eq!(content_type, OPENMETRICS, "{what}");
    assert!(om.ends_with("# EOF\n"), "{what}: {om}");
    assert!(
        om.contains("# UNIT strata_rpc_duration_seconds seconds"),
        "{what}: {om}"
    );
    assert!(
        om.contains("# TYPE process_cpu_seconds counter"),
        "{what}: {om}"
    );
    text
}

/// The value of `series` (name with labels, as written) in a Prometheus text.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Scrapes `addr` until `series` reads `want` (bounded by [`METRIC_DEADLINE`]).
async fn wait_value(addr: &str, series: &str, want: f64) -> String {
    let end = Instant::now() + METRIC_DEADLINE;
    loop {
        let (_, text) = scrape(addr, None).await;
        if value(&text, series) == Some(want) {
            return text;
        }
        if Instant::now() > end {
            panic!("{series} did not read {want} within {METRIC_DEADLINE:?}:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_dev_server_answers_both_formats_and_passes_promtool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &["--metrics-listen", "127.0.0.1:0"]).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("emb", 4, "sgd", 1.0))
        .await
        .expect("create");
    client.pull("emb", &[1, 2, 3]).await.expect("pull");
    let _ = client.pull("missing", &[1]).await;
    let metrics = server.metrics_address.clone().expect("metrics address");

    let text = check_both_formats("strata-server dev", &metrics).await;
    for series in [
        "strata_rows_pulled_total",
        "strata_cluster_nodes{state=\"up\"}",
        "strata_coordinator_leader",
        "strata_cluster_table_rows{table=\"emb\",tier=\"host\"}",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "process_threads",
    ] {
        assert!(value(&text, series).is_some(), "{series} missing:\n{text}");
    }
    assert_eq!(
        value(&text, "strata_rows_pulled_total"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "strata_coordinator_leader"),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("strata_rpc_errors_total{rpc=\"Pull\",code=\"NotFound\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("strata_rpc_duration_seconds_count{rpc=\"CreateTable\"} 1"),
        "the Coordinator service's rpcs are timed:\n{text}"
    );
    // The node reports its rows in its next heartbeat (every second).
    wait_value(
        &metrics,
        "strata_cluster_table_rows{table=\"emb\",tier=\"host\"}",
        3.0,
    )
    .await;
}

#[tokio::test]
async fn a_cluster_counts_its_nodes_up_and_down_and_every_process_passes_promtool() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::start_with(
        root.path(),
        3,
        &[
            "--heartbeat-timeout",
            "2s",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &[
            "--heartbeat-interval",
            "200ms",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    )
    .await
    .expect("cluster");
    let client = cluster.client().await.expect("client");
    client
        .create_table(table_spec("emb", 4, "sgd", 1.0))
        .await
        .expect("create");
    client
        .pull("emb", &(0..64).collect::<Vec<_>>())
        .await
        .expect("pull");
    let coordinator = cluster
        .coordinator
        .0
        .metrics_address
        .clone()
        .expect("coordinator metrics address");

    let text = wait_value(&coordinator, "strata_cluster_nodes{state=\"up\"}", 3.0).await;
    assert_eq!(
        value(&text, "strata_cluster_nodes{state=\"down\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "strata_coordinator_leader"),
        Some(1.0),
        "{text}"
    );
    assert!(
        value(&text, "strata_cluster_map_epoch").is_some_and(|e| e >= 1.0),
        "{text}"
    );
    let shards: f64 = text
        .lines()
        .filter(|l| l.starts_with("strata_cluster_node_shards{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(shards, 8.0, "every shard has a primary:\n{text}");
    // The first heartbeat may come after the registrations that made the nodes up.
    let end = Instant::now() + METRIC_DEADLINE;
    let mut text = text;
    while !text.contains("strata_rpc_duration_seconds_count{rpc=\"Heartbeat\"}") {
        assert!(
            Instant::now() < end,
            "the coordinator times heartbeats:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = scrape(&coordinator, None).await.1;
    }
    wait_value(
        &coordinator,
        "strata_cluster_table_rows{table=\"emb\",tier=\"host\"}",
        64.0,
    )
    .await;
    check_both_formats("strata-server coordinator", &coordinator).await;
    for (i, shard) in cluster.shards.iter().enumerate() {
        let addr = shard
            .0
            .metrics_address
            .clone()
            .expect("shard metrics address");
        let text = check_both_formats(&format!("strata-server shard {i}"), &addr).await;
        assert!(
            text.contains("strata_rpc_duration_seconds_count{rpc=\"ApplyCatalog\"}"),
            "shard {i} times the ShardControl rpcs:\n{text}"
        );
        assert!(
            value(&text, "process_cpu_seconds_total").is_some(),
            "{text}"
        );
    }

    cluster.shards[2].kill();
    let text = wait_value(&coordinator, "strata_cluster_nodes{state=\"down\"}", 1.0).await;
    assert_eq!(
        value(&text, "strata_cluster_nodes{state=\"up\"}"),
        Some(2.0),
        "{text}"
    );
    promtool_check("strata-server coordinator with a node down", &text);
}
