//! The coordinator: cluster map, table catalog, checkpoints.
//!
//! [`LocalCoordinator`] is the embedded coordinator of `strata-server dev`: it owns the
//! catalog and map of a one-node cluster whose engine lives in the same process.
//! [`cluster::ClusterCoordinator`] runs a cluster of shard servers in other processes.

pub mod cluster;
pub mod cluster_map;
pub mod election;
mod error;
pub mod etcd_store;
pub mod meta_store;
pub mod placement;
pub mod plan;

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

pub use self::cluster_map::{ClusterMap, NodeEntry, ShardEntry};
pub use self::error::CoordinatorError;
use self::meta_store::{ClusterState, FileMetaStore};
use crate::checkpoint::{CheckpointInfo, CheckpointStore, NodeSnapshot};
use crate::engine::Engine;
use crate::spec::{DenseSpec, TableSpec};

/// Settings of an embedded coordinator.
#[derive(Debug, Clone)]
pub struct LocalCoordinatorConfig {
    /// Address clients reach the node at.
    pub advertise_address: String,
    /// Shards of a new cluster (an existing data dir keeps its own).
    pub shards: u32,
    /// Checkpoints to keep on disk.
    pub keep_checkpoints: usize,
}

/// The coordinator of a one-node cluster, with its engine in the same process.
pub struct LocalCoordinator {
    engine: Arc<Engine>,
    store: FileMetaStore,
    checkpoints: CheckpointStore,
    state: Mutex<ClusterState>,
    config: LocalCoordinatorConfig,
    map_tx: watch::Sender<ClusterMap>,
    /// Serializes checkpoint and restore operations.
    durability: tokio::sync::Mutex<()>,
}

impl LocalCoordinator {
    /// Opens the data dir: loads the catalog, recreates tables, restores the newest good
    /// checkpoint (corrupt newer ones are reported and skipped).
    pub fn open(
        data_dir: &Path,
        engine: Arc<Engine>,
        config: LocalCoordinatorConfig,
    ) -> Result<Self, CoordinatorError> {
        let store = FileMetaStore::open(data_dir)?;
        let checkpoints = CheckpointStore::open(data_dir)?;
        let num_slots = engine.config().num_slots;
        let latest = checkpoints.load_latest_good()?;
        let state = match store.load()? {
            Some(state) => {
                if state.num_slots != num_slots {
                    return Err(CoordinatorError::SlotMismatch {
                        stored: state.num_slots,
                        configured: num_slots,
                    });
                }
                state
            }
            None => ClusterState {
                epoch: 1,
                num_slots,
                shard_count: config.shards,
                tables: latest
                    .as_ref()
                    .map(|(_, s)| s.tables.iter().map(|t| t.spec.clone()).collect())
                    .unwrap_or_default(),
                dense: latest
                    .as_ref()
                    .map(|(_, s)| s.dense.iter().map(|d| d.spec.clone()).collect())
                    .unwrap_or_default(),
            },
        };
        load_catalog(&engine, &state, latest.map(|(_, snap)| snap))?;
        store.save(&state)?;
        let map = map_of(&state, &config.advertise_address);
        let (map_tx, _) = watch::channel(map);
        Ok(Self {
            engine,
            store,
            checkpoints,
            state: Mutex::new(state),
            config,
            map_tx,
            durability: tokio::sync::Mutex::new(()),
        })
    }

    /// The engine of the local node.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The current cluster map.
    pub fn cluster_map(&self) -> ClusterMap {
        self.map_tx.borrow().clone()
    }

    /// Follows cluster-map changes.
    pub fn watch_map(&self) -> watch::Receiver<ClusterMap> {
        self.map_tx.subscribe()
    }

    /// Resizes to `count` shards: on one node a split or merge moves no data, so it is done
    /// at once, in a new epoch (saved).
    pub fn resize(&self, count: u32) -> Result<ClusterMap, CoordinatorError> {
        let mut state = self.state.lock();
        if count == 0 || count > state.num_slots {
            return Err(crate::coordinator::plan::PlanError::BadCount {
                count,
                num_slots: state.num_slots,
            }
            .into());
        }
        let mut next = state.clone();
        next.shard_count = count;
        next.epoch += 1;
        self.store.save(&next)?;
        *state = next;
        let map = map_of(&state, &self.config.advertise_address);
        self.engine.ownership().update(state.epoch, None);
        self.map_tx.send_replace(map.clone());
        Ok(map)
    }

    /// Creates a table and records it in the catalog.
    pub fn create_table(&self, spec: TableSpec) -> Result<TableSpec, CoordinatorError> {
        let mut state = self.state.lock();
        self.engine.create_table(spec.clone())?;
        state.tables.push(spec.clone());
        if let Err(e) = self.store.save(&state) {
            state.tables.pop();
            let _ = self.engine.drop_table(&spec.name);
            return Err(e.into());
        }
        Ok(spec)
    }

    /// Drops a table and removes it from the catalog.
    pub fn drop_table(&self, name: &str) -> Result<(), CoordinatorError> {
        let mut state = self.state.lock();
        self.engine.table(name)?;
        let mut next = state.clone();
        next.tables.retain(|t| t.name != name);
        self.store.save(&next)?;
        *state = next;
        self.engine.drop_table(name)?;
        Ok(())
    }

    /// Creates a dense tensor and records it in the catalog.
    pub fn create_dense(&self, spec: DenseSpec) -> Result<DenseSpec, CoordinatorError> {
        let mut state = self.state.lock();
        self.engine.create_dense(spec.clone())?;
        state.dense.push(spec.clone());
        if let Err(e) = self.store.save(&state) {
            state.dense.pop();
            let _ = self.engine.drop_dense(&spec.name);
            return Err(e.into());
        }
        Ok(spec)
    }

    /// Drops a dense tensor and removes it from the catalog.
    pub fn drop_dense(&self, name: &str) -> Result<(), CoordinatorError> {
        let mut state = self.state.lock();
        self.engine.dense(name)?;
        let mut next = state.clone();
        next.dense.retain(|d| d.name != name);
        self.store.save(&next)?;
        *state = next;
        self.engine.drop_dense(name)?;
        Ok(())
    }

    /// Takes a consistent snapshot and writes it as a new checkpoint.
    pub async fn checkpoint(self: &Arc<Self>) -> Result<CheckpointInfo, CoordinatorError> {
        let _serial = self.durability.lock().await;
        let this = self.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let snap = this.engine.snapshot()?;
            let info = this.checkpoints.write(&snap)?;
            this.checkpoints.prune(this.config.keep_checkpoints)?;
            Ok::<_, CoordinatorError>(info)
        })
        .await;
        joined.map_err(|e| CoordinatorError::Task(e.to_string()))?
    }

    /// Checkpoints on disk, newest first, each verified.
    pub async fn list_checkpoints(
        self: &Arc<Self>,
    ) -> Result<Vec<CheckpointInfo>, CoordinatorError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || Ok(this.checkpoints.list()?))
            .await
            .map_err(|e| CoordinatorError::Task(e.to_string()))?
    }

    /// Replaces all tables and dense tensors with checkpoint `id` (verified first).
    pub async fn restore(self: &Arc<Self>, id: String) -> Result<CheckpointInfo, CoordinatorError> {
        let _serial = self.durability.lock().await;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let snap = this.checkpoints.load(&id)?;
            let info = this
                .checkpoints
                .list()?
                .into_iter()
                .find(|c| c.id == id)
                .ok_or_else(|| CoordinatorError::NoSuchCheckpoint { id: id.clone() })?;
            let mut state = this.state.lock();
            let mut next = state.clone();
            next.tables = snap.tables.iter().map(|t| t.spec.clone()).collect();
            next.dense = snap.dense.iter().map(|d| d.spec.clone()).collect();
            this.engine.restore(&snap)?;
            this.store.save(&next)?;
            *state = next;
            Ok(info)
        })
        .await
        .map_err(|e| CoordinatorError::Task(e.to_string()))?
    }
}

/// Creates the catalog's tables in the engine, with their rows from `snap` where the
/// checkpoint holds the same table (same spec).
fn load_catalog(
    engine: &Engine,
    state: &ClusterState,
    snap: Option<NodeSnapshot>,
) -> Result<(), CoordinatorError> {
    let mut snap = snap.unwrap_or_default();
    snap.tables.retain(|t| state.tables.contains(&t.spec));
    snap.dense.retain(|d| state.dense.contains(&d.spec));
    engine.restore(&snap)?;
    for spec in &state.tables {
        if engine.table(&spec.name).is_err() {
            engine.create_table(spec.clone())?;
        }
    }
    for spec in &state.dense {
        if engine.dense(&spec.name).is_err() {
            engine.create_dense(spec.clone())?;
        }
    }
    Ok(())
}

/// The one-node map of `state`.
fn map_of(state: &ClusterState, address: &str) -> ClusterMap {
    let node = NodeEntry {
        id: "node-0".into(),
        address: address.into(),
        labels: Default::default(),
        up: true,
    };
    ClusterMap::single_node(state.epoch, state.num_slots, state.shard_count, node)
}
