//! strata-storage: where a node's rows live and how they are updated — memory tiers behind
//! one batch-first trait, the row layout, optimizers, memory budgets, and the slot hash.
//!
//! Rule: this crate depends on none of tonic, prost, strata-proto, strata-engine or
//! strata-cluster (checked in CI); it never sees the wire format or the network: the
//! engine hands it decoded ids and gradients, already validated.
//!
//! Module map:
//! - [`hash`]: DESIGN.md's routing hash (splitmix64), shared with every client.
//! - [`slot`]: id → slot of a cluster.
//! - [`spec`]: table and dense-tensor specifications and their validation.
//! - [`init`]: deterministic row initializers.
//! - [`optimizer`]: server-side optimizers (SGD, Adagrad, Adam, FTRL), fused per row.
//! - [`host`]: the host-memory tier (striped id index over row arenas, memory reserve).
//! - [`gpu`]: the GPU tier (bucketed device table, fused kernels, CPU reference).
//! - `tiered`: a GPU tier over the host tier; `budget`, `layout`, `error`: byte budgets,
//!   row words, the tier error.
//! - [`row_block`]: rows copied out of a tier (snapshots, migrations).
//! - [`thread_priority`]: lower-priority threads for background work.

pub mod hash;
pub mod init;
pub mod optimizer;
mod row_block;
pub mod slot;
pub mod spec;
pub mod thread_priority;

mod budget;
mod error;
pub mod gpu;
pub mod host;
mod layout;
mod tiered;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tiered_props;

#[cfg(target_endian = "big")]
compile_error!("strata's packed rows assume a little-endian host");

pub use budget::MemoryBudget;
pub use error::StorageError;
pub use layout::{RowLayout, META_WORDS};
pub use row_block::RowBlock;
pub use tiered::{GpuTier, GpuTierConfig};

/// Rows and bytes a tier holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Rows resident in this tier.
    pub rows: u64,
    /// Bytes accounted against the memory budget for those rows.
    pub bytes: u64,
}

/// Rows and bytes of one memory tier of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierBreakdown {
    /// The tier: "host" or "gpu".
    pub tier: &'static str,
    /// Its rows and bytes.
    pub stats: TierStats,
}

/// Lookup and movement counters of a caching tier (monotonic since the table was created).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Distinct ids of a request found resident in the cache.
    pub hits: u64,
    /// Distinct ids of a request served by the tier behind it.
    pub misses: u64,
    /// Rows copied into the cache.
    pub admissions: u64,
    /// Rows evicted from the cache (and written back).
    pub evictions: u64,
    /// Nanoseconds pull and push requests waited on the device: copies and kernels.
    pub device_ns: u64,
}

impl CacheStats {
    /// Hits over lookups (0 before the first lookup).
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }
}

/// Where a chunked slot-range export stands; start from `ExportCursor::default()`.
///
/// A cursor belongs to one export: one tier and one slot range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportCursor {
    /// The stripe (host partition) being visited.
    stripe: u32,
    /// The next arena position to visit in that stripe.
    position: u32,
    /// The stripe's generation when `position` was taken; a change restarts the stripe.
    generation: u64,
    /// Set once every row of the range has been visited.
    pub done: bool,
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

    /// Appends to `out` the last-update times (Unix seconds; 0: never pushed) of about
    /// `max_rows` rows spread evenly over the table (every row when it holds fewer): a sample
    /// for staleness figures, taken one stripe lock at a time.
    fn sample_update_times(&self, max_rows: usize, out: &mut Vec<u32>);

    /// Replaces all rows with the given blocks (rows in this tier's layout).
    fn restore(&self, blocks: &[RowBlock]) -> Result<(), StorageError>;

    /// Copies up to `max_rows` whole rows (values, state, metadata) whose slot is in `slots`, advancing `cursor`; `cursor.done` is set once every row has been visited. A row present for the whole export is returned at least once (a row may repeat if another range of the same stripe was erased meanwhile).
    fn export_slots(
        &self,
        slots: std::ops::Range<u32>,
        cursor: &mut ExportCursor,
        max_rows: usize,
    ) -> Result<RowBlock, StorageError>;

    /// Whole rows of those `ids` that exist, in the order given (absent ids are skipped; nothing is created).
    fn read_rows(&self, ids: &[u64]) -> Result<RowBlock, StorageError>;

    /// Inserts or overwrites whole rows (`block.rows` = ids × row_floats); rows new to the tier are charged to the memory budget and the whole block is refused (nothing written) when they do not fit. Returns the rows created.
    fn import_rows(&self, block: &RowBlock) -> Result<u64, StorageError>;

    /// [`Tier::import_rows`] from packed little-endian row bytes of any alignment (as they
    /// arrive in a message): `rows.len() == ids.len() * row_floats * 4`.
    fn import_packed(&self, ids: &[u64], rows: &[u8]) -> Result<u64, StorageError> {
        let n = rows.len() / 4;
        let mut floats = vec![0.0f32; n];
        bytemuck::cast_slice_mut::<f32, u8>(&mut floats).copy_from_slice(&rows[..n * 4]);
        self.import_rows(&RowBlock {
            ids: ids.to_vec(),
            rows: floats,
        })
    }

    /// Removes every row whose slot lies in one of the half-open `ranges` and releases its budget; returns the rows removed.
    fn erase_slots(&self, ranges: &[(u32, u32)]) -> Result<u64, StorageError>;

    /// Rows held per half-open slot range, in the order given (O(slots), not O(rows)).
    fn count_slots(&self, ranges: &[(u32, u32)]) -> Vec<u64>;

    /// Rows and bytes per memory tier (one entry, "host", unless the tier caches).
    fn breakdown(&self) -> Vec<TierBreakdown> {
        vec![TierBreakdown {
            tier: "host",
            stats: self.stats(),
        }]
    }

    /// Cache counters, for tiers that cache hot rows in front of another tier.
    fn cache_stats(&self) -> Option<CacheStats> {
        None
    }
}

/// The rows of a tier written since an earlier change epoch, and the slot ranges that lost
/// rows since: applied to the tier's copy at that epoch (erase the ranges, then upsert the
/// rows) they give its rows now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangedRows {
    /// Rows written (pushed, created, imported, written back) since, one block per partition.
    pub blocks: Vec<RowBlock>,
    /// Half-open slot ranges erased since (rows outside them that were not written are as
    /// they were).
    pub erased: Vec<(u32, u32)>,
}

/// A tier with writes held off: its rows can be copied out consistently.
pub trait FrozenTier {
    /// Copies every row out, one block per internal partition.
    fn snapshot(&self) -> Result<Vec<RowBlock>, StorageError>;

    /// Ends the tier's current change epoch and returns it: every row held now was written at
    /// or before it, later writes carry a later one. Tiers that track no changes return 0.
    fn cut(&self) -> u64 {
        0
    }

    /// The changes since change epoch `since` (a value [`FrozenTier::cut`] returned), or
    /// `None` when the tier tracks no changes (copy everything with
    /// [`FrozenTier::snapshot`]). Asking from an epoch forgets what the tier kept of erases
    /// at or before it: ask with epochs that only grow.
    fn changed_since(&self, since: u64) -> Result<Option<ChangedRows>, StorageError> {
        let _ = since;
        Ok(None)
    }
}
