//! What a binary was built from: version, git commit (and whether the tree was dirty) and
//! build profile. The values come from the build script of the crate that expands
//! [`build_info!`](crate::build_info) (`proto/build_identity.rs`, included by the server's,
//! the client's and the benches' build scripts).

use std::fmt;

/// The commit of a build made without git (a source tarball, a container build without
/// `.git` that passed no `STRATA_BUILD_COMMIT`).
pub const UNKNOWN_COMMIT: &str = "unknown";

/// A binary's build identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildInfo {
    /// The workspace version (`Cargo.toml`).
    pub version: &'static str,
    /// The git commit, full hex, or [`UNKNOWN_COMMIT`].
    pub commit: &'static str,
    /// Whether tracked files differed from the commit.
    pub dirty: bool,
    /// The cargo profile: `debug` or `release`.
    pub profile: &'static str,
}

impl BuildInfo {
    /// The commit's first 12 hex digits with `+dirty` when the tree was dirty (`unknown`
    /// stays whole).
    pub fn short_commit(&self) -> String {
        short_commit(self.commit, self.dirty)
    }
}

/// `commit`'s first 12 characters, with `+dirty` when `dirty`: how people read a commit.
pub fn short_commit(commit: &str, dirty: bool) -> String {
    let short: String = commit.chars().take(12).collect();
    if dirty {
        format!("{short}+dirty")
    } else {
        short
    }
}

/// `0.1.0 (commit <full hex>[+dirty], debug)`: the line `--version` prints after the name.
impl fmt::Display for BuildInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dirty = if self.dirty { "+dirty" } else { "" };
        write!(
            f,
            "{} (commit {}{dirty}, {})",
            self.version, self.commit, self.profile
        )
    }
}

/// The [`BuildInfo`] of the crate that expands it (its build script must emit the
/// identity: `include!("../proto/build_identity.rs")`).
#[macro_export]
macro_rules! build_info {
    () => {
        $crate::build_info::BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            commit: env!("STRATA_BUILD_COMMIT"),
            dirty: matches!(env!("STRATA_BUILD_DIRTY").as_bytes(), b"true"),
            profile: env!("STRATA_BUILD_PROFILE"),
        }
    };
}

/// The `--version` text of the crate that expands it, as a `&'static str` (clap's
/// `#[command(version = ...)]`): `0.1.0 (commit <hex>[+dirty], debug)`.
#[macro_export]
macro_rules! version_text {
    () => {
        $crate::build_info::leak_version($crate::build_info!())
    };
}

/// `info` rendered once for clap, which wants a `&'static str`.
pub fn leak_version(info: BuildInfo) -> &'static str {
    Box::leak(info.to_string().into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_with_commit_dirt_and_profile() {
        let info = BuildInfo {
            version: "0.1.0",
            commit: "0123456789abcdef0123456789abcdef01234567",
            dirty: true,
            profile: "release",
        };
        assert_eq!(
            info.to_string(),
            "0.1.0 (commit 0123456789abcdef0123456789abcdef01234567+dirty, release)"
        );
        assert_eq!(info.short_commit(), "0123456789ab+dirty");
        assert_eq!(short_commit(UNKNOWN_COMMIT, false), "unknown");
    }
}
