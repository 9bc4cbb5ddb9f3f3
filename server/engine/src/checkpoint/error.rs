//! The checkpoint module's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong writing, listing or loading checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// An I/O operation failed (not a sign of corruption: permissions, disk full, ...).
    #[error("checkpoint I/O error: {op} {}: {source}", path.display())]
    Io {
        /// What was being done (`"create"`, `"write"`, `"fsync"`, `"rename"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A checkpoint failed verification: missing/truncated file, bad checksum, bad manifest.
    #[error("checkpoint {id} is corrupt: {file}: {reason}")]
    Corrupt {
        /// The checkpoint's id.
        id: String,
        /// The file (relative to the checkpoint directory) that failed.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No committed checkpoint has this id.
    #[error("checkpoint {id} not found")]
    NotFound {
        /// The requested id.
        id: String,
    },
    /// The string is not a checkpoint id (`ckpt-` followed by digits).
    #[error("invalid checkpoint id {id:?}")]
    InvalidId {
        /// The rejected string.
        id: String,
    },
    /// The snapshot handed to `write`/`stage` is inconsistent (e.g. block lengths).
    #[error("invalid snapshot: {reason}")]
    InvalidSnapshot {
        /// What is inconsistent.
        reason: String,
    },
    /// The manifest could not be serialized.
    #[error("cannot serialize manifest {}: {source}", path.display())]
    Serialize {
        /// The manifest's path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

impl CheckpointError {
    /// Whether the disk (or the quota) had no room: not strata's fault, and a checkpoint
    /// succeeds again once space is freed.
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, CheckpointError::Io { source, .. } if is_out_of_space(source))
    }

    /// Builds an [`CheckpointError::Io`] for `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        CheckpointError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds a [`CheckpointError::Corrupt`].
    pub(crate) fn corrupt(id: &str, file: &str, reason: impl Into<String>) -> Self {
        CheckpointError::Corrupt {
            id: id.to_owned(),
            file: file.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Whether `err` says the file system (or the user's quota) is full.
fn is_out_of_space(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}
