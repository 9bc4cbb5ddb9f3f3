//! `strata status` and `strata checkpoint ...`.

use clap::Subcommand;
use strata_client::v1 as pb;
use strata_client::Client;

/// Checkpoint commands.
#[derive(Subcommand)]
pub enum CheckpointCommand {
    /// Take a consistent checkpoint of every table and dense tensor.
    Create {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List checkpoints, newest first, with their verification state.
    List {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Replace all tables and dense tensors with a checkpoint.
    Restore {
        /// Checkpoint id (see `strata checkpoint list`).
        id: String,
    },
}

fn checkpoint_json(c: &pb::CheckpointInfo) -> serde_json::Value {
    serde_json::json!({
        "id": c.id, "created_unix_ms": c.created_unix_ms, "bytes": c.bytes,
        "tables": c.tables, "rows": c.rows, "state": c.state,
    })
}

/// Runs a checkpoint command.
pub async fn checkpoint(client: &Client, cmd: CheckpointCommand) -> anyhow::Result<()> {
    match cmd {
        CheckpointCommand::Create { json } => {
            let c = client.checkpoint().await?;
            if json {
                println!("{}", checkpoint_json(&c));
                return Ok(());
            }
            println!(
                "checkpoint {} written: {} tables, {} rows, {} bytes",
                c.id, c.tables, c.rows, c.bytes
            );
        }
        CheckpointCommand::List { json } => {
            let list = client.list_checkpoints().await?;
            if json {
                let all: Vec<_> = list.iter().map(checkpoint_json).collect();
                println!("{}", serde_json::json!({ "checkpoints": all }));
            } else {
                println!(
                    "{:<20} {:>15} {:>8} {:>12} {:>14}  STATE",
                    "ID", "CREATED_MS", "TABLES", "ROWS", "BYTES"
                );
                for c in &list {
                    println!(
                        "{:<20} {:>15} {:>8} {:>12} {:>14}  {}",
                        c.id, c.created_unix_ms, c.tables, c.rows, c.bytes, c.state
                    );
                }
            }
        }
        CheckpointCommand::Restore { id } => {
            let c = client.restore(&id).await?;
            println!(
                "restored checkpoint {}: {} tables, {} rows",
                c.id, c.tables, c.rows
            );
        }
    }
    Ok(())
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Age in ms of a node's newest checkpoint, if it has one.
fn checkpoint_age_ms(n: &pb::NodeStatus, now: u64) -> Option<u64> {
    n.last_checkpoint
        .as_ref()
        .filter(|c| c.created_unix_ms > 0)
        .map(|c| now.saturating_sub(c.created_unix_ms))
}

/// Prints the cluster at a glance.
pub async fn status(client: &Client, json: bool) -> anyhow::Result<()> {
    let s = client.status().await?;
    let now = now_ms();
    let node_age = |id: &str| {
        s.nodes
            .iter()
            .find(|n| n.node.as_ref().is_some_and(|x| x.id == id))
            .and_then(|n| checkpoint_age_ms(n, now))
    };
    if json {
        let nodes: Vec<_> = s
            .nodes
            .iter()
            .map(|n| {
                let node = n.node.clone().unwrap_or_default();
                serde_json::json!({
                    "id": node.id, "address": node.address, "labels": node.labels,
                    "state": node.state, "shards": n.shards, "rows": n.rows, "bytes": n.bytes,
                    "memory_budget": n.memory_budget, "applied_epoch": n.applied_epoch,
                    "last_heartbeat_ms_ago": n.last_heartbeat_ms_ago, "draining": n.draining,
                    "pull_rows_per_s": n.pull_rows_per_s, "push_rows_per_s": n.push_rows_per_s,
                    "last_checkpoint": n.last_checkpoint.as_ref().map(|c| c.id.clone()),
                    "checkpoint_age_ms": checkpoint_age_ms(n, now),
                })
            })
            .collect();
        let tables: Vec<_> = s
            .tables
            .iter()
            .map(|t| {
                let spec = t.spec.clone().unwrap_or_default();
                let tiers: Vec<_> = t
                    .tiers
                    .iter()
                    .map(
                        |u| serde_json::json!({ "tier": u.tier, "rows": u.rows, "bytes": u.bytes }),
                    )
                    .collect();
                let cache = t.cache.as_ref().map(|c| {
                    serde_json::json!({
                        "hits": c.hits, "misses": c.misses, "hit_rate": hit_rate(c),
                        "admissions": c.admissions, "evictions": c.evictions,
                        "device_ms": c.device_ns as f64 / 1e6,
                    })
                });
                serde_json::json!({
                    "name": spec.name, "dim": spec.dim, "rows": t.rows, "bytes": t.bytes,
                    "tiers": tiers, "cache": cache,
                })
            })
            .collect();
        let shards: Vec<_> = s
            .shards
            .iter()
            .map(|sh| {
                serde_json::json!({
                    "id": sh.id, "slots": [sh.slot_start, sh.slot_end],
                    "primary": sh.primary, "replicas": sh.replicas,
                    "rows": sh.rows, "bytes": sh.bytes,
                    "checkpoint_age_ms": node_age(&sh.primary),
                })
            })
            .collect();
        let migrations = super::reshard::plan_json(&s);
        let out = serde_json::json!({
            "epoch": s.epoch, "leader": s.leader, "nodes": nodes, "tables": tables,
            "shards": shards, "last_checkpoint": s.last_checkpoint,
            "plan": migrations["plan"], "migrations": migrations["migrations"],
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "epoch {}   leader {}   last checkpoint {}",
        s.epoch,
        s.leader,
        if s.last_checkpoint.is_empty() {
            "none"
        } else {
            &s.last_checkpoint
        }
    );
    println!("\nNODES (by zone and rack)");
    let mut nodes: Vec<_> = s.nodes.iter().collect();
    let place = |n: &&strata_proto::v1::NodeStatus, key: &str| {
        n.node
            .as_ref()
            .and_then(|x| x.labels.get(key).cloned())
            .unwrap_or_else(|| "-".into())
    };
    nodes.sort_by_key(|n| {
        let id = n.node.as_ref().map(|x| x.id.clone()).unwrap_or_default();
        (place(n, "zone"), place(n, "rack"), id)
    });
    let mut group = None;
    for n in nodes {
        let here = (place(&n, "zone"), place(&n, "rack"));
        if group.as_ref() != Some(&here) {
            println!("  zone {}  rack {}", here.0, here.1);
            group = Some(here);
        }
        let node = n.node.clone().unwrap_or_default();
        let labels: Vec<String> = node
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let age = checkpoint_age_ms(n, now)
            .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
            .unwrap_or_else(|| "never".into());
        println!(
            "    {:<10} {:<22} {:<5} shards {:>3}  rows {:>12}  bytes {:>14}  pull {:>9.0}/s  push {:>9.0}/s  checkpoint {:>8}  {}",
            node.id,
            node.address,
            node.state,
            n.shards,
            n.rows,
            n.bytes,
            n.pull_rows_per_s,
            n.push_rows_per_s,
            age,
            labels.join(",")
        );
    }
    println!("\nTABLES");
    for t in &s.tables {
        let spec = t.spec.clone().unwrap_or_default();
        println!(
            "  {:<24} dim {:>5}  rows {:>12}  bytes {:>14}",
            spec.name, spec.dim, t.rows, t.bytes
        );
        if t.tiers.len() > 1 {
            for u in &t.tiers {
                println!(
                    "    {:<22} {:>11}  rows {:>12}  bytes {:>14}",
                    "", u.tier, u.rows, u.bytes
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
    println!("\nSHARDS {}", s.shards.len());
    for sh in &s.shards {
        println!(
            "  {:>4}  slots [{:>5}, {:>5})  primary {:<10} rows {:>12}  bytes {:>14}",
            sh.id, sh.slot_start, sh.slot_end, sh.primary, sh.rows, sh.bytes
        );
    }
    println!("\nMIGRATIONS");
    super::reshard::print_plan(&s);
    Ok(())
}

/// `strata status --traffic`: bytes per second per table, shard, node and client location
/// over the nodes' traffic windows.
pub async fn traffic(client: &Client, json: bool) -> anyhow::Result<()> {
    let s = client.status().await?;
    if json {
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
        println!("{}", serde_json::json!({ "traffic": rows }));
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

/// Hits over lookups of a caching tier (0 before the first lookup).
fn hit_rate(c: &strata_proto::v1::CacheUsage) -> f64 {
    let lookups = c.hits.saturating_add(c.misses);
    if lookups == 0 {
        0.0
    } else {
        c.hits as f64 / lookups as f64
    }
}
