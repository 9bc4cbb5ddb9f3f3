//! `strata shards resize`, `strata rebalance`, `strata node drain`, `strata migration ...`:
//! print the plan, ask, start it, follow it with a progress bar.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strata_client::numbers::parse_size;
use strata_client::v1 as pb;
use strata_client::Client;
use strata_proto::status_json::plan_json;

use super::confirm::confirm;
use super::exit::CliError;
use super::output::{print_json, OutputArgs};

/// How a plan is run once confirmed.
#[derive(Args, Clone, Copy)]
pub struct RunArgs {
    /// Start without asking (needed when stdin is not a terminal, as in scripts).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Throttle of each move in bytes per second (0: unthrottled). Accepts 200M, 1G, ...
    #[arg(long, default_value = "0", value_parser = parse_size)]
    max_bytes_per_s: u64,
    /// Moves in flight at once (0: the coordinator's default, 2).
    #[arg(long, default_value_t = 0)]
    parallel: u32,
    /// Return once the plan started instead of following it to its end.
    #[arg(long)]
    no_wait: bool,
}

/// `strata shards ...`.
#[derive(Subcommand)]
pub enum ShardsCommand {
    /// Split or merge shards to `--count` while serving; moves only the rows that must move.
    #[command(
        after_help = "Examples:\n  strata shards resize --count 8                       # shows the plan, asks [y/N]\n  strata shards resize --count 8 --yes --max-bytes-per-s 200M\n  strata shards resize --count 8 --yes --no-wait"
    )]
    Resize {
        /// Shards after the resize.
        #[arg(long)]
        count: u32,
        #[command(flatten)]
        run: RunArgs,
    },
}

/// `strata node ...`.
#[derive(Subcommand)]
pub enum NodeCommand {
    /// Move every shard off NODE (it then receives none and can be stopped).
    #[command(
        after_help = "Examples:\n  strata node drain node-2              # shows the plan, asks [y/N]\n  strata node drain node-2 --yes --parallel 4"
    )]
    Drain {
        /// Node id (see `strata status`).
        node: String,
        #[command(flatten)]
        run: RunArgs,
    },
}

/// `strata migration ...`.
#[derive(Subcommand)]
pub enum MigrationCommand {
    /// The running (or last) plan and its moves.
    #[command(
        after_help = "Examples:\n  strata migration status\n  strata migration status -o json | jq .plan.state"
    )]
    Status {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Stop the running plan: moves in flight roll back, pending ones are dropped.
    #[command(after_help = "Examples:\n  strata migration cancel")]
    Cancel,
}

/// Arguments of `strata rebalance`.
#[derive(Args)]
pub struct RebalanceArgs {
    /// Start the plan (otherwise only print it).
    #[arg(long)]
    apply: bool,
    /// What the plan optimizes: `balance` (bytes per memory budget) or `topology` (shards
    /// nearer the clients that use them, from measured traffic; README: Topology).
    #[arg(long, default_value = "balance", value_parser = ["balance", "topology"])]
    objective: String,
    /// Topology objective: bound on max/mean of bytes held and of traffic served.
    #[arg(long)]
    max_imbalance: Option<f64>,
    /// Topology objective: a move must pay for its bytes within this time (e.g. 10m, 600s).
    #[arg(long, value_parser = parse_seconds)]
    payback: Option<f64>,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// Parses `600`, `600s`, `10m` or `1h` as seconds.
fn parse_seconds(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, scale) = match t.strip_suffix('h') {
        Some(n) => (n, 3600.0),
        None => match t.strip_suffix('m') {
            Some(n) => (n, 60.0),
            None => (t.strip_suffix('s').unwrap_or(t), 1.0),
        },
    };
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid time {text:?}: expected e.g. 600s, 10m, 1h"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("time {text:?} must be finite and not negative"));
    }
    Ok(n * scale)
}

/// Runs `strata shards ...`.
pub async fn shards(client: &Client, cmd: ShardsCommand) -> anyhow::Result<()> {
    let ShardsCommand::Resize { count, run } = cmd;
    let current = client.status().await?.shards.len();
    if usize::try_from(count).is_ok_and(|c| c == current) {
        return Err(CliError::NoOp(format!(
            "the cluster already has {current} shards: nothing to resize (no plan started, epoch unchanged)"
        ))
        .into());
    }
    let plan = client
        .resize_shards(pb::ResizeShardsRequest {
            count,
            dry_run: true,
            max_bytes_per_s: run.max_bytes_per_s,
            max_parallel: run.parallel,
        })
        .await?;
    print!("{}", plan.plan_text);
    if plan.plan_json.is_empty() {
        // A one-node cluster: nothing moves, the resize is a metadata change.
        confirm(run.yes, &format!("resize to {count} shards"))?;
        let done = client
            .resize_shards(pb::ResizeShardsRequest {
                count,
                dry_run: false,
                ..Default::default()
            })
            .await?;
        let epoch = done.map.map_or(0, |m| m.epoch);
        println!("resized to {count} shards at epoch {epoch}");
        return Ok(());
    }
    start(client, &plan.plan_json, run).await
}

/// Runs `strata rebalance [--apply]`.
pub async fn rebalance(client: &Client, args: RebalanceArgs) -> anyhow::Result<()> {
    let plan = client
        .plan_rebalance_with(pb::PlanRebalanceRequest {
            objective: args.objective.clone(),
            max_imbalance: args.max_imbalance,
            payback_s: args.payback,
            ..Default::default()
        })
        .await?;
    let json = args.out.json();
    if json {
        print_json(&rebalance_json(&args.objective, &plan)?);
    } else {
        print!("{}", plan.plan_text);
    }
    if !args.apply {
        if json {
            return Ok(());
        }
        println!("(dry run: add --apply to start it)");
        return Ok(());
    }
    start(client, &plan.plan_json, args.run).await
}

/// `rebalance --json`: the objective, the moves, the bytes to move and the predicted
/// figures (topology objective; `null` otherwise).
fn rebalance_json(
    objective: &str,
    plan: &pb::PlanRebalanceResponse,
) -> anyhow::Result<serde_json::Value> {
    let parsed: serde_json::Value =
        serde_json::from_str(&plan.plan_json).context("reading the plan")?;
    let moves: Vec<serde_json::Value> = parsed["moves"]
        .as_array()
        .map(|moves| {
            moves
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "slots": [m["slot_start"], m["slot_end"]],
                        "from": m["from"], "to": m["to"], "bytes": m["bytes"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let predicted: serde_json::Value = if plan.predicted_json.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&plan.predicted_json).context("reading the predicted figures")?
    };
    Ok(serde_json::json!({
        "objective": objective,
        "moves": moves,
        "bytes_to_move": parsed["bytes"],
        "predicted": predicted,
    }))
}

/// Runs `strata node ...`.
pub async fn node(client: &Client, cmd: NodeCommand) -> anyhow::Result<()> {
    let NodeCommand::Drain { node, run } = cmd;
    let plan = client.plan_rebalance(&node).await?;
    print!("{}", plan.plan_text);
    start(client, &plan.plan_json, run).await?;
    if !run.no_wait {
        println!("node {node} holds no shards now; it can be stopped");
    }
    Ok(())
}

/// Runs `strata migration ...`.
pub async fn migration(client: &Client, cmd: MigrationCommand) -> anyhow::Result<()> {
    match cmd {
        MigrationCommand::Status { out } => {
            let status = client.status().await?;
            if out.json() {
                print_json(&plan_json(&status));
            } else {
                print_plan(&status);
            }
        }
        MigrationCommand::Cancel => {
            let c = client.cancel_plan().await?;
            println!(
                "cancelling {}: {} move(s) in flight roll back, {} pending dropped",
                c.plan_id, c.rolled_back, c.dropped
            );
            let end = follow(client, &c.plan_id, false).await?;
            println!("plan {} {}", c.plan_id, end.state);
        }
    }
    Ok(())
}

/// Asks for confirmation, then starts the plan and follows it.
async fn start(client: &Client, plan_json: &str, run: RunArgs) -> anyhow::Result<()> {
    serde_json::from_str::<serde_json::Value>(plan_json).context("reading the plan")?;
    confirm(run.yes, "start this plan")?;
    let started = client
        .apply_plan(pb::ApplyPlanRequest {
            plan_json: plan_json.to_string(),
            max_bytes_per_s: run.max_bytes_per_s,
            max_parallel: run.parallel,
        })
        .await?;
    println!(
        "plan {} started at epoch {}",
        started.plan_id, started.epoch
    );
    if run.no_wait {
        return Ok(());
    }
    let end = tokio::select! {
        end = follow(client, &started.plan_id, true) => end?,
        _ = tokio::signal::ctrl_c() => {
            return Err(CliError::Interrupted(format!(
                "interrupted: plan {} keeps running on the coordinator; \
                 `strata migration status` shows it, `strata migration cancel` stops it",
                started.plan_id
            ))
            .into())
        }
    };
    match end.state.as_str() {
        "done" => {
            println!("plan {} done: {} moves", end.id, end.moves_total);
            Ok(())
        }
        state => bail!("plan {} {state}: {}", end.id, end.error),
    }
}

/// Polls the plan until it is no longer running; draws a progress bar on a terminal.
async fn follow(client: &Client, id: &str, bar: bool) -> anyhow::Result<pb::PlanStatus> {
    let tty = bar && std::io::stderr().is_terminal();
    let began = Instant::now();
    loop {
        let status = client.status().await?;
        let plan = status.plan.clone().unwrap_or_default();
        if plan.id != id {
            bail!(
                "plan {id} is no longer the coordinator's plan (now {:?})",
                plan.id
            );
        }
        if tty {
            eprint!(
                "\r\x1b[2K{}",
                progress_line(&plan, &status.migrations, began)
            );
        }
        if plan.state != "running" {
            if tty {
                eprintln!();
            }
            return Ok(plan);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `[#####.....] 3/8 moves  1.2 GiB/2.0 GiB  850 MiB/s  elapsed 4s`
fn progress_line(plan: &pb::PlanStatus, moves: &[pb::MigrationStatus], began: Instant) -> String {
    let total: u64 = moves.iter().map(|m| m.bytes_total.max(1)).sum();
    let copied: u64 = moves
        .iter()
        .map(|m| match m.state.as_str() {
            "done" => m.bytes_total.max(1),
            _ => m.bytes_copied.min(m.bytes_total),
        })
        .sum();
    let rate: f64 = moves
        .iter()
        .filter(|m| m.state == "copying" || m.state == "handoff")
        .map(|m| m.bytes_per_s)
        .sum();
    let frac = if total == 0 {
        1.0
    } else {
        copied as f64 / total as f64
    };
    let width = 30;
    let filled = ((frac * width as f64) as usize).min(width);
    format!(
        "[{}{}] {}/{} moves  {}/{}  {}/s  elapsed {:.0}s",
        "#".repeat(filled),
        ".".repeat(width - filled),
        plan.moves_done,
        plan.moves_total,
        human(copied),
        human(total),
        human(rate as u64),
        began.elapsed().as_secs_f64()
    )
}

/// Bytes in B/KiB/MiB/GiB.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// The plan and its moves as text.
pub fn print_plan(status: &pb::StatusResponse) {
    let Some(p) = &status.plan else {
        println!("no plan has run");
        return;
    };
    // Totals from the moves themselves, so that the header agrees with the lines below.
    let (copied, total) = if status.migrations.is_empty() {
        (p.bytes_done, p.bytes_total)
    } else {
        moved_bytes(&status.migrations)
    };
    let elapsed = match (p.started_unix_ms, p.finished_unix_ms) {
        (0, _) => String::new(),
        (start, 0) => format!(
            ", {} elapsed",
            super::units::duration_ms(super::units::now_ms().saturating_sub(start))
        ),
        (start, end) => format!(
            ", took {}",
            super::units::duration_ms(end.saturating_sub(start))
        ),
    };
    println!(
        "plan {} ({}): {}, {}/{} moves, {} of {}{elapsed}{}",
        p.id,
        p.kind,
        p.state,
        p.moves_done,
        p.moves_total,
        human(copied),
        human(total),
        if p.error.is_empty() {
            String::new()
        } else {
            format!(" — {}", p.error)
        }
    );
    for m in &status.migrations {
        // A rate and an ETA only mean something while a move copies.
        let (rate, eta) = if m.state == "copying" || m.state == "handoff" {
            (
                format!("{}/s", human(m.bytes_per_s as u64)),
                format!("eta {:.1}s", m.eta_s),
            )
        } else {
            ("-".to_string(), String::new())
        };
        println!(
            "  {:<16} slots {:>5}..{:<5} {} -> {}  {:<9} {:>10}/{:<10} {:>12} {:<10} {}",
            m.id,
            m.slot_start,
            m.slot_end,
            m.from,
            m.to,
            m.state,
            human(if m.state == "done" {
                m.bytes_total
            } else {
                m.bytes_copied
            }),
            human(m.bytes_total),
            rate,
            eta,
            m.error
        );
    }
}

/// Bytes copied and bytes to copy over `moves` (a finished move counts whole).
fn moved_bytes(moves: &[pb::MigrationStatus]) -> (u64, u64) {
    moves.iter().fold((0, 0), |(copied, total), m| {
        let done = if m.state == "done" {
            m.bytes_total
        } else {
            m.bytes_copied.min(m.bytes_total)
        };
        (
            copied.saturating_add(done),
            total.saturating_add(m.bytes_total),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_totals_come_from_the_moves() {
        let mv = |state: &str, copied: u64, total: u64| pb::MigrationStatus {
            state: state.into(),
            bytes_copied: copied,
            bytes_total: total,
            ..Default::default()
        };
        let moves = [
            mv("done", 0, 100),
            mv("copying", 30, 50),
            mv("pending", 0, 20),
        ];
        assert_eq!(moved_bytes(&moves), (130, 170));
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("200M"), Ok(200 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("3 parsecs").is_err());
    }
}
