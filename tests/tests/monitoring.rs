//! The monitoring kit in `deploy/` reads series that exist: every metric name the Grafana
//! dashboard (`deploy/grafana/strata-dashboard.json`) and the alert rules
//! (`deploy/prometheus/alerts.yml`) use is exported by a real dev server's `/metrics`, once
//! it has done what makes each family appear (a table in a GPU tier, pushes, a plan).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use strata_tests::{cli, DevServer};

/// The metric names (`strata_*`, `process_*`) a monitoring file refers to.
fn referenced_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = text[i..].starts_with("strata_") || text[i..].starts_with("process_");
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts && boundary {
            let end = text[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |n| i + n);
            names.insert(text[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

/// The sample names of a Prometheus text exposition.
fn exported_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// `GET /metrics` over plain HTTP/1.0.
fn scrape(address: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /metrics HTTP/1.0\r\nHost: {address}\r\nAccept: text/plain\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_string()
}

fn deploy_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[test]
fn every_metric_the_dashboard_and_alerts_use_is_exported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(
        dir.path(),
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--memory-budget",
            "1GiB",
            "--gpu-reference",
            "--gpu-memory-budget",
            "1MiB",
        ],
    )
    .expect("dev server");
    let addr = server.address.as_str();
    let ok = |args: &[&str]| {
        let out = cli(addr, args);
        assert!(
            out.status.success(),
            "strata {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&["table", "create", "emb", "--dim", "4", "--tier", "gpu"]);
    ok(&["pull", "--table", "emb", "--ids", "1,2,3"]);
    ok(&["push", "--table", "emb", "--ids", "1", "--grads", "1,2,3,4"]);
    // A refused request, for the error series.
    let refused = cli(addr, &["pull", "--table", "nope", "--ids", "1"]);
    assert!(!refused.status.success());
    ok(&["checkpoint", "create"]);
    ok(&["shards", "resize", "--count", "4", "--yes"]);

    let metrics = server.metrics_address.as_deref().expect("metrics address");
    let exported = exported_names(&scrape(metrics));
    let mut missing = Vec::new();
    for file in ["grafana/strata-dashboard.json", "prometheus/alerts.yml"] {
        for name in referenced_names(&deploy_file(file)) {
            if !exported.contains(&name) {
                missing.push(format!("{name} (in deploy/{file})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not exported by a dev server: {missing:#?}\nexported: {exported:#?}"
    );
}

#[test]
fn names_are_read_from_expressions() {
    let names = referenced_names(
        r#"histogram_quantile(0.99, rate(strata_rpc_duration_seconds_bucket{rpc="Pull"}[5m])) / process_cpu_seconds_total"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "process_cpu_seconds_total",
            "strata_rpc_duration_seconds_bucket"
        ]
    );
    let exported = exported_names("# HELP x y\nstrata_a_total{k=\"v\"} 1\nstrata_b 2\n");
    assert_eq!(
        exported.into_iter().collect::<Vec<_>>(),
        ["strata_a_total", "strata_b"]
    );
}

/// The value of the sample `series` (name and labels exactly as exported) in `exposition`.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn per_table_rates_and_staleness_are_exported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        DevServer::start(dir.path(), &["--metrics-listen", "127.0.0.1:0"]).expect("dev server");
    let addr = server.address.as_str();
    let ok = |args: &[&str]| {
        let out = cli(addr, args);
        assert!(
            out.status.success(),
            "strata {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&["table", "create", "t", "--dim", "2"]);
    let ids: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    ok(&["pull", "--table", "t", "--ids", &ids.join(",")]);
    let grads = vec!["1"; 20].join(",");
    ok(&[
        "push",
        "--table",
        "t",
        "--ids",
        &ids[..10].join(","),
        "--grads",
        &grads,
    ]);

    let metrics = server.metrics_address.as_deref().expect("metrics address");
    let text = scrape(metrics);
    let value =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} not in:\n{text}"));
    assert_eq!(
        value(r#"strata_table_rows_served_total{table="t",direction="pull"}"#),
        100.0
    );
    assert_eq!(
        value(r#"strata_table_rows_served_total{table="t",direction="push"}"#),
        10.0
    );
    // 100 rows, 90 only pulled; the 10 pushed were pushed just now. The table is smaller than
    // the sample, so the estimate is exact.
    assert_eq!(value(r#"strata_table_rows_never_pushed{table="t"}"#), 90.0);
    assert_eq!(
        value(r#"strata_table_rows_idle{table="t",idle_for="1m"}"#),
        0.0
    );
    assert_eq!(
        value(r#"strata_table_rows_idle{table="t",idle_for="7d"}"#),
        0.0
    );
}
