//! What runs, as `strata status` and `strata version` show it: a process's build, start,
//! configuration hash and GPU, in JSON (unknown values are `null`) and for people, and the
//! mixed versions of a cluster.

use strata_client::v1 as pb;
use strata_proto::build_info::{short_commit, BuildInfo};
pub use strata_proto::status_json::{identity_fields, mixed_versions, processes};

/// The CLI's own build.
pub const CLI_BUILD: BuildInfo = strata_proto::build_info!();

/// The CLI's build as JSON: `version`, `commit`, `dirty`, `profile`.
pub fn cli_json() -> serde_json::Value {
    serde_json::json!({
        "version": CLI_BUILD.version, "commit": CLI_BUILD.commit,
        "dirty": CLI_BUILD.dirty, "profile": CLI_BUILD.profile,
    })
}

/// A build for people: `0.1.0 1b477e03c425+dirty debug`; `unknown` when not reported.
pub fn build_text(identity: Option<&pb::ProcessIdentity>) -> String {
    match identity {
        Some(i) => format!(
            "{} {} {}",
            i.version,
            short_commit(&i.commit, i.dirty),
            i.profile
        ),
        None => "unknown".into(),
    }
}

/// A GPU for people: `NVIDIA H100 (driver 580.65.06, CUDA 13.0)`, `-` when none.
pub fn gpu_text(identity: Option<&pb::ProcessIdentity>) -> String {
    match identity.and_then(|i| i.gpu.as_ref()) {
        Some(g) => format!(
            "{} (driver {}, CUDA {})",
            g.model,
            or_unknown(&g.driver),
            or_unknown(&g.cuda)
        ),
        None => "-".into(),
    }
}

fn or_unknown(text: &str) -> &str {
    if text.is_empty() {
        "unknown"
    } else {
        text
    }
}

/// The warning line of mixed versions (`None` when all run the same).
pub fn mixed_warning(s: &pb::StatusResponse) -> Option<String> {
    let builds = mixed_versions(s);
    if builds.is_empty() {
        return None;
    }
    let parts: Vec<String> = builds
        .iter()
        .map(|(build, names)| format!("{build} on {}", names.join(", ")))
        .collect();
    Some(format!(
        "warning: the cluster runs mixed versions: {}",
        parts.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(version: &str, commit: &str, dirty: bool) -> pb::ProcessIdentity {
        pb::ProcessIdentity {
            version: version.into(),
            commit: commit.into(),
            dirty,
            profile: "release".into(),
            started_unix_ms: 1_798_761_599_000,
            config_hash: "0123456789ab".into(),
            config: vec![pb::ConfigEntry {
                name: "memory-budget".into(),
                value: "1GiB".into(),
            }],
            ..Default::default()
        }
    }

    fn status(nodes: Vec<Option<pb::ProcessIdentity>>) -> pb::StatusResponse {
        pb::StatusResponse {
            coordinator: Some(identity("0.1.0", "aaaa", false)),
            nodes: nodes
                .into_iter()
                .enumerate()
                .map(|(i, identity)| pb::NodeStatus {
                    node: Some(pb::NodeInfo {
                        id: format!("node-{}", i + 1),
                        ..Default::default()
                    }),
                    identity,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn one_build_everywhere_is_not_mixed() {
        let s = status(vec![Some(identity("0.1.0", "aaaa", false)); 2]);
        assert!(mixed_versions(&s).is_empty());
        assert_eq!(mixed_warning(&s), None);
    }

    #[test]
    fn another_version_commit_dirt_or_none_is_pointed_out() {
        let s = status(vec![
            Some(identity("0.1.0", "aaaa", false)),
            Some(identity("0.2.0", "bbbb", false)),
            Some(identity("0.1.0", "aaaa", true)),
            None,
        ]);
        assert_eq!(
            mixed_warning(&s).as_deref(),
            Some("warning: the cluster runs mixed versions: 0.1.0 aaaa on coordinator, node-1; 0.2.0 bbbb on node-2; 0.1.0 aaaa+dirty on node-3; unknown on node-4")
        );
    }

    #[test]
    fn identities_are_json_with_nulls_for_the_unknown() {
        let known = identity_fields(Some(&identity("0.1.0", "aaaa", true)));
        assert_eq!(known["version"], "0.1.0");
        assert_eq!(known["commit"], "aaaa");
        assert_eq!(known["dirty"], true);
        assert_eq!(known["started_at"], "2026-12-31T23:59:59Z");
        assert_eq!(known["config"]["memory-budget"], "1GiB");
        assert!(known["gpu"].is_null());
        let unknown = identity_fields(None);
        assert_eq!(unknown.len(), known.len());
        assert!(unknown.values().all(serde_json::Value::is_null));
        assert_eq!(build_text(None), "unknown");
        assert_eq!(
            build_text(Some(&identity("0.1.0", "0123456789abcdef", true))),
            "0.1.0 0123456789ab+dirty release"
        );
    }
}
