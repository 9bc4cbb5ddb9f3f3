//! Slot-range operations for live shard migration: chunked export, whole-row reads and
//! imports, erase and per-slot counts.
//!
//! Export locks one stripe per chunk and never holds a lock for more than
//! [`SCAN_PER_LOCK`] visited rows, so pushes keep flowing during a long export. An erase
//! compacts the stripes it touches and bumps their generation; an export cursor inside such a
//! stripe restarts it (rows may repeat, none is lost).

use std::ops::Range;
use std::sync::atomic::Ordering;

use super::reclaim::drop_in_background;
use super::{stripe_slots, HostTier};
use crate::RowBlock;
use crate::{ExportCursor, StorageError};

/// Rows an export visits under one stripe lock before letting other requests in. Every W1
/// request touches nearly every stripe, and the export runs at a low CPU priority: a thread
/// preempted while it holds a stripe lock stalls every request until it runs again. 256
/// rows (~140 KiB) keep each hold to tens of microseconds; with 4096 the trainers kept
/// 0.71-0.86 of their rate during a loaded migration, with 256 0.82-0.83 (3 runs each).
const SCAN_PER_LOCK: usize = 256;

impl HostTier {
    /// See [`Tier::export_slots`](crate::Tier::export_slots).
    pub(crate) fn export_chunk(
        &self,
        slots: Range<u32>,
        cursor: &mut ExportCursor,
        max_rows: usize,
    ) -> RowBlock {
        let mut out = RowBlock::default();
        // Exact capacity: chunks of one size are recycled by the allocator (no fresh pages).
        if max_rows <= 1 << 20 {
            out.ids.reserve_exact(max_rows);
            out.rows.reserve_exact(max_rows * self.layout.row_floats());
        }
        let slots = slots.start..slots.end.min(self.num_slots);
        if slots.is_empty() {
            cursor.done = true;
        }
        if cursor.done || max_rows == 0 {
            return out;
        }
        let (first, last) = (
            self.stripe_of_slot(slots.start),
            self.stripe_of_slot(slots.end - 1),
        );
        if (cursor.stripe as usize) < first {
            cursor.stripe = first as u32;
            cursor.position = 0;
        }
        while cursor.stripe as usize <= last && out.ids.len() < max_rows {
            let stripe = self.stripes[cursor.stripe as usize].lock();
            if cursor.position == 0 || cursor.generation != stripe.generation() {
                // A new stripe, or rows moved since the last chunk: (re)start the stripe.
                cursor.position = 0;
                cursor.generation = stripe.generation();
            }
            let next = if stripe.count_slots((slots.start, slots.end)) == 0 {
                stripe.len() as u32
            } else {
                stripe.export_from(cursor.position, &slots, &mut out, max_rows, SCAN_PER_LOCK)
            };
            if next as usize >= stripe.len() {
                cursor.stripe += 1;
                cursor.position = 0;
            } else {
                cursor.position = next;
            }
        }
        cursor.done = cursor.stripe as usize > last;
        out
    }

    /// See [`Tier::read_rows`](crate::Tier::read_rows).
    pub(crate) fn read_block(&self, ids: &[u64]) -> RowBlock {
        let rf = self.layout.row_floats();
        let groups = self.group(ids);
        let mut rows = vec![0.0f32; ids.len() * rf];
        let mut found = vec![false; ids.len()];
        for (s, positions) in groups.iter() {
            let stripe = self.stripes[s].lock();
            for &p in positions {
                let p = p as usize;
                if let Some(idx) = stripe.find(ids[p]) {
                    rows[p * rf..(p + 1) * rf].copy_from_slice(stripe.arena.row(idx));
                    found[p] = true;
                }
            }
        }
        let mut kept = Vec::with_capacity(found.iter().filter(|&&f| f).count());
        for (p, _) in found.iter().enumerate().filter(|(_, &f)| f) {
            let at = kept.len();
            if at != p {
                rows.copy_within(p * rf..(p + 1) * rf, at * rf);
            }
            kept.push(ids[p]);
        }
        rows.truncate(kept.len() * rf);
        RowBlock { ids: kept, rows }
    }

    /// See [`Tier::import_rows`](crate::Tier::import_rows).
    ///
    /// Ids of a block should be distinct (a repeated id is written in order, the last copy
    /// wins, but near the budget limit it is counted twice when checking the budget).
    pub(crate) fn import_block(&self, block: &RowBlock) -> Result<u64, StorageError> {
        self.import_packed_rows(&block.ids, bytemuck::cast_slice(&block.rows))
    }

    /// See [`Tier::import_packed`](crate::Tier::import_packed): rows straight from
    /// little-endian bytes of any alignment (a received message), copied once.
    pub(crate) fn import_packed_rows(&self, ids: &[u64], rows: &[u8]) -> Result<u64, StorageError> {
        let rf = self.layout.row_floats();
        let row_bytes = rf * 4;
        if rows.len() != ids.len() * row_bytes {
            return Err(StorageError::BadBlock {
                rows: ids.len(),
                got: rows.len() / 4,
                row_floats: rf,
            });
        }
        let _gate = self.gate.read();
        let groups = self.group(ids);
        let reserved = self.reserve_for(ids, &groups)?;
        let mut created = 0u64;
        for (s, positions) in groups.iter() {
            let mut stripe = self.stripes[s].lock();
            stripe.reserve(positions.len());
            for &p in positions {
                let p = p as usize;
                let (idx, new) = stripe.find_or_insert(ids[p], |_| {});
                created += new as u64;
                bytemuck::cast_slice_mut::<f32, u8>(stripe.arena.row_mut(idx))
                    .copy_from_slice(&rows[p * row_bytes..(p + 1) * row_bytes]);
                stripe.touch(idx);
            }
        }
        self.settle(reserved, created);
        Ok(created)
    }

    /// See [`Tier::erase_slots`](crate::Tier::erase_slots); appends the removed ids
    /// to `removed` when given. Stripes outside every range are not locked.
    pub(crate) fn erase_ranges(
        &self,
        ranges: &[(u32, u32)],
        mut removed: Option<&mut Vec<u64>>,
    ) -> u64 {
        let _gate = self.gate.read();
        let per_row = self.layout.accounted_bytes();
        let mut total = 0u64;
        let mut released = Vec::new();
        for (s, stripe) in self.stripes.iter().enumerate() {
            let own = stripe_slots(s, self.stripes.len(), self.num_slots);
            if !ranges.iter().any(|&(a, b)| a < own.end && own.start < b) {
                continue;
            }
            let (n, memory) = stripe.lock().erase_slots(ranges, removed.as_deref_mut());
            released.extend(memory);
            self.rows.fetch_sub(n as u64, Ordering::Relaxed);
            self.budget.release(n as u64 * per_row);
            total += n as u64;
        }
        // A moved-away shard's rows are gone from here on; giving their pages back (tens of
        // milliseconds for hundreds of MiB) is not on the path of the map update.
        drop_in_background(released);
        total
    }

    /// See [`Tier::count_slots`](crate::Tier::count_slots).
    pub(crate) fn count_ranges(&self, ranges: &[(u32, u32)]) -> Vec<u64> {
        ranges
            .iter()
            .map(|&(a, b)| {
                let b = b.min(self.num_slots);
                if a >= b {
                    return 0;
                }
                (self.stripe_of_slot(a)..=self.stripe_of_slot(b - 1))
                    .map(|s| self.stripes[s].lock().count_slots((a, b)))
                    .sum()
            })
            .collect()
    }
}
