//! What every role serves besides its own services: health, reflection, `/metrics`, and
//! (on the roles with a coordinator) the status page.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use super::RoleError;
use crate::metrics::Metrics;
use crate::service::CoordinatorService;

/// A health service reporting `services` (and the server as a whole) as serving.
pub async fn health(
    services: &[&str],
) -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (reporter, service) = tonic_health::server::health_reporter();
    for s in services.iter().chain(&[""]) {
        reporter
            .set_service_status(*s, ServingStatus::Serving)
            .await;
    }
    (reporter, service)
}

/// The `grpc.reflection.v1` service over strata's descriptors.
pub fn reflection_v1() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    RoleError,
> {
    reflection_builder()
        .build_v1()
        .map_err(|e| RoleError::Setup(e.to_string()))
}

/// The `grpc.reflection.v1alpha` service, for clients that speak only that one (Python's
/// grpcio-reflection, older grpcurl).
pub fn reflection_v1alpha() -> Result<
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
    RoleError,
> {
    reflection_builder()
        .build_v1alpha()
        .map_err(|e| RoleError::Setup(e.to_string()))
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(strata_proto::FILE_DESCRIPTOR_SET)
}

/// Serves `/metrics` until `stop` turns true.
pub fn metrics(
    listener: Option<TcpListener>,
    metrics: Arc<Metrics>,
    stop: &watch::Receiver<bool>,
) -> Option<JoinHandle<std::io::Result<()>>> {
    listener.map(|l| {
        if let Ok(address) = l.local_addr() {
            tracing::info!(%address, "metrics serving at /metrics");
        }
        let mut rx = stop.clone();
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tokio::spawn(crate::metrics_http::serve_metrics(l, metrics, stop))
    })
}

/// Serves the status page of `service` until `stop` turns true.
pub fn status_page(
    listener: Option<TcpListener>,
    service: Arc<CoordinatorService>,
    stop: &watch::Receiver<bool>,
) -> Option<JoinHandle<std::io::Result<()>>> {
    listener.map(|l| {
        tokio::spawn(crate::status_page::serve_status_page(
            l,
            service,
            stopped(stop),
        ))
    })
}

/// Waits for the metrics server after the gRPC server stopped.
pub async fn finish_metrics(task: Option<JoinHandle<std::io::Result<()>>>) {
    finish_http("metrics server", task).await;
}

/// Waits for an HTTP server (`what`) after the gRPC server stopped.
pub async fn finish_http(what: &str, task: Option<JoinHandle<std::io::Result<()>>>) {
    if let Some(task) = task {
        if let Ok(Err(e)) = task.await {
            tracing::warn!(error = %e, "{what} stopped with an error");
        }
    }
}

/// A future that resolves when `stop` turns true.
pub fn stopped(stop: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = stop.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}
