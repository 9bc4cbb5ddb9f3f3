//! Command-line parsing and dispatch.
//!
//! Modules, one concern each: `status`, `table`, `data`, `checkpoint`, `reshard`,
//! `version`, `certs` (the commands); `identity` (what runs, as status and version show it);
//! `output`
//! (`-o text|json`); `confirm` (`[y/N]` and `--yes`); `exit` (exit statuses, mapped in one
//! place); `units` (sizes and ages for people).

mod certs;
mod checkpoint;
mod confirm;
mod data;
mod exit;
mod identity;
mod output;
mod reshard;
mod status;
mod table;
mod units;
mod version;

use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use strata_client::numbers::parse_duration;
use strata_client::tls_args::TlsArgs;
use strata_client::{Client, ClientOptions};

pub use self::exit::Exit;
use self::exit::EXIT_STATUSES;
use self::output::OutputArgs;

/// The examples and exit statuses under `strata --help`.
const AFTER_HELP: &str = "\
Examples:
  strata-server dev &                          # a one-process cluster on 127.0.0.1:7070
  strata table create clicks --dim 8 --optimizer adagrad --lr 0.05
  strata pull --table clicks --ids 1,2,3 -o json
  strata push --table clicks --ids 1 --grads -0.5,0.25,0,0,0,0,0,0.1
  strata status
  strata --coordinator 10.0.0.5:7070 --connect-timeout 1s status -o json
  strata certs init --dir certs && strata certs issue --dir certs --name ops-1 --role operator
  strata --tls-ca certs/ca.pem --tls-cert certs/ops-1.pem --tls-key certs/ops-1.key status
  strata completion bash > /etc/bash_completion.d/strata
";

/// Operate and inspect a strata cluster: tables, rows, dense tensors, shards, checkpoints.
#[derive(Parser)]
#[command(
    name = "strata",
    version = strata_proto::version_text!(),
    about = "Operate and inspect a strata cluster: tables, rows, dense tensors, shards, checkpoints.",
    after_help = format!("{AFTER_HELP}\n{EXIT_STATUSES}"),
)]
pub struct Cli {
    /// Coordinator address(es) as host:port, comma-separated.
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
    /// Give up connecting to the coordinator after this long (e.g. 500ms, 3s).
    #[arg(
        long,
        global = true,
        env = "STRATA_CONNECT_TIMEOUT",
        default_value = "3s",
        value_parser = parse_duration
    )]
    connect_timeout: Duration,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The cluster at a glance: nodes, shards, tables, rows and bytes.
    #[command(
        after_help = "Examples:\n  strata status\n  strata status -o json | jq '.nodes[] | {id, state}'\n  strata status --traffic"
    )]
    Status {
        #[command(flatten)]
        out: OutputArgs,
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
    #[command(
        after_help = "Examples:\n  strata pull --table clicks --ids 1,2,3\n  strata pull --table clicks --ids 1,2,3 -o json"
    )]
    Pull(data::PullArgs),
    /// Push gradients, for debugging. Exit status 0 means acknowledged.
    #[command(after_help = data::PUSH_EXAMPLES)]
    Push(data::PushArgs),
    /// Create, list and restore checkpoints.
    #[command(subcommand)]
    Checkpoint(checkpoint::CheckpointCommand),
    /// Resize the shard count while serving (live migration).
    #[command(subcommand)]
    Shards(reshard::ShardsCommand),
    /// Plan (and with --apply start) moves that even out bytes per memory budget.
    #[command(
        after_help = "Examples:\n  strata rebalance                                  # dry run: prints the plan\n  strata rebalance --apply --yes\n  strata rebalance --objective topology -o json"
    )]
    Rebalance(reshard::RebalanceArgs),
    /// Drain a node: move all its shards away.
    #[command(subcommand)]
    Node(reshard::NodeCommand),
    /// Follow or cancel the running plan.
    #[command(subcommand)]
    Migration(reshard::MigrationCommand),
    /// The CLI's version and what the cluster runs: each node's and the coordinator's
    /// version, commit and build profile.
    #[command(
        after_help = "Examples:\n  strata version\n  strata version -o json | jq '.nodes[] | {id, version, commit}'"
    )]
    Version {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Make development certificates: a CA, and certificates carrying identity and role.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  strata completion bash > ~/.local/share/bash-completion/completions/strata\n  strata completion zsh > \"${fpath[1]}/_strata\"\n  strata completion fish > ~/.config/fish/completions/strata.fish"
    )]
    Completion {
        /// The shell.
        shell: Shell,
    },
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Completion { shell } = cli.command {
        let mut command = Cli::command();
        clap_complete::generate(shell, &mut command, "strata", &mut std::io::stdout());
        return Ok(());
    }
    if let Command::Certs(cmd) = cli.command {
        return certs::certs(cmd);
    }
    let options = ClientOptions {
        labels: cli.labels,
        connect_timeout: cli.connect_timeout,
        tls: cli.tls.files(),
    };
    // Lazy until awaited: the data commands read their numbers first, so a typo is
    // reported as such even when no coordinator is reachable.
    let connect = Client::connect_with(&cli.coordinator, options);
    let command = match cli.command {
        Command::Pull(args) => return data::pull(connect, args).await,
        Command::Push(args) => return data::push(connect, args).await,
        Command::Version { out } => return version::version(connect, out).await,
        other => other,
    };
    let client = connect.await?;
    match command {
        Command::Status { out, traffic: true } => status::traffic(&client, out).await,
        Command::Status { out, .. } => status::status(&client, out).await,
        Command::Table(cmd) => table::run_table(&client, cmd).await,
        Command::Dense(cmd) => table::run_dense(&client, cmd).await,
        Command::Checkpoint(cmd) => checkpoint::checkpoint(&client, cmd).await,
        Command::Shards(cmd) => reshard::shards(&client, cmd).await,
        Command::Rebalance(args) => reshard::rebalance(&client, args).await,
        Command::Node(cmd) => reshard::node(&client, cmd).await,
        Command::Migration(cmd) => reshard::migration(&client, cmd).await,
        Command::Pull(_)
        | Command::Push(_)
        | Command::Version { .. }
        | Command::Completion { .. }
        | Command::Certs(_) => Ok(()),
    }
}

/// Parses a list of numbers separated by commas or whitespace.
fn parse_list<T: std::str::FromStr>(what: &str, text: &str) -> anyhow::Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    Ok(strata_client::numbers::parse_list(what, text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
