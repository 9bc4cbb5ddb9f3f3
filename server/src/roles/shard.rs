//! `strata-server shard`: a shard server that registers with the coordinator and serves
//! the slots the map gives it.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::membership::{self, Membership};
use super::{serve, RoleError};
use crate::connections::{bounded_incoming, ConnectionLimits};
use crate::metrics::Metrics;
use crate::service::{
    parameter_routes, shard_control_routes, ParameterService, ShardControlService,
};
use crate::shard_node::{stored_node_id, ShardNode};
use crate::transport::server_builder;
use strata_engine::{Engine, EngineConfig};

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
    pub advertise_address: Option<String>,
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
}

/// Runs a shard server on already-bound listeners until `shutdown` resolves.
pub async fn run_shard(
    config: ShardRoleConfig,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let address = match &config.advertise_address {
        Some(a) => a.clone(),
        None => listener.local_addr()?.to_string(),
    };
    let engine = Arc::new(Engine::new(config.engine.clone()));
    let (data_dir, keep, open_engine, nice, accept_data_loss) = (
        config.data_dir.clone(),
        config.keep_checkpoints,
        engine.clone(),
        config.migration_nice,
        config.accept_data_loss,
    );
    let node = tokio::task::spawn_blocking(move || {
        let node = ShardNode::open(&data_dir, open_engine, keep, nice, accept_data_loss)?;
        Ok::<_, RoleError>((node, stored_node_id(&data_dir)?))
    })
    .await
    .map_err(|e| RoleError::Setup(e.to_string()))??;
    let (node, stored_id) = node;
    if let Some(id) = stored_id.or(config.node_id.clone()) {
        node.set_node_id(&id);
    }
    let node = Arc::new(node);
    let metrics = Arc::new(Metrics::new().with_migrations(node.migration_counters().clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let link = membership::GrpcLink::new(&config.coordinators).map_err(RoleError::Setup)?;
    let me = Membership {
        address: address.clone(),
        labels: config.labels.clone(),
        memory_budget: config.engine.memory_budget,
        data_dir: config.data_dir.clone(),
        interval: config.heartbeat_interval,
    };
    tokio::spawn(membership::run(
        node.clone(),
        me,
        Box::new(link),
        false,
        stop_rx.clone(),
    ));

    let (_health_reporter, health) =
        serve::health(&["strata.v1.Parameter", "strata.v1.ShardControl"]).await;
    let max = config.max_message_bytes;
    let parameter = parameter_routes(ParameterService::new(engine.clone(), metrics.clone()), max);
    let control = shard_control_routes(ShardControlService::new(node), max);
    let connections = metrics.connections.clone();
    let metrics_task = serve::metrics(metrics_listener, metrics, engine, &stop_rx);

    tracing::info!(%address, "strata-server shard serving");
    let result = server_builder()
        .add_service(health)
        .add_service(serve::reflection_v1()?)
        .add_service(serve::reflection_v1alpha()?)
        .add_service(parameter)
        .add_service(control)
        .serve_with_incoming_shutdown(
            bounded_incoming(listener, config.connections, connections),
            shutdown,
        )
        .await;
    let _ = stop_tx.send(true);
    serve::finish_metrics(metrics_task).await;
    result?;
    Ok(())
}
