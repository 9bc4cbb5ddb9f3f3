//! What runs, seen from outside: each node's version, commit and configuration hash in
//! `strata status -o json` match the binary's `--version`, for a dev server and for a
//! cluster of processes; two shard servers that differ only in per-instance flags show one
//! hash and a third with another `--memory-budget` shows another; `strata version` prints
//! the CLI's and the cluster's, and the CLI's alone when no coordinator answers.

use std::net::TcpListener;
use std::process::{Command, Output};

use strata_tests::cluster::{
    settled, wait_status, CoordinatorProcess, ShardProcess, SETTLE_DEADLINE,
};
use strata_tests::{binary, cli, last_json, DevServer};

/// Exit status of `strata` when no coordinator answers (README: Exit status).
const UNAVAILABLE: i32 = 4;

/// A binary's build as its `--version` prints it: `NAME VERSION (commit HEX[+dirty], PROFILE)`.
#[derive(Debug, PartialEq)]
struct Build {
    version: String,
    commit: String,
    dirty: bool,
    profile: String,
}

fn version_of(name: &str) -> Build {
    let out = Command::new(binary(name))
        .arg("--version")
        .output()
        .expect("--version");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let parse = || -> Option<Build> {
        let rest = text.strip_prefix(&format!("{name} "))?;
        let (version, rest) = rest.split_once(" (commit ")?;
        let (commit, rest) = rest.split_once(", ")?;
        let profile = rest.strip_suffix(')')?;
        let (commit, dirty) = match commit.strip_suffix("+dirty") {
            Some(c) => (c, true),
            None => (commit, false),
        };
        Some(Build {
            version: version.into(),
            commit: commit.into(),
            dirty,
            profile: profile.into(),
        })
    };
    parse().unwrap_or_else(|| panic!("unexpected --version line: {text:?}"))
}

/// Asserts that a process's JSON identity is `build`'s, with a hash and a start time.
#[track_caller]
fn assert_runs(process: &serde_json::Value, build: &Build) {
    assert_eq!(process["version"], build.version.as_str(), "{process}");
    assert_eq!(process["commit"], build.commit.as_str(), "{process}");
    assert_eq!(process["dirty"], build.dirty, "{process}");
    assert_eq!(process["profile"], build.profile.as_str(), "{process}");
    let hash = process["config_hash"].as_str().unwrap_or_default();
    assert!(
        hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{process}"
    );
    let started = process["started_at"].as_str().unwrap_or_default();
    assert!(
        started.len() == 20 && started.starts_with("20") && started.ends_with('Z'),
        "{process}"
    );
    assert!(process["gpu"].is_null(), "no GPU tier here: {process}");
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{out:?}");
    last_json(out)
}

#[test]
fn a_dev_server_reports_the_build_its_binary_prints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &["--memory-reserve", "0"]).expect("dev");
    let build = version_of("strata-server");
    assert!(!build.commit.is_empty() && !build.version.is_empty());
    let status = json_of(&cli(&server.address, &["status", "-o", "json"]));
    let node = &status["nodes"][0];
    assert_eq!(node["id"], "node-1", "{status}");
    assert_runs(node, &build);
    assert_runs(&status["coordinator"], &build);
    assert_eq!(node["config_hash"], status["coordinator"]["config_hash"]);
    assert_eq!(node["role"], "dev");
    assert_eq!(node["config"]["memory-reserve"], "0", "{node}");
    assert_eq!(
        node["data_dir"],
        dir.path().display().to_string().as_str(),
        "{node}"
    );
    assert_eq!(status["mixed_versions"], false);

    let text = cli(&server.address, &["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    let short = &build.commit[..build.commit.len().min(12)];
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("node-1 ") && l.contains(short))
        .unwrap_or_else(|| panic!("no version line for node-1:\n{text}"));
    assert!(line.contains(&build.version), "{line}");
    assert!(!text.contains("mixed versions"), "{text}");
}

#[tokio::test]
async fn shard_servers_with_the_same_flags_show_one_config_hash_and_another_budget_another() {
    let root = tempfile::tempdir().expect("tempdir");
    let coordinator =
        CoordinatorProcess::start("127.0.0.1:0", &root.path().join("c"), &[]).expect("coordinator");
    let address = coordinator.address().to_string();
    let start = |i: usize, extra: &[&str]| {
        let id = format!("n{i}");
        let host = format!("host=h{i}");
        let mut args = vec!["--node-id", &id, "--labels", &host, "--memory-reserve", "0"];
        args.extend_from_slice(extra);
        ShardProcess::start(&address, &root.path().join(&id), &args).expect("shard")
    };
    let _shards = [
        start(1, &[]),
        start(2, &[]),
        start(3, &["--memory-budget", "1GiB"]),
    ];
    wait_status(&address, SETTLE_DEADLINE, "settled with identities", |s| {
        settled(s, 3) && s.nodes.iter().all(|n| n.identity.is_some())
    })
    .await
    .expect("settled");

    let build = version_of("strata-server");
    let status = json_of(&cli(&address, &["status", "-o", "json"]));
    let nodes = status["nodes"].as_array().expect("nodes");
    let hash_of = |id: &str| {
        let node = nodes
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("no node {id}: {status}"));
        assert_runs(node, &build);
        assert_eq!(node["role"], "shard", "{node}");
        node["config_hash"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(hash_of("n1"), hash_of("n2"), "{status}");
    assert_ne!(hash_of("n1"), hash_of("n3"), "{status}");
    assert_runs(&status["coordinator"], &build);
    assert_eq!(status["coordinator"]["role"], "coordinator");
    assert_eq!(status["mixed_versions"], false);
    let n3 = nodes.iter().find(|n| n["id"] == "n3").expect("n3");
    assert_eq!(n3["config"]["memory-budget"], "1GiB", "{n3}");

    // strata version: the CLI's line first, then the coordinator and every node.
    let cli_build = version_of("strata");
    let out = cli(&address, &["version"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("strata ") && lines[0].contains(&cli_build.commit),
        "{text}"
    );
    assert!(
        lines[1].starts_with("coordinator ") && lines[1].contains(&address),
        "{text}"
    );
    for id in ["n1", "n2", "n3"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{id} ")) && l.contains(&build.version)),
            "{id} missing:\n{text}"
        );
    }
    let json = json_of(&cli(&address, &["version", "-o", "json"]));
    assert_eq!(json["cli"]["commit"], cli_build.commit.as_str(), "{json}");
    assert_eq!(json["cli"]["version"], cli_build.version.as_str(), "{json}");
    assert_runs(&json["coordinator"], &build);
    assert_eq!(json["coordinator"]["address"], address.as_str());
    assert_eq!(json["nodes"].as_array().map(Vec::len), Some(3), "{json}");
    assert_eq!(json["mixed_versions"], false);
}

#[test]
fn strata_version_without_a_coordinator_prints_the_cli_and_fails_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = listener.local_addr().expect("address").to_string();
    drop(listener);
    let cli_build = version_of("strata");
    let args = ["--connect-timeout", "500ms", "version"];
    let out = cli(&closed, &args);
    assert_eq!(out.status.code(), Some(UNAVAILABLE), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("strata ") && text.contains(&cli_build.commit),
        "{text}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("connection refused"),
        "{out:?}"
    );
    let out = cli(
        &closed,
        &["--connect-timeout", "500ms", "version", "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(UNAVAILABLE), "{out:?}");
    let json = last_json(&out);
    assert_eq!(json["cli"]["commit"], cli_build.commit.as_str(), "{json}");
    assert!(json["coordinator"].is_null(), "{json}");
    assert!(
        json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("connection refused"),
        "{json}"
    );
}
