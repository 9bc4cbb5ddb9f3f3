//! Embeds the build identity (git commit, dirty tree, profile) that `--version`, `strata
//! status` and `strata_build_info` show.

include!("../proto/build_identity.rs");

fn main() {
    emit_build_identity();
}
