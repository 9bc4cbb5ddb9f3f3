//! [`DeviceTable`]: the operations the GPU tier needs, over the CPU reference and the device table.

use crate::optimizer::OptimizerConfig;

use super::layout::TableLayout;
use super::reference::{ExportedEntry, InsertOutcome, ReferenceTable};
use super::GpuError;

/// A bucketed hash table of rows: the CPU [`ReferenceTable`] or the CUDA `GpuTable`.
///
/// Every batch must hold distinct ids. Rows are `layout().row_width()` words: values,
/// optimizer state and metadata, the host tier's row layout.
pub trait DeviceTable: Send {
    /// The table's geometry.
    fn layout(&self) -> &TableLayout;

    /// Resident keys.
    fn len(&self) -> usize;

    /// Whether no key is resident.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gathers the first `out_width` words of each resident row; `touch` updates scores.
    fn find(
        &mut self,
        keys: &[u64],
        out_width: usize,
        touch: bool,
    ) -> Result<(Vec<f32>, Vec<bool>), GpuError>;

    /// Overwrites or inserts, evicting the minimum-score slot of a full bucket.
    fn insert_and_evict(
        &mut self,
        keys: &[u64],
        rows: &[f32],
        scores: Option<&[u64]>,
    ) -> Result<Vec<InsertOutcome>, GpuError>;

    /// Applies one gradient per resident id in place; returns which ids were resident.
    fn apply(
        &mut self,
        keys: &[u64],
        grads: &[f32],
        cfg: &OptimizerConfig,
        now_secs: u32,
    ) -> Result<Vec<bool>, GpuError>;

    /// Removes ids; returns which were resident.
    fn erase(&mut self, keys: &[u64]) -> Result<Vec<bool>, GpuError>;

    /// All resident entries with `score >= min_score`.
    fn export(&mut self, min_score: u64) -> Result<Vec<ExportedEntry>, GpuError>;
}

impl DeviceTable for ReferenceTable {
    fn layout(&self) -> &TableLayout {
        ReferenceTable::layout(self)
    }

    fn len(&self) -> usize {
        ReferenceTable::len(self)
    }

    fn find(
        &mut self,
        keys: &[u64],
        out_width: usize,
        touch: bool,
    ) -> Result<(Vec<f32>, Vec<bool>), GpuError> {
        ReferenceTable::find(self, keys, out_width, touch)
    }

    fn insert_and_evict(
        &mut self,
        keys: &[u64],
        rows: &[f32],
        scores: Option<&[u64]>,
    ) -> Result<Vec<InsertOutcome>, GpuError> {
        ReferenceTable::insert_and_evict(self, keys, rows, scores)
    }

    fn apply(
        &mut self,
        keys: &[u64],
        grads: &[f32],
        cfg: &OptimizerConfig,
        now_secs: u32,
    ) -> Result<Vec<bool>, GpuError> {
        ReferenceTable::apply(self, keys, grads, cfg, now_secs)
    }

    fn erase(&mut self, keys: &[u64]) -> Result<Vec<bool>, GpuError> {
        Ok(ReferenceTable::erase(self, keys))
    }

    fn export(&mut self, min_score: u64) -> Result<Vec<ExportedEntry>, GpuError> {
        Ok(ReferenceTable::export(self, min_score))
    }
}

#[cfg(feature = "gpu")]
impl DeviceTable for super::device::GpuTable {
    fn layout(&self) -> &TableLayout {
        super::device::GpuTable::layout(self)
    }

    fn len(&self) -> usize {
        super::device::GpuTable::len(self)
    }

    fn find(
        &mut self,
        keys: &[u64],
        out_width: usize,
        touch: bool,
    ) -> Result<(Vec<f32>, Vec<bool>), GpuError> {
        super::device::GpuTable::find(self, keys, out_width, touch)
    }

    fn insert_and_evict(
        &mut self,
        keys: &[u64],
        rows: &[f32],
        scores: Option<&[u64]>,
    ) -> Result<Vec<InsertOutcome>, GpuError> {
        super::device::GpuTable::insert_and_evict(self, keys, rows, scores)
    }

    fn apply(
        &mut self,
        keys: &[u64],
        grads: &[f32],
        cfg: &OptimizerConfig,
        now_secs: u32,
    ) -> Result<Vec<bool>, GpuError> {
        super::device::GpuTable::apply(self, keys, grads, cfg, now_secs)
    }

    fn erase(&mut self, keys: &[u64]) -> Result<Vec<bool>, GpuError> {
        super::device::GpuTable::erase(self, keys)
    }

    fn export(&mut self, min_score: u64) -> Result<Vec<ExportedEntry>, GpuError> {
        super::device::GpuTable::export(self, min_score)
    }
}
