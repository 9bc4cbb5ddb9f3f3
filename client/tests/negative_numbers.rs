//! Numbers that start with `-` are values, not flags: `strata push --grads -3,1` and
//! `strata table create --lr -0.5` get past argument parsing.

use std::process::{Command, Output};

/// Runs `strata` with `args` against an empty coordinator list, so that a command that
/// parses fails right after parsing, when the client refuses the address.
fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .env_remove("STRATA_COORDINATOR")
        .args(["--coordinator", ","])
        .args(args)
        .output()
        .expect("run strata")
}

/// Asserts that `args` parsed: the failure is the client's refusal of the address (a usage
/// error too, exit 2, but one that names the address), not clap's.
fn assert_parses(args: &[&str]) {
    let out = strata(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains("invalid address"), "{args:?}: {stderr}");
    assert!(
        !stderr.contains("unexpected argument"),
        "{args:?}: {stderr}"
    );
}

#[test]
fn push_accepts_negative_gradients() {
    assert_parses(&["push", "--table", "t", "--ids", "1,2", "--grads", "-3,1"]);
    assert_parses(&[
        "push",
        "--table",
        "t",
        "--ids",
        "1",
        "--grads",
        "-0.5,-1e-3",
    ]);
}

#[test]
fn dense_push_accepts_negative_gradients() {
    assert_parses(&["dense", "push", "w", "--grads", "-1,2,-3"]);
}

#[test]
fn table_create_accepts_negative_hyperparameters() {
    assert_parses(&["table", "create", "t", "--dim", "2", "--lr", "-0.5"]);
    assert_parses(&[
        "table",
        "create",
        "t",
        "--lr",
        "-0.5",
        "--optimizer",
        "ftrl",
        "--lr-power",
        "-0.5",
        "--l1",
        "-1",
        "--dim",
        "2",
    ]);
    assert_parses(&["dense", "create", "w", "--shape", "2", "--lr", "-1"]);
}

#[test]
fn a_flag_after_a_negative_number_is_still_a_flag() {
    let out = strata(&["table", "create", "t", "--lr", "--dim", "2"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--lr takes a number, not the next flag: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
