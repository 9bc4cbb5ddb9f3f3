//! What runs, as `strata status` and `strata version` show it: a process's build, start,
//! configuration hash and GPU, in JSON (unknown values are `null`) and for people, and the
//! mixed versions of a cluster.

use strata_client::v1 as pb;
use strata_proto::build_info::{short_commit, BuildInfo};

use super::units;

/// The CLI's own build.
pub const CLI_BUILD: BuildInfo = strata_proto::build_info!();

/// The JSON fields of a process's identity, all `null` when it reported none: `version`,
/// `commit`, `dirty`, `profile`, `role`, `config_hash`, `started_at` (RFC 3339 UTC),
/// `data_dir`, `config` (flag → value) and `gpu` (`{model, driver, cuda}` or `null`).
pub fn identity_fields(
    identity: Option<&pb::ProcessIdentity>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut fields = serde_json::Map::new();
    let Some(i) = identity else {
        for key in [
            "version",
            "commit",
            "dirty",
            "profile",
            "role",
            "config_hash",
            "started_at",
            "data_dir",
            "config",
            "gpu",
        ] {
            fields.insert(key.into(), serde_json::Value::Null);
        }
        return fields;
    };
    let config: serde_json::Map<String, serde_json::Value> = i
        .config
        .iter()
        .map(|e| (e.name.clone(), e.value.clone().into()))
        .collect();
    let value = serde_json::json!({
        "version": i.version, "commit": i.commit, "dirty": i.dirty, "profile": i.profile,
        "role": i.role, "config_hash": i.config_hash,
        "started_at": (i.started_unix_ms > 0).then(|| units::rfc3339(i.started_unix_ms)),
        "data_dir": i.data_dir, "config": config,
        "gpu": i.gpu.as_ref().map(|g| serde_json::json!({
            "model": g.model, "driver": g.driver, "cuda": g.cuda,
        })),
    });
    if let serde_json::Value::Object(map) = value {
        fields = map;
    }
    fields
}

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

/// The processes of a status answer as (name, identity): the coordinator first, then the
/// nodes by id.
pub fn processes(s: &pb::StatusResponse) -> Vec<(String, Option<&pb::ProcessIdentity>)> {
    let mut nodes: Vec<(String, Option<&pb::ProcessIdentity>)> = s
        .nodes
        .iter()
        .map(|n| {
            let id = n.node.as_ref().map(|x| x.id.clone()).unwrap_or_default();
            (id, n.identity.as_ref())
        })
        .collect();
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut all = vec![("coordinator".to_string(), s.coordinator.as_ref())];
    all.extend(nodes);
    all
}

/// The builds the processes run, each with the processes that run it, when there are more
/// than one (a build is version, commit and dirty tree; a process that reports none counts
/// as `unknown`); empty when they all run the same.
pub fn mixed_versions(s: &pb::StatusResponse) -> Vec<(String, Vec<String>)> {
    let mut builds: Vec<(String, Vec<String>)> = Vec::new();
    for (name, identity) in processes(s) {
        let build = match identity {
            Some(i) => format!("{} {}", i.version, short_commit(&i.commit, i.dirty)),
            None => "unknown".into(),
        };
        match builds.iter_mut().find(|(b, _)| *b == build) {
            Some((_, names)) => names.push(name),
            None => builds.push((build, vec![name])),
        }
    }
    if builds.len() > 1 {
        builds
    } else {
        Vec::new()
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
