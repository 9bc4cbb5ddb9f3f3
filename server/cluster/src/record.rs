//! The cluster record: what the coordinator must not forget across restarts (nodes, shards,
//! catalog, checkpoints, the running plan), and pure functions over it.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::cluster_map::{even_shards, ShardEntry};
use crate::plan_record::{attempt_id, MoveState, PlanRecord};
use strata_storage::spec::{DenseSpec, TableSpec};

/// The tables and dense tensors every shard server holds, versioned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalog {
    /// Bumped on every change.
    pub version: u64,
    /// Tables, in creation order.
    pub tables: Vec<TableSpec>,
    /// Dense tensors, in creation order.
    pub dense: Vec<DenseSpec>,
}

/// A registered shard server, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Stable node id.
    pub id: String,
    /// Last address it registered with.
    pub address: String,
    /// Topology labels.
    pub labels: BTreeMap<String, String>,
    /// Host memory budget in bytes.
    pub memory_budget: u64,
    /// Being drained (or drained): receives no shards.
    #[serde(default)]
    pub draining: bool,
    /// The incarnation id of the node's data dir it last registered with ("" in records
    /// written before incarnations were kept: the next registration's is taken).
    #[serde(default)]
    pub incarnation: String,
    /// Set once the node reported rows: its shards then hold trained data, and a node
    /// coming back under this id without that data dir is refused.
    #[serde(default)]
    pub held_rows: bool,
}

/// What the coordinator must not forget across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// Epoch of the map.
    pub epoch: u64,
    /// Slots of the cluster.
    pub num_slots: u32,
    /// Version of the catalog.
    pub catalog_version: u64,
    /// Tables, in creation order.
    pub tables: Vec<TableSpec>,
    /// Dense tensors, in creation order.
    pub dense: Vec<DenseSpec>,
    /// Registered nodes.
    pub nodes: Vec<NodeRecord>,
    /// Shards with their primaries ("" while unassigned).
    pub shards: Vec<ShardEntry>,
    /// Next number for a node id handed out by the coordinator.
    pub next_node: u64,
    /// Cluster checkpoints, oldest first (the newest `keep_checkpoints`).
    pub checkpoints: Vec<ClusterCheckpoint>,
    /// Set once any node reported rows or a plan started. Registration re-spreads shards
    /// only while this is unset and no table exists; afterwards shards move by plans only.
    #[serde(default)]
    pub placement_frozen: bool,
    /// The running or last plan (resize, rebalance, drain) and the state of its moves.
    #[serde(default)]
    pub plan: Option<PlanRecord>,
    /// Plans started so far (for plan ids).
    #[serde(default)]
    pub plans_started: u64,
}

/// A checkpoint of every node at one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterCheckpoint {
    /// Cluster checkpoint id.
    pub id: String,
    /// Map epoch of every node's snapshot.
    pub epoch: u64,
    /// Wall-clock time, ms since the Unix epoch.
    pub created_unix_ms: u64,
    /// Node id → that node's checkpoint id.
    pub nodes: BTreeMap<String, String>,
    /// Rows over all nodes.
    pub rows: u64,
    /// Bytes over all nodes.
    pub bytes: u64,
    /// Tables in the catalog.
    pub tables: u32,
    /// The shards and their primaries at the checkpoint's epoch (empty in checkpoints
    /// recorded before layouts were kept: those cannot be restored).
    #[serde(default)]
    pub shards: Vec<ShardEntry>,
    /// The catalog's tables at the checkpoint.
    #[serde(default)]
    pub table_specs: Vec<TableSpec>,
    /// The catalog's dense tensors at the checkpoint.
    #[serde(default)]
    pub dense_specs: Vec<DenseSpec>,
}
/// The record of a new cluster: `shards` even slot ranges, no nodes.
pub fn new_record(shards: u32, num_slots: u32) -> ClusterRecord {
    ClusterRecord {
        epoch: 1,
        num_slots,
        catalog_version: 1,
        tables: Vec::new(),
        dense: Vec::new(),
        nodes: Vec::new(),
        shards: even_shards(shards, num_slots, ""),
        next_node: 0,
        checkpoints: Vec::new(),
        placement_frozen: false,
        plan: None,
        plans_started: 0,
    }
}

/// Shard ids whose primary is `node`.
pub fn shards_of(record: &ClusterRecord, node: &str) -> Vec<u32> {
    record
        .shards
        .iter()
        .filter(|s| s.primary == node)
        .map(|s| s.id)
        .collect()
}

/// The catalog the record holds.
pub(crate) fn catalog_of(record: &ClusterRecord) -> Catalog {
    Catalog {
        version: record.catalog_version,
        tables: record.tables.clone(),
        dense: record.dense.clone(),
    }
}

/// A node's address ("" when unknown).
pub(crate) fn address_of(record: &ClusterRecord, node: &str) -> String {
    record
        .nodes
        .iter()
        .find(|n| n.id == node)
        .map(|n| n.address.clone())
        .unwrap_or_default()
}

/// Attempt ids of the moves running or committed: a node holding any other migration holds
/// a leftover (of a rolled-back or forgotten attempt) and is told to roll it back.
pub fn known_attempts(record: &ClusterRecord) -> HashSet<String> {
    record
        .plan
        .iter()
        .flat_map(|p| &p.moves)
        .filter(|m| m.state == MoveState::Running || m.state == MoveState::Done)
        .map(attempt_id)
        .collect()
}
