//! Why a migration step failed.

use thiserror::Error;

use strata_engine::{EngineError, OwnershipError};
use strata_proto::wire::payload::PayloadError;
use strata_storage::StorageError;

/// Why a migration step failed.
#[derive(Debug, Error)]
pub enum MigrationError {
    /// The slot range cannot migrate from or to this node now.
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
    /// The engine refused (unknown table, budget).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A chunk's payload has the wrong length.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The storage tier refused.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The destination could not be reached or failed.
    #[error("destination {address}: {message}")]
    Destination {
        /// Its address.
        address: String,
        /// What happened.
        message: String,
    },
    /// The migration was rolled back (cancelled) while it ran.
    #[error("migration {id} was aborted")]
    Aborted {
        /// The migration id.
        id: String,
    },
    /// Tables were created, dropped or recreated while the migration ran.
    #[error("migration {id}: the tables changed while it ran; plan it again")]
    CatalogChanged {
        /// The migration id.
        id: String,
    },
    /// The stream from the source was malformed or ended early.
    #[error("bad import stream: {0}")]
    BadStream(String),
    /// The destination already serves a slot of the range.
    #[error("this node already serves slots of {start}..{end}")]
    AlreadyServed {
        /// First slot.
        start: u32,
        /// One past the last slot.
        end: u32,
    },
    /// The coordinator stopped listening to the progress stream.
    #[error("progress stream closed by the coordinator")]
    ProgressClosed,
    /// A blocking task failed.
    #[error("background task failed: {0}")]
    Task(String),
}
