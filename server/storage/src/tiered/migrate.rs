//! Slot-range operations of the GPU tier: the host tier does the work under the tier's lock,
//! and device copies (newer than their host rows) are overlaid on reads and dropped on writes.

use std::ops::Range;
use std::sync::atomic::Ordering;

use super::{device_err, distinct, Cache, GpuTier};
use crate::gpu::DeviceTable;
use crate::RowBlock;
use crate::{ExportCursor, StorageError};

impl<T: DeviceTable> GpuTier<T> {
    /// Replaces the rows of `block` that are cached with their (newer) device copies.
    fn overlay_device(
        &self,
        cache: &mut Cache<T>,
        block: &mut RowBlock,
    ) -> Result<(), StorageError> {
        if block.ids.is_empty() {
            return Ok(());
        }
        let rf = self.layout.row_floats();
        let (uniq, pos) = distinct(&block.ids);
        let (rows, found) = cache.table.find(&uniq, rf, false).map_err(device_err)?;
        for (p, &u) in pos.iter().enumerate() {
            let u = u as usize;
            if found[u] {
                block.rows[p * rf..(p + 1) * rf].copy_from_slice(&rows[u * rf..(u + 1) * rf]);
            }
        }
        Ok(())
    }

    /// One export chunk: host rows in the range, device copies winning. The cursor only
    /// advances when the chunk is returned, so a failed chunk can be retried.
    pub(super) fn export_chunk(
        &self,
        slots: Range<u32>,
        cursor: &mut ExportCursor,
        max_rows: usize,
    ) -> Result<RowBlock, StorageError> {
        // Held across the host scan and the device lookup, so an eviction cannot move a row's
        // newest copy from the device to the host in between.
        let mut cache = self.cache.lock();
        let mut next = cursor.clone();
        let mut block = self.host.export_chunk(slots, &mut next, max_rows);
        self.overlay_device(&mut cache, &mut block)?;
        *cursor = next;
        Ok(block)
    }

    /// Whole rows of existing `ids`, device copies winning.
    pub(super) fn read_block(&self, ids: &[u64]) -> Result<RowBlock, StorageError> {
        let mut cache = self.cache.lock();
        let mut block = self.host.read_block(ids);
        self.overlay_device(&mut cache, &mut block)?;
        Ok(block)
    }

    /// Imports into the host tier, then drops cached copies of the imported ids so no later
    /// read sees a row older than the import.
    pub(super) fn import_block(&self, block: &RowBlock) -> Result<u64, StorageError> {
        let mut cache = self.cache.lock();
        let created = self.host.import_block(block)?;
        let (uniq, _) = distinct(&block.ids);
        self.drop_cached(&mut cache, &uniq)?;
        Ok(created)
    }

    /// Erases the ranges from the host tier and the erased ids from the device table.
    pub(super) fn erase_ranges(&self, ranges: &[(u32, u32)]) -> Result<u64, StorageError> {
        let mut cache = self.cache.lock();
        let mut removed = Vec::new();
        let n = self.host.erase_ranges(ranges, Some(&mut removed));
        // The cache is inclusive: every cached row had a host copy among `removed`.
        self.drop_cached(&mut cache, &removed)?;
        Ok(n)
    }

    /// Removes distinct `ids` from the device table (absent ones are ignored).
    fn drop_cached(&self, cache: &mut Cache<T>, ids: &[u64]) -> Result<(), StorageError> {
        if !ids.is_empty() && !cache.table.is_empty() {
            cache.table.erase(ids).map_err(device_err)?;
        }
        self.resident
            .store(cache.table.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}
