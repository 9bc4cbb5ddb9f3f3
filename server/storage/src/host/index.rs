//! The id → row index of a stripe: open addressing with linear probing over 16-byte entries,
//! so a lookup is usually one cache line and can be prefetched ahead of time (std's map
//! cannot say where an id's bucket is).
//!
//! Growth is incremental: a large table that doubles keeps its old entries in the old table
//! and moves a few of them on each insert, so no insert rehashes the whole table while its
//! stripe is locked (a W1 server stalled every request for 3-10 ms at each of ~110 growths
//! of 64 K-128 K entries). Lookups try the new table, then the old one; an id's entry never
//! changes while it is indexed, so a copy found in either table is the answer.
//!
//! The next table is allocated early: at 5/8 load a table of at least [`PREFAULT_FROM`]
//! entries hands its successor to its node's prefault thread ([`super::prefault`]), so the
//! growth at 3/4 finds its pages faulted in instead of faulting them under the stripe lock.

use std::ptr::NonNull;
use std::sync::Arc;

use super::mapping::{fault_in_zeroed, map_zeroed, unmap, PageAdvice, HUGE_PAGE_BYTES};
use super::RowMemory;

/// The id kept aside (its stored key would be the vacant marker).
const KEPT_ASIDE: u64 = u64::MAX;

/// The stored key of a vacant entry: entries store `id + 1`, so a new table is zeroed
/// memory, which the allocator hands out without writing it (fresh pages are faulted in by
/// the inserts that first touch them, not all at once while the stripe is locked: a
/// 2 MiB table filled with a marker took 8 ms on the VMs we measure on).
const VACANT_KEY: u64 = 0;

/// Tables smaller than this many entries rehash at once (a few microseconds).
const INCREMENTAL_FROM: usize = 4096;

/// Old-table positions moved to the new table per insert while a growth is in progress:
/// the old table empties after `capacity / 16` inserts, long before the new one (twice its
/// size) needs to grow again.
const MOVES_PER_INSERT: usize = 16;

/// Tables of at least this many entries get their successor faulted in ahead of growth.
const PREFAULT_FROM: usize = INCREMENTAL_FROM;

#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
struct Entry {
    /// `id + 1`, or [`VACANT_KEY`].
    key: u64,
    idx: u32,
}

/// Tables of at least this many bytes are mapped on their own (in huge pages where
/// advised, [`super::mapping`]) and go back to the OS when dropped; smaller ones come from
/// the heap.
const MAPPED_FROM_BYTES: usize = HUGE_PAGE_BYTES;

/// A fixed-size table of entries in zeroed memory (all vacant when new).
struct Table {
    at: NonNull<Entry>,
    len: usize,
}

// SAFETY: a table owns its memory exclusively; `&Table` only hands out shared slices.
unsafe impl Send for Table {}
// SAFETY: as above; mutation needs `&mut Table`.
unsafe impl Sync for Table {}

impl Table {
    /// A table of `capacity` vacant entries, mapped with `advice` when large. The memory is
    /// zeroed by the OS or the allocator without being written here: fresh pages are
    /// faulted in by the inserts that first touch them, not all at once while the stripe is
    /// locked.
    fn vacant(capacity: usize, advice: PageAdvice) -> Self {
        if capacity == 0 {
            return Self::default();
        }
        let layout = Self::layout(capacity);
        let at = if layout.size() >= MAPPED_FROM_BYTES {
            map_zeroed(layout.size(), advice).cast::<Entry>()
        } else {
            // SAFETY: `layout` has a non-zero size.
            let raw = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Entry>();
            NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
        };
        Self { at, len: capacity }
    }

    /// Faults in every page; the entries stay vacant. Only for a table nothing else reads
    /// or writes meanwhile (a spare on the prefault thread).
    fn fault_in(&self) {
        if self.len > 0 {
            // SAFETY: the table's own `len` entries of zeroed memory (vacant entries are
            // all-zero bytes); a spare is touched by no one else until it is taken back.
            unsafe { fault_in_zeroed(self.at.cast(), Self::layout(self.len).size()) };
        }
    }

    fn layout(capacity: usize) -> std::alloc::Layout {
        std::alloc::Layout::array::<Entry>(capacity).unwrap_or_else(|_| {
            panic!("an index of {capacity} entries overflows the address space")
        })
    }
}

impl Default for Table {
    fn default() -> Self {
        Self {
            at: NonNull::dangling(),
            len: 0,
        }
    }
}

impl std::ops::Deref for Table {
    type Target = [Entry];

    #[inline]
    fn deref(&self) -> &[Entry] {
        // SAFETY: `at` points to `len` initialised entries (all-zero bytes are a valid,
        // vacant `Entry`: two integers and padding) owned by `self`, or dangles with len 0.
        unsafe { std::slice::from_raw_parts(self.at.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for Table {
    #[inline]
    fn deref_mut(&mut self) -> &mut [Entry] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.at.as_ptr(), self.len) }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        let layout = Self::layout(self.len);
        if layout.size() >= MAPPED_FROM_BYTES {
            unmap(self.at.cast(), layout.size());
        } else {
            // SAFETY: allocated in `vacant` by the global allocator with this layout.
            unsafe { std::alloc::dealloc(self.at.as_ptr().cast(), layout) };
        }
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").field("len", &self.len).finish()
    }
}

/// Maps ids to arena indexes. No single removal: a stripe that erases rows rebuilds its
/// index from the surviving rows ([`IdIndex::with_capacity`] + inserts), keeping probes short.
#[derive(Debug)]
pub struct IdIndex {
    /// The node's row memory: page advice and prefault thread of large tables.
    memory: Arc<RowMemory>,
    entries: Table,
    /// Entries in `entries`.
    len: usize,
    max_id: Option<u32>,
    /// The table before the last growth while its entries are moved (empty otherwise).
    old: Table,
    /// Positions of `old` moved so far.
    moved: usize,
    /// The next table (twice `entries`), being faulted in on the prefault thread (which
    /// holds the other reference until it is done); taken by the next growth.
    spare: Option<Arc<Table>>,
}

/// Folded 128-bit multiply of a stored key: entropy in the low bits used for the home slot.
#[inline]
fn hash(key: u64) -> usize {
    let m = key as u128 * 0x9E37_79B9_7F4A_7C15u128;
    ((m as u64) ^ ((m >> 64) as u64)) as usize
}

/// The entry of stored key `key` in `table` (a power-of-two length, never full), if present.
#[inline]
fn probe(table: &[Entry], key: u64) -> Option<u32> {
    if table.is_empty() {
        return None;
    }
    let mask = table.len() - 1;
    let mut at = hash(key) & mask;
    loop {
        let e = table[at];
        if e.key == key {
            return Some(e.idx);
        }
        if e.key == VACANT_KEY {
            return None;
        }
        at = (at + 1) & mask;
    }
}

/// Puts `e` (whose key is absent) into the first vacant entry of its probe sequence.
#[inline]
fn place(table: &mut [Entry], e: Entry) {
    let mask = table.len() - 1;
    let mut at = hash(e.key) & mask;
    while table[at].key != VACANT_KEY {
        debug_assert_ne!(table[at].key, e.key, "id inserted twice");
        at = (at + 1) & mask;
    }
    table[at] = e;
}

/// Hints the CPU to fetch the entry of `table` that stored key `key` probes first.
#[inline]
fn prefetch_home(table: &[Entry], key: u64) {
    if table.is_empty() {
        return;
    }
    let at = hash(key) & (table.len() - 1);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch never faults; `at` is in bounds of `table`.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(table.as_ptr().add(at) as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// The smallest power-of-two capacity (at least 16) that holds `rows` at a load of 3/4.
fn capacity_for(rows: usize) -> usize {
    let mut capacity = 16;
    while rows * 4 > capacity * 3 {
        capacity *= 2;
    }
    capacity
}

impl IdIndex {
    /// An empty index whose tables follow `memory`'s page advice and prefault thread.
    pub fn new(memory: Arc<RowMemory>) -> Self {
        Self {
            memory,
            entries: Table::default(),
            len: 0,
            max_id: None,
            old: Table::default(),
            moved: 0,
            spare: None,
        }
    }

    /// An empty index that holds `rows` entries without growing.
    pub fn with_capacity(rows: usize, memory: Arc<RowMemory>) -> Self {
        let mut index = Self::new(memory);
        if rows > 0 {
            index.entries = index.vacant(capacity_for(rows));
        }
        index
    }

    /// An empty index with the same row memory.
    pub fn emptied(&self) -> Self {
        Self::new(self.memory())
    }

    /// The node's row memory this index maps its tables with.
    pub fn memory(&self) -> Arc<RowMemory> {
        Arc::clone(&self.memory)
    }

    /// A vacant table of `capacity` entries with this node's page advice.
    fn vacant(&self, capacity: usize) -> Table {
        Table::vacant(capacity, self.memory.advice())
    }

    /// The index of `id`, if present.
    #[inline]
    pub fn get(&self, id: u64) -> Option<u32> {
        if id == KEPT_ASIDE {
            return self.max_id;
        }
        let key = id + 1;
        match probe(&self.entries, key) {
            Some(idx) => Some(idx),
            None if self.old.is_empty() => None,
            None => probe(&self.old, key),
        }
    }

    /// Hints the CPU to fetch the entries `id` probes first.
    #[inline]
    pub fn prefetch(&self, id: u64) {
        let key = id.wrapping_add(1);
        prefetch_home(&self.entries, key);
        if !self.old.is_empty() {
            prefetch_home(&self.old, key);
        }
    }

    /// Adds `id` (which must be absent) → `idx`.
    #[inline]
    pub fn insert(&mut self, id: u64, idx: u32) {
        if id == KEPT_ASIDE {
            self.max_id = Some(idx);
            return;
        }
        if !self.old.is_empty() {
            self.move_old(MOVES_PER_INSERT);
        }
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow();
        }
        place(&mut self.entries, Entry { key: id + 1, idx });
        self.len += 1;
        if self.len * 8 >= self.entries.len() * 5
            && self.entries.len() >= PREFAULT_FROM
            && self.spare.is_none()
            && self.old.is_empty()
        {
            self.prepare_spare();
        }
    }

    /// Allocates the next table and has the prefault thread fault its pages in.
    fn prepare_spare(&mut self) {
        let spare = Arc::new(self.vacant(self.entries.len() * 2));
        let faulted = Arc::clone(&spare);
        // Without the thread the spare stays unfaulted: its growth faults it, as before.
        self.memory.prefault(move || faulted.fault_in());
        self.spare = Some(spare);
    }

    /// The spare, if it has `capacity` entries and the prefault thread is done with it.
    fn take_spare(&mut self, capacity: usize) -> Option<Table> {
        let spare = Arc::try_unwrap(self.spare.take()?).ok()?;
        (spare.len == capacity).then_some(spare)
    }

    /// Makes room for `additional` more entries without growing on the way.
    pub fn reserve(&mut self, additional: usize) {
        self.move_old(usize::MAX);
        let capacity = capacity_for(self.len + additional).max(self.entries.len());
        if capacity > self.entries.len() {
            let next = self.take_spare(capacity);
            self.rehash(capacity, next);
        }
    }

    /// Doubles the table: at once while it is small, else by moving entries on later inserts.
    fn grow(&mut self) {
        self.move_old(usize::MAX);
        let capacity = (self.entries.len() * 2).max(16);
        if capacity < INCREMENTAL_FROM {
            self.rehash(capacity, None);
            return;
        }
        // A spare still being faulted in is left to the prefault thread, which frees it.
        let next = self
            .take_spare(capacity)
            .unwrap_or_else(|| self.vacant(capacity));
        self.old = std::mem::replace(&mut self.entries, next);
        self.moved = 0;
        self.len = 0;
    }

    /// Moves the entries of up to `positions` more positions of the old table.
    fn move_old(&mut self, positions: usize) {
        if self.old.is_empty() {
            return;
        }
        let end = self.moved.saturating_add(positions).min(self.old.len());
        for at in self.moved..end {
            let e = self.old[at];
            if e.key != VACANT_KEY {
                place(&mut self.entries, e);
                self.len += 1;
            }
        }
        self.moved = end;
        if end == self.old.len() {
            self.old = Table::default();
            self.moved = 0;
        }
    }

    /// Rebuilds the table at `capacity` at once (no growth in progress), into `next` if
    /// given (a vacant table of that capacity).
    fn rehash(&mut self, capacity: usize, next: Option<Table>) {
        debug_assert!(self.old.is_empty());
        let next = next.unwrap_or_else(|| self.vacant(capacity));
        let old = std::mem::replace(&mut self.entries, next);
        for e in old.iter().filter(|e| e.key != VACANT_KEY) {
            place(&mut self.entries, *e);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn memory() -> Arc<RowMemory> {
        Arc::new(RowMemory::default())
    }

    impl IdIndex {
        /// Ids in either table (not counting the one kept aside).
        fn ids_indexed(&self) -> usize {
            let unmoved = self.old.get(self.moved..).unwrap_or_default();
            self.len + unmoved.iter().filter(|e| e.key != VACANT_KEY).count()
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_map(ids in proptest::collection::vec(any::<u64>(), 0..2000), extra in any::<u64>()) {
            let mut index = IdIndex::new(memory());
            let mut model = HashMap::new();
            for (i, id) in ids.iter().chain([&u64::MAX, &0]).enumerate() {
                if model.contains_key(id) {
                    continue;
                }
                index.insert(*id, i as u32);
                model.insert(*id, i as u32);
            }
            prop_assert_eq!(index.ids_indexed() + index.max_id.is_some() as usize, model.len());
            for (id, idx) in &model {
                prop_assert_eq!(index.get(*id), Some(*idx));
            }
            prop_assert_eq!(index.get(extra), model.get(&extra).copied());
        }
    }

    /// An index of [`PREFAULT_FROM`] entries filled to 5/8 (its spare made and faulted in):
    /// the index, the next id, and where the spare's memory is.
    fn index_with_a_faulted_spare() -> (IdIndex, u64, NonNull<Entry>) {
        let mut index = IdIndex::with_capacity(PREFAULT_FROM * 3 / 4, memory());
        let capacity = index.entries.len();
        assert_eq!(capacity, PREFAULT_FROM);
        let mut id = 0u64;
        while index.spare.is_none() {
            index.insert(id, id as u32);
            id += 1;
        }
        assert_eq!(id as usize * 8, capacity * 5, "the spare comes at 5/8 load");
        let spare = index.spare.clone().expect("a spare");
        assert_eq!(spare.len, capacity * 2);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&spare) > 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the prefault job never ran"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        (index, id, spare.at)
    }

    #[test]
    fn a_reserve_that_doubles_the_table_takes_the_spare() {
        let (mut index, id, spare_at) = index_with_a_faulted_spare();
        index.reserve(PREFAULT_FROM / 4);
        assert_eq!(index.entries.at, spare_at);
        assert!(index.spare.is_none() && index.old.is_empty());
        assert!((0..id).all(|k| index.get(k) == Some(k as u32)));
    }

    #[test]
    fn a_growth_takes_the_spare_faulted_in_ahead_of_it() {
        let (mut index, mut id, spare_at) = index_with_a_faulted_spare();
        while index.old.is_empty() {
            index.insert(id, id as u32);
            id += 1;
        }
        assert_eq!(index.entries.at, spare_at, "the growth took the spare");
        assert!(index.spare.is_none());
        assert!((0..id).all(|k| index.get(k) == Some(k as u32)));
    }

    #[test]
    fn presized_index_does_not_grow() {
        let mut index = IdIndex::with_capacity(1000, memory());
        let capacity = index.entries.len();
        for id in 0..1000u64 {
            index.insert(id, id as u32);
        }
        assert_eq!(index.entries.len(), capacity);
        assert!((0..1000u64).all(|id| index.get(id) == Some(id as u32)));
    }

    #[test]
    fn sequential_ids_stay_findable_across_growth() {
        let mut index = IdIndex::new(memory());
        for id in 0..100_000u64 {
            index.insert(id * 4096, id as u32);
        }
        assert!((0..100_000u64).all(|id| index.get(id * 4096) == Some(id as u32)));
        assert_eq!(index.get(1), None);
    }

    #[test]
    fn lookups_see_every_id_while_a_growth_moves_entries() {
        let mut index = IdIndex::new(memory());
        let mut saw_growth_in_progress = false;
        for id in 0..50_000u64 {
            index.insert(id * 7 + 3, id as u32);
            if !index.old.is_empty() {
                saw_growth_in_progress = true;
                // Every id so far, whichever table holds it; absent ids stay absent.
                if id % 997 == 0 {
                    assert!((0..=id).all(|k| index.get(k * 7 + 3) == Some(k as u32)));
                    assert_eq!(index.get(id * 7 + 4), None);
                }
            }
            assert_eq!(index.ids_indexed(), id as usize + 1);
        }
        assert!(saw_growth_in_progress);
        // A reserve finishes the move and sizes the table at once.
        index.reserve(100_000);
        assert!(index.old.is_empty());
        assert_eq!(index.len, 50_000);
        assert!((0..50_000u64).all(|k| index.get(k * 7 + 3) == Some(k as u32)));
    }
}
