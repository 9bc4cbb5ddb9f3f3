//! `strata checkpoint create|list|restore`.

use clap::Subcommand;
use strata_client::v1 as pb;
use strata_client::Client;

use super::confirm::{confirm, YesArgs};
use super::output::{print_json, OutputArgs};
use super::units;

/// Checkpoint commands.
#[derive(Subcommand)]
pub enum CheckpointCommand {
    /// Take a consistent checkpoint of every table and dense tensor.
    #[command(
        after_help = "Examples:\n  strata checkpoint create\n  strata checkpoint create -o json | jq -r .id"
    )]
    Create {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// List checkpoints, newest first, with their age and verification state.
    #[command(
        after_help = "Examples:\n  strata checkpoint list\n  strata checkpoint list -o json | jq -r '.checkpoints[0].id'"
    )]
    List {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Replace all tables and dense tensors with a checkpoint (asks first; --yes to skip).
    #[command(
        after_help = "Examples:\n  strata checkpoint restore cluster-00000001          # asks [y/N] on a terminal\n  strata checkpoint restore cluster-00000001 --yes    # scripts"
    )]
    Restore {
        /// Checkpoint id (see `strata checkpoint list`).
        id: String,
        #[command(flatten)]
        yes: YesArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
}

fn checkpoint_json(c: &pb::CheckpointInfo, now: u64) -> serde_json::Value {
    serde_json::json!({
        "id": c.id, "created_unix_ms": c.created_unix_ms,
        "age_ms": now.saturating_sub(c.created_unix_ms), "bytes": c.bytes,
        "tables": c.tables, "rows": c.rows, "state": c.state,
    })
}

/// Runs a checkpoint command.
pub async fn checkpoint(client: &Client, cmd: CheckpointCommand) -> anyhow::Result<()> {
    let now = units::now_ms();
    match cmd {
        CheckpointCommand::Create { out } => {
            let c = client.checkpoint().await?;
            if out.json() {
                print_json(&checkpoint_json(&c, now));
                return Ok(());
            }
            println!(
                "checkpoint {} written: {} tables, {} rows, {}",
                c.id,
                c.tables,
                c.rows,
                units::bytes(c.bytes)
            );
        }
        CheckpointCommand::List { out } => {
            let list = client.list_checkpoints().await?;
            if out.json() {
                let all: Vec<_> = list.iter().map(|c| checkpoint_json(c, now)).collect();
                print_json(&serde_json::json!({ "checkpoints": all }));
                return Ok(());
            }
            println!(
                "{:<20} {:>10} {:>8} {:>12} {:>12}  STATE",
                "ID", "CREATED", "TABLES", "ROWS", "SIZE"
            );
            for c in &list {
                println!(
                    "{:<20} {:>10} {:>8} {:>12} {:>12}  {}",
                    c.id,
                    units::ago(c.created_unix_ms, now),
                    c.tables,
                    c.rows,
                    units::bytes(c.bytes),
                    c.state
                );
            }
        }
        CheckpointCommand::Restore { id, yes, out } => {
            confirm(
                yes.yes,
                &format!("restore checkpoint {id}, replacing every table and dense tensor"),
            )?;
            let c = client.restore(&id).await?;
            if out.json() {
                print_json(&serde_json::json!({ "restored": checkpoint_json(&c, now) }));
                return Ok(());
            }
            println!(
                "restored checkpoint {}: {} tables, {} rows",
                c.id, c.tables, c.rows
            );
        }
    }
    Ok(())
}
