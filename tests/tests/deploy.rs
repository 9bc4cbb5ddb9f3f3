//! The deployment kit as an operator meets it, with real processes: the address a dev
//! server gives out (`--advertise`; never an unspecified listen address), and
//! `deploy/local-cluster.sh` (its shard processes register under their own names, and
//! `stop N` stops the node of that name). Every wait is bounded.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use strata_tests::{binary, cli, last_json, DevServer};

/// Exit status of `strata` for an unreachable node or server (README: Exit status).
const EXIT_UNAVAILABLE: i32 = 4;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cmd` to its end with stdin closed, killing it and failing the test past `limit`.
fn run_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning");
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// `strata-server ARGS` run to its end (it is expected to exit at once).
fn server_exits(args: &[&str]) -> Output {
    run_within(
        Command::new(binary("strata-server"))
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .env("NO_COLOR", "1"),
        Duration::from_secs(20),
    )
}

/// The port of a `HOST:PORT` address.
fn port_of(address: &str) -> &str {
    address.rsplit_once(':').map(|(_, p)| p).unwrap_or_default()
}

#[test]
fn dev_advertise_is_the_address_in_the_map_and_the_one_clients_dial() {
    // Listening on every address, advertising 127.0.0.2 (loopback, reachable): status
    // shows the advertised address for the node and the coordinator, and a client that
    // was given 127.0.0.1 pulls through the map's address.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::launch(
        "0.0.0.0:0",
        &dir.path().join("data"),
        &["--advertise", "127.0.0.2", "--insecure"],
        None,
    )
    .expect("dev server");
    let port = port_of(&server.address).to_string();
    let given = format!("127.0.0.1:{port}");
    let advertised = format!("127.0.0.2:{port}");
    let status = cli(&given, &["status", "-o", "json"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let status = last_json(&status);
    assert_eq!(status["leader"], advertised.as_str(), "{status}");
    let nodes = status["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{status}");
    assert_eq!(nodes[0]["address"], advertised.as_str(), "{status}");
    // No address handed out is 0.0.0.0 (the flags each process reports, `config`, keep
    // `--listen` as given).
    let mut handed_out = status.clone();
    if let Some(c) = handed_out["coordinator"].as_object_mut() {
        c.remove("config");
    }
    for node in handed_out["nodes"].as_array_mut().into_iter().flatten() {
        if let Some(n) = node.as_object_mut() {
            n.remove("config");
        }
    }
    assert!(!handed_out.to_string().contains("0.0.0.0"), "{handed_out}");

    let created = cli(&given, &["table", "create", "emb", "--dim", "2"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let pulled = cli(
        &given,
        &["pull", "--table", "emb", "--ids", "1,2,3", "--json"],
    );
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    let pulled = last_json(&pulled);
    assert_eq!(
        pulled["values"].as_array().map(Vec::len),
        Some(3),
        "{pulled}"
    );
    drop(server);

    // Listening on 127.0.0.1 only while advertising 127.0.0.2: the map's address is the
    // one dialled, so the pull fails there, naming it.
    let server = DevServer::launch(
        "127.0.0.1:0",
        &dir.path().join("data2"),
        &["--advertise", "127.0.0.2", "--insecure"],
        None,
    )
    .expect("dev server");
    let advertised = format!("127.0.0.2:{}", port_of(&server.address));
    let created = cli(&server.address, &["table", "create", "emb", "--dim", "2"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let began = Instant::now();
    let pulled = cli(
        &server.address,
        &[
            "--connect-timeout",
            "1s",
            "pull",
            "--table",
            "emb",
            "--ids",
            "1",
        ],
    );
    assert_eq!(
        pulled.status.code(),
        Some(EXIT_UNAVAILABLE),
        "{}",
        stderr(&pulled)
    );
    assert!(stderr(&pulled).contains(&advertised), "{}", stderr(&pulled));
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
}

#[test]
fn a_server_on_an_unspecified_address_without_advertise_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    for listen in ["0.0.0.0:0", "[::]:0"] {
        for role in ["dev", "shard", "coordinator"] {
            let data = dir.path().join(format!("{role}-data"));
            let data_arg = data.to_string_lossy().into_owned();
            let out = server_exits(&[role, "--listen", listen, "--data-dir", &data_arg]);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{role} {listen}: {}",
                stderr(&out)
            );
            let err = stderr(&out);
            assert!(
                err.contains("--advertise HOST:PORT"),
                "{role} {listen}: {err}"
            );
            assert!(err.contains("no client can dial"), "{role} {listen}: {err}");
            assert!(!stdout(&out).contains("listening on"), "{}", stdout(&out));
            assert!(!data.exists(), "{role} {listen}: data dir created");
        }
    }
}

#[test]
fn advertise_values_no_client_can_dial_are_usage_errors() {
    for (value, why) in [
        ("0.0.0.0:7070", "unspecified address"),
        ("[::]:7070", "unspecified address"),
        ("myhost:0", "port 0"),
        ("myhost:99999", "invalid port"),
        ("http://myhost:7070", "scheme"),
        ("", "needs HOST:PORT"),
    ] {
        let out = server_exits(&["dev", "--listen", "127.0.0.1:0", "--advertise", value]);
        assert_eq!(out.status.code(), Some(2), "{value:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{value:?}: {}", stderr(&out));
    }
}

/// `deploy/local-cluster.sh` with its dir and binaries set and free ports everywhere; its
/// processes are stopped when dropped.
struct LocalCluster {
    dir: tempfile::TempDir,
}

impl LocalCluster {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local-cluster.sh")
    }

    /// Runs the script with `args` to its end (bounded).
    fn run(&self, args: &[&str], limit: Duration) -> Output {
        let server = binary("strata-server");
        let bin_dir = server.parent().expect("binary dir");
        run_within(
            Command::new("bash")
                .arg(Self::script())
                .args(args)
                .env("STRATA_CLUSTER_DIR", self.dir.path())
                .env("STRATA_COORDINATOR_PORT", "0")
                .env("STRATA_SHARD_BASE_PORT", "0")
                .env("STRATA_METRICS_BASE_PORT", "0")
                .env("STRATA_BIN", bin_dir)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1"),
            limit,
        )
    }

    fn coordinator(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("coordinator.address"))
            .expect("coordinator.address")
            .trim()
            .to_string()
    }

    /// The pid the script keeps for process `name`, if its pid file is there.
    fn pid(&self, name: &str) -> Option<u32> {
        let path = self.dir.path().join("pids").join(format!("{name}.pid"));
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    /// The address process `name`'s log says it listens on.
    fn listening(&self, name: &str, role: &str) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("logs").join(format!("{name}.log")))
            .expect("log");
        let prefix = format!("strata-server {role} listening on ");
        log.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no address in {name}'s log:\n{log}"))
            .trim()
            .to_string()
    }

    /// Node id → (address, state) from `strata status -o json`.
    fn nodes(&self) -> BTreeMap<String, (String, String)> {
        let out = cli(&self.coordinator(), &["status", "-o", "json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let status = last_json(&out);
        status["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| {
                let text = |k: &str| n[k].as_str().unwrap_or_default().to_string();
                (text("id"), (text("address"), text("state")))
            })
            .collect()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.run(&["stop"], Duration::from_secs(150));
        // Whatever a failed stop left running.
        for name in ["coordinator", "shard-1", "shard-2", "shard-3"] {
            if let Some(pid) = self.pid(name) {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
    }
}

/// Whether process `pid` runs (an exited one not yet reaped does not).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn local_cluster_shard_processes_register_under_their_own_names() {
    let cluster = LocalCluster::new();
    let out = cluster.run(&["start", "2"], Duration::from_secs(90));
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("cluster ready: shard-1 shard-2 up"),
        "{}",
        stdout(&out)
    );

    // Each process shard-N is node shard-N at the address that process listens on.
    let nodes = cluster.nodes();
    let ids: Vec<&str> = nodes.keys().map(String::as_str).collect();
    assert_eq!(ids, ["shard-1", "shard-2"], "{nodes:?}");
    for name in ["shard-1", "shard-2"] {
        let (address, state) = &nodes[name];
        assert_eq!(address, &cluster.listening(name, "shard"), "{name}");
        assert_eq!(state, "up", "{name}");
    }
    let status = cluster.run(&["status"], Duration::from_secs(30));
    assert!(status.status.success(), "{}", stderr(&status));
    let text = stdout(&status);
    for name in ["shard-1", "shard-2"] {
        let line = format!(
            "{name}: running (pid {}), node id {name}, address {}",
            cluster.pid(name).expect("pid"),
            cluster.listening(name, "shard")
        );
        assert!(text.contains(&line), "{line}\n{text}");
    }

    // `stop 2` stops the process of node shard-2, and only it.
    let pids: BTreeMap<&str, u32> = ["coordinator", "shard-1", "shard-2"]
        .into_iter()
        .map(|n| (n, cluster.pid(n).expect("pid")))
        .collect();
    let out = cluster.run(&["stop", "2"], Duration::from_secs(150));
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(!running(pids["shard-2"]), "shard-2 still runs");
    assert!(running(pids["shard-1"]) && running(pids["coordinator"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = cluster.nodes();
        let state = |id: &str| nodes.get(id).map(|(_, s)| s.as_str()).unwrap_or("?");
        if state("shard-2") == "down" {
            assert_eq!(state("shard-1"), "up", "{nodes:?}");
            break;
        }
        assert!(Instant::now() < deadline, "shard-2 not down: {nodes:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // `stop` stops the rest and forgets their pids.
    let out = cluster.run(&["stop"], Duration::from_secs(150));
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(!running(pids["coordinator"]) && !running(pids["shard-1"]));
    let left = std::fs::read_dir(cluster.dir.path().join("pids"))
        .expect("pids dir")
        .count();
    assert_eq!(left, 0, "pid files left");
}

#[test]
fn local_cluster_help_names_its_environment_and_bad_invocations_are_refused() {
    let cluster = LocalCluster::new();
    let help = cluster.run(&["--help"], Duration::from_secs(10));
    assert!(help.status.success(), "{}", stderr(&help));
    for var in [
        "STRATA_CLUSTER_DIR",
        "STRATA_COORDINATOR_PORT",
        "STRATA_SHARD_BASE_PORT",
        "STRATA_METRICS_BASE_PORT",
        "STRATA_BIN",
    ] {
        assert!(
            stdout(&help).contains(var),
            "{var} missing:\n{}",
            stdout(&help)
        );
    }
    for (args, why) in [
        (&["bogus"][..], "usage:"),
        (&[][..], "usage:"),
        (&["start", "two"][..], "start takes a number"),
        (&["start", "0"][..], "start takes a number"),
        (&["stop", "x"][..], "stop takes N or shard-N"),
    ] {
        let out = cluster.run(args, Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
    }
    let out = cluster.run(&["stop", "7"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no shard server shard-7"),
        "{}",
        stderr(&out)
    );
    let port = run_within(
        Command::new("bash")
            .arg(LocalCluster::script())
            .arg("status")
            .env("STRATA_CLUSTER_DIR", cluster.dir.path())
            .env("STRATA_COORDINATOR_PORT", "70x"),
        Duration::from_secs(10),
    );
    assert_eq!(port.status.code(), Some(2), "{}", stderr(&port));
    assert!(stderr(&port).contains("70x"), "{}", stderr(&port));
}
