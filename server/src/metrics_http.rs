//! `GET /metrics` (Prometheus text) on the metrics listener.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use strata_engine::Engine;

#[derive(Clone)]
struct MetricsState {
    metrics: Arc<Metrics>,
    engine: Arc<Engine>,
}

async fn render(State(state): State<MetricsState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(&state.engine),
    )
}

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(MetricsState { metrics, engine });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
