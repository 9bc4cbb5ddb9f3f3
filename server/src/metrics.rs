//! Prometheus metrics of one server process, in an explicit registry (no global state).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tonic::Status;

use crate::cluster_metrics::ClusterCollector;
use crate::connections::ConnectionMetrics;
use crate::metrics_text::{openmetrics_to_prometheus, Format, TextFormatError};
use crate::migration::MigrationCounters;
use crate::process_metrics::ProcessCollector;
use crate::service::leader::LeaderSlot;
use strata_engine::staleness::IDLE_THRESHOLDS;
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

/// Labels of per-table row-count series by direction.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableDirectionLabels {
    /// Table name.
    pub table: String,
    /// "pull" or "push".
    pub direction: &'static str,
}

/// Labels of per-table staleness series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IdleLabels {
    /// Table name.
    pub table: String,
    /// The idle time (`1m`, `5m`, `15m`, `1h`, `6h`, `1d`, `7d`).
    pub idle_for: &'static str,
}

/// Labels of per-table series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableNameLabels {
    /// Table name.
    pub table: String,
}

/// Labels of per-move series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MoveLabels {
    /// The move's attempt id.
    pub migration: String,
}

/// Labels of `strata_build_info`: what the binary was built from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The workspace version.
    pub version: &'static str,
    /// The git commit (full hex, or `unknown`).
    pub commit: &'static str,
    /// Whether tracked files differed from the commit: `true` or `false`.
    pub dirty: &'static str,
    /// The cargo profile.
    pub profile: &'static str,
}

/// Migration series of a shard server.
struct MigrationFamilies {
    counters: Arc<MigrationCounters>,
    bytes: Family<DirectionLabels, Counter>,
    rows: Family<DirectionLabels, Counter>,
    active: Gauge,
    progress: Family<MoveLabels, Gauge<f64, AtomicU64>>,
}

/// The families of a shard node: its data path and what its engine holds.
pub struct NodeFamilies {
    engine: Arc<Engine>,
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
    /// Host memory budget (`--memory-budget`).
    pub memory_budget_bytes: Gauge,
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
    /// Rows pulled and pushed per table (each row of a request counts, duplicates too).
    pub table_rows_served: Family<TableDirectionLabels, Counter>,
    /// Estimated rows per table whose last push is at least `idle_for` ago.
    pub table_rows_idle: Family<IdleLabels, Gauge>,
    /// Estimated rows per table never pushed (created by pulls only).
    pub table_rows_never_pushed: Family<TableNameLabels, Gauge>,
}

/// The metric families of a server process: its rpcs, connections and `process_*` series;
/// a shard node's families ([`Metrics::for_node`]), its migrations
/// ([`Metrics::with_migrations`]) and a coordinator's cluster families
/// ([`Metrics::with_cluster`]) where the process has them.
pub struct Metrics {
    registry: Registry,
    /// `process_*` families (no `strata_` prefix).
    process: Registry,
    /// Request latency per rpc.
    pub rpc_seconds: Family<RpcLabels, Histogram>,
    /// Errors per rpc and status code.
    pub rpc_errors: Family<ErrorLabels, Counter>,
    /// Open, refused and timed-out connections.
    pub connections: ConnectionMetrics,
    /// A shard node's families.
    node: Option<NodeFamilies>,
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
    /// A fresh registry with the families every server has: rpcs, connections, process.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("strata");
        register_build_info(&mut registry);
        let rpc_seconds = Family::<RpcLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00005, 2.0, 20))
        });
        let rpc_errors = Family::<ErrorLabels, Counter>::default();
        registry.register_with_unit(
            "rpc_duration",
            "Request latency per rpc (for streams: until the stream is open)",
            Unit::Seconds,
            rpc_seconds.clone(),
        );
        registry.register(
            "rpc_errors",
            "Failed requests per rpc and status code",
            rpc_errors.clone(),
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
        let mut process = Registry::default();
        process.register_collector(Box::new(ProcessCollector));
        Self {
            registry,
            process,
            rpc_seconds,
            rpc_errors,
            connections,
            node: None,
            migrations: None,
            render_lock: Mutex::new(()),
        }
    }

    /// The families of a shard node serving `engine`: rows pulled and pushed, rows and bytes
    /// per table and tier, memory, caching tiers and traffic, read from `engine` on each
    /// render.
    pub fn for_node(engine: Arc<Engine>) -> Self {
        let mut metrics = Self::new();
        let r = &mut metrics.registry;
        let node = NodeFamilies {
            engine,
            rows_pulled: Counter::default(),
            rows_pushed: Counter::default(),
            table_rows: Family::default(),
            table_bytes: Family::default(),
            memory_used_bytes: Gauge::default(),
            memory_budget_bytes: Gauge::default(),
            memory_reserve_bytes: Gauge::default(),
            memory_reserve_taken: Counter::default(),
            memory_reserve_missed: Counter::default(),
            tier_hits: Family::default(),
            tier_misses: Family::default(),
            tier_admissions: Family::default(),
            tier_evictions: Family::default(),
            tier_hit_ratio: Family::default(),
            tier_device_seconds: Family::default(),
            traffic_bytes: Family::default(),
            table_rows_served: Family::default(),
            table_rows_idle: Family::default(),
            table_rows_never_pushed: Family::default(),
        };
        r.register(
            "rows_pulled",
            "Rows served by Pull",
            node.rows_pulled.clone(),
        );
        r.register(
            "rows_pushed",
            "Rows received by Push",
            node.rows_pushed.clone(),
        );
        r.register(
            "table_rows",
            "Rows held per table and tier",
            node.table_rows.clone(),
        );
        r.register_with_unit(
            "table",
            "Bytes held per table and tier",
            Unit::Bytes,
            node.table_bytes.clone(),
        );
        r.register_with_unit(
            "memory_used",
            "Host memory budget in use",
            Unit::Bytes,
            node.memory_used_bytes.clone(),
        );
        r.register_with_unit(
            "memory_budget",
            "Host memory budget of the node's rows (--memory-budget; 0: unlimited)",
            Unit::Bytes,
            node.memory_budget_bytes.clone(),
        );
        r.register_with_unit(
            "memory_reserve",
            "Row memory faulted in and held ready for new rows",
            Unit::Bytes,
            node.memory_reserve_bytes.clone(),
        );
        r.register(
            "memory_reserve_taken_chunks",
            "Row memory chunks (2 MiB) new rows took from the reserve",
            node.memory_reserve_taken.clone(),
        );
        r.register(
            "memory_reserve_missed_chunks",
            "Row memory chunks (2 MiB) new rows faulted in on demand: the reserve was empty",
            node.memory_reserve_missed.clone(),
        );
        r.register(
            "tier_hits",
            "Distinct ids found resident in a caching tier",
            node.tier_hits.clone(),
        );
        r.register(
            "tier_misses",
            "Distinct ids a caching tier served from the tier behind it",
            node.tier_misses.clone(),
        );
        r.register(
            "tier_admissions",
            "Rows admitted to a caching tier",
            node.tier_admissions.clone(),
        );
        r.register(
            "tier_evictions",
            "Rows evicted from a caching tier and written back",
            node.tier_evictions.clone(),
        );
        r.register(
            "tier_hit_ratio",
            "Hits over lookups of a caching tier since the table was created",
            node.tier_hit_ratio.clone(),
        );
        r.register_with_unit(
            "tier_device",
            "Time requests waited on the device (copies and kernels) of a caching tier",
            Unit::Seconds,
            node.tier_device_seconds.clone(),
        );
        r.register_with_unit(
            "traffic",
            "Data-path payload bytes (ids and rows) per table, client location and direction",
            Unit::Bytes,
            node.traffic_bytes.clone(),
        );
        r.register(
            "table_rows_served",
            "Rows pulled and pushed per table and direction (duplicates in a request count)",
            node.table_rows_served.clone(),
        );
        r.register(
            "table_rows_idle",
            "Rows per table whose last push is at least idle_for ago, estimated from a sample \
             of 4096 rows",
            node.table_rows_idle.clone(),
        );
        r.register(
            "table_rows_never_pushed",
            "Rows per table never pushed (created by pulls), estimated from a sample of 4096 rows",
            node.table_rows_never_pushed.clone(),
        );
        metrics.node = Some(node);
        metrics
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
        r.register_with_unit(
            "migration",
            "Row bytes moved by migrations",
            Unit::Bytes,
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

    /// Adds the coordinator's cluster families, read on each render from the coordinator
    /// `slot` holds while this process leads.
    pub fn with_cluster(mut self, slot: Arc<LeaderSlot>) -> Self {
        self.registry
            .register_collector(Box::new(ClusterCollector::new(slot)));
        self
    }

    /// Counts rows served by Pull.
    pub fn count_pulled(&self, rows: u64) {
        if let Some(node) = &self.node {
            node.rows_pulled.inc_by(rows);
        }
    }

    /// Counts rows received by Push.
    pub fn count_pushed(&self, rows: u64) {
        if let Some(node) = &self.node {
            node.rows_pushed.inc_by(rows);
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

    /// Runs one rpc's handler and records its latency and outcome.
    pub async fn timed<T>(
        &self,
        rpc: &'static str,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let start = Instant::now();
        let result = call.await;
        self.record_rpc(rpc, start, &result);
        result
    }

    /// Every family in `format`, with node and migration series read now.
    pub fn render(&self, format: Format) -> Result<String, TextFormatError> {
        let text = self.openmetrics();
        match format {
            Format::OpenMetrics => Ok(text),
            Format::Prometheus => openmetrics_to_prometheus(&text),
        }
    }

    /// Every family as OpenMetrics text, with node and migration series read now.
    pub fn openmetrics(&self) -> String {
        let _render = self.render_lock.lock();
        if let Some(m) = &self.migrations {
            m.refresh();
        }
        if let Some(node) = &self.node {
            node.refresh();
        }
        let mut out = String::new();
        let encoded = encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &self.process))
            .and_then(|()| encode_eof(&mut out));
        if encoded.is_err() {
            // Writing to a String fails only if an encoder does; say so in the text.
            out.clear();
            out.push_str("# EOF\n");
            tracing::warn!("encoding /metrics failed");
        }
        out
    }
}

impl MigrationFamilies {
    /// Rebuilds the series from the counters.
    fn refresh(&self) {
        let c = &self.counters;
        self.bytes.clear();
        self.rows.clear();
        self.progress.clear();
        for (direction, bytes, rows) in [
            ("out", &c.bytes_out, &c.rows_out),
            ("in", &c.bytes_in, &c.rows_in),
        ] {
            let labels = DirectionLabels { direction };
            self.bytes
                .get_or_create(&labels)
                .inc_by(bytes.load(Ordering::Relaxed));
            self.rows
                .get_or_create(&labels)
                .inc_by(rows.load(Ordering::Relaxed));
        }
        self.active.set(c.active.load(Ordering::Relaxed));
        for (id, &(sent, total)) in c.progress.lock().iter() {
            let ratio = if total == 0 {
                0.0
            } else {
                (sent as f64 / total as f64).min(1.0)
            };
            self.progress
                .get_or_create(&MoveLabels {
                    migration: id.clone(),
                })
                .set(ratio);
        }
    }
}

impl NodeFamilies {
    /// Rebuilds the table, tier, traffic and memory series from the engine.
    fn refresh(&self) {
        let engine = &self.engine;
        self.table_rows.clear();
        self.table_bytes.clear();
        self.tier_hits.clear();
        self.tier_misses.clear();
        self.tier_admissions.clear();
        self.tier_evictions.clear();
        self.tier_hit_ratio.clear();
        self.tier_device_seconds.clear();
        self.traffic_bytes.clear();
        self.table_rows_served.clear();
        self.table_rows_idle.clear();
        self.table_rows_never_pushed.clear();
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for table in engine.tables() {
            let name = &table.spec().name;
            for (direction, rows) in ["pull", "push"]
                .into_iter()
                .zip(table.traffic().row_totals())
            {
                self.table_rows_served
                    .get_or_create(&TableDirectionLabels {
                        table: name.clone(),
                        direction,
                    })
                    .inc_by(rows);
            }
            let staleness = table.staleness(now_secs);
            for (&(_, idle_for), &rows) in IDLE_THRESHOLDS.iter().zip(&staleness.idle_at_least) {
                self.table_rows_idle
                    .get_or_create(&IdleLabels {
                        table: name.clone(),
                        idle_for,
                    })
                    .set(i64::try_from(rows).unwrap_or(i64::MAX));
            }
            self.table_rows_never_pushed
                .get_or_create(&TableNameLabels {
                    table: name.clone(),
                })
                .set(i64::try_from(staleness.never_pushed).unwrap_or(i64::MAX));
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
        // An unlimited budget (u64::MAX) reads 0.
        let limit = engine.budget().limit();
        self.memory_budget_bytes.set(
            i64::try_from(limit)
                .ok()
                .filter(|_| limit != u64::MAX)
                .unwrap_or(0),
        );
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
    }
}

/// Registers `strata_build_info{version,commit,dirty,profile} 1`: joins any series with what
/// the server runs (e.g. `* on (instance) group_left(version) strata_build_info`).
fn register_build_info(registry: &mut Registry) {
    let build = crate::identity::BUILD;
    let info = Family::<BuildLabels, Gauge>::default();
    info.get_or_create(&BuildLabels {
        version: build.version,
        commit: build.commit,
        dirty: if build.dirty { "true" } else { "false" },
        profile: build.profile,
    })
    .set(1);
    registry.register(
        "build_info",
        "What the server runs: version, git commit, dirty tree and cargo profile (always 1)",
        info,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_engine::EngineConfig;

    #[test]
    fn migration_series_follow_the_counters() {
        let counters = Arc::new(MigrationCounters::default());
        let metrics = Metrics::for_node(Arc::new(Engine::new(EngineConfig::default())))
            .with_migrations(counters.clone());
        counters.bytes_out.store(4096, Ordering::Relaxed);
        counters.rows_in.store(7, Ordering::Relaxed);
        counters.active.store(1, Ordering::Relaxed);
        counters
            .progress
            .lock()
            .insert("plan-1-m1-a1".into(), (50, 200));
        let text = metrics.openmetrics();
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
        let again = metrics.openmetrics();
        assert!(again.contains("strata_migration_bytes_total{direction=\"out\"} 4096"));
    }

    #[test]
    fn gpu_tier_families_are_rendered() {
        use strata_engine::{Engine, EngineConfig};
        use strata_storage::optimizer::{OptimizerConfig, OptimizerKind};
        use strata_storage::spec::{InitializerConfig, TableSpec, TierKind};

        let engine = Arc::new(Engine::new(EngineConfig {
            gpu_reference: true,
            gpu_memory_budget: 64 << 10,
            ..EngineConfig::default()
        }));
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
        let text = Metrics::for_node(engine).openmetrics();
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

    #[test]
    fn every_family_has_help_in_both_formats() {
        let metrics = Metrics::for_node(Arc::new(Engine::new(EngineConfig::default())))
            .with_migrations(Arc::new(MigrationCounters::default()));
        metrics.count_pulled(2);
        metrics.record_rpc::<()>("Pull", Instant::now(), &Err(Status::not_found("t")));
        let om = metrics.render(Format::OpenMetrics).expect("openmetrics");
        assert!(om.ends_with("# EOF\n"), "{om}");
        let text = metrics.render(Format::Prometheus).expect("prometheus");
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        for want in [
            "# TYPE strata_rows_pulled_total counter\nstrata_rows_pulled_total 2\n",
            "# TYPE strata_rpc_duration_seconds histogram\n",
            "strata_rpc_errors_total{rpc=\"Pull\",code=\"NotFound\"} 1\n",
            "# TYPE strata_memory_used_bytes gauge\n",
            "# TYPE strata_memory_budget_bytes gauge\n",
            "# TYPE process_cpu_seconds_total counter\n",
            "# TYPE process_resident_memory_bytes gauge\n",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
        let types: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert!(types.len() > 15, "{text}");
        for family in types {
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "no help for {family}:\n{text}"
            );
        }
    }

    #[test]
    fn build_info_is_one_series_with_the_binary_identity() {
        let text = Metrics::new()
            .render(Format::Prometheus)
            .expect("prometheus");
        let build = crate::identity::BUILD;
        let line = format!(
            "strata_build_info{{version=\"{}\",commit=\"{}\",dirty=\"{}\",profile=\"{}\"}} 1",
            build.version, build.commit, build.dirty, build.profile
        );
        assert!(text.contains(&line), "{line} not in:\n{text}");
    }
}
