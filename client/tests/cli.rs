//! The `strata` command line: help and errors a person understands.

use std::process::Command;

fn strata() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strata"))
}

#[test]
fn help_lists_every_command() {
    let out = strata().arg("--help").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["status", "table", "pull", "push", "checkpoint", "--coordinator"] {
        assert!(text.contains(cmd), "missing {cmd}: {text}");
    }
}

#[test]
fn missing_arguments_are_named() {
    let out = strata().args(["table", "create", "emb"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dim"));
    let out = strata().args(["push", "--table", "t", "--ids", "1"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--grads"));
}
