//! Storage tiers behind one batch-first trait.
//!
//! A tier holds the rows of one table on one node. It never sees the wire format or the
//! network: the engine hands it decoded ids and gradients, already validated.

mod budget;
mod error;
pub mod gpu;
pub mod host;
mod layout;

#[cfg(test)]
mod conformance;

pub use budget::MemoryBudget;
pub use error::StorageError;
pub use layout::{RowLayout, META_WORDS};

use crate::checkpoint::RowBlock;

/// Rows and bytes a tier holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Rows resident in this tier.
    pub rows: u64,
    /// Bytes accounted against the memory budget for those rows.
    pub bytes: u64,
}

/// One table's rows in one memory tier. Batch-first: every call carries many ids.
pub trait Tier: Send + Sync {
    /// Copies the values of `ids` into `out` (`ids.len() * dim`, row-major), creating missing
    /// rows with the table's initializer. Either every row is served or nothing changes.
    fn pull(&self, ids: &[u64], out: &mut [f32]) -> Result<(), StorageError>;

    /// Applies one optimizer step per distinct id; duplicate ids have their gradients summed
    /// first. Missing rows are created, then updated. Returns the number of distinct rows.
    fn push(&self, ids: &[u64], grads: &[f32]) -> Result<u64, StorageError>;

    /// Rows and bytes held.
    fn stats(&self) -> TierStats;

    /// The row layout (values, optimizer state, metadata words).
    fn layout(&self) -> RowLayout;

    /// Holds every write off until the returned guard drops, so a snapshot sees whole pushes.
    fn freeze(&self) -> Box<dyn FrozenTier + '_>;

    /// Replaces all rows with the given blocks (rows in this tier's layout).
    fn restore(&self, blocks: &[RowBlock]) -> Result<(), StorageError>;
}

/// A tier with writes held off: its rows can be copied out consistently.
pub trait FrozenTier {
    /// Copies every row out, one block per internal partition.
    fn snapshot(&self) -> Vec<RowBlock>;
}
