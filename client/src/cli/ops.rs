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
    println!("\nNODES");
    for n in &s.nodes {
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
            "  {:<10} {:<22} {:<5} shards {:>3}  rows {:>12}  bytes {:>14}  checkpoint {:>8}  {}",
            node.id,
            node.address,
            node.state,
            n.shards,
            n.rows,
            n.bytes,
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

/// Hits over lookups of a caching tier (0 before the first lookup).
fn hit_rate(c: &strata_proto::v1::CacheUsage) -> f64 {
    let lookups = c.hits.saturating_add(c.misses);
    if lookups == 0 {
        0.0
    } else {
        c.hits as f64 / lookups as f64
    }
}
