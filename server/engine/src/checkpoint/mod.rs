//! Consistent checkpoints of a node's tables and dense tensors.
//!
//! The engine copies its state into a [`NodeSnapshot`] at one instant; this module writes it
//! under the data dir and reads it back, verifying checksums. A checkpoint is a base (every
//! row) or a delta (the rows written since its parent, chained to a base); `chain` follows
//! and verifies chains, loads the newest good one and prunes without breaking one.

mod chain;
#[cfg(test)]
mod chain_tests;
mod error;
pub(crate) mod format;
pub(crate) mod manifest;
mod store;
#[cfg(test)]
mod tests;

pub use error::CheckpointError;
pub use manifest::CheckpointKind;
pub use store::{CheckpointInfo, CheckpointState, CheckpointStore, StagedCheckpoint};

use strata_storage::spec::{DenseSpec, TableSpec};
pub use strata_storage::RowBlock;

/// One table at the snapshot instant.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSnapshot {
    /// The table's specification.
    pub spec: TableSpec,
    /// f32 words per row in `RowBlock::rows` (layout owned by the storage tier).
    pub row_floats: u32,
    /// The table's rows, one block per stripe: every row, or with `changes` only the rows
    /// written since the parent checkpoint.
    pub blocks: Vec<RowBlock>,
    /// In a delta: how the table differs from its copy in the parent checkpoint (`None`: the
    /// blocks hold every row).
    pub changes: Option<TableChanges>,
}

/// How a table of a delta differs from its copy in the parent checkpoint: erase the ranges,
/// then overwrite or add the rows.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TableChanges {
    /// Half-open slot ranges whose rows were erased since the parent.
    pub erased: Vec<(u32, u32)>,
    /// Rows the table held at the snapshot instant.
    pub live_rows: u64,
}

/// One dense tensor at the snapshot instant.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseSnapshot {
    /// The tensor's specification.
    pub spec: DenseSpec,
    /// Values, optimizer state and metadata words (layout owned by the engine).
    pub data: Vec<f32>,
}

/// Everything a node holds, at one instant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeSnapshot {
    /// Cluster-map epoch at which the snapshot was taken.
    pub epoch: u64,
    /// The first write-ahead log record not in the snapshot (0 without a log).
    pub wal_lsn: u64,
    /// Sparse tables.
    pub tables: Vec<TableSnapshot>,
    /// Dense tensors.
    pub dense: Vec<DenseSnapshot>,
    /// The pushes applied per client, for exactly-once delivery.
    pub ledger: Vec<crate::ledger::ClientPushes>,
}
