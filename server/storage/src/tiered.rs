//! The GPU tier: hot rows in a device hash table in front of the authoritative host tier.
//!
//! The host tier holds every row of the table (a row is created there on first access, under
//! the host memory budget); the device table caches hot rows, and a resident row is newer than
//! its host copy. Consequences:
//! - **pull**: ids are looked up in the device table; misses are read (or created) in the host
//!   tier, served from there, and admitted to the device table by the admission policy.
//! - **push**: resident rows are updated in place by the fused optimizer; the others by the
//!   host tier (and admitted afterwards when `admit_on_push` is set).
//! - **eviction**: admitting into a full bucket evicts its minimum-score row, which comes back
//!   with its optimizer state and is written over its host copy before the call returns and
//!   before the table lock is released, so no reader ever sees a stale row and no
//!   acknowledged update is lost. The write-back only overwrites an existing host row, so it
//!   cannot be refused by the memory budget.
//! - **snapshot**: host rows with device-resident rows substituted (the device copy wins);
//!   **restore** loads the host tier and leaves the device table cold.
//!
//! Every operation of one table runs under one lock (the device has one stream).

mod migrate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use super::gpu::layout::{state_slots, ScorePolicy, TableLayout, BUCKET_SLOTS};
use super::gpu::{AdmissionPolicy, Admitter, DeviceTable, ExportedEntry, GpuError, InsertOutcome};
use super::host::{now_secs, HostTier};
use super::{
    CacheStats, ChangedRows, ExportCursor, FrozenTier, RowLayout, StorageError, Tier,
    TierBreakdown, TierStats,
};
use crate::optimizer::OptimizerConfig;
use crate::spec::TableSpec;
use crate::RowBlock;

/// How a [`GpuTier`] sizes its device table and chooses what to cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuTierConfig {
    /// Rows the device table may hold (rounded down to whole buckets, at least one bucket).
    pub capacity_rows: u64,
    /// Which resident row a full bucket evicts (minimum score).
    pub policy: ScorePolicy,
    /// When a missed id is admitted.
    pub admission: AdmissionPolicy,
    /// Whether ids pushed through the host tier are admitted too (pulls always admit).
    pub admit_on_push: bool,
}

impl GpuTierConfig {
    /// LRU, admit every miss on pull, `capacity_rows` rows.
    pub fn new(capacity_rows: u64) -> Self {
        Self {
            capacity_rows,
            policy: ScorePolicy::Lru,
            admission: AdmissionPolicy::Always,
            admit_on_push: false,
        }
    }

    /// The largest capacity whose device table for `spec` fits in `bytes` of device memory.
    pub fn rows_for_budget(spec: &TableSpec, bytes: u64) -> Result<u64, GpuError> {
        let one = TableLayout::new(1, spec.dim as usize, state_slots(&spec.optimizer.kind))?;
        let slot_bytes = one.bytes() as u64 / one.total_slots() as u64;
        // The reserved bucket is allocated on top of the hashed buckets.
        let buckets =
            (bytes / slot_bytes).saturating_sub(BUCKET_SLOTS as u64) / BUCKET_SLOTS as u64;
        if buckets == 0 {
            return Err(GpuError::InvalidConfig(format!(
                "GPU memory budget of {bytes} bytes holds less than two buckets of table {:?} \
                 ({} bytes each)",
                spec.name,
                slot_bytes * BUCKET_SLOTS as u64
            )));
        }
        Ok(buckets * BUCKET_SLOTS as u64)
    }

    /// The device table geometry for `spec`.
    pub fn table_layout(&self, spec: &TableSpec) -> Result<TableLayout, GpuError> {
        TableLayout::new(
            (self.capacity_rows / BUCKET_SLOTS as u64).max(1),
            spec.dim as usize,
            state_slots(&spec.optimizer.kind),
        )
    }
}

/// The device table and the admission filter, behind the tier's lock.
struct Cache<T> {
    table: T,
    admitter: Admitter,
}

/// Monotonic counters of a [`GpuTier`].
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    admissions: AtomicU64,
    evictions: AtomicU64,
    device_ns: AtomicU64,
}

impl Counters {
    /// Runs one device call, adding the time the caller waits on it to `device_ns`.
    fn on_device<R>(&self, call: impl FnOnce() -> R) -> R {
        let start = std::time::Instant::now();
        let out = call();
        let waited = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.device_ns.fetch_add(waited, Ordering::Relaxed);
        out
    }
}

/// One table's rows: hot rows in a device table `T`, every row in a [`HostTier`] behind it.
pub struct GpuTier<T: DeviceTable> {
    host: HostTier,
    optimizer: OptimizerConfig,
    layout: RowLayout,
    policy: ScorePolicy,
    admit_on_push: bool,
    slot_bytes: u64,
    cache: Mutex<Cache<T>>,
    resident: AtomicU64,
    counters: Counters,
}

/// Converts a device failure into the storage error the engine reports.
fn device_err(e: GpuError) -> StorageError {
    StorageError::Device(e.to_string())
}

/// Distinct ids in first-occurrence order, and for each request position its distinct index.
fn distinct(ids: &[u64]) -> (Vec<u64>, Vec<u32>) {
    let mut index: HashMap<u64, u32> = HashMap::with_capacity(ids.len());
    let mut uniq = Vec::with_capacity(ids.len());
    let pos = ids
        .iter()
        .map(|&id| {
            *index.entry(id).or_insert_with(|| {
                uniq.push(id);
                (uniq.len() - 1) as u32
            })
        })
        .collect();
    (uniq, pos)
}

/// Distinct ids and their gradients, duplicates summed in request order (host tier contract).
fn sum_duplicates(ids: &[u64], grads: &[f32], dim: usize) -> (Vec<u64>, Vec<f32>) {
    let (uniq, pos) = distinct(ids);
    if uniq.len() == ids.len() {
        return (uniq, grads.to_vec());
    }
    let mut count = vec![0u32; uniq.len()];
    for &u in &pos {
        count[u as usize] += 1;
    }
    let mut summed = vec![0.0f32; uniq.len() * dim];
    for (p, &u) in pos.iter().enumerate() {
        let (u, g) = (u as usize, &grads[p * dim..(p + 1) * dim]);
        let dst = &mut summed[u * dim..(u + 1) * dim];
        if count[u] == 1 {
            dst.copy_from_slice(g);
        } else {
            for (a, b) in dst.iter_mut().zip(g) {
                *a += b;
            }
        }
    }
    (uniq, summed)
}

/// The rows of `which` positions, gathered (`width` words each).
fn select<V: Copy>(src: &[V], which: &[usize], width: usize) -> Vec<V> {
    let mut out = Vec::with_capacity(which.len() * width);
    for &i in which {
        out.extend_from_slice(&src[i * width..(i + 1) * width]);
    }
    out
}

impl<T: DeviceTable> GpuTier<T> {
    /// A tier caching `host`'s rows in `table` (empty, laid out for `spec`).
    pub fn new(
        spec: &TableSpec,
        host: HostTier,
        table: T,
        config: GpuTierConfig,
    ) -> Result<Self, GpuError> {
        let layout = host.layout();
        let tl = *table.layout();
        if tl.dim != layout.dim || tl.row_width() != layout.row_floats() {
            return Err(GpuError::InvalidConfig(format!(
                "device rows of {} words (dim {}) do not match host rows of {} words (dim {})",
                tl.row_width(),
                tl.dim,
                layout.row_floats(),
                layout.dim
            )));
        }
        let admitter = Admitter::new(config.admission, tl.capacity().saturating_mul(4))?;
        Ok(Self {
            host,
            optimizer: spec.optimizer,
            layout,
            policy: config.policy,
            admit_on_push: config.admit_on_push,
            slot_bytes: tl.bytes() as u64 / tl.total_slots() as u64,
            resident: AtomicU64::new(table.len() as u64),
            cache: Mutex::new(Cache { table, admitter }),
            counters: Counters::default(),
        })
    }

    /// The host tier behind the cache.
    pub fn host(&self) -> &HostTier {
        &self.host
    }

    /// Rows resident in the device table.
    pub fn resident_rows(&self) -> u64 {
        self.resident.load(Ordering::Relaxed)
    }

    /// Admits the host rows of missed `ids` (whole rows) by the policy; writes evicted rows back.
    fn admit(&self, cache: &mut Cache<T>, ids: &[u64], rows: &[f32]) -> Result<(), StorageError> {
        let rf = self.layout.row_floats();
        let chosen: Vec<usize> = (0..ids.len())
            .filter(|&i| cache.admitter.access(ids[i]))
            .collect();
        if chosen.is_empty() {
            return Ok(());
        }
        let keys = select(ids, &chosen, 1);
        let scores: Option<Vec<u64>> = (self.policy == ScorePolicy::Lfu).then(|| {
            keys.iter()
                .map(|&k| u64::from(cache.admitter.estimate(k).max(1)))
                .collect()
        });
        let chosen_rows = select(rows, &chosen, rf);
        let outcomes = self
            .counters
            .on_device(|| {
                cache
                    .table
                    .insert_and_evict(&keys, &chosen_rows, scores.as_deref())
            })
            .map_err(device_err)?;
        let (mut back_ids, mut back_rows) = (Vec::new(), Vec::new());
        let mut admitted = 0u64;
        for outcome in outcomes {
            match outcome {
                InsertOutcome::Inserted | InsertOutcome::Updated => admitted += 1,
                InsertOutcome::Evicted { key, row, .. } => {
                    admitted += 1;
                    back_ids.push(key);
                    back_rows.extend_from_slice(&row);
                }
                InsertOutcome::Found | InsertOutcome::Refused => {}
            }
        }
        // The evicted rows are in hand; the host copy is refreshed before anyone can look.
        if !back_ids.is_empty() {
            self.host.write_rows(&back_ids, &back_rows);
        }
        self.counters
            .admissions
            .fetch_add(admitted, Ordering::Relaxed);
        self.counters
            .evictions
            .fetch_add(back_ids.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Records lookups and the resident count after an operation.
    fn account(&self, cache: &Cache<T>, hits: usize, misses: usize) {
        self.counters.hits.fetch_add(hits as u64, Ordering::Relaxed);
        self.counters
            .misses
            .fetch_add(misses as u64, Ordering::Relaxed);
        self.resident
            .store(cache.table.len() as u64, Ordering::Relaxed);
    }
}

impl<T: DeviceTable> Tier for GpuTier<T> {
    fn pull(&self, ids: &[u64], out: &mut [f32]) -> Result<(), StorageError> {
        let (dim, rf) = (self.layout.dim, self.layout.row_floats());
        debug_assert_eq!(out.len(), ids.len() * dim);
        if ids.is_empty() {
            return Ok(());
        }
        let (uniq, pos) = distinct(ids);
        let mut cache = self.cache.lock();
        let (mut values, found) = self
            .counters
            .on_device(|| cache.table.find(&uniq, dim, true))
            .map_err(device_err)?;
        let missed: Vec<usize> = (0..uniq.len()).filter(|&i| !found[i]).collect();
        let miss_ids = select(&uniq, &missed, 1);
        let mut miss_rows = vec![0.0f32; missed.len() * rf];
        if !missed.is_empty() {
            self.host.pull_rows(&miss_ids, &mut miss_rows)?;
        }
        for (k, &u) in missed.iter().enumerate() {
            values[u * dim..(u + 1) * dim].copy_from_slice(&miss_rows[k * rf..k * rf + dim]);
        }
        for (p, &u) in pos.iter().enumerate() {
            let u = u as usize;
            out[p * dim..(p + 1) * dim].copy_from_slice(&values[u * dim..(u + 1) * dim]);
        }
        let result = self.admit(&mut cache, &miss_ids, &miss_rows);
        self.account(&cache, uniq.len() - missed.len(), missed.len());
        result
    }

    fn push(&self, ids: &[u64], grads: &[f32]) -> Result<u64, StorageError> {
        let (dim, rf) = (self.layout.dim, self.layout.row_floats());
        debug_assert_eq!(grads.len(), ids.len() * dim);
        if ids.is_empty() {
            return Ok(0);
        }
        let (uniq, summed) = sum_duplicates(ids, grads, dim);
        let mut cache = self.cache.lock();
        // Residency first, so a push the host budget refuses changes no device row either.
        let (_, resident) = self
            .counters
            .on_device(|| cache.table.find(&uniq, 1, false))
            .map_err(device_err)?;
        let (hit, missed): (Vec<usize>, Vec<usize>) = (0..uniq.len()).partition(|&i| resident[i]);
        let miss_ids = select(&uniq, &missed, 1);
        if !missed.is_empty() {
            self.host.push(&miss_ids, &select(&summed, &missed, dim))?;
        }
        let mut result = Ok(());
        if !hit.is_empty() {
            let hit_ids = select(&uniq, &hit, 1);
            let hit_grads = select(&summed, &hit, dim);
            let applied = self
                .counters
                .on_device(|| {
                    cache
                        .table
                        .apply(&hit_ids, &hit_grads, &self.optimizer, now_secs())
                })
                .map_err(device_err)?;
            debug_assert!(applied.iter().all(|a| *a), "resident rows stay resident");
        }
        if self.admit_on_push && !missed.is_empty() {
            let mut rows = vec![0.0f32; missed.len() * rf];
            result = self
                .host
                .pull_rows(&miss_ids, &mut rows)
                .and_then(|()| self.admit(&mut cache, &miss_ids, &rows));
        }
        self.account(&cache, hit.len(), missed.len());
        result.map(|()| uniq.len() as u64)
    }

    fn stats(&self) -> TierStats {
        let host = self.host.stats();
        let resident = self.resident_rows();
        TierStats {
            rows: host.rows,
            bytes: host.bytes + resident * self.slot_bytes,
        }
    }

    fn layout(&self) -> RowLayout {
        self.layout
    }

    /// The host copies' times: a row resident on the device reports its last write-back.
    fn sample_update_times(&self, max_rows: usize, out: &mut Vec<u32>) {
        self.host.sample_update_times(max_rows, out);
    }

    fn freeze(&self) -> Box<dyn FrozenTier + '_> {
        let mut cache = self.cache.lock();
        let device_rows = cache.table.export(0).map_err(device_err);
        Box::new(FrozenGpu {
            host: self.host.freeze(),
            device_rows,
            _cache: cache,
        })
    }

    fn restore(&self, blocks: &[RowBlock]) -> Result<(), StorageError> {
        let mut cache = self.cache.lock();
        self.host.restore(blocks)?;
        // The host rows are now the truth; drop every cached copy.
        let keys: Vec<u64> = cache
            .table
            .export(0)
            .map_err(device_err)?
            .into_iter()
            .map(|e| e.key)
            .collect();
        if !keys.is_empty() {
            cache.table.erase(&keys).map_err(device_err)?;
        }
        self.resident
            .store(cache.table.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn export_slots(
        &self,
        slots: std::ops::Range<u32>,
        cursor: &mut ExportCursor,
        max_rows: usize,
    ) -> Result<RowBlock, StorageError> {
        self.export_chunk(slots, cursor, max_rows)
    }

    fn read_rows(&self, ids: &[u64]) -> Result<RowBlock, StorageError> {
        self.read_block(ids)
    }

    fn import_rows(&self, block: &RowBlock) -> Result<u64, StorageError> {
        self.import_block(block)
    }

    fn erase_slots(&self, ranges: &[(u32, u32)]) -> Result<u64, StorageError> {
        self.erase_ranges(ranges)
    }

    fn count_slots(&self, ranges: &[(u32, u32)]) -> Vec<u64> {
        self.host.count_ranges(ranges)
    }

    fn breakdown(&self) -> Vec<TierBreakdown> {
        let resident = self.resident_rows();
        vec![
            TierBreakdown {
                tier: "gpu",
                stats: TierStats {
                    rows: resident,
                    bytes: resident * self.slot_bytes,
                },
            },
            TierBreakdown {
                tier: "host",
                stats: self.host.stats(),
            },
        ]
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        let c = &self.counters;
        Some(CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            admissions: c.admissions.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            device_ns: c.device_ns.load(Ordering::Relaxed),
        })
    }
}

/// A GPU tier with every operation held off: host rows plus the exported device rows.
struct FrozenGpu<'a, T> {
    host: Box<dyn FrozenTier + 'a>,
    device_rows: Result<Vec<ExportedEntry>, StorageError>,
    _cache: MutexGuard<'a, Cache<T>>,
}

impl<T> FrozenTier for FrozenGpu<'_, T> {
    fn snapshot(&self) -> Result<Vec<RowBlock>, StorageError> {
        let blocks = self.host.snapshot()?;
        self.with_device_rows(blocks)
    }

    fn cut(&self) -> u64 {
        self.host.cut()
    }

    fn changed_since(&self, since: u64) -> Result<Option<ChangedRows>, StorageError> {
        // Cached rows change on the device without the host knowing: every one of them is
        // taken as changed (applying a row that did not change is harmless).
        let Some(mut changed) = self.host.changed_since(since)? else {
            return Ok(None);
        };
        changed.blocks = self.with_device_rows(std::mem::take(&mut changed.blocks))?;
        Ok(Some(changed))
    }
}

impl<T> FrozenGpu<'_, T> {
    /// `blocks` of host rows with each cached row's device copy in place of its host copy,
    /// and the cached rows `blocks` lacks in one more block.
    fn with_device_rows(&self, mut blocks: Vec<RowBlock>) -> Result<Vec<RowBlock>, StorageError> {
        let device_rows = self.device_rows.clone()?;
        let mut newer: HashMap<u64, &[f32]> = device_rows
            .iter()
            .map(|e| (e.key, e.row.as_slice()))
            .collect();
        for block in blocks.iter_mut() {
            let rf = if block.ids.is_empty() {
                continue;
            } else {
                block.rows.len() / block.ids.len()
            };
            for (i, id) in block.ids.iter().enumerate() {
                if let Some(row) = newer.remove(id) {
                    block.rows[i * rf..(i + 1) * rf].copy_from_slice(row);
                }
            }
        }
        // Every cached row has a host copy; anything else still belongs in the snapshot.
        if !newer.is_empty() {
            let mut extra = RowBlock {
                ids: Vec::new(),
                rows: Vec::new(),
            };
            for (id, row) in newer {
                extra.ids.push(id);
                extra.rows.extend_from_slice(row);
            }
            blocks.push(extra);
        }
        Ok(blocks)
    }
}
