//! Command-line parsing and dispatch.

mod data;
mod ops;
mod reshard;
mod table;

use clap::{Parser, Subcommand};
use strata_client::{Client, ClientOptions};

/// strata: operate and inspect a strata cluster.
#[derive(Parser)]
#[command(name = "strata", version, about, long_about = None)]
pub struct Cli {
    /// Coordinator address(es), comma-separated.
    #[arg(
        long,
        global = true,
        env = "STRATA_COORDINATOR",
        default_value = "127.0.0.1:7070"
    )]
    coordinator: String,
    /// Where this client runs, as key=value pairs (e.g. zone=z1,rack=r1): sent with pulls
    /// and pushes so shard servers count traffic by location.
    #[arg(long, global = true, env = "STRATA_LABELS")]
    labels: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The cluster at a glance: nodes, shards, tables, rows and bytes.
    Status {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Print data-path traffic per table, shard, node and client location instead.
        #[arg(long)]
        traffic: bool,
    },
    /// Create, list and drop tables.
    #[command(subcommand)]
    Table(table::TableCommand),
    /// Create, pull, push and drop dense tensors.
    #[command(subcommand)]
    Dense(table::DenseCommand),
    /// Pull rows (missing rows are created), for debugging.
    Pull(data::PullArgs),
    /// Push gradients, for debugging. Exit status 0 means acknowledged.
    Push(data::PushArgs),
    /// Create, list and restore checkpoints.
    #[command(subcommand)]
    Checkpoint(ops::CheckpointCommand),
    /// Resize the shard count while serving (live migration).
    #[command(subcommand)]
    Shards(reshard::ShardsCommand),
    /// Plan (and with --apply start) moves that even out bytes per memory budget.
    Rebalance(reshard::RebalanceArgs),
    /// Drain a node: move all its shards away.
    #[command(subcommand)]
    Node(reshard::NodeCommand),
    /// Follow or cancel the running plan.
    #[command(subcommand)]
    Migration(reshard::MigrationCommand),
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let options = ClientOptions { labels: cli.labels };
    let client = Client::connect_with(&cli.coordinator, options).await?;
    match cli.command {
        Command::Status {
            json,
            traffic: true,
        } => ops::traffic(&client, json).await,
        Command::Status { json, .. } => ops::status(&client, json).await,
        Command::Table(cmd) => table::run_table(&client, cmd).await,
        Command::Dense(cmd) => table::run_dense(&client, cmd).await,
        Command::Pull(args) => data::pull(&client, args).await,
        Command::Push(args) => data::push(&client, args).await,
        Command::Checkpoint(cmd) => ops::checkpoint(&client, cmd).await,
        Command::Shards(cmd) => reshard::shards(&client, cmd).await,
        Command::Rebalance(args) => reshard::rebalance(&client, args).await,
        Command::Node(cmd) => reshard::node(&client, cmd).await,
        Command::Migration(cmd) => reshard::migration(&client, cmd).await,
    }
}

/// Parses a list of numbers separated by commas or whitespace.
fn parse_list<T: std::str::FromStr>(what: &str, text: &str) -> anyhow::Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    Ok(strata_client::numbers::parse_list(what, text)?)
}
