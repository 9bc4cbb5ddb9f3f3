//! The coordinator: cluster map, table catalog, placement and plans, checkpoints.
//!
//! [`cluster::ClusterCoordinator`] runs a cluster of shard nodes through the
//! [`node_control::NodeControl`] seam: nodes in other processes (`strata-server
//! coordinator` + `shard`) or one in its own process (`strata-server dev`).

pub mod cluster;
pub mod cluster_map;
mod error;
pub mod meta_store;
pub mod node_control;
pub mod placement;
pub mod plan;
pub mod plan_record;
pub mod record;
pub mod report;

pub use self::cluster_map::{ClusterMap, NodeEntry, ShardEntry};
pub use self::error::CoordinatorError;
