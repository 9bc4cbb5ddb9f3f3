//! Helpers shared by the integration tests: free ports, a redis-server child, running the binary.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral loopback port")
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A redis-server child on a free loopback port, killed on drop.
pub struct Redis {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Redis {
    /// Start redis-server with persistence off; None (with a printed reason) if it is not installed.
    pub fn start() -> Option<Self> {
        if !have("redis-server") {
            eprintln!("SKIPPED: redis-server is not installed (apt-get install -y redis-server)");
            return None;
        }
        // Two tests may be handed the same just-released port: the loser's redis-server
        // exits at once, so it only counts as started if its own child still runs.
        for _attempt in 0..5 {
            let port = free_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning redis-server");
            let addr = format!("127.0.0.1:{port}");
            let mut r = Self { child, addr };
            let t0 = Instant::now();
            while !answers_ping(&r.addr) && t0.elapsed() < Duration::from_secs(10) {
                if !matches!(r.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(50));
            if matches!(r.child.try_wait(), Ok(None)) && answers_ping(&r.addr) {
                return Some(r);
            }
        }
        panic!("redis-server did not start on a free port in 5 attempts");
    }
}

/// Whether a Redis server at `addr` answers PING (a bare TCP connect can succeed before the
/// server is ready, or even connect the probe to itself on a just-released port).
fn answers_ping(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    stream.write_all(b"PING\r\n").is_ok()
        && stream
            .read(&mut buf)
            .map(|n| buf[..n].starts_with(b"+PONG"))
            .unwrap_or(false)
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run strata-bench with `args` and `--json`; return the parsed last stdout line.
pub fn run_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_strata-bench"))
        .args(args)
        .arg("--json")
        .output()
        .expect("running strata-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "strata-bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With --json, stdout holds the one JSON object and nothing else (`| jq` works); the
    // summary for people goes to stderr.
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout holds only the JSON object:\n{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("against") || stderr.contains("sim"),
        "the human summary goes to stderr: {stderr}"
    );
    serde_json::from_str(lines[0]).expect("stdout is one JSON object")
}

/// Field `f` of `v` as a number; panics naming it when it is missing or not a number.
fn number(v: &serde_json::Value, f: &str) -> f64 {
    v[f].as_f64()
        .unwrap_or_else(|| panic!("{f} missing in {v}"))
}

/// The fields DESIGN.md and the issue require, all numbers; rates must be > 0.
pub fn check_contract(v: &serde_json::Value, target: &str) {
    for f in [
        "pull_rows_per_s",
        "push_rows_per_s",
        "steps_per_s",
        "bytes_per_s",
        "unique_ids_per_step",
    ] {
        let x = number(v, f);
        assert!(x > 0.0, "{f} = {x}");
    }
    for f in [
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        "pull_p50_ms",
        "pull_p99_ms",
        "push_p50_ms",
        "push_p99_ms",
        "duration_s",
        "trainers",
        "steps",
    ] {
        assert!(v[f].as_f64().is_some(), "{f} missing in {v}");
    }
    assert!(v["p50_ms"].as_f64() <= v["p99_ms"].as_f64());
    assert!(v["p99_ms"].as_f64() <= v["max_ms"].as_f64());
    assert_eq!(v["pull_rows_per_s"], v["push_rows_per_s"]);
    assert_eq!(v["target"], target);
    // Machine CPU over the window: measured wherever /proc/stat exists, and a busy machine.
    if std::path::Path::new("/proc/stat").exists() {
        for f in [
            "cpu_user_ms_per_step",
            "cpu_kernel_ms_per_step",
            "cpu_busy_cores",
        ] {
            let x = number(v, f);
            assert!(x >= 0.0, "{f} = {x}");
        }
        let busy = number(v, "cpu_busy_cores");
        assert!(busy > 0.0, "a W1 run keeps the machine busy: {v}");
    }
}
