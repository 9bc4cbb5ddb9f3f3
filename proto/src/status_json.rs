//! The JSON form of the `Status` reply: what `strata status -o json` prints and what a
//! server's `/api/status` answers, built in this one place so that both agree.
//!
//! Sentinels of the wire become `null` (no memory budget, no checkpoint); ages are taken at
//! the caller's clock (`now_ms`, Unix milliseconds), so the function itself reads none.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::build_info::short_commit;
use crate::v1 as pb;

/// Age in ms of a node's newest checkpoint at `now_ms`, if it has one.
pub fn checkpoint_age_ms(n: &pb::NodeStatus, now_ms: u64) -> Option<u64> {
    n.last_checkpoint
        .as_ref()
        .filter(|c| c.created_unix_ms > 0)
        .map(|c| now_ms.saturating_sub(c.created_unix_ms))
}

/// A node's memory budget, `None` when unlimited or not reported.
pub fn memory_budget(n: &pb::NodeStatus) -> Option<u64> {
    Some(n.memory_budget).filter(|&b| b != 0 && b != u64::MAX)
}

/// A node's labels, sorted by key.
pub fn sorted_labels(node: &pb::NodeInfo) -> BTreeMap<&str, &str> {
    node.labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Hits over lookups of a caching tier (0 before the first lookup).
pub fn hit_rate(c: &pb::CacheUsage) -> f64 {
    let lookups = c.hits.saturating_add(c.misses);
    if lookups == 0 {
        0.0
    } else {
        c.hits as f64 / lookups as f64
    }
}

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
        "started_at": (i.started_unix_ms > 0).then(|| rfc3339(i.started_unix_ms)),
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

/// Unix milliseconds as an RFC 3339 UTC time to the second: `2026-12-03T10:15:30Z`.
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The whole status as JSON, ages taken at `now_ms`.
pub fn status_json(s: &pb::StatusResponse, now_ms: u64) -> Value {
    let node_age = |id: &str| {
        s.nodes
            .iter()
            .find(|n| n.node.as_ref().is_some_and(|x| x.id == id))
            .and_then(|n| checkpoint_age_ms(n, now_ms))
    };
    let nodes: Vec<_> = s.nodes.iter().map(|n| node_json(n, now_ms)).collect();
    let tables: Vec<_> = s.tables.iter().map(table_json).collect();
    let dense: Vec<_> = s
        .dense
        .iter()
        .map(|d| {
            let spec = d.spec.clone().unwrap_or_default();
            json!({
                "name": spec.name, "shape": spec.shape,
                "optimizer": spec.optimizer.map(|o| o.kind).unwrap_or_default(),
            })
        })
        .collect();
    let shards: Vec<_> = s
        .shards
        .iter()
        .map(|sh| {
            json!({
                "id": sh.id, "slots": [sh.slot_start, sh.slot_end],
                "primary": sh.primary, "replicas": sh.replicas,
                "rows": sh.rows, "bytes": sh.bytes,
                "checkpoint_age_ms": node_age(&sh.primary),
            })
        })
        .collect();
    let migrations = plan_json(s);
    let last_checkpoint = Some(s.last_checkpoint.clone()).filter(|c| !c.is_empty());
    let coordinator = s.coordinator.as_ref().map(|c| identity_fields(Some(c)));
    json!({
        "epoch": s.epoch, "leader": s.leader, "nodes": nodes, "tables": tables,
        "dense": dense, "shards": shards, "last_checkpoint": last_checkpoint,
        "plan": migrations["plan"], "migrations": migrations["migrations"],
        "coordinator": coordinator, "mixed_versions": !mixed_versions(s).is_empty(),
    })
}

/// One node of `status_json`.
fn node_json(n: &pb::NodeStatus, now_ms: u64) -> Value {
    let node = n.node.clone().unwrap_or_default();
    let mut value = json!({
        "id": node.id, "address": node.address, "labels": sorted_labels(&node),
        "state": node.state, "shards": n.shards, "rows": n.rows, "bytes": n.bytes,
        "memory_used": n.bytes, "memory_budget": memory_budget(n),
        "applied_epoch": n.applied_epoch,
        "last_heartbeat_ms_ago": n.last_heartbeat_ms_ago, "draining": n.draining,
        "pull_rows_per_s": n.pull_rows_per_s, "push_rows_per_s": n.push_rows_per_s,
        "last_checkpoint": n.last_checkpoint.as_ref().map(|c| c.id.clone()),
        "checkpoint_age_ms": checkpoint_age_ms(n, now_ms),
    });
    if let Some(fields) = value.as_object_mut() {
        fields.extend(identity_fields(n.identity.as_ref()));
    }
    value
}

/// One table of `status_json`: rows and bytes per tier, the caching tier's counters.
fn table_json(t: &pb::TableInfo) -> Value {
    let spec = t.spec.clone().unwrap_or_default();
    let tiers: Vec<_> = t
        .tiers
        .iter()
        .map(|u| json!({ "tier": u.tier, "rows": u.rows, "bytes": u.bytes }))
        .collect();
    let cache = t.cache.as_ref().map(|c| {
        json!({
            "hits": c.hits, "misses": c.misses, "hit_rate": hit_rate(c),
            "admissions": c.admissions, "evictions": c.evictions,
            "device_ms": c.device_ns as f64 / 1e6,
        })
    });
    json!({
        "name": spec.name, "dim": spec.dim, "rows": t.rows, "bytes": t.bytes,
        "tiers": tiers, "cache": cache,
    })
}

/// The plan and its moves: `{"plan": {..} | null, "migrations": [..]}`.
pub fn plan_json(status: &pb::StatusResponse) -> Value {
    let plan = status.plan.as_ref().map(|p| {
        json!({
            "id": p.id, "kind": p.kind, "state": p.state, "moves_total": p.moves_total,
            "moves_done": p.moves_done, "bytes_total": p.bytes_total,
            "bytes_done": p.bytes_done, "error": p.error,
            "started_unix_ms": p.started_unix_ms, "finished_unix_ms": p.finished_unix_ms,
        })
    });
    let moves: Vec<_> = status
        .migrations
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "slots": [m.slot_start, m.slot_end], "from": m.from, "to": m.to,
                "state": m.state, "rows_copied": m.rows_copied, "bytes_copied": m.bytes_copied,
                "rows_total": m.rows_total, "bytes_total": m.bytes_total,
                "bytes_per_s": m.bytes_per_s, "eta_s": m.eta_s, "error": m.error,
            })
        })
        .collect();
    json!({ "plan": plan, "migrations": moves })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc_3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_999), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599_000), "2026-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400_000), "2100-03-01T00:00:00Z");
    }

    fn node(state: &str, budget: u64) -> pb::NodeStatus {
        pb::NodeStatus {
            node: Some(pb::NodeInfo {
                id: "node-1".into(),
                state: state.into(),
                labels: [("zone", "z1"), ("rack", "r1"), ("host", "h1")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            }),
            memory_budget: budget,
            ..Default::default()
        }
    }

    #[test]
    fn unlimited_budgets_are_null_and_labels_sorted() {
        assert_eq!(memory_budget(&node("up", u64::MAX)), None);
        assert_eq!(memory_budget(&node("up", 0)), None);
        assert_eq!(memory_budget(&node("up", 1 << 30)), Some(1 << 30));
        let n = node("up", u64::MAX);
        let keys: Vec<&str> = sorted_labels(n.node.as_ref().expect("node"))
            .keys()
            .copied()
            .collect();
        assert_eq!(keys, ["host", "rack", "zone"]);
        let status = pb::StatusResponse {
            nodes: vec![n],
            ..Default::default()
        };
        let v = status_json(&status, 0);
        assert!(v["nodes"][0]["memory_budget"].is_null(), "{v}");
        assert!(v["last_checkpoint"].is_null(), "{v}");
        assert_eq!(v["nodes"][0]["labels"]["zone"], "z1");
    }

    #[test]
    fn checkpoint_ages_are_taken_at_the_callers_clock() {
        let mut n = node("up", 0);
        n.last_checkpoint = Some(pb::CheckpointInfo {
            id: "ckpt-1".into(),
            created_unix_ms: 1_000,
            ..Default::default()
        });
        n.node.as_mut().expect("node").id = "a".into();
        let status = pb::StatusResponse {
            nodes: vec![n.clone()],
            shards: vec![pb::ShardInfo {
                id: 0,
                primary: "a".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = status_json(&status, 61_000);
        assert_eq!(v["nodes"][0]["checkpoint_age_ms"], 60_000);
        assert_eq!(v["nodes"][0]["last_checkpoint"], "ckpt-1");
        assert_eq!(v["shards"][0]["checkpoint_age_ms"], 60_000);
        assert_eq!(
            checkpoint_age_ms(&n, 500),
            Some(0),
            "a clock behind reads 0"
        );
    }
}
