//! The `strata` CLI as a process, as an operator meets it: fast and helpful connection
//! failures, exit statuses that tell failures apart, numbers as people write them, prompts
//! before destructive commands, one output convention, a readable status, help and
//! completions. Each test checks the exit status, stdout and stderr.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use strata_tests::{binary, cli, last_json, DevServer};

/// Exit statuses of `strata` (README: Exit status).
mod exit {
    pub const USAGE: i32 = 2;
    pub const NOT_FOUND: i32 = 3;
    pub const UNAVAILABLE: i32 = 4;
    pub const CONFLICT: i32 = 6;
    pub const INVALID_ARGUMENT: i32 = 7;
    pub const NOT_CONFIRMED: i32 = 10;
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit status, showing both streams when it differs.
#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Runs `strata` with `args` only (no `--coordinator`), stdin closed.
fn strata(args: &[&str]) -> Output {
    Command::new(binary("strata"))
        .args(args)
        .env_remove("STRATA_COORDINATOR")
        .env_remove("STRATA_CONNECT_TIMEOUT")
        .output()
        .expect("running strata")
}

/// An address on loopback where nothing listens (bound, then released).
fn closed_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    drop(listener);
    address
}

#[test]
fn a_refused_connection_fails_within_the_connect_timeout_and_names_the_fix() {
    let address = closed_address();
    let began = Instant::now();
    let out = strata(&[
        "--coordinator",
        &address,
        "--connect-timeout",
        "500ms",
        "status",
    ]);
    let took = began.elapsed();
    assert_exit(&out, exit::UNAVAILABLE);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("connection refused at {address}")),
        "{err}"
    );
    assert!(err.contains("strata-server dev"), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

#[test]
fn the_default_connect_timeout_is_seconds_not_twenty() {
    let address = closed_address();
    let began = Instant::now();
    let out = strata(&["--coordinator", &address, "table", "list"]);
    let took = began.elapsed();
    assert_exit(&out, exit::UNAVAILABLE);
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn a_port_that_accepts_but_never_answers_times_out() {
    // A listener nobody accepts on: the kernel completes the handshake, nothing answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let began = Instant::now();
    let out = strata(&[
        "--coordinator",
        &address,
        "--connect-timeout",
        "700ms",
        "status",
    ]);
    let took = began.elapsed();
    drop(listener);
    assert_exit(&out, exit::UNAVAILABLE);
    let err = stderr(&out);
    assert!(err.contains(&format!("no answer from {address}")), "{err}");
    assert!(err.contains("700ms"), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn addresses_are_checked_before_dialing() {
    for (address, needle) in [
        ("127.0.0.1", "no port"),
        ("127.0.0.1:99999", "port 99999 is not in 1..=65535"),
        ("127.0.0.1:7070,localhost", "no port"),
    ] {
        let began = Instant::now();
        let out = strata(&["--coordinator", address, "status"]);
        assert_exit(&out, exit::USAGE);
        let err = stderr(&out);
        assert!(err.contains(needle), "{address}: {err}");
        assert!(
            err.contains(address.rsplit(',').next().unwrap_or(address)),
            "{address}: {err}"
        );
        assert!(began.elapsed() < Duration::from_secs(2), "{address}");
    }
    let out = strata(&["--connect-timeout", "soon", "status"]);
    assert_exit(&out, exit::USAGE);
    assert!(stderr(&out).contains("500ms"), "{}", stderr(&out));
}

#[test]
fn the_metrics_port_is_named_as_not_grpc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &["--metrics-listen", "127.0.0.1:0"]).expect("start");
    let metrics = server.metrics_address.clone().expect("metrics address");
    let out = cli(&metrics, &["status"]);
    assert_exit(&out, exit::UNAVAILABLE);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{metrics} does not speak gRPC")),
        "{err}"
    );
    assert!(err.contains("metrics"), "{err}");
}

#[test]
fn exit_statuses_tell_failures_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &[]).expect("start");
    let addr = server.address.as_str();
    assert_exit(&cli(addr, &["table", "create", "t", "--dim", "2"]), 0);
    // Conflict: the table exists.
    let out = cli(addr, &["table", "create", "t", "--dim", "2"]);
    assert_exit(&out, exit::CONFLICT);
    // Not found.
    assert_exit(
        &cli(addr, &["pull", "--table", "nope", "--ids", "1"]),
        exit::NOT_FOUND,
    );
    assert_exit(
        &cli(addr, &["table", "drop", "nope", "--yes"]),
        exit::NOT_FOUND,
    );
    // Invalid argument: 3 values do not fill a row of dim 2, said in the user's terms.
    let out = cli(
        addr,
        &["push", "--table", "t", "--ids", "1", "--grads", "1,2,3"],
    );
    assert_exit(&out, exit::INVALID_ARGUMENT);
    assert!(
        stderr(&out).contains("--grads holds 3 numbers but 1 id(s) × dim 2 of table t need 2"),
        "{}",
        stderr(&out)
    );
    let out = cli(
        addr,
        &["push", "--table", "t", "--ids", "1,2", "--grads", "1,2"],
    );
    assert_exit(&out, exit::INVALID_ARGUMENT);
    // Usage: clap's own errors, empty list items, out-of-range dims.
    assert_exit(&cli(addr, &["pull", "--table", "t"]), exit::USAGE);
    let out = cli(addr, &["pull", "--table", "t", "--ids", "1,,2"]);
    assert_exit(&out, exit::USAGE);
    assert!(stderr(&out).contains("empty item"), "{}", stderr(&out));
    let out = cli(addr, &["table", "create", "big", "--dim", "99999999999999"]);
    assert_exit(&out, exit::USAGE);
    assert!(stderr(&out).contains("1..=4096"), "{}", stderr(&out));
    // Invalid argument: a hyperparameter the table's optimizer does not take.
    let out = cli(
        addr,
        &[
            "table",
            "create",
            "a",
            "--dim",
            "2",
            "--optimizer",
            "adagrad",
            "--beta1",
            "0.5",
        ],
    );
    assert_exit(&out, exit::INVALID_ARGUMENT);
    assert!(
        stderr(&out).contains("beta1 does not apply to optimizer adagrad"),
        "{}",
        stderr(&out)
    );
    // Conflict, said plainly: a dev server's only node has nowhere to drain to.
    let out = cli(addr, &["node", "drain", "node-1", "--yes"]);
    assert_exit(&out, exit::CONFLICT);
    assert!(
        stderr(&out).contains("a dev server has only its own node"),
        "{}",
        stderr(&out)
    );
    // The documented table of statuses.
    let help = stdout(&strata(&["--help"]));
    for line in [
        "Exit status:",
        "3   not found",
        "4   unavailable",
        "10  not confirmed",
    ] {
        assert!(help.contains(line), "{line}: {help}");
    }
}

#[test]
fn negative_numbers_and_gradients_from_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &[]).expect("start");
    let addr = server.address.as_str();
    let out = cli(
        addr,
        &[
            "table",
            "create",
            "t",
            "--dim",
            "2",
            "--optimizer",
            "sgd",
            "--lr",
            "1",
            "--init",
            "zeros",
            "--clip-value",
            "100",
        ],
    );
    assert_exit(&out, 0);
    // `--grads -1,...` is a value, not a flag.
    let out = cli(
        addr,
        &["push", "--table", "t", "--ids", "1", "--grads", "-1,-2"],
    );
    assert_exit(&out, 0);
    // `--lr -1` reaches the coordinator, which judges it (not a parse error).
    let out = cli(
        addr,
        &["table", "create", "neg", "--dim", "2", "--lr", "-1"],
    );
    assert_ne!(out.status.code(), Some(exit::USAGE), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("unexpected argument"),
        "{}",
        stderr(&out)
    );
    // `--grads-file -` reads stdin, numbers split by commas and whitespace.
    let mut child = Command::new(binary("strata"))
        .args([
            "--coordinator",
            addr,
            "push",
            "--table",
            "t",
            "--ids",
            "2,3",
        ])
        .args(["--grads-file", "-", "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"0.5 -0.5\n-1, 1\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert_exit(&out, 0);
    assert_eq!(last_json(&out)["applied"], 2);
    let out = cli(
        addr,
        &["pull", "--table", "t", "--ids", "1,2,3", "-o", "json"],
    );
    assert_exit(&out, 0);
    assert_eq!(
        last_json(&out)["values"],
        serde_json::json!([[1.0, 2.0], [-0.5, 0.5], [1.0, -1.0]])
    );
    // A missing file is a usage error that names it.
    let out = cli(
        addr,
        &[
            "push",
            "--table",
            "t",
            "--ids",
            "1",
            "--grads-file",
            "/nonexistent/g.txt",
        ],
    );
    assert_exit(&out, exit::USAGE);
    assert!(
        stderr(&out).contains("/nonexistent/g.txt"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn destructive_commands_ask_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &[]).expect("start");
    let addr = server.address.as_str();
    assert_exit(&cli(addr, &["table", "create", "t", "--dim", "2"]), 0);
    assert_exit(&cli(addr, &["dense", "create", "w", "--shape", "2"]), 0);
    let out = cli(addr, &["checkpoint", "create", "-o", "json"]);
    assert_exit(&out, 0);
    let id = last_json(&out)["id"].as_str().expect("id").to_string();

    // stdin is not a terminal and there is no --yes: refused, nothing changed.
    for args in [
        &["table", "drop", "t"][..],
        &["dense", "drop", "w"],
        &["checkpoint", "restore", &id],
    ] {
        let out = cli(addr, args);
        assert_exit(&out, exit::NOT_CONFIRMED);
        assert!(
            stderr(&out).contains("pass --yes"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    let tables = last_json(&cli(addr, &["table", "list", "-o", "json"]));
    assert_eq!(tables["tables"][0]["name"], "t", "{tables}");
    let dense = last_json(&cli(addr, &["dense", "list", "-o", "json"]));
    assert_eq!(dense["dense"][0]["name"], "w", "{dense}");

    // With --yes they run.
    assert_exit(&cli(addr, &["checkpoint", "restore", &id, "--yes"]), 0);
    let out = cli(addr, &["table", "drop", "t", "--yes", "-o", "json"]);
    assert_exit(&out, 0);
    assert_eq!(last_json(&out)["dropped"], "t");
    assert_exit(&cli(addr, &["dense", "drop", "w", "-y"]), 0);
    let tables = last_json(&cli(addr, &["table", "list", "--json"]));
    assert_eq!(tables["tables"], serde_json::json!([]));
}

#[test]
fn a_resize_to_the_current_count_is_refused_as_a_no_op() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &["--shards", "4"]).expect("start");
    let addr = server.address.as_str();
    let before = last_json(&cli(addr, &["status", "-o", "json"]))["epoch"].clone();
    let out = cli(addr, &["shards", "resize", "--count", "4", "--yes"]);
    assert_exit(&out, exit::CONFLICT);
    assert!(
        stderr(&out).contains("already has 4 shards"),
        "{}",
        stderr(&out)
    );
    let after = last_json(&cli(addr, &["status", "-o", "json"]))["epoch"].clone();
    assert_eq!(before, after, "the epoch is unchanged");
}

#[test]
fn every_result_prints_as_text_or_json_alone_on_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &[]).expect("start");
    let addr = server.address.as_str();
    let json_only = |args: &[&str]| -> serde_json::Value {
        let out = cli(addr, args);
        assert_exit(&out, 0);
        let text = stdout(&out);
        assert_eq!(text.lines().count(), 1, "{args:?}: {text}");
        assert!(!text.contains('\x1b'), "{args:?}: no escape codes: {text}");
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    };
    let v = json_only(&[
        "table", "create", "t", "--dim", "2", "--init", "zeros", "-o", "json",
    ]);
    assert_eq!(v["created"]["name"], "t");
    assert_eq!(v["created"]["dim"], 2);
    let v = json_only(&[
        "push", "--table", "t", "--ids", "1", "--grads", "1,1", "--json",
    ]);
    assert_eq!(v["applied"], 1);
    let v = json_only(&["dense", "create", "w", "--shape", "2,3", "-o", "json"]);
    assert_eq!(v["created"]["shape"], serde_json::json!([2, 3]));
    let v = json_only(&["dense", "pull", "w", "-o", "json"]);
    assert_eq!(v["shape"], serde_json::json!([2, 3]));
    assert_eq!(v["values"].as_array().map(Vec::len), Some(6));
    let v = json_only(&["checkpoint", "create", "-o", "json"]);
    assert!(v["id"].is_string(), "{v}");
    let v = json_only(&["checkpoint", "list", "-o", "json"]);
    assert!(v["checkpoints"][0]["age_ms"].is_u64(), "{v}");

    // Text is the default: dense pull prints rows, not JSON.
    let out = cli(addr, &["dense", "pull", "w"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.starts_with("dense tensor w shape [2, 3]"), "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");
    let out = cli(addr, &["checkpoint", "create"]);
    assert!(stdout(&out).contains("written"), "{}", stdout(&out));
    let out = cli(addr, &["checkpoint", "list"]);
    let text = stdout(&out);
    assert!(
        text.contains("CREATED") && (text.contains(" ago") || text.contains("just now")),
        "ages, not raw milliseconds: {text}"
    );
    assert!(!text.contains("CREATED_MS"), "{text}");
    // Wide: the same rows with the table's initializer, seed and hyperparameters; JSON
    // carries them whatever the format.
    let out = cli(
        addr,
        &[
            "table",
            "create",
            "f",
            "--dim",
            "2",
            "--optimizer",
            "ftrl",
            "--l1",
            "0.5",
            "--init",
            "normal:0.02",
            "--seed",
            "7",
        ],
    );
    assert_exit(&out, 0);
    let out = cli(addr, &["table", "list", "-o", "wide"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    let header = text.lines().next().unwrap_or_default();
    assert!(
        header.contains("INIT") && header.contains("HYPERPARAMETERS"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("f "))
        .unwrap_or_default();
    assert!(row.contains("normal:0.02") && row.contains(" 7 "), "{text}");
    assert!(
        row.contains("l1=0.5") && row.contains("lr_power=-0.5"),
        "{text}"
    );
    let narrow = stdout(&cli(addr, &["table", "list"]));
    assert!(!narrow.contains("HYPERPARAMETERS"), "{narrow}");
    let v = json_only(&["table", "list", "-o", "json"]);
    let f = v["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "f"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(f["hyperparameters"]["l1"], serde_json::json!(0.5), "{v}");
    assert_eq!(f["init"], "normal:0.02", "{v}");
    let out = cli(addr, &["dense", "list", "-o", "wide"]);
    assert!(stdout(&out).contains("HYPERPARAMETERS"), "{}", stdout(&out));
    // Status, wide: each process's start time, data dir and effective configuration.
    let out = cli(addr, &["status", "-o", "wide"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("data dir {}", dir.path().display()))
            && text.contains("config --")
            && text.contains("--shards=8"),
        "{text}"
    );
    assert!(!stdout(&cli(addr, &["status"])).contains("config --"));
    // An unknown format is a usage error.
    assert_exit(&cli(addr, &["status", "-o", "yaml"]), exit::USAGE);
}

#[test]
fn status_reads_at_a_glance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &[]).expect("start");
    let addr = server.address.as_str();
    assert_exit(&cli(addr, &["table", "create", "t", "--dim", "8"]), 0);
    assert_exit(&cli(addr, &["pull", "--table", "t", "--ids", "1,2,3"]), 0);
    assert_exit(&cli(addr, &["dense", "create", "mlp", "--shape", "4,2"]), 0);

    let v = last_json(&cli(addr, &["status", "-o", "json"]));
    assert!(v["last_checkpoint"].is_null(), "no checkpoint yet: {v}");
    let node = &v["nodes"][0];
    let budget = &node["memory_budget"];
    assert!(
        budget.is_null() || budget.as_u64().is_some_and(|b| b < u64::MAX),
        "no sentinel maximum: {node}"
    );
    assert!(node["memory_used"].is_u64(), "{node}");
    assert_eq!(v["dense"][0]["name"], "mlp", "{v}");

    let out = cli(addr, &["status"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    for header in [
        "NODE",
        "ADDRESS",
        "STATE",
        "SHARDS",
        "MEMORY USED/BUDGET",
        "TABLE",
        "SIZE",
        "SHARD",
        "DENSE",
    ] {
        assert!(text.contains(header), "{header}: {text}");
    }
    assert!(text.contains(" B") || text.contains("KiB"), "{text}");
    assert!(
        !text.contains("bytes "),
        "sizes in units, not raw bytes: {text}"
    );
    assert!(text.contains("mlp") && text.contains("4x2"), "{text}");
    // The same text twice: stable order.
    let again = stdout(&cli(addr, &["status"]));
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.contains("/s") && !l.contains("ago"))
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(strip(&text), strip(&again));
}

#[test]
fn help_has_examples_and_completions_need_no_server() {
    let out = strata(&["--help"]);
    assert_exit(&out, 0);
    let help = stdout(&out);
    assert!(
        help.contains("Operate and inspect a strata cluster"),
        "{help}"
    );
    assert!(!help.contains("async Rust client"), "{help}");
    assert!(help.contains("--connect-timeout"), "{help}");
    for sub in [
        &["table", "drop", "--help"][..],
        &["push", "--help"],
        &["checkpoint", "restore", "--help"],
        &["dense", "pull", "--help"],
        &["status", "--help"],
    ] {
        let out = strata(sub);
        assert_exit(&out, 0);
        assert!(
            stdout(&out).contains("Examples:"),
            "{sub:?}: {}",
            stdout(&out)
        );
    }
    // Completions print without any coordinator.
    for (shell, needle) in [
        ("bash", "complete"),
        ("zsh", "#compdef strata"),
        ("fish", "complete -c strata"),
    ] {
        let out = strata(&["--coordinator", "127.0.0.1:1", "completion", shell]);
        assert_exit(&out, 0);
        assert!(stdout(&out).contains(needle), "{shell}: {}", stdout(&out));
    }
    assert_exit(&strata(&["completion", "tcsh"]), exit::USAGE);
}

#[test]
fn server_logs_carry_no_colour_codes_when_not_at_a_terminal() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("server.log");
    let mut child = Command::new(binary("strata-server"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn strata-server");
    let stdout = child.stdout.take().expect("stdout");
    // Ends when the server prints its address, or when it exits (stdout closes).
    let listening = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("listening on"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("serving") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "the server started: {text}");
    assert!(text.contains("INFO"), "some log lines: {text}");
    assert!(
        !text.contains('\x1b'),
        "no escape codes in a log file: {text:?}"
    );
}

#[test]
fn a_port_speaking_another_protocol_is_named_as_not_grpc() {
    // Answers every connection with a line of another protocol, then closes it (bounded:
    // stops after 5 s).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    listener.set_nonblocking(true).expect("nonblocking");
    let server = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            match listener.accept() {
                Ok((mut socket, _)) => {
                    let _ = socket.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    let began = Instant::now();
    let out = strata(&["--coordinator", &address, "status"]);
    let took = began.elapsed();
    assert_exit(&out, exit::UNAVAILABLE);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{address} does not speak gRPC")),
        "{err}"
    );
    assert!(took < Duration::from_secs(4), "took {took:?}");
    server.join().expect("server thread");
}

#[test]
fn numbers_are_read_before_connecting() {
    // No coordinator at all: a typo in the numbers is still reported as the typo.
    let address = closed_address();
    let out = strata(&[
        "--coordinator",
        &address,
        "pull",
        "--table",
        "t",
        "--ids",
        "1,,2",
    ]);
    assert_exit(&out, exit::USAGE);
    assert!(
        stderr(&out).contains("--ids: empty item"),
        "{}",
        stderr(&out)
    );
    let out = strata(&[
        "--coordinator",
        &address,
        "push",
        "--table",
        "t",
        "--ids",
        "1",
        "--grads",
        "1,x",
    ]);
    assert_exit(&out, exit::USAGE);
    assert!(
        stderr(&out).contains("cannot read \"x\""),
        "{}",
        stderr(&out)
    );
}
