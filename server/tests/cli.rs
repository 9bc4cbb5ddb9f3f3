//! The `strata-server` command line: help and clear errors for bad flags.

use std::process::Command;

fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strata-server"))
}

#[test]
fn help_lists_the_dev_role() {
    let out = server().arg("--help").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dev"), "{text}");
    let out = server().args(["dev", "--help"]).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--listen", "--shards", "--data-dir", "--memory-budget", "--metrics-listen"] {
        assert!(text.contains(flag), "missing {flag}: {text}");
    }
}

#[test]
fn a_bad_memory_budget_is_explained() {
    let out = server()
        .args(["dev", "--memory-budget", "lots", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid size"), "{err}");
}
