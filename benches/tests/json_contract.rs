//! The `--json` contract of strata-bench (in process: no servers needed), and input errors.

mod common;

use std::process::Command;

#[test]
fn inproc_json_last_line_has_every_field() {
    let v = common::run_json(&[
        "--target",
        "inproc",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--keys",
        "100000",
    ]);
    common::check_contract(&v, "inproc");
    assert_eq!(v["trainers"], 4);
    assert_eq!(v["dim"], 64);
    let per_row =
        v["bytes_per_s"].as_f64().unwrap_or(0.0) / v["pull_rows_per_s"].as_f64().unwrap_or(1.0);
    assert!(
        (per_row - 2.0 * 256.0).abs() < 1.0,
        "bytes per row {per_row}"
    );
}

#[test]
fn bad_flags_fail_cleanly() {
    for args in [
        &["--target", "memcached://x"][..],
        &["--optimizer", "sgd"],
        &["--trainers", "0"],
        &[
            "--zipf",
            "-1",
            "--target",
            "inproc",
            "--duration",
            "1",
            "--warmup",
            "0",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_strata-bench"))
            .args(args)
            .output()
            .expect("running strata-bench");
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!out.stderr.is_empty(), "{args:?} should say why");
    }
}

#[test]
fn an_unreachable_coordinator_fails_within_the_connect_timeout() {
    let address = format!("127.0.0.1:{}", common::free_port());
    let began = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_strata-bench"))
        .args(["--coordinator", &address, "--connect-timeout", "500ms"])
        .args(["--duration", "1", "--warmup", "0", "--json"])
        .env_remove("STRATA_CONNECT_TIMEOUT")
        .output()
        .expect("running strata-bench");
    let took = began.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("connection refused at {address}")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout when it fails");
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
}

#[test]
fn negative_numbers_are_values() {
    let out = Command::new(env!("CARGO_BIN_EXE_strata-bench"))
        .args([
            "--coordinator",
            "127.0.0.1",
            "--lr",
            "-0.05",
            "--grad-scale",
            "-1",
        ])
        .output()
        .expect("running strata-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
    // It parsed, then the address was refused before dialing.
    assert!(stderr.contains("no port"), "{stderr}");
}

#[test]
fn sim_json_is_alone_on_stdout() {
    let out = Command::new(env!("CARGO_BIN_EXE_strata-bench"))
        .args(["sim", "--nodes", "40", "--racks", "8", "--zones", "2"])
        .args(["--shards", "400", "--json"])
        .output()
        .expect("running strata-bench sim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "only the JSON object on stdout:\n{stdout}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("one JSON object");
    assert!(v.is_object(), "{v}");
    assert!(
        !stderr.trim().is_empty(),
        "the report for people goes to stderr"
    );
}
