//! `strata-server dev`: the cluster coordinator and one shard node in one process.
//!
//! It is the cluster of `strata-server coordinator` + `strata-server shard` with the node
//! reached by direct calls instead of gRPC: the same coordinator, the same `Coordinator`
//! service, the same checkpoints and plans. The data dir holds both the cluster record and
//! the node's checkpoints; the node registers before the first request is served. Opening
//! and registering the node are [`crate::roles::local`]'s, shared with in-process clusters.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;

use strata_proto::v1::coordinator_server::CoordinatorServer;

use crate::advertise::{advertised_address, Advertise};
use crate::connections::{bounded_incoming, ConnectionLimits};
use crate::incarnation::incarnation;
use crate::local_nodes::LocalNodes;
use crate::metrics::Metrics;
use crate::roles::durability::{self, Drained};
use crate::roles::local::{self, open_node};
use crate::roles::membership::{LinkError, Membership};
use crate::roles::{leading, serve, RoleError};
use crate::service::leader::LeaderSlot;
use crate::service::{parameter_routes, CoordinatorService, ParameterService};
use crate::shard_node::ShardNodeError;
use crate::transport::server_builder;
use strata_cluster::cluster::{ClusterConfig, ClusterCoordinator, ProcessIdentity};
use strata_cluster::topology::Topology;
use strata_cluster::CoordinatorError;
use strata_engine::{Engine, EngineConfig};

/// Time between the in-process node's heartbeats.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// The in-process node never goes silent unless the process stalls.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of a dev node.
#[derive(Debug, Clone)]
pub struct DevConfig {
    /// Where the cluster record and the checkpoints live.
    pub data_dir: PathBuf,
    /// Shards of a new cluster.
    pub shards: u32,
    /// Address clients reach this server at, in the cluster map for its node and given as
    /// the coordinator's (default: the bound one; required when that is unspecified).
    pub advertise_address: Option<Advertise>,
    /// Engine settings (slots, memory budget, batch limit).
    pub engine: EngineConfig,
    /// Largest gRPC message in bytes.
    pub max_message_bytes: usize,
    /// Checkpoints to keep.
    pub keep_checkpoints: usize,
    /// Nice value of the migration threads.
    pub migration_nice: i32,
    /// Start with empty tables when every checkpoint fails verification.
    pub accept_data_loss: bool,
    /// Connections open at once and the HTTP/2 handshake deadline.
    pub connections: ConnectionLimits,
    /// Write a checkpoint on exit when something changed since the newest one.
    pub checkpoint_on_exit: bool,
    /// How long connections get to drain after the shutdown signal.
    pub drain_timeout: Duration,
    /// Checkpoint the cluster this often when something changed (`None`: only on request).
    pub checkpoint_interval: Option<Duration>,
    /// What runs in this process: the node's and the coordinator's identity.
    pub identity: Option<ProcessIdentity>,
    /// TLS of the listener (`None`: plaintext).
    pub tls: Option<strata_proto::tls::ServerTls>,
}

/// Why a dev node stopped.
#[derive(Debug, Error)]
pub enum DevError {
    /// The cluster record could not be opened.
    #[error("opening the cluster record: {0}")]
    Coordinator(#[from] CoordinatorError),
    /// The node's data dir could not be opened or restored.
    #[error("opening the node: {0}")]
    Node(#[from] ShardNodeError),
    /// The node could not register with its coordinator.
    #[error("registering the node: {0}")]
    Register(String),
    /// Serving failed.
    #[error(transparent)]
    Role(#[from] RoleError),
    /// A setup task failed.
    #[error("setup: {0}")]
    Setup(String),
}

impl From<std::io::Error> for DevError {
    fn from(e: std::io::Error) -> Self {
        Self::Role(e.into())
    }
}

impl From<tonic::transport::Error> for DevError {
    fn from(e: tonic::transport::Error) -> Self {
        Self::Role(e.into())
    }
}

/// Runs a dev node on already-bound listeners until `shutdown` resolves.
pub async fn run_dev(
    config: DevConfig,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    status_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DevError> {
    let address = advertised_address(listener.local_addr()?, config.advertise_address.as_ref())
        .map_err(RoleError::from)?;
    let engine = Arc::new(Engine::new(config.engine.clone()));
    let node = open_node(
        &config.data_dir,
        engine.clone(),
        config.keep_checkpoints,
        config.migration_nice,
        config.accept_data_loss,
        None,
    )
    .await
    .map_err(|e| match e {
        RoleError::Shard(e) => DevError::Node(e),
        e => DevError::Role(e),
    })?;
    if let Some(identity) = &config.identity {
        node.set_identity(identity.clone());
    }
    let nodes = Arc::new(LocalNodes::new());
    nodes.insert(&address, node.clone());
    let cluster_config = ClusterConfig {
        data_dir: config.data_dir.clone(),
        shards: config.shards,
        num_slots: config.engine.num_slots,
        heartbeat_timeout: HEARTBEAT_TIMEOUT,
        advertise_address: address.clone(),
        keep_checkpoints: config.keep_checkpoints,
        topology: Topology::default(),
    };
    let coordinator = {
        let nodes = nodes.clone();
        tokio::task::spawn_blocking(move || ClusterCoordinator::open(cluster_config, nodes))
            .await
            .map_err(|e| DevError::Setup(e.to_string()))??
    };
    let coordinator = Arc::new(coordinator);

    let me = Membership {
        address: address.clone(),
        labels: Default::default(),
        memory_budget: config.engine.memory_budget,
        data_dir: config.data_dir.clone(),
        interval: HEARTBEAT_INTERVAL,
        incarnation: incarnation(&config.data_dir).map_err(RoleError::from)?,
        accept_data_loss: config.accept_data_loss,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    local::join(&node, me, &coordinator, &stop_rx)
        .await
        .map_err(|e: LinkError| DevError::Register(e.to_string()))?;
    leading::start(&coordinator, HEARTBEAT_TIMEOUT, None, &stop_rx);
    if let Some(interval) = config.checkpoint_interval {
        durability::start_periodic(&coordinator, interval, &stop_rx);
    }

    let (_health_reporter, health) =
        serve::health(&["strata.v1.Parameter", "strata.v1.Coordinator"]).await;
    let max = config.max_message_bytes;
    let metrics = Arc::new(
        Metrics::for_node(engine.clone())
            .with_migrations(node.migration_counters().clone())
            .with_cluster(Arc::new(LeaderSlot::leading(coordinator.clone()))),
    );
    let parameter = parameter_routes(ParameterService::new(engine.clone(), metrics.clone()), max);
    let coordinator_svc = CoordinatorServer::new(
        CoordinatorService::in_process_only(coordinator.clone())
            .with_metrics(metrics.clone())
            .identified(config.identity.clone()),
    )
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    let connections = metrics.connections.clone();
    let metrics_task = serve::metrics(metrics_listener, metrics, &stop_rx);
    let page = Arc::new(
        CoordinatorService::in_process_only(coordinator.clone())
            .identified(config.identity.clone()),
    );
    let page_task = serve::status_page(status_listener, page, &stop_rx);

    tracing::info!(%address, "strata-server dev serving");
    let (shutdown, signalled) = durability::watch_shutdown(shutdown);
    let serving = server_builder()
        .add_service(health)
        .add_service(serve::reflection_v1()?)
        .add_service(serve::reflection_v1alpha()?)
        .add_service(parameter)
        .add_service(coordinator_svc)
        .serve_with_incoming_shutdown(
            bounded_incoming(
                listener,
                config.connections,
                connections,
                config.tls.clone(),
            ),
            shutdown,
        );
    let drained = durability::drain_bounded(serving, signalled, config.drain_timeout).await;
    let _ = stop_tx.send(true);
    serve::finish_metrics(metrics_task).await;
    serve::finish_http("status page", page_task).await;
    match drained {
        Drained::Finished(result) => result?,
        Drained::TimedOut => node.stop_serving(),
    }
    if config.checkpoint_on_exit {
        durability::save_dev_on_exit(&coordinator, &node).await?;
    }
    Ok(())
}
