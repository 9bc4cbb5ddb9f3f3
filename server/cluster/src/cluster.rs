//! The multi-node coordinator: membership, placement, catalog and checkpoints of a cluster
//! of shard servers in other processes.
//!
//! State that must survive a restart lives in a [`ClusterRecord`] saved atomically in the
//! metadata store; liveness (last heartbeat, reported rows) is kept in memory only. Every
//! change of the map (placement, a node going down or coming back, a new address) bumps
//! the epoch. Calls to shard servers go through the [`NodeControl`] seam.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use parking_lot::Mutex;
use tokio::sync::watch;

pub use self::checkpoints::ClusterCheckpointState;
use super::cluster_map::{ClusterMap, NodeEntry};
use super::meta_store::{FileMetaStore, RecordStore};
pub use super::node_control::{
    follow_move, MigrateOut, MovePhase, MoveProgress, NodeControl, NodeError, NodeErrorKind,
    NodeResult, MOVE_IDLE_TIMEOUT,
};
use super::placement::{spread, Candidate};
pub use super::plan_record::{MoveRecord, MoveState, PlanRecord, PlanState};
use super::record::catalog_of;
pub use super::record::{
    known_attempts, new_record, shards_of, Catalog, ClusterCheckpoint, ClusterRecord, NodeRecord,
};
pub use super::report::{HeartbeatReport, NodeCheckpoint, RangeLoad, TableUsage};
use super::CoordinatorError;
use strata_storage::spec::{DenseSpec, TableSpec};

/// File of the cluster record in the coordinator's data dir.
pub const RECORD_FILE: &str = "cluster-coordinator.json";
/// How long a call to a shard server may take before it counts as failed.
const NODE_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the coordinator knows of a node from its heartbeats (not persisted).
#[derive(Debug, Clone)]
pub struct NodeLive {
    /// Whether it answered within the heartbeat timeout.
    pub up: bool,
    /// When it was last heard from.
    pub last_seen: Instant,
    /// Rows over its tables.
    pub rows: u64,
    /// Bytes over its tables.
    pub bytes: u64,
    /// Per-table usage.
    pub tables: Vec<TableUsage>,
    /// Map epoch it has applied.
    pub applied_epoch: u64,
    /// Catalog version it has applied.
    pub catalog_version: u64,
    /// Its newest good checkpoint.
    pub last_checkpoint: Option<NodeCheckpoint>,
    /// Rows and bytes per slot range it serves.
    pub ranges: Vec<RangeLoad>,
}

impl NodeLive {
    fn fresh(now: Instant) -> Self {
        Self {
            up: true,
            last_seen: now,
            rows: 0,
            bytes: 0,
            tables: Vec::new(),
            applied_epoch: 0,
            catalog_version: 0,
            last_checkpoint: None,
            ranges: Vec::new(),
        }
    }
}

/// A node's registration.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// Id it had before (empty: a new node).
    pub node_id: String,
    /// Address clients reach it at.
    pub address: String,
    /// Topology labels.
    pub labels: BTreeMap<String, String>,
    /// Host memory budget in bytes.
    pub memory_budget: u64,
}

/// The answer to a heartbeat: what the node lacks.
#[derive(Debug, Clone)]
pub struct HeartbeatReply {
    /// Current epoch.
    pub epoch: u64,
    /// The map, when newer than the node's.
    pub map: Option<ClusterMap>,
    /// The catalog, when newer than the node's.
    pub catalog: Option<Catalog>,
    /// Migrations the node holds that no plan knows: to roll back.
    pub abort: Vec<String>,
}

/// Settings of a cluster coordinator.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Where the record lives.
    pub data_dir: PathBuf,
    /// Shards of a new cluster.
    pub shards: u32,
    /// Slots of a new cluster.
    pub num_slots: u32,
    /// A node silent this long is marked down.
    pub heartbeat_timeout: Duration,
    /// This coordinator's address (the leader in status).
    pub advertise_address: String,
    /// Cluster checkpoints kept in the record (older ones are forgotten).
    pub keep_checkpoints: usize,
}

/// The coordinator of a multi-node cluster.
pub struct ClusterCoordinator {
    config: ClusterConfig,
    store: Box<dyn RecordStore>,
    nodes: Arc<dyn NodeControl>,
    state: Mutex<(ClusterRecord, BTreeMap<String, NodeLive>)>,
    map_tx: watch::Sender<ClusterMap>,
    /// Serializes catalog changes and checkpoints (held across node calls).
    ops: tokio::sync::Mutex<()>,
    /// Live state of the running plan (progress, cancel flag).
    run: migrations::PlanRun,
}

impl ClusterCoordinator {
    /// Opens the record in the data dir (a new cluster if none); every known node gets a
    /// fresh heartbeat timeout.
    pub fn open(
        config: ClusterConfig,
        nodes: Arc<dyn NodeControl>,
    ) -> Result<Self, CoordinatorError> {
        let store = FileMetaStore::open_file(&config.data_dir, RECORD_FILE)?;
        if store.load_json::<ClusterRecord>()?.is_none() {
            if let Some(record) = legacy_dev::carry_over(&config.data_dir, config.num_slots)? {
                store.save_json(&record)?;
            }
        }
        Self::open_with(config, Box::new(store), nodes)
    }

    /// Opens the record in `store` (a new cluster if none); every known node gets a fresh
    /// heartbeat timeout.
    pub fn open_with(
        config: ClusterConfig,
        store: Box<dyn RecordStore>,
        nodes: Arc<dyn NodeControl>,
    ) -> Result<Self, CoordinatorError> {
        let record = match store.load_record()? {
            Some(r) if r.num_slots != config.num_slots => {
                return Err(CoordinatorError::SlotMismatch {
                    stored: r.num_slots,
                    configured: config.num_slots,
                })
            }
            Some(r) => r,
            None => new_record(config.shards, config.num_slots),
        };
        store.save_record(&record)?;
        let now = Instant::now();
        let live = record
            .nodes
            .iter()
            .map(|n| (n.id.clone(), NodeLive::fresh(now)))
            .collect();
        let map = map_of(&record, &live);
        let (map_tx, _) = watch::channel(map);
        Ok(Self {
            config,
            store,
            nodes,
            state: Mutex::new((record, live)),
            map_tx,
            ops: tokio::sync::Mutex::new(()),
            run: migrations::PlanRun::default(),
        })
    }

    /// The current cluster map.
    pub fn cluster_map(&self) -> ClusterMap {
        self.map_tx.borrow().clone()
    }

    /// Follows cluster-map changes.
    pub fn watch_map(&self) -> watch::Receiver<ClusterMap> {
        self.map_tx.subscribe()
    }

    /// This coordinator's address.
    pub fn address(&self) -> &str {
        &self.config.advertise_address
    }

    /// The stored record and every node's liveness, copied.
    pub fn snapshot(&self) -> (ClusterRecord, BTreeMap<String, NodeLive>) {
        self.state.lock().clone()
    }

    /// The current catalog.
    pub fn catalog(&self) -> Catalog {
        catalog_of(&self.state.lock().0)
    }

    /// Registers (or re-registers) a node; places shards while the cluster holds no rows.
    pub fn register(
        &self,
        reg: Registration,
    ) -> Result<(String, ClusterMap, Catalog), CoordinatorError> {
        let mut guard = self.state.lock();
        let (record, live) = &mut *guard;
        let mut next = record.clone();
        let id = if reg.node_id.is_empty() {
            next.next_node += 1;
            format!("node-{}", next.next_node)
        } else {
            reg.node_id.clone()
        };
        let node = NodeRecord {
            id: id.clone(),
            address: reg.address,
            labels: reg.labels,
            memory_budget: reg.memory_budget,
            draining: false,
        };
        match next.nodes.iter_mut().find(|n| n.id == id) {
            Some(n) => {
                let draining = n.draining;
                *n = NodeRecord { draining, ..node };
            }
            None => next.nodes.push(node),
        }
        let was_up = live.get(&id).is_some_and(|l| l.up);
        let mut fresh = NodeLive::fresh(Instant::now());
        if let Some(old) = live.get(&id) {
            fresh.last_checkpoint = old.last_checkpoint.clone();
        }
        live.insert(id.clone(), fresh);
        // Shards are re-spread over the nodes only while no table exists: once one does,
        // rows may exist and moving them needs a plan (rebalance), never a re-placement.
        // Shards no node holds have no rows anywhere: they are placed whenever a node comes.
        let respread = !next.placement_frozen && next.tables.is_empty();
        if respread || next.shards.iter().any(|s| s.primary.is_empty()) {
            let up: Vec<Candidate> = next
                .nodes
                .iter()
                .filter(|n| !n.draining && live.get(&n.id).is_some_and(|l| l.up))
                .map(|n| Candidate {
                    id: n.id.clone(),
                    memory_budget: n.memory_budget,
                })
                .collect();
            let placed = spread(next.shards.len() as u32, &up);
            for (shard, primary) in next.shards.iter_mut().zip(placed) {
                if respread || shard.primary.is_empty() {
                    shard.primary = primary;
                }
            }
        }
        if next != *record || !was_up {
            next.epoch += 1;
            self.store.save_record(&next)?;
            *record = next;
            tracing::info!(node = %id, epoch = record.epoch, "node registered");
        }
        let map = map_of(record, live);
        let catalog = catalog_of(record);
        self.map_tx.send_replace(map.clone());
        Ok((id, map, catalog))
    }

    /// Records a heartbeat; answers with the map and catalog when the node is behind.
    pub fn heartbeat(&self, hb: HeartbeatReport) -> Result<HeartbeatReply, CoordinatorError> {
        let mut guard = self.state.lock();
        let (record, live) = &mut *guard;
        let Some(node_index) = record.nodes.iter().position(|n| n.id == hb.node_id) else {
            return Err(CoordinatorError::UnknownNode { id: hb.node_id });
        };
        let entry = live
            .entry(hb.node_id.clone())
            .or_insert_with(|| NodeLive::fresh(Instant::now()));
        let came_back = !entry.up;
        entry.up = true;
        entry.last_seen = Instant::now();
        entry.rows = hb.tables.iter().fold(0u64, |a, t| a.saturating_add(t.rows));
        entry.bytes = hb
            .tables
            .iter()
            .fold(0u64, |a, t| a.saturating_add(t.bytes));
        entry.tables = hb.tables;
        entry.ranges = hb.ranges;
        entry.applied_epoch = hb.epoch;
        entry.catalog_version = hb.catalog_version;
        if hb.last_checkpoint.is_some() {
            entry.last_checkpoint = hb.last_checkpoint;
        }
        let moved = !hb.address.is_empty() && record.nodes[node_index].address != hb.address;
        let freeze = !record.placement_frozen && entry.rows > 0;
        if freeze && !(came_back || moved) {
            let mut next = record.clone();
            next.placement_frozen = true;
            self.store.save_record(&next)?;
            *record = next;
        }
        if came_back || moved {
            let mut next = record.clone();
            next.placement_frozen |= freeze;
            if moved {
                next.nodes[node_index].address = hb.address;
            }
            next.epoch += 1;
            self.store.save_record(&next)?;
            *record = next;
            self.map_tx.send_replace(map_of(record, live));
            tracing::info!(node = %hb.node_id, epoch = record.epoch, "node is up");
        }
        let known = known_attempts(record);
        Ok(HeartbeatReply {
            epoch: record.epoch,
            map: (hb.epoch != record.epoch).then(|| map_of(record, live)),
            catalog: (hb.catalog_version != record.catalog_version).then(|| catalog_of(record)),
            abort: hb
                .migrations
                .into_iter()
                .filter(|id| !known.contains(id))
                .collect(),
        })
    }

    /// Marks nodes silent for longer than the timeout down; returns whether any changed.
    pub fn sweep(&self) -> Result<bool, CoordinatorError> {
        let mut guard = self.state.lock();
        let (record, live) = &mut *guard;
        let timeout = self.config.heartbeat_timeout;
        let mut changed = false;
        for (id, l) in live.iter_mut() {
            if l.up && l.last_seen.elapsed() > timeout {
                l.up = false;
                changed = true;
                tracing::warn!(node = %id, ?timeout, "node missed heartbeats: marked down");
            }
        }
        if changed {
            let mut next = record.clone();
            next.epoch += 1;
            self.store.save_record(&next)?;
            *record = next;
            self.map_tx.send_replace(map_of(record, live));
        }
        Ok(changed)
    }

    /// Up nodes' ids and addresses.
    fn up_nodes(&self) -> Vec<(String, String)> {
        let guard = self.state.lock();
        let (record, live) = &*guard;
        record
            .nodes
            .iter()
            .filter(|n| live.get(&n.id).is_some_and(|l| l.up))
            .map(|n| (n.id.clone(), n.address.clone()))
            .collect()
    }

    /// Sends the current map to every up node (best effort: nodes also catch up by heartbeat).
    pub async fn push_map(&self) {
        let map = self.cluster_map();
        let nodes = self.up_nodes();
        let calls = nodes.iter().map(|(id, address)| {
            let map = &map;
            async move {
                if let Err(error) = bounded(self.nodes.apply_map(address, map)).await {
                    tracing::warn!(node = %id, %address, %error, "could not push the map; the node catches up by heartbeat");
                }
            }
        });
        join_all(calls).await;
    }

    /// Changes the catalog with `change`, saves it, and pushes it to every up node.
    async fn change_catalog(
        &self,
        change: impl FnOnce(&mut ClusterRecord) -> Result<(), CoordinatorError>,
    ) -> Result<(), CoordinatorError> {
        let _serial = self.ops.lock().await;
        let before = {
            let mut guard = self.state.lock();
            refuse_while_planning(&guard.0)?;
            let before = guard.0.clone();
            let mut next = before.clone();
            change(&mut next)?;
            next.catalog_version += 1;
            self.store.save_record(&next)?;
            guard.0 = next;
            before
        };
        let Some((node, address, source)) = self.push_catalog().await else {
            return Ok(());
        };
        // A node refused the change for good (a GPU table on a node without a GPU, a table
        // over its budget): take it back everywhere rather than leave a catalog that node
        // can never hold.
        {
            let mut guard = self.state.lock();
            let mut next = guard.0.clone();
            next.tables = before.tables;
            next.dense = before.dense;
            next.catalog_version += 1;
            self.store.save_record(&next)?;
            guard.0 = next;
        }
        self.push_catalog().await;
        Err(CoordinatorError::NodeCall {
            op: "ApplyCatalog",
            node,
            address,
            source,
        })
    }

    /// Sends the current catalog to every up node (nodes that miss it catch up by
    /// heartbeat). Returns the first node that refused it for good, with its error.
    async fn push_catalog(&self) -> Option<(String, String, NodeError)> {
        let catalog = self.catalog();
        let nodes = self.up_nodes();
        let results = join_all(
            nodes
                .iter()
                .map(|(_, address)| bounded(self.nodes.apply_catalog(address, &catalog))),
        )
        .await;
        let mut refused = None;
        for ((id, address), r) in nodes.into_iter().zip(results) {
            match r {
                Ok(()) => {}
                Err(error) if error.kind.is_retryable() => {
                    // The catalog is stored; the node gets it with its next heartbeat answer.
                    tracing::warn!(node = %id, %address, %error, "catalog not applied yet");
                }
                Err(error) => {
                    tracing::warn!(node = %id, %address, %error, "the node refused the catalog");
                    refused.get_or_insert((id, address, error));
                }
            }
        }
        refused
    }

    /// Asks every up node for a report now and records it as a heartbeat, so what is read
    /// next (status, plans) is current; a node that does not answer keeps its last report.
    pub async fn refresh_reports(&self) {
        let nodes = self.up_nodes();
        let reports = join_all(
            nodes
                .iter()
                .map(|(_, address)| bounded(self.nodes.report(address))),
        )
        .await;
        for ((id, address), r) in nodes.iter().zip(reports) {
            let recorded = r
                .map_err(|e| e.to_string())
                .and_then(|report| self.heartbeat(report).map_err(|e| e.to_string()));
            if let Err(error) = recorded {
                tracing::debug!(node = %id, %address, %error, "no fresh report");
            }
        }
    }

    /// Creates a table on every node.
    pub async fn create_table(&self, spec: TableSpec) -> Result<TableSpec, CoordinatorError> {
        spec.validate()?;
        let created = spec.clone();
        self.change_catalog(move |r| {
            if r.tables.iter().any(|t| t.name == spec.name) {
                return Err(CoordinatorError::TableExists { name: spec.name });
            }
            r.tables.push(spec);
            Ok(())
        })
        .await?;
        Ok(created)
    }

    /// Drops a table on every node.
    pub async fn drop_table(&self, name: &str) -> Result<(), CoordinatorError> {
        self.change_catalog(|r| {
            if !r.tables.iter().any(|t| t.name == name) {
                return Err(CoordinatorError::TableNotFound { name: name.into() });
            }
            r.tables.retain(|t| t.name != name);
            Ok(())
        })
        .await
    }

    /// Creates a dense tensor on every node.
    pub async fn create_dense(&self, spec: DenseSpec) -> Result<DenseSpec, CoordinatorError> {
        spec.validate()?;
        let created = spec.clone();
        self.change_catalog(move |r| {
            if r.dense.iter().any(|d| d.name == spec.name) {
                return Err(CoordinatorError::DenseExists { name: spec.name });
            }
            r.dense.push(spec);
            Ok(())
        })
        .await?;
        Ok(created)
    }

    /// Drops a dense tensor on every node.
    pub async fn drop_dense(&self, name: &str) -> Result<(), CoordinatorError> {
        self.change_catalog(|r| {
            if !r.dense.iter().any(|d| d.name == name) {
                return Err(CoordinatorError::DenseNotFound { name: name.into() });
            }
            r.dense.retain(|d| d.name != name);
            Ok(())
        })
        .await
    }
}

/// A call to a node bounded by [`NODE_CALL_TIMEOUT`]: no answer in time is a
/// `DeadlineExceeded` failure.
pub(crate) async fn bounded<T>(call: NodeResult<'_, T>) -> Result<T, NodeError> {
    tokio::time::timeout(NODE_CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(NodeError::new(
                NodeErrorKind::DeadlineExceeded,
                format!("no answer within {NODE_CALL_TIMEOUT:?}"),
            ))
        })
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Refuses catalog changes and checkpoints while a plan moves data.
fn refuse_while_planning(record: &ClusterRecord) -> Result<(), CoordinatorError> {
    match &record.plan {
        Some(p) if p.state == PlanState::Running => {
            Err(CoordinatorError::PlanRunning { id: p.id.clone() })
        }
        _ => Ok(()),
    }
}

fn map_of(record: &ClusterRecord, live: &BTreeMap<String, NodeLive>) -> ClusterMap {
    ClusterMap {
        epoch: record.epoch,
        num_slots: record.num_slots,
        nodes: record
            .nodes
            .iter()
            .map(|n| NodeEntry {
                id: n.id.clone(),
                address: n.address.clone(),
                labels: n.labels.clone(),
                up: live.get(&n.id).is_some_and(|l| l.up),
            })
            .collect(),
        shards: record.shards.clone(),
    }
}

#[path = "cluster_checkpoints.rs"]
pub mod checkpoints;
#[path = "legacy_dev.rs"]
mod legacy_dev;
#[path = "migrations.rs"]
pub mod migrations;

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
