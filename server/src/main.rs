//! `strata-server`: the strata server binary (roles: `dev`, `coordinator`, `shard`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use strata_cluster::cluster::ProcessIdentity;
use strata_cluster::coordinator::AutoRebalance;
use strata_cluster::plan::TopologyParams;
use strata_cluster::topology::Topology;
use strata_engine::wal::{WalConfig, WalSync};
use strata_engine::{EngineConfig, DEFAULT_MAX_BATCH_ROWS};
use strata_server::advertise::{advertised_address, Advertise};
use strata_server::args::{parse_duration, parse_labels};
use strata_server::connections::{ConnectionLimits, DEFAULT_MAX_CONNECTIONS};
use strata_server::data_dir::DataDirLock;
use strata_server::dev::{run_dev, DevConfig};
use strata_server::identity;
use strata_server::roles::leading::AutoRebalanceLoop;
use strata_server::roles::{
    run_coordinator, run_shard, CoordinatorRoleConfig, EtcdSettings, ShardRoleConfig,
};
use strata_server::size::parse_size;
use strata_server::tls::TlsArgs;
use strata_storage::host::{RowMemory, RowMemoryConfig};
use strata_storage::slot::DEFAULT_NUM_SLOTS;

/// `--max-message-size`'s default as `--help` shows it (`DEFAULT_MAX_MESSAGE_BYTES`).
const DEFAULT_MAX_MESSAGE_SIZE: &str = "256MiB";
/// `--gpu-memory-budget`'s default as `--help` shows it (`DEFAULT_GPU_MEMORY_BUDGET`).
const DEFAULT_GPU_MEMORY_BUDGET_SIZE: &str = "1GiB";
/// `--memory-reserve`'s default as `--help` shows it (`DEFAULT_MEMORY_RESERVE_BYTES`).
const DEFAULT_MEMORY_RESERVE_SIZE: &str = "256MiB";

#[derive(Parser)]
#[command(
    name = "strata-server",
    version = strata_proto::version_text!(),
    about = "strata embedding/parameter server"
)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

impl Cli {
    /// What runs in this process: the role's flags as `matches` holds them (parsed from
    /// `command`), its data dir and its GPU.
    fn identity(
        &self,
        command: &clap::Command,
        matches: &clap::ArgMatches,
        started_unix_ms: u64,
    ) -> Option<ProcessIdentity> {
        let (name, role_matches) = matches.subcommand()?;
        let config = identity::effective_config(command.find_subcommand(name)?, role_matches);
        let (data_dir, gpu) = match &self.role {
            Role::Dev(args) => (&args.data_dir, args.node.gpu.gpu_device),
            Role::Shard(args) => (&args.data_dir, args.node.gpu.gpu_device),
            Role::Coordinator(args) => {
                let identity =
                    identity::process_identity(name, started_unix_ms, config, &args.data_dir, None);
                return Some(identity);
            }
        };
        let gpu = identity::gpu_identity(gpu);
        Some(identity::process_identity(
            name,
            started_unix_ms,
            config,
            data_dir,
            gpu,
        ))
    }

    /// Whether this role holds rows and asked for huge pages (the coordinator holds none).
    fn huge_pages(&self) -> bool {
        match &self.role {
            Role::Dev(args) => args.node.huge_pages,
            Role::Shard(args) => args.node.huge_pages,
            Role::Coordinator(_) => false,
        }
    }
}

#[derive(Subcommand)]
enum Role {
    /// All-in-one cluster in one process: coordinator + shard server.
    Dev(DevArgs),
    /// Cluster coordinator: membership, cluster map, catalog, checkpoints.
    Coordinator(CoordinatorArgs),
    /// Shard server: registers with the coordinator and serves its shards.
    Shard(ShardArgs),
}

#[derive(clap::Args)]
struct CoordinatorArgs {
    /// gRPC listen address (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Address shard servers and clients use: HOST:PORT, or HOST with the bound port
    /// (default: the bound address; required when listening on 0.0.0.0 or [::]).
    #[arg(long)]
    advertise: Option<Advertise>,
    /// Directory for the cluster record.
    #[arg(long, default_value = "strata-coordinator")]
    data_dir: PathBuf,
    /// Number of shards of a new cluster.
    #[arg(long, default_value_t = 8)]
    shards: u32,
    /// A shard server silent this long is marked down (e.g. 5s, 500ms).
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    heartbeat_timeout: Duration,
    /// Serve Prometheus `/metrics` on this address (off unless given; e.g. 127.0.0.1:9100,
    /// port 0 picks a free port and the bound address is printed).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Serve the read-only status page (`/`) and its JSON (`/api/status`, as `strata status
    /// -o json`) on this address (port 0 picks a free port; the bound address is printed).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Largest gRPC message (e.g. 256MiB).
    #[arg(long, value_parser = parse_size, default_value = DEFAULT_MAX_MESSAGE_SIZE)]
    max_message_size: u64,
    /// Slots of a new cluster.
    #[arg(long, default_value_t = DEFAULT_NUM_SLOTS)]
    num_slots: u32,
    /// etcd endpoint(s), comma-separated: keep the record in etcd and elect a leader.
    #[arg(long, env = "STRATA_ETCD")]
    etcd: Option<String>,
    /// Key prefix of this cluster in etcd.
    #[arg(long, default_value = "/strata/default")]
    etcd_prefix: String,
    /// TTL of the coordinator's etcd lease (whole seconds, at least 2s).
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    lease_ttl: Duration,
    /// Cluster checkpoints to keep in the record (each node keeps its own parts).
    #[arg(long, default_value_t = 3)]
    keep_checkpoints: usize,
    /// YAML file of the datacenter's levels (outermost first) with the cost of a byte
    /// crossing each and its bandwidth; default: zone > rack > host (README: Topology).
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Start topology plans on their own when one would cut the cost of trainer-shard
    /// traffic by at least --auto-rebalance-threshold (off by default).
    #[arg(long)]
    auto_rebalance: bool,
    /// Smallest fraction of the traffic cost an automatic plan must remove (0..1).
    #[arg(long, default_value_t = 0.2, value_parser = parse_fraction)]
    auto_rebalance_threshold: f64,
    /// Time between automatic looks (and between two automatic plans), e.g. 10m.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    auto_rebalance_cool_down: Duration,
    /// Topology plans (automatic ones): bound on max/mean of bytes held and traffic served.
    #[arg(long, default_value_t = 1.5)]
    max_imbalance: f64,
    /// Topology plans (automatic ones): a move must pay for its bytes within this time.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    payback: Duration,
    /// Checkpoint the cluster this often (e.g. 30s, 5m) when a node reported changes since
    /// its newest checkpoint; default: only on request.
    #[arg(long, value_parser = parse_duration)]
    checkpoint_interval: Option<Duration>,
    #[command(flatten)]
    connections: ConnectionArgs,
    #[command(flatten)]
    tls: TlsArgs,
}

/// Parses a fraction in `0..=1`.
fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a fraction between 0 and 1")),
    }
}

#[derive(clap::Args)]
struct ShardArgs {
    /// Coordinator address(es), comma-separated.
    #[arg(long, env = "STRATA_COORDINATOR", default_value = "127.0.0.1:7070")]
    coordinator: String,
    /// gRPC listen address (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7071")]
    listen: SocketAddr,
    /// Address clients and the coordinator use: HOST:PORT, or HOST with the bound port
    /// (default: the bound address; required when listening on 0.0.0.0 or [::]).
    #[arg(long)]
    advertise: Option<Advertise>,
    /// Directory for the node id and checkpoints.
    #[arg(long, default_value = "strata-shard")]
    data_dir: PathBuf,
    /// Topology labels, e.g. zone=z1,rack=r1,host=h1.
    #[arg(long, value_parser = parse_labels, default_value = "")]
    labels: BTreeMap<String, String>,
    /// Node id for a new data dir (default: the coordinator assigns one).
    #[arg(long)]
    node_id: Option<String>,
    /// Time between heartbeats.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    heartbeat_interval: Duration,
    /// Nice value of the threads that move rows in live migrations (0..=19; higher gives
    /// serving trainers more of a busy CPU).
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(0..=19))]
    migration_nice: i32,
    /// Serve Prometheus `/metrics` on this address (off unless given; e.g. 127.0.0.1:9100,
    /// port 0 picks a free port and the bound address is printed).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    connections: ConnectionArgs,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    node: NodeArgs,
}

/// Connection bounds of every role.
#[derive(clap::Args)]
struct ConnectionArgs {
    /// Connections open at once; one more is closed as soon as it is accepted.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Time a new connection has to start HTTP/2 before it is closed (e.g. 10s).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    handshake_timeout: Duration,
}

impl ConnectionArgs {
    /// The limits these flags describe.
    fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections.max(1),
            handshake_timeout: self.handshake_timeout,
        }
    }
}

/// GPU tier flags of the roles that hold tables.
#[derive(clap::Args)]
struct GpuArgs {
    /// Device memory for the hash tables of `--tier gpu` tables (e.g. 16GiB).
    #[arg(long, value_parser = parse_size, default_value = DEFAULT_GPU_MEMORY_BUDGET_SIZE)]
    gpu_memory_budget: u64,
    /// CUDA device ordinal of `--tier gpu` tables.
    #[arg(long, default_value_t = 0)]
    gpu_device: u32,
    /// Also admit ids pushed through a GPU table's host tier to the device.
    #[arg(long)]
    gpu_admit_on_push: bool,
    /// Serve `--tier gpu` tables from the CPU reference of the device table (testing only).
    #[arg(long, hide = true)]
    gpu_reference: bool,
}

/// Flags of the roles that hold tables (dev and shard): budgets, limits, slots, GPU tier.
#[derive(clap::Args)]
struct NodeArgs {
    /// Host memory budget (e.g. 8GiB); requests past it get RESOURCE_EXHAUSTED.
    #[arg(long, value_parser = parse_size)]
    memory_budget: Option<u64>,
    /// Row memory to fault in at start and keep ready for new rows (e.g. 2GiB), refilled by
    /// a background thread as rows take it: new rows and shards moved in are written at
    /// memory speed, not at the rate the OS and hypervisor hand out fresh pages, and land in
    /// huge pages. Chunks freed later refill it instead of going back to the OS. It is held
    /// on top of the rows (and of `--memory-budget`); 0 keeps none.
    #[arg(long, value_parser = parse_size, default_value = DEFAULT_MEMORY_RESERVE_SIZE)]
    memory_reserve: u64,
    /// Ask for transparent huge pages for the row memory reserve, large id index tables and
    /// the heap (fewer TLB misses per row a request touches; the heap's needs one
    /// re-execution at start); `false` keeps 4 KiB pages everywhere.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    huge_pages: bool,
    #[command(flatten)]
    gpu: GpuArgs,
    /// Largest number of rows in one pull or push.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH_ROWS)]
    max_batch_rows: usize,
    /// Largest gRPC message (e.g. 256MiB).
    #[arg(long, value_parser = parse_size, default_value = DEFAULT_MAX_MESSAGE_SIZE)]
    max_message_size: u64,
    /// Checkpoints to keep on disk (corrupt ones are never deleted by retention).
    #[arg(long, default_value_t = 3)]
    keep_checkpoints: usize,
    /// Delta checkpoints (rows changed since the previous checkpoint) between two base
    /// checkpoints (every row); 0 makes every checkpoint a base.
    #[arg(long, default_value_t = strata_engine::DEFAULT_CHECKPOINT_FULL_EVERY)]
    full_every: u32,
    /// Start with empty tables when the data dir holds checkpoints and none verifies, and
    /// (shard) register when the coordinator knows this node id with another data dir
    /// (without it such a node refuses to start rather than serve fresh rows over them).
    #[arg(long)]
    accept_data_loss: bool,
    /// Exit without the checkpoint otherwise written on SIGTERM or SIGINT (after requests
    /// in flight drained) when something changed since the newest checkpoint.
    #[arg(long)]
    no_checkpoint_on_exit: bool,
    /// After SIGTERM or SIGINT, how long requests in flight and open connections get before
    /// the node stops serving on its own, writes its exit checkpoint and exits (e.g. 30s).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    drain_timeout: Duration,
    /// Slots of the cluster (a shard's must match the coordinator's).
    #[arg(long, default_value_t = DEFAULT_NUM_SLOTS)]
    num_slots: u32,
    /// Window of the traffic rates reported per table, shard and client location (e.g. 60s).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    traffic_window: Duration,
    /// Record every change in a write-ahead log under the data dir, replayed on start, so
    /// that acknowledged pushes survive a crash between checkpoints.
    #[arg(long)]
    wal: bool,
    /// When the log reaches the disk: `always` (before each push is acknowledged; one
    /// sync per group of pushes), `interval:DURATION` (e.g. interval:100ms) or `never` (the
    /// OS decides). Every setting survives a killed process; only `always` survives a
    /// machine crash with nothing lost.
    #[arg(long, value_parser = parse_wal_sync, default_value = "interval:100ms", requires = "wal")]
    wal_sync: WalSync,
    /// How long a client that pushes nothing is remembered by exactly-once delivery (its
    /// pushes sent again after that may be applied twice), e.g. 60m.
    #[arg(long, value_parser = parse_duration, default_value = "60m")]
    client_expiry: Duration,
}

/// A `--wal-sync` value.
fn parse_wal_sync(s: &str) -> Result<WalSync, String> {
    s.parse()
}

impl NodeArgs {
    /// The engine settings these flags describe, for a node named `node_name`, with the
    /// node's row memory set up: huge page advice, and the reserve (whose chunks take that
    /// advice) filling on its own thread.
    fn engine_config(&self, node_name: String) -> EngineConfig {
        let row_memory = RowMemory::new(RowMemoryConfig {
            reserve_bytes: self.memory_reserve,
            huge_pages: self.huge_pages,
        });
        EngineConfig {
            node_name,
            num_slots: self.num_slots,
            memory_budget: self.memory_budget.unwrap_or(u64::MAX),
            max_batch_rows: self.max_batch_rows,
            gpu_device: self.gpu.gpu_device,
            gpu_memory_budget: self.gpu.gpu_memory_budget,
            gpu_admit_on_push: self.gpu.gpu_admit_on_push,
            gpu_reference: self.gpu.gpu_reference,
            max_dense_bytes: strata_engine::max_dense_bytes(self.max_message_size),
            row_memory: Arc::new(row_memory),
            traffic_window: self.traffic_window,
            wal: self.wal.then(|| WalConfig {
                sync: self.wal_sync,
                ..WalConfig::default()
            }),
            client_expiry: self.client_expiry,
            checkpoint_full_every: self.full_every,
        }
    }

    /// Largest gRPC message in bytes.
    fn max_message_bytes(&self) -> usize {
        usize::try_from(self.max_message_size).unwrap_or(usize::MAX)
    }

    /// Checkpoints to keep (at least one).
    fn keep_checkpoints(&self) -> usize {
        self.keep_checkpoints.max(1)
    }
}

#[derive(clap::Args)]
struct DevArgs {
    /// gRPC listen address (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Address clients dial, written in the cluster map for this server's node and given
    /// as the coordinator's: HOST:PORT, or HOST with the bound port (default: the bound
    /// address; required when listening on 0.0.0.0 or [::]).
    #[arg(long)]
    advertise: Option<Advertise>,
    /// Number of shards of a new cluster.
    #[arg(long, default_value_t = 8)]
    shards: u32,
    /// Directory for the catalog and checkpoints.
    #[arg(long, default_value = "strata-data")]
    data_dir: PathBuf,
    /// Serve Prometheus `/metrics` on this address (off unless given; e.g. 127.0.0.1:9100,
    /// port 0 picks a free port and the bound address is printed).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Serve the read-only status page (`/`) and its JSON (`/api/status`, as `strata status
    /// -o json`) on this address (port 0 picks a free port; the bound address is printed).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Nice value of the threads that move rows in live migrations (0..=19).
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(0..=19))]
    migration_nice: i32,
    /// Checkpoint this often (e.g. 30s, 5m) when something changed since the newest
    /// checkpoint; default: only on request.
    #[arg(long, value_parser = parse_duration)]
    checkpoint_interval: Option<Duration>,
    #[command(flatten)]
    connections: ConnectionArgs,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> anyhow::Result<()> {
    let started_unix_ms = identity::now_unix_ms();
    let command = Cli::command();
    let matches = command.clone().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let identity = cli.identity(&command, &matches, started_unix_ms);
    strata_proto::tls::install_default_provider();
    let heap_pages = if cli.huge_pages() {
        Some(strata_server::allocator::reexec_with_huge_page_heap())
    } else {
        None
    };
    let allocator_tuned = strata_server::allocator::keep_large_buffers_in_the_heap();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: never in log files or pipes, nor under
        // NO_COLOR (https://no-color.org).
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    if !allocator_tuned {
        tracing::warn!(
            "glibc refused an allocator setting: large buffers may be remapped per request"
        );
    }
    if let Some(strata_server::allocator::HeapPages::ExecFailed(e)) = heap_pages {
        tracing::warn!(error = %e, "could not re-execute with the heap in huge pages; it stays in 4 KiB pages");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        match cli.role {
            Role::Dev(args) => dev(args, identity).await,
            Role::Coordinator(args) => coordinator(args, identity).await,
            Role::Shard(args) => shard(args, identity).await,
        }
    })
}

/// Locks `dir` for this process's lifetime (before binding anything, so a second server on
/// it exits before it prints an address).
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<DataDirLock> {
    Ok(DataDirLock::acquire(dir)?)
}

/// Refuses, before anything is bound, a listen address that gives clients nothing to dial.
fn check_advertise(listen: SocketAddr, advertise: Option<&Advertise>) -> anyhow::Result<()> {
    advertised_address(listen, advertise)?;
    Ok(())
}

async fn dev(args: DevArgs, identity: Option<ProcessIdentity>) -> anyhow::Result<()> {
    check_advertise(args.listen, args.advertise.as_ref())?;
    let tls = args.tls.node_tls("dev", args.listen, false)?;
    let _lock = lock_data_dir(&args.data_dir)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let metrics_listener = bind_optional(args.metrics_listen, "metrics").await?;
    let status_listener = bind_optional(args.http_listen, "status page").await?;
    let config = DevConfig {
        data_dir: args.data_dir,
        shards: args.shards,
        advertise_address: args.advertise,
        engine: args.node.engine_config(listener.local_addr()?.to_string()),
        max_message_bytes: args.node.max_message_bytes(),
        keep_checkpoints: args.node.keep_checkpoints(),
        migration_nice: args.migration_nice,
        accept_data_loss: args.node.accept_data_loss,
        connections: args.connections.limits(),
        checkpoint_on_exit: !args.node.no_checkpoint_on_exit,
        drain_timeout: args.node.drain_timeout,
        checkpoint_interval: args.checkpoint_interval,
        identity,
        tls: tls.server,
    };
    // Tests and scripts read the bound addresses from these lines.
    announce("dev", &listener, &metrics_listener, &status_listener)?;
    run_dev(
        config,
        listener,
        metrics_listener,
        status_listener,
        shutdown_signal(),
    )
    .await
    .context("strata-server dev")
}

/// Resolves on Ctrl-C or SIGTERM: the server stops accepting and drains in-flight requests.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {what} {addr}"))
}

/// Binds `addr` (the listener of `what`) when given.
async fn bind_optional(
    addr: Option<SocketAddr>,
    what: &str,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    match addr {
        Some(addr) => Ok(Some(bind(addr, what).await?)),
        None => Ok(None),
    }
}

/// Prints the bound addresses tests and scripts read: gRPC first, then `/metrics` and the
/// status page when served.
fn announce(
    role: &str,
    listener: &tokio::net::TcpListener,
    metrics: &Option<tokio::net::TcpListener>,
    status_page: &Option<tokio::net::TcpListener>,
) -> anyhow::Result<()> {
    println!(
        "strata-server {role} listening on {}",
        listener.local_addr()?
    );
    if let Some(m) = metrics {
        println!("metrics listening on {}", m.local_addr()?);
    }
    if let Some(p) = status_page {
        println!("status page listening on {}", p.local_addr()?);
    }
    Ok(())
}

async fn coordinator(
    args: CoordinatorArgs,
    identity: Option<ProcessIdentity>,
) -> anyhow::Result<()> {
    let topology = match &args.topology {
        None => Topology::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the topology file {}", path.display()))?;
            Topology::from_yaml(&text)
                .with_context(|| format!("topology file {}", path.display()))?
        }
    };
    check_advertise(args.listen, args.advertise.as_ref())?;
    let tls = args.tls.node_tls("coordinator", args.listen, true)?;
    // The record lives in the data dir only without etcd; with etcd the dir holds nothing.
    let _lock = match &args.etcd {
        None => Some(lock_data_dir(&args.data_dir)?),
        Some(_) => None,
    };
    let listener = bind(args.listen, "gRPC").await?;
    let metrics_listener = bind_optional(args.metrics_listen, "metrics").await?;
    let status_listener = bind_optional(args.http_listen, "status page").await?;
    if !(args.max_imbalance.is_finite() && args.max_imbalance >= 1.0) {
        anyhow::bail!(
            "--max-imbalance {} must be a number >= 1",
            args.max_imbalance
        );
    }
    let auto_rebalance = args.auto_rebalance.then_some(AutoRebalanceLoop {
        policy: AutoRebalance {
            threshold: args.auto_rebalance_threshold,
            params: TopologyParams {
                max_imbalance: args.max_imbalance,
                payback_secs: args.payback.as_secs_f64(),
            },
        },
        cool_down: args.auto_rebalance_cool_down,
    });
    let config = CoordinatorRoleConfig {
        topology,
        auto_rebalance,
        data_dir: args.data_dir,
        shards: args.shards,
        num_slots: args.num_slots,
        heartbeat_timeout: args.heartbeat_timeout,
        max_message_bytes: usize::try_from(args.max_message_size).unwrap_or(usize::MAX),
        advertise_address: args.advertise,
        etcd: args.etcd.as_deref().map(|urls| EtcdSettings {
            endpoints: urls
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(String::from)
                .collect(),
            prefix: args.etcd_prefix.clone(),
            lease_ttl: args.lease_ttl,
        }),
        keep_checkpoints: args.keep_checkpoints.max(1),
        connections: args.connections.limits(),
        checkpoint_interval: args.checkpoint_interval,
        identity,
        tls,
    };
    announce(
        "coordinator",
        &listener,
        &metrics_listener,
        &status_listener,
    )?;
    run_coordinator(
        config,
        listener,
        metrics_listener,
        status_listener,
        shutdown_signal(),
    )
    .await
    .context("strata-server coordinator")
}

async fn shard(args: ShardArgs, identity: Option<ProcessIdentity>) -> anyhow::Result<()> {
    check_advertise(args.listen, args.advertise.as_ref())?;
    let tls = args.tls.node_tls("shard", args.listen, true)?;
    let _lock = lock_data_dir(&args.data_dir)?;
    let listener = bind(args.listen, "gRPC").await?;
    let metrics_listener = bind_optional(args.metrics_listen, "metrics").await?;
    let coordinators: Vec<String> = args
        .coordinator
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    anyhow::ensure!(!coordinators.is_empty(), "--coordinator needs an address");
    let config = ShardRoleConfig {
        coordinators,
        data_dir: args.data_dir,
        labels: args.labels,
        node_id: args.node_id,
        advertise_address: args.advertise,
        engine: args.node.engine_config(listener.local_addr()?.to_string()),
        max_message_bytes: args.node.max_message_bytes(),
        keep_checkpoints: args.node.keep_checkpoints(),
        heartbeat_interval: args.heartbeat_interval,
        migration_nice: args.migration_nice,
        accept_data_loss: args.node.accept_data_loss,
        connections: args.connections.limits(),
        checkpoint_on_exit: !args.node.no_checkpoint_on_exit,
        drain_timeout: args.node.drain_timeout,
        identity,
        tls,
    };
    announce("shard", &listener, &metrics_listener, &None)?;
    run_shard(config, listener, metrics_listener, shutdown_signal())
        .await
        .context("strata-server shard")
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_engine::DEFAULT_GPU_MEMORY_BUDGET;
    use strata_server::transport::DEFAULT_MAX_MESSAGE_BYTES;
    use strata_storage::host::DEFAULT_MEMORY_RESERVE_BYTES;

    #[test]
    fn sizes_shown_in_help_are_the_library_defaults() {
        assert_eq!(
            parse_size(DEFAULT_MAX_MESSAGE_SIZE).ok(),
            Some(DEFAULT_MAX_MESSAGE_BYTES as u64)
        );
        assert_eq!(
            parse_size(DEFAULT_GPU_MEMORY_BUDGET_SIZE).ok(),
            Some(DEFAULT_GPU_MEMORY_BUDGET)
        );
        assert_eq!(
            parse_size(DEFAULT_MEMORY_RESERVE_SIZE).ok(),
            Some(DEFAULT_MEMORY_RESERVE_BYTES)
        );
    }
}
