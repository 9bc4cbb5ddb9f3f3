// The build identity of a binary's crate: included by the build scripts of the crates that
// make binaries (server, client, benches), read back by `strata_proto::build_info!`.
//
// Emits `STRATA_BUILD_COMMIT` (the commit's full hex, or "unknown" without git),
// `STRATA_BUILD_DIRTY` ("true" when tracked files differ from the commit) and
// `STRATA_BUILD_PROFILE` ("debug" or "release"). `STRATA_BUILD_COMMIT` set in the build's
// environment wins over git (a container build without `.git` passes it in). The script
// runs again when HEAD, the branch it points to, packed refs or the index change (a commit,
// a checkout, `git add`), not on every build: an edit left unstaged after the last of those
// is not seen as dirty by an incremental build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the build scripts read of git: commit, dirty, and the files to watch.
struct GitState {
    commit: String,
    dirty: bool,
    watch: Vec<PathBuf>,
}

/// Runs `git ARGS` in `dir`; its trimmed stdout when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        // Never rewrite the index from a build script: that would make the next build run
        // the script again.
        .arg("--no-optional-locks")
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The git state of the checkout holding `dir`, `None` without git or outside a checkout.
fn git_state(dir: &Path) -> Option<GitState> {
    let commit = git(dir, &["rev-parse", "--verify", "HEAD"])?;
    let status = git(dir, &["status", "--porcelain", "--untracked-files=no"])?;
    let mut watch = Vec::new();
    let mut paths = vec!["HEAD".to_string(), "packed-refs".into(), "index".into()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        paths.push(branch);
    }
    for p in paths {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &p]) {
            let path = dir.join(path);
            // A watched file that does not exist would run the script on every build.
            if path.exists() {
                watch.push(path);
            }
        }
    }
    Some(GitState {
        commit,
        dirty: !status.is_empty(),
        watch,
    })
}

/// Prints the `cargo:` lines of the build identity.
fn emit_build_identity() {
    println!("cargo:rerun-if-env-changed=STRATA_BUILD_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let state = git_state(&dir);
    for path in state.iter().flat_map(|s| &s.watch) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let (commit, dirty) = match (std::env::var("STRATA_BUILD_COMMIT"), state) {
        (Ok(commit), _) if !commit.trim().is_empty() => (commit.trim().to_string(), false),
        (_, Some(s)) => (s.commit, s.dirty),
        (_, None) => ("unknown".to_string(), false),
    };
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=STRATA_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=STRATA_BUILD_DIRTY={dirty}");
    println!("cargo:rustc-env=STRATA_BUILD_PROFILE={profile}");
}
