//! Prometheus metrics of one server, in an explicit registry (no global state).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tonic::Status;

use crate::connections::ConnectionMetrics;
use crate::migration::MigrationCounters;
use strata_engine::Engine;

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

/// Labels of migration traffic series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// "out" (sent as source) or "in" (received as destination).
    pub direction: &'static str,
}

/// Labels of data-path traffic series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrafficLabels {
    /// Table name.
    pub table: String,
    /// Client location (`strata-client-labels`; empty: unlabelled).
    pub location: String,
    /// "pull" or "push".
    pub direction: &'static str,
}

/// Labels of per-move series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MoveLabels {
    /// The move's attempt id.
    pub migration: String,
}

/// Migration series of a shard server.
struct MigrationFamilies {
    counters: Arc<MigrationCounters>,
    bytes: Family<DirectionLabels, Counter>,
    rows: Family<DirectionLabels, Counter>,
    active: Gauge,
    progress: Family<MoveLabels, Gauge<f64, AtomicU64>>,
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
    /// Row memory faulted in and held ready for new rows (`--memory-reserve`).
    pub memory_reserve_bytes: Gauge,
    /// Row memory chunks new rows took from the reserve.
    pub memory_reserve_taken: Counter,
    /// Row memory chunks new rows mapped on demand because the reserve was empty.
    pub memory_reserve_missed: Counter,
    /// Lookups of distinct ids that found the row resident, per table and caching tier.
    pub tier_hits: Family<TableLabels, Counter>,
    /// Lookups of distinct ids served by the tier behind, per table and caching tier.
    pub tier_misses: Family<TableLabels, Counter>,
    /// Rows admitted to a caching tier.
    pub tier_admissions: Family<TableLabels, Counter>,
    /// Rows evicted from a caching tier (and written back).
    pub tier_evictions: Family<TableLabels, Counter>,
    /// Hits over lookups since the table was created, per table and caching tier.
    pub tier_hit_ratio: Family<TableLabels, Gauge<f64, AtomicU64>>,
    /// Time requests waited on the device (copies and kernels), per table and caching tier.
    pub tier_device_seconds: Family<TableLabels, Counter<f64, AtomicU64>>,
    /// Data-path payload bytes per table, client location and direction.
    pub traffic_bytes: Family<TrafficLabels, Counter>,
    /// Open, refused and timed-out connections.
    pub connections: ConnectionMetrics,
    /// Migration series (shard servers only).
    migrations: Option<MigrationFamilies>,
    /// Serializes renders: table series are rebuilt from engine stats on each.
    render_lock: Mutex<()>,
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
        let memory_reserve_bytes = Gauge::default();
        let memory_reserve_taken = Counter::default();
        let memory_reserve_missed = Counter::default();
        let tier_hits = Family::<TableLabels, Counter>::default();
        let tier_misses = Family::<TableLabels, Counter>::default();
        let tier_admissions = Family::<TableLabels, Counter>::default();
        let tier_evictions = Family::<TableLabels, Counter>::default();
        let tier_hit_ratio = Family::<TableLabels, Gauge<f64, AtomicU64>>::default();
        let tier_device_seconds = Family::<TableLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "rpc_duration_seconds",
            "Request latency per rpc",
            rpc_seconds.clone(),
        );
        registry.register(
            "rpc_errors",
            "Failed requests per rpc and status code",
            rpc_errors.clone(),
        );
        registry.register("rows_pulled", "Rows served by Pull", rows_pulled.clone());
        registry.register("rows_pushed", "Rows received by Push", rows_pushed.clone());
        registry.register(
            "table_rows",
            "Rows held per table and tier",
            table_rows.clone(),
        );
        registry.register(
            "table_bytes",
            "Bytes held per table and tier",
            table_bytes.clone(),
        );
        registry.register(
            "memory_used_bytes",
            "Host memory budget in use",
            memory_used_bytes.clone(),
        );
        registry.register(
            "memory_reserve_bytes",
            "Row memory faulted in and held ready for new rows",
            memory_reserve_bytes.clone(),
        );
        registry.register(
            "memory_reserve_taken_chunks",
            "Row memory chunks (2 MiB) new rows took from the reserve",
            memory_reserve_taken.clone(),
        );
        registry.register(
            "memory_reserve_missed_chunks",
            "Row memory chunks (2 MiB) new rows faulted in on demand: the reserve was empty",
            memory_reserve_missed.clone(),
        );
        registry.register(
            "tier_hits",
            "Distinct ids found resident in a caching tier",
            tier_hits.clone(),
        );
        registry.register(
            "tier_misses",
            "Distinct ids a caching tier served from the tier behind it",
            tier_misses.clone(),
        );
        registry.register(
            "tier_admissions",
            "Rows admitted to a caching tier",
            tier_admissions.clone(),
        );
        registry.register(
            "tier_evictions",
            "Rows evicted from a caching tier and written back",
            tier_evictions.clone(),
        );
        registry.register(
            "tier_hit_ratio",
            "Hits over lookups of a caching tier since the table was created",
            tier_hit_ratio.clone(),
        );
        registry.register(
            "tier_device_seconds",
            "Time requests waited on the device (copies and kernels) of a caching tier",
            tier_device_seconds.clone(),
        );
        let traffic_bytes = Family::<TrafficLabels, Counter>::default();
        registry.register(
            "traffic_bytes",
            "Data-path payload bytes (ids and rows) per table, client location and direction",
            traffic_bytes.clone(),
        );
        let connections = ConnectionMetrics::default();
        registry.register(
            "connections_open",
            "Connections open now",
            connections.open.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at accept because --max-connections was reached",
            connections.refused.clone(),
        );
        registry.register(
            "connections_handshake_timeouts",
            "Connections closed because they did not start HTTP/2 within --handshake-timeout",
            connections.handshake_timeouts.clone(),
        );
        registry.register(
            "connections_tls_failures",
            "TLS handshakes that failed (a certificate refused, a client not speaking TLS)",
            connections.tls_failures.clone(),
        );
        Self {
            registry,
            rpc_seconds,
            rpc_errors,
            rows_pulled,
            rows_pushed,
            table_rows,
            table_bytes,
            memory_used_bytes,
            memory_reserve_bytes,
            memory_reserve_taken,
            memory_reserve_missed,
            tier_hits,
            tier_misses,
            tier_admissions,
            tier_evictions,
            tier_hit_ratio,
            tier_device_seconds,
            traffic_bytes,
            connections,
            migrations: None,
            render_lock: Mutex::new(()),
        }
    }

    /// Adds migration series read from `counters` (bytes and rows in and out, moves
    /// under way, progress of each move this node sends).
    pub fn with_migrations(mut self, counters: Arc<MigrationCounters>) -> Self {
        let m = MigrationFamilies {
            counters,
            bytes: Family::default(),
            rows: Family::default(),
            active: Gauge::default(),
            progress: Family::default(),
        };
        let r = &mut self.registry;
        r.register(
            "migration_bytes",
            "Row bytes moved by migrations",
            m.bytes.clone(),
        );
        r.register("migration_rows", "Rows moved by migrations", m.rows.clone());
        r.register(
            "migrations_active",
            "Migrations under way on this node",
            m.active.clone(),
        );
        r.register(
            "migration_progress_ratio",
            "Bytes sent over bytes of the range, per move this node sends",
            m.progress.clone(),
        );
        self.migrations = Some(m);
        self
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
        let _render = self.render_lock.lock();
        if let Some(m) = &self.migrations {
            let c = &m.counters;
            m.bytes.clear();
            m.rows.clear();
            m.progress.clear();
            for (direction, bytes, rows) in [
                ("out", &c.bytes_out, &c.rows_out),
                ("in", &c.bytes_in, &c.rows_in),
            ] {
                let labels = DirectionLabels { direction };
                m.bytes
                    .get_or_create(&labels)
                    .inc_by(bytes.load(Ordering::Relaxed));
                m.rows
                    .get_or_create(&labels)
                    .inc_by(rows.load(Ordering::Relaxed));
            }
            m.active.set(c.active.load(Ordering::Relaxed));
            for (id, &(sent, total)) in c.progress.lock().iter() {
                let ratio = if total == 0 {
                    0.0
                } else {
                    (sent as f64 / total as f64).min(1.0)
                };
                m.progress
                    .get_or_create(&MoveLabels {
                        migration: id.clone(),
                    })
                    .set(ratio);
            }
        }
        self.table_rows.clear();
        self.table_bytes.clear();
        self.tier_hits.clear();
        self.tier_misses.clear();
        self.tier_admissions.clear();
        self.tier_evictions.clear();
        self.tier_hit_ratio.clear();
        self.tier_device_seconds.clear();
        self.traffic_bytes.clear();
        for table in engine.tables() {
            let name = &table.spec().name;
            for (location, [pull, push]) in table.traffic().totals(&engine.traffic().locations) {
                for (direction, bytes) in [("pull", pull), ("push", push)] {
                    self.traffic_bytes
                        .get_or_create(&TrafficLabels {
                            table: name.clone(),
                            location: location.to_string(),
                            direction,
                        })
                        .inc_by(bytes);
                }
            }
            for part in table.breakdown() {
                let labels = TableLabels {
                    table: name.clone(),
                    tier: part.tier,
                };
                self.table_rows
                    .get_or_create(&labels)
                    .set(part.stats.rows as i64);
                self.table_bytes
                    .get_or_create(&labels)
                    .set(part.stats.bytes as i64);
            }
            if let Some(cache) = table.cache_stats() {
                let labels = TableLabels {
                    table: name.clone(),
                    tier: "gpu",
                };
                // Counters are rebuilt from the tier's monotonic totals on every render.
                self.tier_hits.get_or_create(&labels).inc_by(cache.hits);
                self.tier_misses.get_or_create(&labels).inc_by(cache.misses);
                self.tier_admissions
                    .get_or_create(&labels)
                    .inc_by(cache.admissions);
                self.tier_evictions
                    .get_or_create(&labels)
                    .inc_by(cache.evictions);
                self.tier_hit_ratio
                    .get_or_create(&labels)
                    .set(cache.hit_rate());
                self.tier_device_seconds
                    .get_or_create(&labels)
                    .inc_by(cache.device_ns as f64 / 1e9);
            }
        }
        self.memory_used_bytes.set(engine.budget().used() as i64);
        let reserve = engine.row_memory().reserve();
        self.memory_reserve_bytes.set(reserve.bytes() as i64);
        // The reserve's totals are monotonic; renders are serialized, so the counters
        // advance by what is new since the last render.
        self.memory_reserve_taken.inc_by(
            reserve
                .taken()
                .saturating_sub(self.memory_reserve_taken.get()),
        );
        self.memory_reserve_missed.inc_by(
            reserve
                .missed()
                .saturating_sub(self.memory_reserve_missed.get()),
        );
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_engine::EngineConfig;

    #[test]
    fn migration_series_follow_the_counters() {
        let counters = Arc::new(MigrationCounters::default());
        let metrics = Metrics::new().with_migrations(counters.clone());
        counters.bytes_out.store(4096, Ordering::Relaxed);
        counters.rows_in.store(7, Ordering::Relaxed);
        counters.active.store(1, Ordering::Relaxed);
        counters
            .progress
            .lock()
            .insert("plan-1-m1-a1".into(), (50, 200));
        let text = metrics.render(&Engine::new(EngineConfig::default()));
        assert!(
            text.contains("strata_migration_bytes_total{direction=\"out\"} 4096"),
            "{text}"
        );
        assert!(
            text.contains("strata_migration_rows_total{direction=\"in\"} 7"),
            "{text}"
        );
        assert!(text.contains("strata_migrations_active 1"), "{text}");
        assert!(
            text.contains("strata_migration_progress_ratio{migration=\"plan-1-m1-a1\"} 0.25"),
            "{text}"
        );
        // Rendering twice does not double the counters.
        let again = metrics.render(&Engine::new(EngineConfig::default()));
        assert!(again.contains("strata_migration_bytes_total{direction=\"out\"} 4096"));
    }

    #[test]
    fn gpu_tier_families_are_rendered() {
        use strata_engine::{Engine, EngineConfig};
        use strata_storage::optimizer::{OptimizerConfig, OptimizerKind};
        use strata_storage::spec::{InitializerConfig, TableSpec, TierKind};

        let engine = Engine::new(EngineConfig {
            gpu_reference: true,
            gpu_memory_budget: 64 << 10,
            ..EngineConfig::default()
        });
        engine
            .create_table(TableSpec {
                name: "g".into(),
                dim: 4,
                optimizer: OptimizerConfig::new(OptimizerKind::Sgd { lr: 1.0 }),
                initializer: InitializerConfig::Zeros,
                seed: 1,
                tier: TierKind::Gpu,
            })
            .expect("create");
        let ids: Vec<u64> = (0..5000).collect();
        let mut out = vec![0.0; ids.len() * 4];
        engine.pull("g", &ids, &mut out).expect("pull");
        engine
            .push("g", &ids, &vec![1.0; ids.len() * 4])
            .expect("push");
        let text = Metrics::new().render(&engine);
        for family in [
            "strata_tier_hits_total{table=\"g\",tier=\"gpu\"}",
            "strata_tier_evictions_total{table=\"g\",tier=\"gpu\"}",
            "strata_tier_hit_ratio{table=\"g\",tier=\"gpu\"}",
            "strata_tier_device_seconds_total{table=\"g\",tier=\"gpu\"}",
            "strata_table_rows{table=\"g\",tier=\"host\"} 5000",
            "strata_table_rows{table=\"g\",tier=\"gpu\"}",
        ] {
            assert!(text.contains(family), "{family} missing from\n{text}");
        }
    }
}
