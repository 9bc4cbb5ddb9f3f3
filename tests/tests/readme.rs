//! The README's walk-through, run as a user would type it: every code block of README.md
//! marked `<!-- readme-test: dev -->` is executed, in order, against one fresh dev server.
//!
//! In a `sh` block each line that is not a comment is a command (its trailing `# ...` comment
//! dropped); it must exit with status 0, and each `# => TEXT` line under it must match a line
//! of what it printed, `...` standing for any text. Lines that build the project (`cargo
//! ...`) are the test's own job and skipped: the commands run with the binaries this test was
//! built with first on `PATH`. In a `console` block each `$ COMMAND` line is followed by its
//! exact output (stdout and stderr together, the server's address written as the README's
//! `127.0.0.1:7070`); output that starts with `error:` means the command must fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_tests::{binary, DevServer};

/// The marker line before a block this test runs.
const MARKER: &str = "<!-- readme-test: dev -->";
/// The address the README's examples show.
const README_ADDRESS: &str = "127.0.0.1:7070";
/// How long one command may run.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// One command of a marked block and what it must print.
#[derive(Debug)]
struct Step {
    /// README line number of the command (1-based), for messages.
    line: usize,
    /// The shell command, without its trailing comment.
    command: String,
    /// What to check of its output.
    expect: Expect,
}

/// What a step's output must show.
#[derive(Debug)]
enum Expect {
    /// Exit status 0, and each pattern matches some output line.
    Succeeds(Vec<String>),
    /// Exactly this output (stdout then stderr); a failing exit status when it starts
    /// with `error:`.
    Prints(Vec<String>),
}

fn readme_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")
}

/// The steps of every marked block, in README order.
fn marked_steps(readme: &str) -> Vec<Step> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != MARKER {
            i += 1;
            continue;
        }
        let fence = lines.get(i + 1).copied().unwrap_or_default();
        let language = fence
            .strip_prefix("```")
            .unwrap_or_else(|| panic!("README line {}: {MARKER} not before a code block", i + 1));
        let start = i + 2;
        let end = (start..lines.len())
            .find(|&j| lines[j].starts_with("```"))
            .unwrap_or_else(|| panic!("README line {}: code block not closed", i + 2));
        let body: Vec<(usize, &str)> = (start..end).map(|j| (j + 1, lines[j])).collect();
        match language {
            "sh" => steps.extend(sh_steps(&body)),
            "console" => steps.extend(console_steps(&body)),
            other => panic!("README line {}: cannot run a `{other}` block", i + 2),
        }
        i = end + 1;
    }
    steps
}

/// Commands of a `sh` block with their `# =>` patterns.
fn sh_steps(body: &[(usize, &str)]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for &(line, text) in body {
        let text = text.trim();
        if let Some(pattern) = text.strip_prefix("# =>") {
            let step = steps
                .last_mut()
                .unwrap_or_else(|| panic!("README line {line}: `# =>` before any command"));
            match &mut step.expect {
                Expect::Succeeds(patterns) => patterns.push(pattern.trim().to_string()),
                Expect::Prints(_) => unreachable!("sh steps only succeed"),
            }
            continue;
        }
        if text.is_empty() || text.starts_with('#') || text.starts_with("cargo ") {
            continue;
        }
        steps.push(Step {
            line,
            command: without_comment(text).to_string(),
            expect: Expect::Succeeds(Vec::new()),
        });
    }
    steps
}

/// Commands of a `console` block with their exact output.
fn console_steps(body: &[(usize, &str)]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for &(line, text) in body {
        if let Some(command) = text.strip_prefix("$ ") {
            steps.push(Step {
                line,
                command: command.trim().to_string(),
                expect: Expect::Prints(Vec::new()),
            });
            continue;
        }
        let step = steps
            .last_mut()
            .unwrap_or_else(|| panic!("README line {line}: output before any `$ ` command"));
        match &mut step.expect {
            Expect::Prints(output) => output.push(text.to_string()),
            Expect::Succeeds(_) => unreachable!("console steps print"),
        }
    }
    steps
}

/// `text` without a trailing ` # comment`.
fn without_comment(text: &str) -> &str {
    match text.find(" #") {
        Some(at) => text[..at].trim_end(),
        None => text,
    }
}

/// Whether `line` matches `pattern`, where `...` stands for any text.
fn matches(pattern: &str, line: &str) -> bool {
    let pieces: Vec<&str> = pattern.split("...").collect();
    let (first, rest) = pieces
        .split_first()
        .expect("split yields one piece at least");
    let Some(mut left) = line.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return left.is_empty();
    };
    for piece in middle {
        match left.find(piece) {
            Some(at) => left = &left[at + piece.len()..],
            None => return false,
        }
    }
    left.ends_with(last)
}

/// Runs `command` with `sh -c`, the project's binaries first on `PATH` and the server's
/// address in `STRATA_COORDINATOR`; returns the exit status, stdout and stderr.
fn run(command: &str, address: &str) -> (Option<i32>, String, String) {
    let bin_dir = binary("strata").parent().expect("binary dir").to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("PATH", path)
        .env("STRATA_COORDINATOR", address)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running sh");
    let began = Instant::now();
    while child.try_wait().expect("waiting").is_none() {
        if began.elapsed() > COMMAND_DEADLINE {
            let _ = child.kill();
            panic!("`{command}` still ran after {COMMAND_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_readme_walk_through_runs_as_written() {
    let readme = std::fs::read_to_string(readme_path()).expect("reading README.md");
    let steps = marked_steps(&readme);
    assert!(
        steps.len() >= 10,
        "only {} marked commands found in README.md",
        steps.len()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let server = DevServer::start(dir.path(), &[]).expect("dev server");
    for step in &steps {
        let (status, stdout, stderr) = run(&step.command, &server.address);
        let context = format!(
            "README line {}: `{}` exited with {status:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            step.line, step.command
        );
        match &step.expect {
            Expect::Succeeds(patterns) => {
                assert_eq!(status, Some(0), "{context}");
                for pattern in patterns {
                    let found = stdout
                        .lines()
                        .chain(stderr.lines())
                        .any(|l| matches(pattern, l.trim_end()));
                    assert!(found, "no output line matches `# => {pattern}`\n{context}");
                }
            }
            Expect::Prints(expected) => {
                let printed = format!("{stdout}{stderr}").replace(&server.address, README_ADDRESS);
                let printed: Vec<&str> = printed.lines().collect();
                assert_eq!(printed, *expected, "{context}");
                let fails = expected.first().is_some_and(|l| l.starts_with("error:"));
                assert_eq!(status != Some(0), fails, "{context}");
            }
        }
    }
}

#[test]
fn output_patterns_match_as_documented() {
    assert!(matches("applied 2 rows to emb", "applied 2 rows to emb"));
    assert!(!matches("applied 2 rows to emb", "applied 2 rows to emb2"));
    assert!(matches(
        "checkpoint ... written...",
        "checkpoint c-1 written: 3 rows"
    ));
    assert!(matches(
        r#"{"ids":[...],"values":[[...],[...]]}"#,
        r#"{"ids":[1,2],"values":[[0.1,0.2],[0.3]]}"#
    ));
    assert!(!matches(r#"{"ids":[...]}"#, r#"{"values":[1]}"#));
    assert!(!matches("a...b...c", "a c b"));
    assert_eq!(without_comment("strata status   # nodes"), "strata status");
    assert_eq!(without_comment("strata status"), "strata status");
}
