//! `strata-server shard`: a shard server that registers with the coordinator and serves
//! the slots the map gives it.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::durability::{self, Drained};
use super::local::open_node;
use super::membership::{self, Membership};
use super::{serve, RoleError};
use crate::advertise::{advertised_address, Advertise};
use crate::connections::{bounded_incoming, ConnectionLimits};
use crate::incarnation::incarnation;
use crate::metrics::Metrics;
use crate::service::{
    parameter_routes, shard_control_routes, ParameterService, ShardControlService,
};
use crate::shard_node::ShardNode;
use crate::tls::NodeTls;
use crate::transport::server_builder;
use strata_cluster::cluster::ProcessIdentity;
use strata_engine::{Engine, EngineConfig};
use strata_proto::tls::ServerTls;

/// Settings of a shard-server process.
#[derive(Debug, Clone)]
pub struct ShardRoleConfig {
    /// Coordinator addresses.
    pub coordinators: Vec<String>,
    /// Data dir: node id and checkpoints.
    pub data_dir: PathBuf,
    /// Topology labels.
    pub labels: BTreeMap<String, String>,
    /// Node id to use when the data dir has none (default: the coordinator assigns one).
    pub node_id: Option<String>,
    /// Address clients reach this node at (default: the bound one).
    pub advertise_address: Option<Advertise>,
    /// Engine settings.
    pub engine: EngineConfig,
    /// Largest gRPC message in bytes.
    pub max_message_bytes: usize,
    /// Checkpoints to keep.
    pub keep_checkpoints: usize,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
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
    /// What runs in this process, reported with registrations and heartbeats.
    pub identity: Option<ProcessIdentity>,
    /// TLS of the listener and of calls to the coordinator and other nodes.
    pub tls: NodeTls,
}

/// Runs a shard server on already-bound listeners until `shutdown` resolves.
pub async fn run_shard(
    config: ShardRoleConfig,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let address = advertised_address(listener.local_addr()?, config.advertise_address.as_ref())?;
    let engine = Arc::new(Engine::new(config.engine.clone()));
    let node = open_node(
        &config.data_dir,
        engine,
        config.keep_checkpoints,
        config.migration_nice,
        config.accept_data_loss,
        config.node_id.clone(),
    )
    .await?;
    if let Some(identity) = &config.identity {
        node.set_identity(identity.clone());
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    node.set_client_tls(config.tls.client.clone());
    let link = membership::GrpcLink::new(&config.coordinators, config.tls.client.clone())
        .map_err(RoleError::Setup)?;
    let me = Membership {
        address: address.clone(),
        labels: config.labels.clone(),
        memory_budget: config.engine.memory_budget,
        data_dir: config.data_dir.clone(),
        interval: config.heartbeat_interval,
        incarnation: incarnation(&config.data_dir)?,
        accept_data_loss: config.accept_data_loss,
    };
    let heartbeats = tokio::spawn(membership::run(
        node.clone(),
        me,
        Box::new(link),
        false,
        stop_rx,
    ));
    // A refused registration ends the process: the node never serves fresh rows in place
    // of the trained rows its shards held.
    let refused = async {
        match heartbeats.await {
            Ok(Err(refusal)) => refusal,
            _ => std::future::pending().await,
        }
    };
    tracing::info!(%address, "strata-server shard serving");
    let (shutdown, signalled) = durability::watch_shutdown(shutdown);
    let serving = serve_node(
        node.clone(),
        listener,
        metrics_listener,
        config.max_message_bytes,
        config.connections,
        config.tls.server.clone(),
        shutdown,
    );
    let drained = tokio::select! {
        d = durability::drain_bounded(serving, signalled, config.drain_timeout) => d,
        refusal = refused => return Err(RoleError::Refused(refusal.to_string())),
    };
    // Heartbeats end first: no map arrives while the exit checkpoint is written.
    let _ = stop_tx.send(true);
    match drained {
        Drained::Finished(result) => result?,
        Drained::TimedOut => node.stop_serving(),
    }
    if config.checkpoint_on_exit {
        durability::save_node_on_exit(&node).await?;
    }
    Ok(())
}

/// Serves a shard node's Parameter and ShardControl services (with health, reflection and
/// `/metrics` when given a listener) on `listener` until `shutdown` resolves.
pub(super) async fn serve_node(
    node: Arc<ShardNode>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    max_message_bytes: usize,
    connections: ConnectionLimits,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let engine = node.engine().clone();
    let metrics = Arc::new(
        Metrics::for_node(engine.clone()).with_migrations(node.migration_counters().clone()),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (_health_reporter, health) =
        serve::health(&["strata.v1.Parameter", "strata.v1.ShardControl"]).await;
    let max = max_message_bytes;
    let parameter = parameter_routes(ParameterService::new(engine.clone(), metrics.clone()), max);
    let control = shard_control_routes(ShardControlService::new(node, metrics.clone()), max);
    let counters = metrics.connections.clone();
    let metrics_task = serve::metrics(metrics_listener, metrics, &stop_rx);
    let result = server_builder()
        .add_service(health)
        .add_service(serve::reflection_v1()?)
        .add_service(serve::reflection_v1alpha()?)
        .add_service(parameter)
        .add_service(control)
        .serve_with_incoming_shutdown(
            bounded_incoming(listener, connections, counters, tls),
            shutdown,
        )
        .await;
    let _ = stop_tx.send(true);
    serve::finish_metrics(metrics_task).await;
    result?;
    Ok(())
}
