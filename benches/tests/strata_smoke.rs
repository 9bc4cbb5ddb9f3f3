//! A short W1 run against a real `strata-server dev` process through the network client.

mod common;

use std::path::Path;

#[test]
fn strata_w1_smoke_run() {
    // The server binary is another package's: build it first (cargo build --workspace --bins).
    let exe = std::env::current_exe().expect("current exe");
    let server = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("strata-server"));
    if !server.as_deref().is_some_and(Path::exists) {
        eprintln!("SKIPPED: strata-server is not built (cargo build --workspace --bins)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let dev = strata_tests::DevServer::start(dir.path(), &[]).expect("starting strata-server dev");
    let v = common::run_json(&[
        "--target",
        "strata",
        "--coordinator",
        &dev.address,
        "--duration",
        "1",
        "--warmup",
        "0",
        "--keys",
        "100000",
    ]);
    common::check_contract(&v, "strata");
    assert_eq!(v["address"], dev.address.as_str());
    // A second run drops and recreates the table.
    let v = common::run_json(&[
        "--target",
        "strata",
        "--coordinator",
        &dev.address,
        "--duration",
        "1",
        "--warmup",
        "0",
        "--keys",
        "100000",
        "--trainers",
        "2",
    ]);
    common::check_contract(&v, "strata");
}
