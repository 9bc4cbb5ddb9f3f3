//! A stripe: the rows of a fixed slot range of one table, behind one lock.

use std::sync::Arc;

use super::arena::Arena;
use super::chunk::Chunk;
use super::index::IdIndex;
use super::RowMemory;
use crate::slot::slot_of;
use crate::RowBlock;

/// The memory a stripe gave up in an erase: its old index, ids and row chunks. Dropping it
/// unmaps the pages (or zeroes chunks into the row memory reserve), which takes milliseconds
/// for a large stripe: drop it outside the stripe's lock and off the caller's path
/// ([`super::reclaim::drop_in_background`]).
#[derive(Debug)]
pub struct Released {
    rows: usize,
    _index: IdIndex,
    _ids: Vec<u64>,
    _chunks: Vec<Chunk>,
}

impl Released {
    /// How many rows were removed.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Index, ids, row arena and per-slot row counts of one stripe.
#[derive(Debug)]
pub struct Stripe {
    index: IdIndex,
    ids: Vec<u64>,
    /// Row slots, in insertion order.
    pub arena: Arena,
    num_slots: u32,
    first_slot: u32,
    /// Rows per slot of `first_slot..first_slot + slot_rows.len()`.
    slot_rows: Vec<u32>,
    /// Bumped whenever rows move or vanish (erase, clear): arena positions are stale.
    generation: u64,
    /// The change epoch each row was last written in, in arena order (see [`Stripe::touch`]).
    stamps: Vec<u32>,
    /// The change epoch rows written now are stamped with.
    epoch: u32,
    /// Slot ranges (clipped to this stripe) that lost rows, with the epoch of the erase.
    erased: Vec<(u32, (u32, u32))>,
}

impl Stripe {
    /// An empty stripe of rows `row_floats` words wide holding `slots` of `num_slots` slots,
    /// its memory from the node's `memory`.
    pub fn new(
        row_floats: usize,
        num_slots: u32,
        slots: std::ops::Range<u32>,
        memory: &Arc<RowMemory>,
    ) -> Self {
        Self {
            index: IdIndex::new(Arc::clone(memory)),
            ids: Vec::new(),
            arena: Arena::new(row_floats, memory.pool()),
            num_slots,
            first_slot: slots.start,
            slot_rows: vec![0; slots.len()],
            generation: 0,
            stamps: Vec::new(),
            epoch: 1,
            erased: Vec::new(),
        }
    }

    /// The arena index of `id`, if present.
    #[inline]
    pub fn find(&self, id: u64) -> Option<u32> {
        self.index.get(id)
    }

    /// Hints the CPU to fetch the index entry of `id`.
    #[inline]
    pub fn prefetch_index(&self, id: u64) {
        self.index.prefetch(id);
    }

    /// Makes room in the index for `additional` more rows (a bulk import).
    pub fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
    }

    /// Adds a row for `id` (absent), lets `init` fill it, and returns its index.
    #[inline]
    pub fn insert(&mut self, id: u64, init: impl FnOnce(&mut [f32])) -> u32 {
        let idx = self.arena.push_zeroed();
        init(self.arena.row_mut(idx));
        self.ids.push(id);
        self.stamps.push(self.epoch);
        self.index.insert(id, idx);
        let local = self.local_slot(id);
        self.slot_rows[local] += 1;
        idx
    }

    /// The index of `id`, inserting it with `init` if absent; `true` when created.
    #[inline]
    pub fn find_or_insert(&mut self, id: u64, init: impl FnOnce(&mut [f32])) -> (u32, bool) {
        match self.find(id) {
            Some(idx) => (idx, false),
            None => (self.insert(id, init), true),
        }
    }

    /// Appends the word at `word` (a metadata word such as the last-update time) of every
    /// `every`-th row, in arena order.
    pub fn sample_word(&self, word: usize, every: usize, out: &mut Vec<u32>) {
        for idx in (0..self.ids.len()).step_by(every.max(1)) {
            out.push(self.arena.row(idx as u32)[word].to_bits());
        }
    }

    /// Marks the row at `idx` as written in the current change epoch (the caller holds the
    /// stripe's lock, as for any write: one store, no allocation).
    #[inline]
    pub fn touch(&mut self, idx: u32) {
        self.stamps[idx as usize] = self.epoch;
    }

    /// Ends the current change epoch (writes held off): returns it; later writes carry the next.
    pub fn cut(&mut self) -> u32 {
        let ended = self.epoch;
        self.epoch = ended.saturating_add(1);
        ended
    }

    /// Appends the rows written after epoch `since` to `out` and returns the slot ranges
    /// erased after it (ranges erased at or before `since` are forgotten: later callers ask
    /// from `since` on or start over from a full copy).
    pub fn changed_since(&mut self, since: u32, out: &mut RowBlock) -> Vec<(u32, u32)> {
        for (pos, (&id, &stamp)) in self.ids.iter().zip(&self.stamps).enumerate() {
            if stamp > since {
                out.ids.push(id);
                out.rows.extend_from_slice(self.arena.row(pos as u32));
            }
        }
        self.erased.retain(|&(epoch, _)| epoch > since);
        self.erased.iter().map(|&(_, range)| range).collect()
    }

    /// Ids in arena order and a copy of all rows.
    pub fn copy_out(&self) -> (Vec<u64>, Vec<f32>) {
        (self.ids.clone(), self.arena.copy_all())
    }

    /// Drops every row; the memory they held comes back as [`Released`].
    pub fn clear(&mut self) -> Released {
        let empty = self.index.emptied();
        let released = Released {
            rows: self.ids.len(),
            _index: std::mem::replace(&mut self.index, empty),
            _ids: std::mem::take(&mut self.ids),
            _chunks: self.arena.truncate(0),
        };
        self.stamps = Vec::new();
        self.slot_rows.fill(0);
        self.generation += 1;
        released
    }

    /// Drops every row as [`Stripe::clear`] does, remembering that the stripe's whole slot
    /// range lost its rows (a restore replaces them).
    pub fn wipe(&mut self) -> Released {
        let range = (
            self.first_slot,
            self.first_slot + self.slot_rows.len() as u32,
        );
        self.erased.push((self.epoch, range));
        self.clear()
    }

    /// The generation: arena positions of one generation stay valid (rows only append).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Rows held in the slots of `range` (clipped to this stripe's slots).
    pub fn count_slots(&self, range: (u32, u32)) -> u64 {
        let (a, b) = self.clip(range);
        self.slot_rows[a..b].iter().map(|&n| u64::from(n)).sum()
    }

    /// Appends rows at arena positions from `from` whose slot is in `slots` to `out`, until
    /// `out` holds `max_rows` ids or `max_scan` positions were visited; returns the next
    /// position to visit (the arena length once the stripe is exhausted).
    pub fn export_from(
        &self,
        from: u32,
        slots: &std::ops::Range<u32>,
        out: &mut RowBlock,
        max_rows: usize,
        max_scan: usize,
    ) -> u32 {
        let end = self.ids.len().min(from as usize + max_scan);
        let mut pos = from as usize;
        while pos < end && out.ids.len() < max_rows {
            let id = self.ids[pos];
            if slots.contains(&slot_of(id, self.num_slots)) {
                out.ids.push(id);
                out.rows.extend_from_slice(self.arena.row(pos as u32));
            }
            pos += 1;
        }
        pos as u32
    }

    /// Rows held (arena length).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Removes every row whose slot is in one of `ranges`, compacting the arena in place and
    /// rebuilding the index (O(rows of the stripe)); appends the removed ids to `removed`.
    /// Returns the rows removed, and the memory given up when any row went.
    pub fn erase_slots(
        &mut self,
        ranges: &[(u32, u32)],
        mut removed: Option<&mut Vec<u64>>,
    ) -> (usize, Option<Released>) {
        let doomed: usize = ranges.iter().map(|&r| self.count_slots(r) as usize).sum();
        if doomed == 0 {
            return (0, None);
        }
        // Overlapping ranges count a slot twice; the mask below is exact.
        let mut erase = vec![false; self.slot_rows.len()];
        for &r in ranges {
            let (a, b) = self.clip(r);
            erase[a..b].fill(true);
        }
        let before = self.ids.len();
        for &r in ranges {
            let (a, b) = self.clip(r);
            if a < b {
                let first = self.first_slot;
                self.erased
                    .push((self.epoch, (first + a as u32, first + b as u32)));
            }
        }
        if erase
            .iter()
            .zip(&self.slot_rows)
            .all(|(&e, &n)| e || n == 0)
        {
            if let Some(removed) = removed {
                removed.extend_from_slice(&self.ids);
            }
            let released = self.clear();
            return (released.rows(), Some(released));
        }
        let mut kept = 0usize;
        for pos in 0..before {
            let id = self.ids[pos];
            if erase[self.local_slot(id)] {
                if let Some(removed) = removed.as_deref_mut() {
                    removed.push(id);
                }
                continue;
            }
            if kept != pos {
                self.arena.move_row(pos as u32, kept as u32);
                self.ids[kept] = id;
                self.stamps[kept] = self.stamps[pos];
            }
            kept += 1;
        }
        self.ids.truncate(kept);
        self.stamps.truncate(kept);
        if kept < self.ids.capacity() / 4 {
            // A mostly emptied stripe (a shard moved away) gives its id memory back.
            self.ids.shrink_to_fit();
            self.stamps.shrink_to_fit();
        }
        let chunks = self.arena.truncate(kept);
        let mut index = IdIndex::with_capacity(kept, self.index.memory());
        for (idx, &id) in self.ids.iter().enumerate() {
            index.insert(id, idx as u32);
        }
        let old_index = std::mem::replace(&mut self.index, index);
        for (n, &e) in self.slot_rows.iter_mut().zip(&erase) {
            if e {
                *n = 0;
            }
        }
        self.generation += 1;
        let released = Released {
            rows: before - kept,
            _index: old_index,
            _ids: Vec::new(),
            _chunks: chunks,
        };
        (released.rows(), Some(released))
    }

    /// `id`'s slot as an offset into this stripe's slots.
    #[inline]
    fn local_slot(&self, id: u64) -> usize {
        let local = (slot_of(id, self.num_slots) - self.first_slot) as usize;
        debug_assert!(local < self.slot_rows.len(), "id {id} outside the stripe");
        local
    }

    /// `range` clipped to this stripe, as offsets into `slot_rows` (empty when disjoint).
    fn clip(&self, (start, end): (u32, u32)) -> (usize, usize) {
        let own_end = self.first_slot as usize + self.slot_rows.len();
        let a = (start as usize).clamp(self.first_slot as usize, own_end);
        let b = (end as usize).clamp(a, own_end);
        (a - self.first_slot as usize, b - self.first_slot as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stripe holding every slot of a 4-slot table, rows filled with their id.
    fn filled(n: u64) -> Stripe {
        let mut stripe = Stripe::new(3, 4, 0..4, &Arc::new(RowMemory::default()));
        for id in 0..n {
            stripe.insert(id, |row| row.fill(id as f32));
        }
        stripe
    }

    #[test]
    fn erase_in_the_middle_keeps_survivors_findable() {
        let n = 3000u64;
        let mut stripe = filled(n);
        let before = stripe.generation();
        let mut removed = Vec::new();
        let (gone, _) = stripe.erase_slots(&[(1, 3)], Some(&mut removed));
        let doomed = |id: u64| (1..3).contains(&slot_of(id, 4));
        assert_eq!(gone, (0..n).filter(|&id| doomed(id)).count());
        assert_eq!(removed.len(), gone);
        assert!(removed.iter().all(|&id| doomed(id)));
        assert!(
            stripe.generation() > before,
            "an erase bumps the generation"
        );
        assert_eq!(stripe.len(), n as usize - gone);
        for id in 0..n {
            match stripe.find(id) {
                Some(idx) => {
                    assert!(!doomed(id));
                    assert_eq!(stripe.arena.row(idx), &[id as f32; 3]);
                }
                None => assert!(doomed(id), "survivor {id} lost"),
            }
        }
        assert_eq!(stripe.count_slots((1, 3)), 0);
        assert_eq!(stripe.count_slots((0, 4)), stripe.len() as u64);
        // New rows after an erase start zeroed and are counted.
        let (idx, new) = stripe.find_or_insert(u64::MAX, |_| {});
        assert!(new);
        assert_eq!(stripe.arena.row(idx), &[0.0; 3]);
        assert_eq!(stripe.count_slots((0, 4)), stripe.len() as u64);
    }

    #[test]
    fn erasing_every_held_slot_clears_and_nothing_held_is_a_no_op() {
        let mut stripe = filled(100);
        let generation = stripe.generation();
        assert_eq!(stripe.erase_slots(&[(7, 9)], None).0, 0);
        assert_eq!(
            stripe.generation(),
            generation,
            "nothing removed, nothing moved"
        );
        assert_eq!(stripe.erase_slots(&[(0, 2), (1, 4)], None).0, 100);
        assert_eq!(stripe.len(), 0);
        assert_eq!(stripe.find(5), None);
        assert_eq!(stripe.count_slots((0, 4)), 0);
    }
}
