//! Prometheus metrics of one server, in an explicit registry (no global state).

use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tonic::Status;

use crate::engine::Engine;

/// Labels of per-rpc series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// The rpc name.
    pub rpc: &'static str,
}

/// Labels of error series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The rpc name.
    pub rpc: &'static str,
    /// The gRPC status code.
    pub code: String,
}

/// Labels of per-table series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    /// Table name.
    pub table: String,
    /// Tier ("host", "gpu").
    pub tier: &'static str,
}

/// The metric families of a server.
pub struct Metrics {
    registry: Registry,
    /// Request latency per rpc.
    pub rpc_seconds: Family<RpcLabels, Histogram>,
    /// Errors per rpc and status code.
    pub rpc_errors: Family<ErrorLabels, Counter>,
    /// Rows served by Pull.
    pub rows_pulled: Counter,
    /// Rows received by Push.
    pub rows_pushed: Counter,
    /// Rows held per table and tier.
    pub table_rows: Family<TableLabels, Gauge>,
    /// Bytes held per table and tier.
    pub table_bytes: Family<TableLabels, Gauge>,
    /// Host memory budget in use.
    pub memory_used_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("strata");
        let rpc_seconds = Family::<RpcLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00005, 2.0, 20))
        });
        let rpc_errors = Family::<ErrorLabels, Counter>::default();
        let rows_pulled = Counter::default();
        let rows_pushed = Counter::default();
        let table_rows = Family::<TableLabels, Gauge>::default();
        let table_bytes = Family::<TableLabels, Gauge>::default();
        let memory_used_bytes = Gauge::default();
        registry.register("rpc_duration_seconds", "Request latency per rpc", rpc_seconds.clone());
        registry.register("rpc_errors", "Failed requests per rpc and status code", rpc_errors.clone());
        registry.register("rows_pulled", "Rows served by Pull", rows_pulled.clone());
        registry.register("rows_pushed", "Rows received by Push", rows_pushed.clone());
        registry.register("table_rows", "Rows held per table and tier", table_rows.clone());
        registry.register("table_bytes", "Bytes held per table and tier", table_bytes.clone());
        registry.register("memory_used_bytes", "Host memory budget in use", memory_used_bytes.clone());
        Self {
            registry,
            rpc_seconds,
            rpc_errors,
            rows_pulled,
            rows_pushed,
            table_rows,
            table_bytes,
            memory_used_bytes,
        }
    }

    /// Records one rpc's latency and, if it failed, its status code.
    pub fn record_rpc<T>(&self, rpc: &'static str, start: Instant, result: &Result<T, Status>) {
        self.rpc_seconds
            .get_or_create(&RpcLabels { rpc })
            .observe(start.elapsed().as_secs_f64());
        if let Err(status) = result {
            self.rpc_errors
                .get_or_create(&ErrorLabels {
                    rpc,
                    code: format!("{:?}", status.code()),
                })
                .inc();
        }
    }

    /// Prometheus text of every family, with table gauges read from `engine` now.
    pub fn render(&self, engine: &Engine) -> String {
        self.table_rows.clear();
        self.table_bytes.clear();
        for table in engine.tables() {
            let stats = table.stats();
            let labels = TableLabels {
                table: table.spec().name.clone(),
                tier: "host",
            };
            self.table_rows.get_or_create(&labels).set(stats.rows as i64);
            self.table_bytes.get_or_create(&labels).set(stats.bytes as i64);
        }
        self.memory_used_bytes.set(engine.budget().used() as i64);
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
