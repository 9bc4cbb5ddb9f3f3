//! `strata-server coordinator`: the control plane of a cluster of shard servers.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_proto::v1::coordinator_server::CoordinatorServer;
use tokio::net::TcpListener;

use super::{serve, RoleError};
use crate::coordinator::cluster::{ClusterConfig, ClusterCoordinator};
use crate::engine::{Engine, EngineConfig};
use crate::metrics::Metrics;
use crate::service::{ClusterCoordinatorService, GrpcNodeControl};
use crate::transport::server_builder;

/// Settings of a coordinator process.
#[derive(Debug, Clone)]
pub struct CoordinatorRoleConfig {
    /// Where the cluster record lives.
    pub data_dir: PathBuf,
    /// Shards of a new cluster.
    pub shards: u32,
    /// Slots of a new cluster.
    pub num_slots: u32,
    /// A node silent this long is marked down.
    pub heartbeat_timeout: Duration,
    /// Largest gRPC message in bytes.
    pub max_message_bytes: usize,
    /// Address shard servers and clients reach this coordinator at (default: the bound one).
    pub advertise_address: Option<String>,
}

/// Runs a coordinator on already-bound listeners until `shutdown` resolves.
pub async fn run_coordinator(
    config: CoordinatorRoleConfig,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let address = match &config.advertise_address {
        Some(a) => a.clone(),
        None => listener.local_addr()?.to_string(),
    };
    let cluster_config = ClusterConfig {
        data_dir: config.data_dir.clone(),
        shards: config.shards,
        num_slots: config.num_slots,
        heartbeat_timeout: config.heartbeat_timeout,
        advertise_address: address.clone(),
    };
    let coordinator = Arc::new(ClusterCoordinator::open(
        cluster_config,
        Arc::new(GrpcNodeControl::new()),
    )?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(sweep_loop(
        coordinator.clone(),
        config.heartbeat_timeout,
        stop_rx.clone(),
    ));
    tokio::spawn(push_maps(coordinator.clone(), stop_rx.clone()));

    let (_health_reporter, health) = serve::health(&["strata.v1.Coordinator"]).await;
    let max = config.max_message_bytes;
    let service = CoordinatorServer::new(ClusterCoordinatorService::new(coordinator))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let metrics = Arc::new(Metrics::new());
    let engine = Arc::new(Engine::new(EngineConfig::default()));
    let metrics_task = serve::metrics(metrics_listener, metrics, engine, &stop_rx);

    tracing::info!(%address, "strata-server coordinator serving");
    let result = server_builder()
        .add_service(health)
        .add_service(serve::reflection()?)
        .add_service(service)
        .serve_with_incoming_shutdown(crate::transport::incoming(listener), shutdown)
        .await;
    let _ = stop_tx.send(true);
    serve::finish_metrics(metrics_task).await;
    result?;
    Ok(())
}

/// Marks silent nodes down, checking several times per timeout.
async fn sweep_loop(
    coordinator: Arc<ClusterCoordinator>,
    timeout: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let period = (timeout / 4).max(Duration::from_millis(50));
    let mut ticker = tokio::time::interval(period);
    let stopped = serve::stopped(&stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = ticker.tick() => {
                if let Err(e) = coordinator.sweep() {
                    tracing::error!(error = %e, "cannot record a node going down");
                }
            }
        }
    }
}

/// Sends every new map to the up nodes, so they refuse slots they no longer own at once.
async fn push_maps(coordinator: Arc<ClusterCoordinator>, stop: tokio::sync::watch::Receiver<bool>) {
    let mut maps = coordinator.watch_map();
    let stopped = serve::stopped(&stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            changed = maps.changed() => {
                if changed.is_err() {
                    return;
                }
                maps.borrow_and_update();
                coordinator.push_map().await;
            }
        }
    }
}
