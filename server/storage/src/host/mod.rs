//! The host-memory tier: rows in per-stripe arenas, each stripe behind its own lock.
//!
//! A table's slot space is cut into [`STRIPES`] contiguous slot ranges. Requests lock one
//! stripe at a time, so concurrent requests contend only when they touch the same stripe,
//! never on a table- or node-wide lock (the freeze gate is shared by all requests and
//! taken exclusively only by snapshots). Stripes follow slot ranges, so shard splits and
//! merges move no data.
//!
//! A tier's memory machinery (reserve, huge page choice, prefault threads) belongs to its
//! node: the [`RowMemory`] its creator hands [`HostTier::new`].
//!
//! Modules: `stripe` (index + arena of a slot range), `index` (id → row), `arena` and
//! `chunk` (rows in 2 MiB chunks from a [`chunk::ChunkPool`]), `reserve` (the pool of
//! faulted-in chunks), `row_memory` (a node's reserve, refill and prefault threads),
//! `prefault`, `mapping` (anonymous mappings, page advice), `migrate` (slot-range
//! operations), `guard` (a push's numerical guard and undo log), `group`, `reclaim`,
//! `worker`.

mod arena;
mod chunk;
mod group;
mod guard;
#[cfg(test)]
mod guard_tests;
mod index;
mod mapping;
mod migrate;
mod prefault;
mod reclaim;
mod reserve;
mod row_memory;
mod stripe;
mod worker;

pub use reserve::{ChunkReserve, Refiller, DEFAULT_MEMORY_RESERVE_BYTES};
pub use row_memory::{RowMemory, RowMemoryConfig};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock, RwLockWriteGuard};

use self::group::StripeGroups;
use self::guard::{all_finite, Offenders, UndoLog};
use self::reclaim::drop_in_background;
use self::stripe::Stripe;
use super::layout::{META_ACCESS, META_LAST_UPDATE, META_STEP, META_WORDS};
use super::{
    ChangedRows, ExportCursor, FrozenTier, MemoryBudget, RowLayout, StorageError, Tier, TierStats,
};
use crate::init::init_row;
use crate::slot::slot_of;
use crate::spec::TableSpec;
use crate::RowBlock;

/// Stripes per table (fewer when the cluster has fewer slots).
pub const STRIPES: usize = 64;

/// Rows to prefetch ahead while walking a stripe's rows.
const PREFETCH_AHEAD: usize = 4;

/// Ids whose index entry is prefetched ahead of the lookup (an entry is one cache line).
const INDEX_PREFETCH_AHEAD: usize = 8;

/// One table's rows in host memory.
pub struct HostTier {
    spec: TableSpec,
    layout: RowLayout,
    num_slots: u32,
    /// The stripe of each slot (`slot * stripes / num_slots`, looked up: no division per id).
    stripe_by_slot: Box<[u16]>,
    stripes: Box<[Mutex<Stripe>]>,
    gate: RwLock<()>,
    budget: Arc<MemoryBudget>,
    rows: AtomicU64,
}

impl HostTier {
    /// An empty tier for `spec`, routing ids over `num_slots` slots, charging `budget`, its
    /// memory from its node's `memory`.
    pub fn new(
        spec: TableSpec,
        num_slots: u32,
        budget: Arc<MemoryBudget>,
        memory: Arc<RowMemory>,
    ) -> Self {
        let layout = RowLayout {
            dim: spec.dim as usize,
            state: spec.optimizer.state_slots() * spec.dim as usize,
        };
        let num_slots = num_slots.max(1);
        let count = STRIPES.min(num_slots as usize);
        let stripes = (0..count)
            .map(|s| {
                let slots = stripe_slots(s, count, num_slots);
                Mutex::new(Stripe::new(layout.row_floats(), num_slots, slots, &memory))
            })
            .collect();
        let stripe_by_slot = (0..num_slots as usize)
            .map(|slot| (slot * count / num_slots as usize) as u16)
            .collect();
        Self {
            spec,
            layout,
            num_slots,
            stripe_by_slot,
            stripes,
            gate: RwLock::new(()),
            budget,
            rows: AtomicU64::new(0),
        }
    }

    #[inline]
    fn stripe_of(&self, id: u64) -> u16 {
        self.stripe_by_slot[slot_of(id, self.num_slots) as usize]
    }

    #[inline]
    fn stripe_of_slot(&self, slot: u32) -> usize {
        self.stripe_by_slot[slot as usize] as usize
    }

    fn group(&self, ids: &[u64]) -> StripeGroups {
        let keys: Vec<u16> = ids.iter().map(|&id| self.stripe_of(id)).collect();
        StripeGroups::new(&keys, self.stripes.len())
    }

    /// Runs `f` on each group of `groups` with its stripe locked, free stripes first: a stripe
    /// another request holds is visited after the rest, then waited for. Two requests that
    /// walk the same stripes in the same order (a pull and a push of one step) then pass each
    /// other instead of queueing, spinning and yielding at every stripe.
    fn for_each_group_locked(&self, groups: &StripeGroups, mut f: impl FnMut(&[u32], &mut Stripe)) {
        const _: () = assert!(STRIPES <= 64, "busy stripes are kept in a u64");
        let mut busy = 0u64;
        for (s, positions) in groups.iter() {
            match self.stripes[s].try_lock() {
                Some(mut stripe) => f(positions, &mut stripe),
                None => busy |= 1 << s,
            }
        }
        while busy != 0 {
            let s = busy.trailing_zeros() as usize;
            busy &= busy - 1;
            f(groups.positions(s), &mut self.stripes[s].lock());
        }
    }

    /// Fills a new row: initializer values, initial optimizer state, zero metadata.
    #[inline]
    fn init_new_row(&self, id: u64, row: &mut [f32]) {
        let dim = self.layout.dim;
        init_row(&self.spec.initializer, self.spec.seed, id, &mut row[..dim]);
        self.spec
            .optimizer
            .init_state(&mut row[dim..dim + self.layout.state]);
    }

    /// Reserves budget for the rows a request may create; returns the bytes reserved.
    fn reserve_for(&self, ids: &[u64], groups: &StripeGroups) -> Result<u64, StorageError> {
        let per_row = self.layout.accounted_bytes();
        let worst = ids.len() as u64;
        if self.budget.try_reserve(worst, worst * per_row).is_ok() {
            return Ok(worst * per_row);
        }
        // Near the limit: count the rows that are really missing.
        let mut missing = 0u64;
        for (s, positions) in groups.iter() {
            let stripe = self.stripes[s].lock();
            missing += positions
                .iter()
                .filter(|&&p| stripe.find(ids[p as usize]).is_none())
                .count() as u64;
        }
        self.budget.try_reserve(missing, missing * per_row)?;
        Ok(missing * per_row)
    }

    /// Copies the first `width` words of each row of `ids` into `out`, creating missing rows.
    fn gather(&self, ids: &[u64], out: &mut [f32], width: usize) -> Result<(), StorageError> {
        debug_assert_eq!(out.len(), ids.len() * width);
        let _gate = self.gate.read();
        let groups = self.group(ids);
        let reserved = self.reserve_for(ids, &groups)?;
        let mut created = 0u64;
        let mut rows: Vec<u32> = Vec::with_capacity(groups.max_group());
        self.for_each_group_locked(&groups, |positions, stripe| {
            rows.clear();
            for (k, &p) in positions.iter().enumerate() {
                if let Some(&ahead) = positions.get(k + INDEX_PREFETCH_AHEAD) {
                    stripe.prefetch_index(ids[ahead as usize]);
                }
                let id = ids[p as usize];
                let (idx, new) = stripe.find_or_insert(id, |row| self.init_new_row(id, row));
                created += new as u64;
                rows.push(idx);
            }
            // Pulls read only the values (a third of an Adagrad row's cache lines) and write
            // nothing; access counts are kept by pushes.
            for (k, &p) in positions.iter().enumerate() {
                if let Some(&ahead) = rows.get(k + PREFETCH_AHEAD) {
                    stripe.arena.prefetch(ahead, width);
                }
                let row = stripe.arena.row_mut(rows[k]);
                let p = p as usize;
                out[p * width..(p + 1) * width].copy_from_slice(&row[..width]);
            }
        });
        self.settle(reserved, created);
        Ok(())
    }

    /// Copies whole rows (values, state, metadata) of `ids` into `out`, creating missing rows.
    pub(crate) fn pull_rows(&self, ids: &[u64], out: &mut [f32]) -> Result<(), StorageError> {
        self.gather(ids, out, self.layout.row_floats())
    }

    /// Overwrites whole rows of distinct `ids` (the GPU tier's write-back); never refused.
    ///
    /// Rows written back were created in this tier before they were cached, so this normally
    /// only overwrites; an absent id is inserted and charged without checking the limit.
    pub(crate) fn write_rows(&self, ids: &[u64], rows: &[f32]) {
        let row_floats = self.layout.row_floats();
        debug_assert_eq!(rows.len(), ids.len() * row_floats);
        let _gate = self.gate.read();
        let groups = self.group(ids);
        let mut created = 0u64;
        for (s, positions) in groups.iter() {
            let mut stripe = self.stripes[s].lock();
            for &p in positions {
                let p = p as usize;
                let (idx, new) = stripe.find_or_insert(ids[p], |_| {});
                created += new as u64;
                stripe
                    .arena
                    .row_mut(idx)
                    .copy_from_slice(&rows[p * row_floats..(p + 1) * row_floats]);
                stripe.touch(idx);
            }
        }
        self.budget
            .force_reserve(created * self.layout.accounted_bytes());
        self.rows.fetch_add(created, Ordering::Relaxed);
    }

    /// Returns the part of a reservation that was not used by `created` rows. A row erased
    /// between the count and the write is created after all: its bytes are taken on top, so
    /// the budget stays exact.
    fn settle(&self, reserved: u64, created: u64) {
        let used = created * self.layout.accounted_bytes();
        if used > reserved {
            self.budget.force_reserve(used - reserved);
        } else {
            self.budget.release(reserved - used);
        }
        self.rows.fetch_add(created, Ordering::Relaxed);
    }
}

impl Drop for HostTier {
    fn drop(&mut self) {
        let rows = self.rows.load(Ordering::Relaxed);
        self.budget.release(rows * self.layout.accounted_bytes());
        // A dropped table's memory is unmapped, or zeroed into the row memory reserve, off
        // the dropping request's path.
        drop_in_background(std::mem::take(&mut self.stripes).into_vec());
    }
}

/// The slots of stripe `s` of `stripes`: those with `slot * stripes / num_slots == s`.
fn stripe_slots(s: usize, stripes: usize, num_slots: u32) -> std::ops::Range<u32> {
    let first = |s: usize| (s * num_slots as usize).div_ceil(stripes) as u32;
    first(s)..first(s + 1)
}

/// Seconds since the Unix epoch, as stored in row metadata.
pub(crate) fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl Tier for HostTier {
    fn pull(&self, ids: &[u64], out: &mut [f32]) -> Result<(), StorageError> {
        self.gather(ids, out, self.layout.dim)
    }

    fn push(&self, ids: &[u64], grads: &[f32]) -> Result<u64, StorageError> {
        let (dim, state) = (self.layout.dim, self.layout.state);
        debug_assert_eq!(grads.len(), ids.len() * dim);
        let _gate = self.gate.read();
        let groups = self.group(ids);
        let reserved = self.reserve_for(ids, &groups)?;
        let now = now_secs();
        let optimizer = &self.spec.optimizer;
        let mut created = 0u64;
        let mut distinct = 0u64;
        let mut sum = vec![0.0f32; dim];
        // Groups keep request order, so a sorted request has sorted groups: duplicates are
        // already adjacent and no per-stripe sort is needed (the client sends sorted ids).
        let sorted = ids.windows(2).all(|w| w[0] <= w[1]);
        let mut pairs: Vec<(u64, u32)> = Vec::with_capacity(groups.max_group());
        let mut rows: Vec<u32> = Vec::with_capacity(groups.max_group());
        let stepped = dim + state;
        let mut undo = UndoLog::checkout(self.layout.row_floats());
        let mut offenders = Offenders::default();
        let mut scratch = vec![0.0f32; stepped];
        self.for_each_group_locked(&groups, |positions, stripe| {
            let stripe_index = self.stripe_of(ids[positions[0] as usize]) as usize;
            let mark = undo.len();
            // Sort by id so duplicates are adjacent and get one summed step.
            pairs.clear();
            pairs.extend(positions.iter().map(|&p| (ids[p as usize], p)));
            if !sorted {
                pairs.sort_unstable_by_key(|&(id, _)| id);
            }
            rows.clear();
            for (i, &(id, _)) in pairs.iter().enumerate() {
                if let Some(&(ahead, _)) = pairs.get(i + INDEX_PREFETCH_AHEAD) {
                    stripe.prefetch_index(ahead);
                }
                if i > 0 && pairs[i - 1].0 == id {
                    continue;
                }
                let (idx, new) = stripe.find_or_insert(id, |row| self.init_new_row(id, row));
                created += new as u64;
                rows.push(idx);
            }
            let mut i = 0;
            for (k, &idx) in rows.iter().enumerate() {
                if let Some(&ahead) = rows.get(k + PREFETCH_AHEAD) {
                    stripe.arena.prefetch(ahead, usize::MAX);
                }
                let id = pairs[i].0;
                let first = pairs[i].1 as usize;
                let mut end = i + 1;
                while end < pairs.len() && pairs[end].0 == id {
                    end += 1;
                }
                let grad: &[f32] = if end - i == 1 {
                    &grads[first * dim..(first + 1) * dim]
                } else {
                    sum.fill(0.0);
                    for &(_, p) in &pairs[i..end] {
                        let g = &grads[p as usize * dim..(p as usize + 1) * dim];
                        for (a, b) in sum.iter_mut().zip(g) {
                            *a += b;
                        }
                    }
                    &sum
                };
                let row = stripe.arena.row_mut(idx);
                i = end;
                if offenders.any() {
                    // Refused already: only find the other offenders, stepping a copy.
                    if !guard::step_copy_is_finite(optimizer, row, dim, &mut scratch, grad) {
                        offenders.note(id);
                    }
                    continue;
                }
                undo.save(stripe_index, id, idx, row);
                let (values, rest) = row.split_at_mut(dim);
                let (opt_state, meta) = rest.split_at_mut(state);
                let mut step = meta[META_STEP].to_bits();
                optimizer.apply(values, opt_state, &mut step, grad);
                if !all_finite(&row[..stepped]) {
                    offenders.note(id);
                    undo.undo_held(mark, stripe);
                    continue;
                }
                let meta = &mut row[stepped..];
                meta[META_STEP] = f32::from_bits(step);
                meta[META_LAST_UPDATE] = f32::from_bits(now);
                meta[META_ACCESS] = f32::from_bits(meta[META_ACCESS].to_bits().saturating_add(1));
                stripe.touch(idx);
            }
            distinct += rows.len() as u64;
        });
        if offenders.any() {
            let kept = undo.undo_released(|s| self.stripes[s].lock());
            self.settle(reserved, created);
            return Err(StorageError::NonFiniteResult {
                ids: offenders.named,
                count: offenders.count,
                not_undone: kept.named,
                not_undone_count: kept.count,
            });
        }
        self.settle(reserved, created);
        Ok(distinct)
    }

    fn stats(&self) -> TierStats {
        let rows = self.rows.load(Ordering::Relaxed);
        TierStats {
            rows,
            bytes: rows * self.layout.accounted_bytes(),
        }
    }

    fn layout(&self) -> RowLayout {
        self.layout
    }

    fn sample_update_times(&self, max_rows: usize, out: &mut Vec<u32>) {
        let rows = self.rows.load(Ordering::Relaxed) as usize;
        let every = rows.div_ceil(max_rows.max(1)).max(1);
        let word = self.layout.row_floats() - META_WORDS + META_LAST_UPDATE;
        for stripe in self.stripes.iter() {
            stripe.lock().sample_word(word, every, out);
        }
    }

    fn freeze(&self) -> Box<dyn FrozenTier + '_> {
        Box::new(FrozenHost {
            _gate: self.gate.write(),
            tier: self,
        })
    }

    fn restore(&self, blocks: &[RowBlock]) -> Result<(), StorageError> {
        let row_floats = self.layout.row_floats();
        for block in blocks {
            if block.rows.len() != block.ids.len() * row_floats {
                return Err(StorageError::BadBlock {
                    rows: block.ids.len(),
                    got: block.rows.len(),
                    row_floats,
                });
            }
        }
        let _gate = self.gate.write();
        let released: Vec<_> = self.stripes.iter().map(|s| s.lock().wipe()).collect();
        let dropped: u64 = released.iter().map(|r| r.rows() as u64).sum();
        drop_in_background(released);
        let per_row = self.layout.accounted_bytes();
        self.budget.release(dropped * per_row);
        let mut loaded = 0u64;
        for block in blocks {
            for (id, src) in block.ids.iter().zip(block.rows.chunks_exact(row_floats)) {
                let mut stripe = self.stripes[self.stripe_of(*id) as usize].lock();
                let (idx, new) = stripe.find_or_insert(*id, |_| {});
                stripe.arena.row_mut(idx).copy_from_slice(src);
                loaded += new as u64;
            }
        }
        self.budget.force_reserve(loaded * per_row);
        self.rows.store(loaded, Ordering::Relaxed);
        Ok(())
    }

    fn export_slots(
        &self,
        slots: std::ops::Range<u32>,
        cursor: &mut ExportCursor,
        max_rows: usize,
    ) -> Result<RowBlock, StorageError> {
        Ok(self.export_chunk(slots, cursor, max_rows))
    }

    fn read_rows(&self, ids: &[u64]) -> Result<RowBlock, StorageError> {
        Ok(self.read_block(ids))
    }

    fn import_rows(&self, block: &RowBlock) -> Result<u64, StorageError> {
        self.import_block(block)
    }

    fn import_packed(&self, ids: &[u64], rows: &[u8]) -> Result<u64, StorageError> {
        self.import_packed_rows(ids, rows)
    }

    fn erase_slots(&self, ranges: &[(u32, u32)]) -> Result<u64, StorageError> {
        Ok(self.erase_ranges(ranges, None))
    }

    fn count_slots(&self, ranges: &[(u32, u32)]) -> Vec<u64> {
        self.count_ranges(ranges)
    }
}

/// A host tier with writes held off.
struct FrozenHost<'a> {
    _gate: RwLockWriteGuard<'a, ()>,
    tier: &'a HostTier,
}

impl FrozenTier for FrozenHost<'_> {
    fn cut(&self) -> u64 {
        let mut ended = 0;
        for stripe in self.tier.stripes.iter() {
            ended = stripe.lock().cut();
        }
        u64::from(ended)
    }

    fn changed_since(&self, since: u64) -> Result<Option<ChangedRows>, StorageError> {
        let since = u32::try_from(since).unwrap_or(u32::MAX);
        let mut changed = ChangedRows::default();
        for stripe in self.tier.stripes.iter() {
            let mut block = RowBlock {
                ids: Vec::new(),
                rows: Vec::new(),
            };
            let erased = stripe.lock().changed_since(since, &mut block);
            changed.erased.extend(erased);
            changed.blocks.push(block);
        }
        Ok(Some(changed))
    }

    fn snapshot(&self) -> Result<Vec<RowBlock>, StorageError> {
        Ok(self
            .tier
            .stripes
            .iter()
            .map(|stripe| {
                let (ids, rows) = stripe.lock().copy_out();
                RowBlock { ids, rows }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::{OptimizerConfig, OptimizerKind};
    use crate::spec::{InitializerConfig, TierKind};

    fn tier() -> HostTier {
        let spec = TableSpec {
            name: "t".into(),
            dim: 4,
            optimizer: OptimizerConfig::new(OptimizerKind::Sgd { lr: 1.0 }),
            initializer: InitializerConfig::Zeros,
            seed: 1,
            tier: TierKind::Host,
        };
        HostTier::new(
            spec,
            4096,
            Arc::new(MemoryBudget::unlimited()),
            Arc::new(RowMemory::default()),
        )
    }

    #[test]
    fn a_busy_stripe_is_visited_after_the_free_ones_and_every_group_once() {
        let tier = tier();
        let ids: Vec<u64> = (0..2000).collect();
        let groups = tier.group(&ids);
        let stripes: Vec<usize> = groups.iter().map(|(s, _)| s).collect();
        assert!(stripes.len() > 2, "ids spread over several stripes");
        let held = stripes[0];
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let mut order = Vec::new();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _guard = tier.stripes[held].lock();
                locked_tx.send(()).expect("send");
                std::thread::sleep(std::time::Duration::from_millis(100));
            });
            locked_rx.recv().expect("the stripe is held");
            tier.for_each_group_locked(&groups, |positions, _stripe| {
                let s = tier.stripe_of(ids[positions[0] as usize]) as usize;
                assert_eq!(positions, groups.positions(s));
                order.push(s);
            });
        });
        assert_eq!(
            order.last(),
            Some(&held),
            "the held stripe waits for the rest"
        );
        let mut visited = order.clone();
        visited.sort_unstable();
        assert_eq!(visited, stripes, "each non-empty group exactly once");
    }

    /// Rows of `blocks` by id.
    fn by_id(blocks: &[RowBlock], row_floats: usize) -> std::collections::BTreeMap<u64, Vec<f32>> {
        let mut out = std::collections::BTreeMap::new();
        for b in blocks {
            for (id, row) in b.ids.iter().zip(b.rows.chunks_exact(row_floats)) {
                out.insert(*id, row.to_vec());
            }
        }
        out
    }

    #[test]
    fn changes_since_a_cut_rebuild_the_rows_from_the_copy_at_the_cut() {
        let tier = tier();
        let rf = tier.layout().row_floats();
        let mut out = vec![0f32; 4 * 100];
        let ids: Vec<u64> = (0..100).collect();
        tier.pull(&ids, &mut out).expect("pull");
        tier.push(&ids[..50], &vec![0.5; 4 * 50]).expect("push");
        let (base, mark) = {
            let frozen = tier.freeze();
            (frozen.snapshot().expect("snapshot"), frozen.cut())
        };
        assert_eq!(
            tier.freeze()
                .changed_since(mark)
                .expect("changes")
                .expect("tracked"),
            ChangedRows {
                blocks: vec![RowBlock::default(); STRIPES],
                erased: Vec::new()
            },
            "nothing written since the cut"
        );
        // A push, a new row from a pull, an import and an erase after the cut.
        tier.push(&[7], &[1.0; 4]).expect("push");
        tier.pull(&[1000], &mut [0.0; 4]).expect("pull new");
        let imported = RowBlock {
            ids: vec![2000],
            rows: vec![3.0; rf],
        };
        tier.import_rows(&imported).expect("import");
        let gone = slot_of(9, 4096);
        tier.erase_slots(&[(gone, gone + 1)]).expect("erase");
        let frozen = tier.freeze();
        let changed = frozen
            .changed_since(mark)
            .expect("changes")
            .expect("tracked");
        let now = by_id(&frozen.snapshot().expect("now"), rf);
        drop(frozen);
        let changed_ids: std::collections::BTreeSet<u64> =
            by_id(&changed.blocks, rf).keys().copied().collect();
        assert!(changed_ids.contains(&7) && changed_ids.contains(&1000));
        assert!(changed_ids.contains(&2000));
        assert!(
            changed_ids.len() <= 4,
            "only the written rows: {changed_ids:?}"
        );
        let mut rebuilt = by_id(&base, rf);
        rebuilt.retain(|&id, _| {
            let slot = slot_of(id, 4096);
            !changed.erased.iter().any(|&(a, b)| (a..b).contains(&slot))
        });
        rebuilt.extend(by_id(&changed.blocks, rf));
        assert_eq!(rebuilt, now, "base + changes = the rows now, bit for bit");
    }
}
