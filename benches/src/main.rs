//! `strata-bench`: run workload W1 against strata, strata in process, or Redis; `sim`: the
//! topology planner on a synthetic datacenter.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

use strata_bench::progress::Progress;
use strata_bench::report::{Context, Summary};
use strata_bench::runner::{self, Live, RunConfig};
use strata_bench::sim::{self, SimConfig};
use strata_bench::target::{self, TableParams, TargetSpec};
use strata_bench::timeline::Timeline;
use strata_bench::workload::WorkloadSpec;
use strata_server::allocator::HeapPages;
use strata_storage::host::{RowMemory, RowMemoryConfig, DEFAULT_MEMORY_RESERVE_BYTES};

/// Longest wait for the in-process target's reserve to fill before the run.
const RESERVE_FILL_BOUND: Duration = Duration::from_secs(600);

/// Workload W1 (shared/WORKLOAD.md) end to end, with latency histograms.
#[derive(Debug, Parser)]
#[command(name = "strata-bench", version = strata_proto::version_text!(), about)]
struct Args {
    /// Another benchmark than W1.
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Coordinator address of the strata cluster.
    #[arg(long, env = "STRATA_COORDINATOR", default_value = "127.0.0.1:7070")]
    coordinator: String,
    /// Give up connecting to the coordinator after this long (e.g. 500ms, 3s).
    #[arg(
        long,
        env = "STRATA_CONNECT_TIMEOUT",
        default_value = "3s",
        value_parser = strata_client::numbers::parse_duration
    )]
    connect_timeout: Duration,
    /// System under test: strata, inproc, or redis://HOST:PORT.
    #[arg(long, default_value = "strata")]
    target: String,
    /// Where the trainers run, as key=value pairs (e.g. zone=z1,rack=r1), sent with their
    /// pulls and pushes (strata target).
    #[arg(long, env = "STRATA_LABELS")]
    labels: Option<String>,
    #[command(flatten)]
    tls: strata_client::tls_args::TlsArgs,
    /// Concurrent trainers (one connection each).
    #[arg(long, default_value_t = 4)]
    trainers: usize,
    /// Measured window, seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Warm-up before the window, seconds.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Row width.
    #[arg(long, default_value_t = 64)]
    dim: usize,
    /// Draws per step (before deduplication).
    #[arg(long, default_value_t = 4096)]
    batch: usize,
    /// Zipf exponent of id popularity.
    #[arg(long, default_value_t = 1.05)]
    zipf: f64,
    /// Key space: ids 0..keys.
    #[arg(long, default_value_t = 10_000_000)]
    keys: u64,
    /// Optimizer (W1: adagrad).
    #[arg(long, default_value = "adagrad")]
    optimizer: String,
    /// Adagrad learning rate.
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    lr: f32,
    /// Adagrad initial accumulator.
    #[arg(
        long = "init-acc",
        default_value_t = 0.1,
        allow_negative_numbers = true
    )]
    init_acc: f32,
    /// New rows are uniform in [-init-scale, init-scale).
    #[arg(long = "init-scale", default_value_t = 0.01)]
    init_scale: f64,
    /// Gradients are N(0,1) × grad-scale.
    #[arg(
        long = "grad-scale",
        default_value_t = 0.01,
        allow_negative_numbers = true
    )]
    grad_scale: f64,
    /// Run seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tokio worker threads of the load generator.
    #[arg(long = "client-threads", default_value_t = 2)]
    client_threads: usize,
    /// Table name (also the Redis key prefix).
    #[arg(long, default_value = "w1")]
    table: String,
    /// Print one JSON object on stdout, and nothing else there (the summary for people
    /// goes to stderr).
    #[arg(long)]
    json: bool,
    /// Write `unix_ms steps rows` every 100 ms to this file (throughput of any window).
    #[arg(long)]
    timeline: Option<std::path::PathBuf>,
    /// In-process target only: row memory faulted in before the run and kept filled (e.g.
    /// 4GiB), as strata-server's `--memory-reserve` does for a server; the same default.
    #[arg(long, value_parser = strata_server::size::parse_size)]
    memory_reserve: Option<u64>,
    /// Transparent huge pages for this process's heap (every target: the client's buffers,
    /// the Redis target's blobs) and, in process, for the row memory reserve and large id
    /// index tables: as strata-server's `--huge-pages` (default true).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    huge_pages: bool,
}

/// Benchmarks other than W1.
#[derive(Debug, Subcommand)]
enum Cmd {
    /// The topology planner on a synthetic datacenter with rack-skewed Zipf traffic,
    /// against hash placement.
    Sim(SimArgs),
}

/// `strata-bench sim`: the datacenter and traffic model (benches/src/sim.rs).
#[derive(Debug, clap::Args)]
struct SimArgs {
    /// Shard nodes.
    #[arg(long, default_value_t = 10_000)]
    nodes: u32,
    /// Racks (nodes split evenly over them).
    #[arg(long, default_value_t = 250)]
    racks: u32,
    /// Zones (racks split evenly over them).
    #[arg(long, default_value_t = 4)]
    zones: u32,
    /// Shards (one slot each).
    #[arg(long, default_value_t = 100_000)]
    shards: u32,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Zipf exponent of shard popularity (0: uniform).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Share of a shard's traffic from its home rack's trainers.
    #[arg(long, default_value_t = 0.8)]
    locality: f64,
    /// Other racks whose trainers read each shard (the rest of its traffic).
    #[arg(long = "other-racks", default_value_t = 3)]
    other_racks: u32,
    /// Memory budget of every node over the mean bytes per node.
    #[arg(long, default_value_t = 1.5)]
    headroom: f64,
    /// The planner's bound on max/mean load.
    #[arg(long = "max-imbalance", default_value_t = 1.5)]
    max_imbalance: f64,
    /// Seconds within which a move must pay for its bytes.
    #[arg(long, default_value_t = 600.0)]
    payback: f64,
    /// Print one JSON object on stdout, and nothing else there (the report for people
    /// goes to stderr).
    #[arg(long)]
    json: bool,
}

/// Runs `strata-bench sim` and prints its report.
fn run_sim(a: &SimArgs) -> anyhow::Result<()> {
    let cfg = SimConfig {
        nodes: a.nodes,
        racks: a.racks,
        zones: a.zones,
        shards: a.shards,
        seed: a.seed,
        zipf: a.zipf,
        locality: a.locality,
        other_racks: a.other_racks,
        headroom: a.headroom,
        params: strata_cluster::plan::TopologyParams {
            max_imbalance: a.max_imbalance,
            payback_secs: a.payback,
        },
        ..SimConfig::default()
    };
    let report = sim::run(&cfg)?;
    if a.json {
        eprintln!("{}", report.human());
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.human());
    }
    Ok(())
}

fn secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("--{name} must be a finite number >= 0"))
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    strata_proto::tls::install_default_provider();
    if let Some(Cmd::Sim(s)) = &a.cmd {
        return run_sim(s);
    }
    // The same allocator settings as strata-server, for the client and the in-process engine.
    if a.huge_pages {
        if let HeapPages::ExecFailed(e) = strata_server::allocator::reexec_with_huge_page_heap() {
            eprintln!("warning: could not re-execute with the heap in huge pages: {e}");
        }
    }
    let allocator_tuned = strata_server::allocator::keep_large_buffers_in_the_heap();
    if !allocator_tuned {
        eprintln!(
            "warning: glibc refused an allocator setting; figures may not match strata-server's"
        );
    }
    if a.optimizer != "adagrad" {
        bail!(
            "--optimizer {}: W1 uses adagrad, the only one supported",
            a.optimizer
        );
    }
    if a.trainers == 0 || a.client_threads == 0 || a.dim == 0 || a.batch == 0 || a.keys == 0 {
        bail!("--trainers, --client-threads, --dim, --batch and --keys must be >= 1");
    }
    let warmup = secs("warmup", a.warmup)?;
    let duration = secs("duration", a.duration)?;
    if duration.is_zero() {
        bail!("--duration must be > 0");
    }
    // Refuse bad workload parameters before touching any table.
    strata_bench::zipf::Zipf::new(a.keys, a.zipf)?;
    let mut spec = TargetSpec::parse(&a.target, &a.coordinator)?;
    if let TargetSpec::Strata {
        labels,
        connect_timeout,
        tls,
        ..
    } = &mut spec
    {
        labels.clone_from(&a.labels);
        *connect_timeout = a.connect_timeout;
        *tls = a.tls.files();
    }
    if a.memory_reserve.is_some() && !matches!(spec, TargetSpec::Inproc) {
        bail!("--memory-reserve applies to --target inproc; give a server its own");
    }
    // The in-process engine's row memory, as a server node's: faulted in now, before any
    // table exists and outside the measured run, and kept filled during it.
    let row_memory = Arc::new(RowMemory::new(RowMemoryConfig {
        reserve_bytes: match spec {
            TargetSpec::Inproc => a.memory_reserve.unwrap_or(DEFAULT_MEMORY_RESERVE_BYTES),
            _ => 0,
        },
        huge_pages: a.huge_pages,
    }));
    if !row_memory.wait_filled(RESERVE_FILL_BOUND) {
        bail!(
            "the row memory reserve did not fill within {}s",
            RESERVE_FILL_BOUND.as_secs()
        );
    }
    let params = TableParams {
        name: a.table.clone(),
        dim: a.dim,
        lr: a.lr,
        init_acc: a.init_acc,
        init_scale: a.init_scale,
        seed: a.seed,
    };
    let cfg = RunConfig {
        trainers: a.trainers,
        warmup,
        duration,
        workload: WorkloadSpec {
            keys: a.keys,
            dim: a.dim,
            batch: a.batch,
            zipf: a.zipf,
            seed: a.seed,
            grad_scale: a.grad_scale,
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.client_threads)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let live = Arc::new(Live::default());
    let result = rt.block_on(async {
        let targets = target::setup(&spec, &params, a.trainers, row_memory.clone())
            .await
            .with_context(|| format!("setting up target {}", a.target))?;
        let progress = (!a.json && std::io::stderr().is_terminal())
            .then(|| Progress::start(live.clone(), warmup, warmup + duration));
        let timeline = a
            .timeline
            .as_deref()
            .map(|path| Timeline::start(path, live.clone()))
            .transpose()
            .context("opening the timeline file")?;
        let r = runner::run(targets, &cfg, live.clone()).await;
        if let Some(p) = progress {
            p.finish();
        }
        if let Some(t) = timeline {
            t.finish().context("writing the timeline")?;
        }
        anyhow::Ok(r?)
    })?;
    let address = match &spec {
        TargetSpec::Strata { coordinator, .. } => coordinator.clone(),
        TargetSpec::Inproc => String::new(),
        TargetSpec::Redis { addr } => addr.clone(),
    };
    let summary = Summary::new(
        Context {
            target: spec.kind().to_string(),
            address,
            trainers: a.trainers,
            warmup_s: warmup.as_secs_f64(),
            dim: a.dim,
            batch: a.batch,
            zipf: a.zipf,
            keys: a.keys,
            seed: a.seed,
            optimizer: a.optimizer.clone(),
            client_threads: a.client_threads,
        },
        &result,
    );
    if a.json {
        eprintln!("{}", summary.human());
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{}", summary.human());
    }
    Ok(())
}
