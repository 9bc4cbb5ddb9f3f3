//! `strata-server dev`: coordinator and shard server in one process.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

use strata_proto::v1::coordinator_server::CoordinatorServer;

use crate::coordinator::{CoordinatorError, LocalCoordinator, LocalCoordinatorConfig};
use crate::engine::{Engine, EngineConfig};
use crate::metrics::Metrics;
use crate::service::{parameter_routes, CoordinatorService, ParameterService};
use crate::transport::{incoming, server_builder};

/// Settings of a dev node.
#[derive(Debug, Clone)]
pub struct DevConfig {
    /// Where the catalog and checkpoints live.
    pub data_dir: PathBuf,
    /// Shards of a new cluster.
    pub shards: u32,
    /// Engine settings (slots, memory budget, batch limit).
    pub engine: EngineConfig,
    /// Largest gRPC message in bytes.
    pub max_message_bytes: usize,
    /// Checkpoints to keep.
    pub keep_checkpoints: usize,
}

/// Why a dev node stopped.
#[derive(Debug, Error)]
pub enum DevError {
    /// The data dir could not be opened or restored.
    #[error("opening data dir: {0}")]
    Open(#[from] CoordinatorError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The metrics server failed.
    #[error("metrics server: {0}")]
    Metrics(#[from] std::io::Error),
    /// The reflection service could not be built.
    #[error("reflection: {0}")]
    Reflection(String),
}

/// Runs a dev node on already-bound listeners until `shutdown` resolves.
pub async fn run_dev(
    config: DevConfig,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DevError> {
    let address = listener.local_addr()?.to_string();
    let engine = Arc::new(Engine::new(config.engine.clone()));
    let data_dir = config.data_dir.clone();
    let coord_config = LocalCoordinatorConfig {
        advertise_address: address.clone(),
        shards: config.shards,
        keep_checkpoints: config.keep_checkpoints,
    };
    let open_engine = engine.clone();
    let coordinator = tokio::task::spawn_blocking(move || {
        LocalCoordinator::open(&data_dir, open_engine, coord_config)
    })
    .await
    .map_err(|e| DevError::Reflection(e.to_string()))??;
    let coordinator = Arc::new(coordinator);
    let metrics = Arc::new(Metrics::new());

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("strata.v1.Parameter", ServingStatus::Serving)
        .await;
    health_reporter
        .set_service_status("strata.v1.Coordinator", ServingStatus::Serving)
        .await;
    health_reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(strata_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| DevError::Reflection(e.to_string()))?;

    let max = config.max_message_bytes;
    let parameter = parameter_routes(ParameterService::new(engine.clone(), metrics.clone()), max);
    let coordinator_svc = CoordinatorServer::new(CoordinatorService::new(coordinator.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics_task = metrics_listener.map(|l| {
        let mut rx = stop_rx.clone();
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tokio::spawn(crate::metrics_http::serve_metrics(
            l,
            metrics.clone(),
            engine.clone(),
            stop,
        ))
    });

    tracing::info!(%address, "strata-server dev serving");
    let result = server_builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(parameter)
        .add_service(coordinator_svc)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await;
    let _ = stop_tx.send(true);
    if let Some(task) = metrics_task {
        if let Ok(Err(e)) = task.await {
            tracing::warn!(error = %e, "metrics server stopped with an error");
        }
    }
    result?;
    Ok(())
}
