//! The id → row index of a stripe: open addressing with linear probing over 16-byte entries,
//! so a lookup is usually one cache line and can be prefetched ahead of time (std's map
//! cannot say where an id's bucket is).

/// Marks an empty entry; the id `u64::MAX` itself is kept aside.
const EMPTY: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
struct Entry {
    key: u64,
    idx: u32,
}

const VACANT: Entry = Entry { key: EMPTY, idx: 0 };

/// Maps ids to arena indexes. No single removal: a stripe that erases rows rebuilds its
/// index from the surviving rows ([`IdIndex::with_capacity`] + inserts), keeping probes short.
#[derive(Debug, Default)]
pub struct IdIndex {
    entries: Vec<Entry>,
    len: usize,
    max_id: Option<u32>,
}

/// Folded 128-bit multiply: entropy in the low bits used for the home slot.
#[inline]
fn hash(id: u64) -> usize {
    let m = id as u128 * 0x9E37_79B9_7F4A_7C15u128;
    ((m as u64) ^ ((m >> 64) as u64)) as usize
}

impl IdIndex {
    /// An empty index that holds `rows` entries without growing.
    pub fn with_capacity(rows: usize) -> Self {
        let mut capacity = 16;
        while rows * 4 > capacity * 3 {
            capacity *= 2;
        }
        Self {
            entries: if rows == 0 {
                Vec::new()
            } else {
                vec![VACANT; capacity]
            },
            len: 0,
            max_id: None,
        }
    }

    /// The index of `id`, if present.
    #[inline]
    pub fn get(&self, id: u64) -> Option<u32> {
        if id == EMPTY {
            return self.max_id;
        }
        if self.entries.is_empty() {
            return None;
        }
        let mask = self.entries.len() - 1;
        let mut at = hash(id) & mask;
        loop {
            let e = self.entries[at];
            if e.key == id {
                return Some(e.idx);
            }
            if e.key == EMPTY {
                return None;
            }
            at = (at + 1) & mask;
        }
    }

    /// Hints the CPU to fetch the entry `id` probes first.
    #[inline]
    pub fn prefetch(&self, id: u64) {
        if self.entries.is_empty() {
            return;
        }
        let at = hash(id) & (self.entries.len() - 1);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetch never faults; `at` is in bounds of `entries`.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(self.entries.as_ptr().add(at) as *const i8);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }

    /// Adds `id` (which must be absent) → `idx`.
    #[inline]
    pub fn insert(&mut self, id: u64, idx: u32) {
        if id == EMPTY {
            self.max_id = Some(idx);
            return;
        }
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow();
        }
        let mask = self.entries.len() - 1;
        let mut at = hash(id) & mask;
        while self.entries[at].key != EMPTY {
            debug_assert_ne!(self.entries[at].key, id, "id inserted twice");
            at = (at + 1) & mask;
        }
        self.entries[at] = Entry { key: id, idx };
        self.len += 1;
    }

    /// Makes room for `additional` more entries without growing on the way.
    pub fn reserve(&mut self, additional: usize) {
        let want = self.len + additional;
        let mut capacity = self.entries.len().max(16);
        while want * 4 > capacity * 3 {
            capacity *= 2;
        }
        if capacity > self.entries.len() {
            self.rehash(capacity);
        }
    }

    fn grow(&mut self) {
        self.rehash((self.entries.len() * 2).max(16));
    }

    fn rehash(&mut self, capacity: usize) {
        let old = std::mem::replace(&mut self.entries, vec![VACANT; capacity]);
        let mask = capacity - 1;
        for e in old.into_iter().filter(|e| e.key != EMPTY) {
            let mut at = hash(e.key) & mask;
            while self.entries[at].key != EMPTY {
                at = (at + 1) & mask;
            }
            self.entries[at] = e;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn behaves_like_a_map(ids in proptest::collection::vec(any::<u64>(), 0..2000), extra in any::<u64>()) {
            let mut index = IdIndex::default();
            let mut model = HashMap::new();
            for (i, id) in ids.iter().chain([&u64::MAX, &0]).enumerate() {
                if model.contains_key(id) {
                    continue;
                }
                index.insert(*id, i as u32);
                model.insert(*id, i as u32);
            }
            prop_assert_eq!(index.len + index.max_id.is_some() as usize, model.len());
            for (id, idx) in &model {
                prop_assert_eq!(index.get(*id), Some(*idx));
            }
            prop_assert_eq!(index.get(extra), model.get(&extra).copied());
        }
    }

    #[test]
    fn presized_index_does_not_grow() {
        let mut index = IdIndex::with_capacity(1000);
        let capacity = index.entries.len();
        for id in 0..1000u64 {
            index.insert(id, id as u32);
        }
        assert_eq!(index.entries.len(), capacity);
        assert!((0..1000u64).all(|id| index.get(id) == Some(id as u32)));
    }

    #[test]
    fn sequential_ids_stay_findable_across_growth() {
        let mut index = IdIndex::default();
        for id in 0..100_000u64 {
            index.insert(id * 4096, id as u32);
        }
        assert!((0..100_000u64).all(|id| index.get(id * 4096) == Some(id as u32)));
        assert_eq!(index.get(1), None);
    }
}
