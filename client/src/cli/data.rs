//! `strata pull` and `strata push`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use strata_client::Client;

use super::parse_list;

/// Arguments of `strata pull`.
#[derive(Args)]
pub struct PullArgs {
    /// Table name.
    #[arg(long)]
    table: String,
    /// Ids, comma-separated.
    #[arg(long)]
    ids: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Arguments of `strata push`.
#[derive(Args)]
pub struct PushArgs {
    /// Table name.
    #[arg(long)]
    table: String,
    /// Ids, comma-separated.
    #[arg(long)]
    ids: String,
    /// Gradients: ids × dim numbers, comma-separated, row-major (may start with `-`).
    #[arg(
        long,
        allow_hyphen_values = true,
        conflicts_with = "grads_file",
        required_unless_present = "grads_file"
    )]
    grads: Option<String>,
    /// File with the gradients (numbers separated by commas or whitespace).
    #[arg(long)]
    grads_file: Option<PathBuf>,
}

/// Pulls rows and prints them.
pub async fn pull(client: &Client, args: PullArgs) -> anyhow::Result<()> {
    let ids: Vec<u64> = parse_list("--ids", &args.ids)?;
    if ids.is_empty() {
        bail!("--ids needs at least one id");
    }
    let values = client.pull(&args.table, &ids).await?;
    let dim = values.len() / ids.len();
    let rows: Vec<&[f32]> = values.chunks(dim.max(1)).collect();
    if args.json {
        let out = serde_json::json!({
            "table": args.table,
            "dim": dim,
            "ids": ids,
            "values": rows,
        });
        println!("{out}");
    } else {
        for (id, row) in ids.iter().zip(rows) {
            let row: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
            println!("{id}\t{}", row.join(","));
        }
    }
    Ok(())
}

/// Pushes gradients and reports how many rows were applied.
pub async fn push(client: &Client, args: PushArgs) -> anyhow::Result<()> {
    let ids: Vec<u64> = parse_list("--ids", &args.ids)?;
    if ids.is_empty() {
        bail!("--ids needs at least one id");
    }
    let text = match (&args.grads, &args.grads_file) {
        (Some(g), _) => g.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading --grads-file {}", path.display()))?,
        (None, None) => bail!("give --grads or --grads-file"),
    };
    let grads: Vec<f32> = parse_list("--grads", &text)?;
    if grads.is_empty() || !grads.len().is_multiple_of(ids.len()) {
        bail!(
            "{} gradient values for {} ids: need ids × dim values, row-major",
            grads.len(),
            ids.len()
        );
    }
    let applied = client.push(&args.table, &ids, &grads).await?;
    println!("applied {applied} rows to {}", args.table);
    Ok(())
}
