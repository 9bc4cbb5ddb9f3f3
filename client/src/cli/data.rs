//! `strata pull` and `strata push`.

use std::future::Future;
use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use strata_client::{Client, ClientError};

use super::exit::CliError;
use super::output::{print_json, OutputArgs};
use super::parse_list;

/// The examples under `strata push --help`.
pub const PUSH_EXAMPLES: &str = "\
Examples:
  strata push --table clicks --ids 1,2 --grads -0.5,0.25,1,-1       # dim 2: two rows
  strata push --table clicks --ids 1,2 --grads-file grads.txt       # numbers split by , or whitespace
  python make_grads.py | strata push --table clicks --ids 1,2 --grads-file -
  strata push --table clicks --ids 7 --grads -1,-1 -o json";

/// Arguments of `strata pull`.
#[derive(Args)]
pub struct PullArgs {
    /// Table name.
    #[arg(long)]
    table: String,
    /// Ids, comma-separated (e.g. 1,2,3).
    #[arg(long)]
    ids: String,
    #[command(flatten)]
    out: OutputArgs,
}

/// Arguments of `strata push`.
#[derive(Args)]
pub struct PushArgs {
    /// Table name.
    #[arg(long)]
    table: String,
    /// Ids, comma-separated (e.g. 1,2,3).
    #[arg(long)]
    ids: String,
    /// Gradients: ids × dim numbers, comma-separated, row-major (negative numbers welcome:
    /// `--grads -1,2`).
    #[arg(
        long,
        allow_hyphen_values = true,
        conflicts_with = "grads_file",
        required_unless_present = "grads_file"
    )]
    grads: Option<String>,
    /// File with the gradients (numbers separated by commas or whitespace); `-` reads stdin.
    #[arg(long, value_name = "PATH")]
    grads_file: Option<PathBuf>,
    #[command(flatten)]
    out: OutputArgs,
}

/// `--ids` as numbers: at least one, none empty.
fn ids(text: &str) -> anyhow::Result<Vec<u64>> {
    let ids: Vec<u64> = parse_list("--ids", text)?;
    if ids.is_empty() {
        return Err(
            CliError::Usage("--ids needs at least one id (e.g. --ids 1,2,3)".into()).into(),
        );
    }
    Ok(ids)
}

/// Pulls rows and prints them; `connect` is awaited once the ids are read.
pub async fn pull(
    connect: impl Future<Output = Result<Client, ClientError>>,
    args: PullArgs,
) -> anyhow::Result<()> {
    let ids = ids(&args.ids)?;
    let client = connect.await?;
    let values = client.pull(&args.table, &ids).await?;
    let dim = values.len() / ids.len();
    let rows: Vec<&[f32]> = values.chunks(dim.max(1)).collect();
    if args.out.json() {
        print_json(&serde_json::json!({
            "table": args.table,
            "dim": dim,
            "ids": ids,
            "values": rows,
        }));
    } else {
        for (id, row) in ids.iter().zip(rows) {
            let row: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
            println!("{id}\t{}", row.join(","));
        }
    }
    Ok(())
}

/// The gradients' text: `--grads`, or the file `--grads-file` names (`-`: stdin).
fn grads_text(args: &PushArgs) -> anyhow::Result<String> {
    match (&args.grads, &args.grads_file) {
        (Some(g), _) => Ok(g.clone()),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the gradients from stdin (--grads-file -)")?;
            Ok(text)
        }
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
            CliError::Usage(format!("cannot read --grads-file {}: {e}", path.display())).into()
        }),
        (None, None) => Err(CliError::Usage("give --grads or --grads-file".into()).into()),
    }
}

/// Refuses gradients that do not fill `ids` rows of the table's dim, saying so in the
/// user's terms (the server would only see a byte count). An unknown table is left to the
/// push, which names it.
async fn check_row_width(
    client: &Client,
    table: &str,
    ids: usize,
    values: usize,
) -> anyhow::Result<()> {
    let tables = client.list_tables().await?;
    let Some(dim) = tables
        .tables
        .iter()
        .filter_map(|t| t.spec.as_ref())
        .find(|spec| spec.name == table)
        .map(|spec| spec.dim as usize)
    else {
        return Ok(());
    };
    if ids.saturating_mul(dim) != values {
        return Err(CliError::Invalid(format!(
            "--grads holds {values} numbers but {ids} id(s) × dim {dim} of table {table} need {}",
            ids.saturating_mul(dim)
        ))
        .into());
    }
    Ok(())
}

/// Pushes gradients and reports how many rows were applied; `connect` is awaited once the
/// ids and gradients are read.
pub async fn push(
    connect: impl Future<Output = Result<Client, ClientError>>,
    args: PushArgs,
) -> anyhow::Result<()> {
    let ids = ids(&args.ids)?;
    let grads: Vec<f32> = parse_list("--grads", &grads_text(&args)?)?;
    if grads.is_empty() || !grads.len().is_multiple_of(ids.len()) {
        return Err(CliError::Usage(format!(
            "{} gradient values for {} ids: need ids × dim values, row-major",
            grads.len(),
            ids.len()
        ))
        .into());
    }
    let client = connect.await?;
    check_row_width(&client, &args.table, ids.len(), grads.len()).await?;
    let applied = client.push(&args.table, &ids, &grads).await?;
    if args.out.json() {
        print_json(&serde_json::json!({ "table": args.table, "applied": applied }));
    } else {
        println!("applied {applied} rows to {}", args.table);
    }
    Ok(())
}
