//! Errors of the coordinator layer.

use thiserror::Error;

use super::meta_store::MetaStoreError;
use crate::checkpoint::CheckpointError;
use crate::engine::EngineError;

/// Why a coordinator operation failed.
#[derive(Debug, Error)]
pub enum CoordinatorError {
    /// The engine refused (bad spec, unknown table, ...).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Cluster metadata could not be read or written.
    #[error(transparent)]
    MetaStore(#[from] MetaStoreError),
    /// A checkpoint could not be written, listed or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// No checkpoint with that id.
    #[error("no checkpoint {id:?}")]
    NoSuchCheckpoint {
        /// The id asked for.
        id: String,
    },
    /// The data dir was made for another slot count.
    #[error("data dir holds a cluster of {stored} slots, configured {configured}")]
    SlotMismatch {
        /// Slots in the data dir.
        stored: u32,
        /// Slots configured now.
        configured: u32,
    },
    /// A background task failed.
    #[error("background task failed: {0}")]
    Task(String),
}
