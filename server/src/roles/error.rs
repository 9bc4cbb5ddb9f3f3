//! Why a role process stopped.

use thiserror::Error;

use crate::shard_node::ShardNodeError;
use strata_cluster::CoordinatorError;

/// Why a coordinator or shard process stopped.
#[derive(Debug, Error)]
pub enum RoleError {
    /// The coordinator's state could not be opened.
    #[error("coordinator: {0}")]
    Coordinator(#[from] CoordinatorError),
    /// The shard server's data dir could not be opened.
    #[error("shard server: {0}")]
    Shard(#[from] ShardNodeError),
    /// The address to give out is missing (`--advertise`) or undialable.
    #[error(transparent)]
    Advertise(#[from] crate::advertise::AdvertiseError),
    /// The data dir's incarnation id could not be read or written.
    #[error(transparent)]
    Incarnation(#[from] crate::incarnation::IncarnationError),
    /// The coordinator refused this node for good (it came back without its data).
    #[error("registration refused: {0}")]
    Refused(String),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// Leader election failed or leadership was lost.
    #[error("leader election: {0}")]
    Election(#[from] crate::etcd::election::ElectionError),
    /// Reflection could not be built, or a setup task failed.
    #[error("setup: {0}")]
    Setup(String),
}
