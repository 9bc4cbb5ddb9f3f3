//! A stripe: the rows of a fixed slot range of one table, behind one lock.

use super::arena::Arena;
use super::index::IdIndex;

/// Index, ids and row arena of one stripe.
#[derive(Debug)]
pub struct Stripe {
    index: IdIndex,
    ids: Vec<u64>,
    /// Row slots, in insertion order.
    pub arena: Arena,
}

impl Stripe {
    /// An empty stripe of rows `row_floats` words wide.
    pub fn new(row_floats: usize) -> Self {
        Self {
            index: IdIndex::default(),
            ids: Vec::new(),
            arena: Arena::new(row_floats),
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

    /// Adds a row for `id` (absent), lets `init` fill it, and returns its index.
    #[inline]
    pub fn insert(&mut self, id: u64, init: impl FnOnce(&mut [f32])) -> u32 {
        let idx = self.arena.push_zeroed();
        init(self.arena.row_mut(idx));
        self.ids.push(id);
        self.index.insert(id, idx);
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

    /// Ids in arena order and a copy of all rows.
    pub fn copy_out(&self) -> (Vec<u64>, Vec<f32>) {
        (self.ids.clone(), self.arena.copy_all())
    }

    /// Drops every row; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.ids.len();
        self.index = IdIndex::default();
        self.ids = Vec::new();
        self.arena.clear();
        n
    }
}
