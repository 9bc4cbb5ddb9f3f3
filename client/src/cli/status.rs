//! `strata status` (nodes, tables, dense tensors, shards, the plan) and `strata status
//! --traffic`.

use strata_client::v1 as pb;
use strata_client::Client;
use strata_proto::status_json::{
    checkpoint_age_ms, hit_rate, memory_budget, rfc3339, sorted_labels, status_json,
};

use super::identity::{build_text, gpu_text, mixed_warning, processes};
use super::output::{print_json, OutputArgs};
use super::units;

/// A node's state for people: `up`, `down`, `draining`, `down,draining`.
fn node_state(n: &pb::NodeStatus) -> String {
    let state = n.node.as_ref().map_or("unknown", |x| x.state.as_str());
    if n.draining {
        if state == "up" {
            "draining".into()
        } else {
            format!("{state},draining")
        }
    } else {
        state.into()
    }
}

/// Prints the cluster at a glance.
pub async fn status(client: &Client, out: OutputArgs) -> anyhow::Result<()> {
    let s = client.status().await?;
    let now = units::now_ms();
    if out.json() {
        print_json(&status_json(&s, now));
        return Ok(());
    }
    let last = if s.last_checkpoint.is_empty() {
        "none"
    } else {
        &s.last_checkpoint
    };
    println!(
        "epoch {}   leader {}   last checkpoint {last}",
        s.epoch, s.leader
    );
    print_nodes(&s, now);
    print_versions(&s, now, out.wide());
    print_tables(&s);
    println!("\nSHARDS ({})", s.shards.len());
    println!(
        "  {:>5}  {:<14} {:<12} {:>12} {:>12}",
        "SHARD", "SLOTS", "PRIMARY", "ROWS", "SIZE"
    );
    for sh in &s.shards {
        println!(
            "  {:>5}  {:<14} {:<12} {:>12} {:>12}",
            sh.id,
            format!("[{}, {})", sh.slot_start, sh.slot_end),
            sh.primary,
            sh.rows,
            units::bytes(sh.bytes)
        );
    }
    println!("\nMIGRATIONS");
    super::reshard::print_plan(&s);
    Ok(())
}

/// The NODES section: one line per node, sorted by zone, rack and id, with headers.
fn print_nodes(s: &pb::StatusResponse, now: u64) {
    let place = |n: &pb::NodeStatus, key: &str| {
        n.node
            .as_ref()
            .and_then(|x| x.labels.get(key).cloned())
            .unwrap_or_else(|| "-".into())
    };
    let mut nodes: Vec<&pb::NodeStatus> = s.nodes.iter().collect();
    nodes.sort_by_key(|n| {
        let id = n.node.as_ref().map(|x| x.id.clone()).unwrap_or_default();
        (place(n, "zone"), place(n, "rack"), id)
    });
    println!("\nNODES ({})", nodes.len());
    println!(
        "  {:<6} {:<6} {:<10} {:<22} {:<14} {:>6} {:>12} {:>23} {:>9} {:>9} {:>10}  LABELS",
        "ZONE",
        "RACK",
        "NODE",
        "ADDRESS",
        "STATE",
        "SHARDS",
        "ROWS",
        "MEMORY USED/BUDGET",
        "PULL/s",
        "PUSH/s",
        "CHECKPOINT"
    );
    for n in nodes {
        let node = n.node.clone().unwrap_or_default();
        let labels: Vec<String> = sorted_labels(&node)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let memory = format!(
            "{} / {}",
            units::bytes(n.bytes),
            memory_budget(n).map_or_else(|| "unlimited".to_string(), units::bytes)
        );
        let checkpoint = checkpoint_age_ms(n, now)
            .map(|ms| units::ago(now.saturating_sub(ms), now))
            .unwrap_or_else(|| "never".into());
        println!(
            "  {:<6} {:<6} {:<10} {:<22} {:<14} {:>6} {:>12} {:>23} {:>9.0} {:>9.0} {:>10}  {}",
            place(n, "zone"),
            place(n, "rack"),
            node.id,
            node.address,
            node_state(n),
            n.shards,
            n.rows,
            memory,
            n.pull_rows_per_s,
            n.push_rows_per_s,
            checkpoint,
            if labels.is_empty() {
                "-".to_string()
            } else {
                labels.join(",")
            }
        );
    }
}

/// The VERSIONS section: what each process runs (the coordinator first), then a warning
/// when they run mixed versions; `wide` adds each process's start time, data dir and
/// effective configuration (flags after defaults, secrets redacted).
fn print_versions(s: &pb::StatusResponse, now: u64, wide: bool) {
    println!("\nVERSIONS");
    println!(
        "  {:<12} {:<36} {:<13} {:>10}  GPU",
        "PROCESS", "VERSION COMMIT PROFILE", "CONFIG", "STARTED"
    );
    for (name, identity) in processes(s) {
        let started = identity
            .filter(|i| i.started_unix_ms > 0)
            .map_or_else(|| "-".into(), |i| units::ago(i.started_unix_ms, now));
        let hash = identity.map_or("-", |i| i.config_hash.as_str());
        println!(
            "  {:<12} {:<36} {:<13} {:>10}  {}",
            name,
            build_text(identity),
            if hash.is_empty() { "-" } else { hash },
            started,
            gpu_text(identity)
        );
        if let Some(i) = identity.filter(|_| wide) {
            if i.started_unix_ms > 0 {
                println!("  {:<12} started {}", "", rfc3339(i.started_unix_ms));
            }
            if !i.data_dir.is_empty() {
                println!("  {:<12} data dir {}", "", i.data_dir);
            }
            let flags: Vec<String> = i
                .config
                .iter()
                .map(|e| format!("--{}={}", e.name, e.value))
                .collect();
            if !flags.is_empty() {
                println!("  {:<12} config {}", "", flags.join(" "));
            }
        }
    }
    if let Some(warning) = mixed_warning(s) {
        println!("  {warning}");
    }
}

/// The TABLES and DENSE sections, with headers and sizes in binary units.
fn print_tables(s: &pb::StatusResponse) {
    println!("\nTABLES ({})", s.tables.len());
    println!(
        "  {:<24} {:>5} {:>10} {:>6} {:>12} {:>12}",
        "TABLE", "DIM", "OPTIMIZER", "TIER", "ROWS", "SIZE"
    );
    for t in &s.tables {
        let spec = t.spec.clone().unwrap_or_default();
        println!(
            "  {:<24} {:>5} {:>10} {:>6} {:>12} {:>12}",
            spec.name,
            spec.dim,
            spec.optimizer.as_ref().map_or("", |o| o.kind.as_str()),
            spec.tier,
            t.rows,
            units::bytes(t.bytes)
        );
        if t.tiers.len() > 1 {
            for u in &t.tiers {
                println!(
                    "  {:<24} {:>5} {:>10} {:>6} {:>12} {:>12}",
                    "",
                    "",
                    "",
                    u.tier,
                    u.rows,
                    units::bytes(u.bytes)
                );
            }
        }
        if let Some(c) = &t.cache {
            println!(
                "    cache: hit rate {:.1}% ({} hits, {} misses)  admissions {}  evictions {}  device time {:.1} ms",
                100.0 * hit_rate(c),
                c.hits,
                c.misses,
                c.admissions,
                c.evictions,
                c.device_ns as f64 / 1e6
            );
        }
    }
    if s.dense.is_empty() {
        return;
    }
    println!("\nDENSE ({})", s.dense.len());
    println!("  {:<24} {:<16} {:>10}", "DENSE", "SHAPE", "OPTIMIZER");
    for d in &s.dense {
        let spec = d.spec.clone().unwrap_or_default();
        let dims: Vec<String> = spec.shape.iter().map(u32::to_string).collect();
        println!(
            "  {:<24} {:<16} {:>10}",
            spec.name,
            dims.join("x"),
            spec.optimizer.as_ref().map_or("", |o| o.kind.as_str())
        );
    }
}

/// `strata status --traffic`: bytes per second per table, shard, node and client location
/// over the nodes' traffic windows.
pub async fn traffic(client: &Client, out: OutputArgs) -> anyhow::Result<()> {
    let s = client.status().await?;
    if out.json() {
        let rows: Vec<_> = s
            .traffic
            .iter()
            .map(|t| {
                serde_json::json!({
                    "table": t.table, "shard": t.shard, "slots": [t.slot_start, t.slot_end],
                    "node": t.node, "location": t.location,
                    "pull_bytes_per_s": t.pull_bytes_per_s, "push_bytes_per_s": t.push_bytes_per_s,
                })
            })
            .collect();
        print_json(&serde_json::json!({ "traffic": rows }));
        return Ok(());
    }
    println!(
        "{:<24} {:>5} {:<13} {:<10} {:<28} {:>14} {:>14}",
        "TABLE", "SHARD", "SLOTS", "NODE", "LOCATION", "PULL B/s", "PUSH B/s"
    );
    for t in &s.traffic {
        let location = if t.location.is_empty() {
            "(unlabelled)"
        } else {
            &t.location
        };
        println!(
            "{:<24} {:>5} {:<13} {:<10} {:<28} {:>14.0} {:>14.0}",
            t.table,
            t.shard,
            format!("[{}, {})", t.slot_start, t.slot_end),
            t.node,
            location,
            t.pull_bytes_per_s,
            t.push_bytes_per_s
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(state: &str, draining: bool, budget: u64) -> pb::NodeStatus {
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
            draining,
            memory_budget: budget,
            ..Default::default()
        }
    }

    #[test]
    fn draining_and_down_nodes_are_marked() {
        assert_eq!(node_state(&node("up", false, 0)), "up");
        assert_eq!(node_state(&node("up", true, 0)), "draining");
        assert_eq!(node_state(&node("down", false, 0)), "down");
        assert_eq!(node_state(&node("down", true, 0)), "down,draining");
    }
}
