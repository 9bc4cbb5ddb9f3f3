//! The multi-node coordinator: its state, how it opens, and how it publishes the map.
//!
//! State that must survive a restart lives in a [`ClusterRecord`] saved atomically in the
//! metadata store; liveness (last heartbeat, reported rows) is kept in memory only. Every
//! change of the map (placement, a node going down or coming back, a new address) bumps
//! the epoch. Calls to shard servers go through the [`NodeControl`] seam.
//!
//! The coordinator's operations live in rooms of their own: `membership` (register,
//! heartbeat, sweep), `catalog` (tables and dense tensors), `checkpoints` (cluster
//! checkpoints and restore), `plan_layout` (plans against the current layout),
//! `plan_runner` (running them) and `auto_rebalance` (topology plans started on their own).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use parking_lot::Mutex;
use tokio::sync::watch;

pub use self::auto_rebalance::{AutoDecision, AutoRebalance};
pub use self::checkpoints::ClusterCheckpointState;
use self::membership::map_of;
pub use self::membership::{HeartbeatReply, NodeLive, Registration};
pub use self::plan_layout::shard_loads;
pub use self::plan_runner::{LiveMove, DEFAULT_MAX_PARALLEL};
use crate::cluster_map::ClusterMap;
use crate::cluster_stats::{cluster_stats, ClusterStats};
use crate::meta_store::{FileMetaStore, RecordStore};
use crate::node_control::{NodeControl, NodeError, NodeErrorKind, NodeResult};
use crate::record::{catalog_of, new_record, Catalog, ClusterRecord};
use crate::topology::Topology;
use crate::CoordinatorError;

mod auto_rebalance;
mod catalog;
mod checkpoints;
mod legacy_dev;
mod membership;
mod plan_layout;
mod plan_runner;
#[cfg(test)]
mod testkit;

/// File of the cluster record in the coordinator's data dir.
pub const RECORD_FILE: &str = "cluster-coordinator.json";
/// How long a call to a shard server may take before it counts as failed.
const NODE_CALL_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The datacenter's levels and their costs (topology plans and rack-aware placement).
    pub topology: Topology,
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
    run: plan_runner::PlanRun,
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
            run: plan_runner::PlanRun::default(),
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

    /// The cluster at a glance for metrics, from the record and the nodes' last reports
    /// (no calls to the nodes).
    pub fn stats(&self) -> ClusterStats {
        let moves = self.move_progress();
        let guard = self.state.lock();
        cluster_stats(&guard.0, &guard.1, &moves)
    }

    /// The current catalog.
    pub fn catalog(&self) -> Catalog {
        catalog_of(&self.state.lock().0)
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
