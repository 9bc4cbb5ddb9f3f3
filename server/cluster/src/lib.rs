//! The coordinator: cluster map, table catalog, placement and plans, checkpoints.
//!
//! [`coordinator::ClusterCoordinator`] runs a cluster of shard nodes through the
//! [`node_control::NodeControl`] seam: nodes in other processes (`strata-server
//! coordinator` + `shard`) or one in its own process (`strata-server dev`).
//!
//! This crate depends on strata-storage; not on tonic or strata-engine.
//!
//! Modules, from the data up:
//! - [`cluster_map`]: the map of shards (slot ranges) to nodes at one epoch.
//! - [`placement`]: where shards go when the cluster holds no rows yet (pure).
//! - [`topology`]: the datacenter's location levels, their costs, and node/trainer locations.
//! - [`plan`]: the planner of resizes, rebalances, drains and topology moves (pure: no I/O,
//!   no clock).
//! - [`record`]: the cluster record the coordinator keeps across restarts, and
//!   [`plan_record`]: the plan and its moves as the record keeps them.
//! - [`report`]: what a node reports (usage, slot-range loads, checkpoints, what runs on it,
//!   heartbeats).
//! - [`traffic`]: the nodes' traffic samples laid over the current shards (pure).
//! - [`cluster_stats`]: the cluster at a glance as plain numbers for the coordinator's
//!   metrics (pure).
//! - [`meta_store`]: where the record is kept ([`meta_store::RecordStore`]: a file here,
//!   etcd in the server crate).
//! - [`node_control`]: the seam through which the coordinator calls its nodes.
//! - [`coordinator`]: the coordinator itself, one room per operation (membership, catalog,
//!   checkpoints, plan layout, plan runner).
//! - [`cluster`]: the coordinator's public names at the path the server imports them from.
//! - `error`: [`CoordinatorError`], the layer's one error enum.

pub mod cluster;
pub mod cluster_map;
pub mod cluster_stats;
pub mod coordinator;
mod error;
pub mod meta_store;
pub mod node_control;
pub mod placement;
pub mod plan;
pub mod plan_record;
pub mod record;
pub mod report;
pub mod topology;
pub mod traffic;

pub use self::cluster_map::{ClusterMap, NodeEntry, ShardEntry};
pub use self::error::CoordinatorError;
