//! strata-engine: the node engine — the tables and dense tensors of one node, slot
//! ownership and admission, request validation, snapshots and checkpoints.
//!
//! Rule: this crate depends on strata-storage and on none of tonic, prost, strata-proto or
//! strata-cluster (checked in CI). Network handlers decode bytes, then call the engine; the
//! engine validates everything before any tier is touched, so a refused request never
//! writes partially.
//!
//! Module map:
//! - the crate root: [`Engine`] (tables and dense tensors by name) and [`Table`].
//! - [`checkpoint`]: consistent on-disk snapshots with manifest and checksums.
//! - `dense`: dense tensors and their optimizer state.
//! - `ownership`: which slots the node serves at which epoch, and migration captures.
//! - `gpu`: the GPU budget and device of `--tier gpu` tables.
//! - [`ledger`]: the pushes applied per client, for exactly-once delivery.
//! - [`wal`]: the write-ahead log of the node's changes; `journal`: how the engine records
//!   them there and cuts the log at a snapshot.
//! - `validate`: checks of request values (finite gradients).
//! - [`traffic`]: data-path bytes per table, slot bucket and client location, as rates.
//! - [`staleness`]: how long a table's rows have gone without a push, from a sample.
//! - `error`: [`EngineError`].
//! - `fuzz_entry` (hidden): the body of the `checkpoint_read` fuzz target, shared with its
//!   tests.

pub mod checkpoint;
mod dense;
mod error;
#[doc(hidden)]
pub mod fuzz_entry;
mod gpu;
mod journal;
pub mod ledger;
mod ownership;
mod snapshot;
pub mod staleness;
pub mod traffic;
mod validate;
pub mod wal;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;

pub use self::dense::DenseTensor;
pub use self::error::EngineError;
pub use self::ownership::{Admission, Capture, Ownership, OwnershipError};
pub use self::snapshot::ChainMark;
use strata_storage::host::{HostTier, RowMemory};
use strata_storage::slot::DEFAULT_NUM_SLOTS;
use strata_storage::spec::{DenseSpec, TableSpec, TierKind};
use strata_storage::RowBlock;
use strata_storage::{CacheStats, ExportCursor, MemoryBudget, Tier, TierBreakdown, TierStats};

use self::gpu::GpuReservation;
use self::journal::Journal;
use self::ledger::{Admit, PushLedger};
use self::traffic::{Direction, TableTraffic, Traffic, TrafficReport};
use self::wal::{Origin, Record, Wal, WalError};

/// Default largest number of rows in one pull or push.
pub const DEFAULT_MAX_BATCH_ROWS: usize = 1 << 18;

/// Default device memory for the GPU tier's hash tables of one node (1 GiB).
pub const DEFAULT_GPU_MEMORY_BUDGET: u64 = 1 << 30;

/// Settings of a node engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Name of this node in error messages.
    pub node_name: String,
    /// Slots of the cluster.
    pub num_slots: u32,
    /// Host memory budget in bytes.
    pub memory_budget: u64,
    /// Largest number of rows in one pull or push.
    pub max_batch_rows: usize,
    /// CUDA device ordinal of `--tier gpu` tables.
    pub gpu_device: u32,
    /// Device memory for the hash tables of `--tier gpu` tables, in bytes.
    pub gpu_memory_budget: u64,
    /// Whether ids pushed to a GPU table's host tier are admitted to the device too.
    pub gpu_admit_on_push: bool,
    /// Serve `--tier gpu` tables from the CPU reference of the device table (no device used;
    /// for tests and for exercising the tiering logic on CPU-only nodes).
    pub gpu_reference: bool,
    /// Largest dense tensor, in bytes of values: what one pull of it can carry (the
    /// message limit less room for the rest of the message).
    pub max_dense_bytes: u64,
    /// The node's row memory (reserve, huge page choice, prefault threads), shared by every
    /// table the engine builds; each node of a process has its own.
    pub row_memory: Arc<RowMemory>,
    /// The window traffic rates are measured over.
    pub traffic_window: Duration,
    /// The write-ahead log of the node's changes (`None`: changes since the last
    /// checkpoint live in memory only).
    pub wal: Option<wal::WalConfig>,
    /// Time after which a client that pushed nothing is forgotten by exactly-once delivery.
    pub client_expiry: Duration,
    /// Delta checkpoints written between two base checkpoints (0: every checkpoint is a base).
    pub checkpoint_full_every: u32,
}

/// Default number of delta checkpoints between two base checkpoints.
pub const DEFAULT_CHECKPOINT_FULL_EVERY: u32 = 8;

/// Default window of traffic rates.
pub const DEFAULT_TRAFFIC_WINDOW: Duration = Duration::from_secs(60);

/// Room a dense pull's response needs besides the values (shape and framing).
pub const DENSE_MESSAGE_OVERHEAD: u64 = 64 << 10;

/// The largest dense tensor, in bytes of values, that one message of `max_message_bytes`
/// carries.
pub fn max_dense_bytes(max_message_bytes: u64) -> u64 {
    max_message_bytes.saturating_sub(DENSE_MESSAGE_OVERHEAD)
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            node_name: "local".into(),
            num_slots: DEFAULT_NUM_SLOTS,
            memory_budget: u64::MAX,
            max_batch_rows: DEFAULT_MAX_BATCH_ROWS,
            gpu_device: 0,
            gpu_memory_budget: DEFAULT_GPU_MEMORY_BUDGET,
            gpu_admit_on_push: false,
            gpu_reference: false,
            max_dense_bytes: max_dense_bytes(256 << 20),
            row_memory: Arc::new(RowMemory::default()),
            traffic_window: DEFAULT_TRAFFIC_WINDOW,
            wal: None,
            client_expiry: ledger::DEFAULT_CLIENT_EXPIRY,
            checkpoint_full_every: DEFAULT_CHECKPOINT_FULL_EVERY,
        }
    }
}

/// A table on this node: its spec and its tier.
pub struct Table {
    spec: TableSpec,
    tier: Box<dyn Tier>,
    traffic: TableTraffic,
    journal: Arc<Journal>,
    ledger: Arc<PushLedger>,
    /// Tells this table from an earlier one of the same name (unique within the engine).
    incarnation: u64,
    _gpu: Option<GpuReservation>,
}

/// What became of a numbered push.
enum Outcome {
    /// Applied now: rows updated.
    Applied(u64),
    /// Applied before: the first answer, and its log record.
    Repeat(u64, Option<u64>),
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// Distinct rows updated.
    pub rows: u64,
    /// The write-ahead log record of the push (none without a log): acknowledge it once
    /// [`Wal::on_durable`] says so.
    pub lsn: Option<u64>,
}

/// Words from packed little-endian bytes (a trailing partial word is dropped).
fn words_of<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    let mut out = vec![T::zeroed(); bytes.len() / std::mem::size_of::<T>()];
    let n = std::mem::size_of_val(out.as_slice());
    bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(&bytes[..n]);
    out
}

/// Packed little-endian bytes of `words` (as they travel on the wire and in the log).
fn le_bytes<T: bytemuck::Pod>(words: &[T]) -> &[u8] {
    bytemuck::cast_slice(words)
}

impl Table {
    /// Counts a data-path request of `ids` from client location index `location`.
    pub fn record_traffic(&self, location: usize, direction: Direction, ids: &[u64]) {
        // Each id carries itself (8 bytes) and one row of dim f32s, either way.
        let row_bytes = 8 + 4 * u64::from(self.spec.dim);
        self.traffic.record(location, direction, ids, row_bytes);
    }

    /// This table's traffic counters.
    pub fn traffic(&self) -> &TableTraffic {
        &self.traffic
    }

    /// Rows of `ids` into `out` (`ids.len() * dim`), creating missing rows. The batch size
    /// is the caller's to check ([`Engine::check_batch`]).
    pub fn pull(&self, ids: &[u64], out: &mut [f32]) -> Result<(), EngineError> {
        self.check_rows(ids.len(), out.len())?;
        Ok(self.tier.pull(ids, out)?)
    }

    /// Applies `grads` for `ids` after checking their length and that they are finite;
    /// logged with `origin` when the node has a write-ahead log.
    pub fn push(
        &self,
        ids: &[u64],
        grads: &[f32],
        origin: Origin<'_>,
    ) -> Result<Pushed, EngineError> {
        self.check_rows(ids.len(), grads.len())?;
        validate::check_finite(grads)?;
        let record = || Record::Push {
            table: &self.spec.name,
            origin,
            ids: le_bytes(ids),
            grads: le_bytes(grads),
        };
        if origin.client.is_empty() {
            let (rows, lsn) = self
                .journal
                .change(|| Ok(self.tier.push(ids, grads)?), record)?;
            return Ok(Pushed { rows, lsn });
        }
        let (outcome, lsn) = self.journal.change_with(
            || match self.ledger.begin(origin)? {
                Admit::Repeat { rows, lsn } => Ok(Outcome::Repeat(rows, lsn)),
                Admit::Apply => match self.tier.push(ids, grads) {
                    Ok(rows) => Ok(Outcome::Applied(rows)),
                    Err(e) => {
                        self.ledger.finish(origin, None);
                        Err(e.into())
                    }
                },
            },
            |out| matches!(out, Outcome::Applied(_)).then(record),
            |out, lsn| {
                if let Outcome::Applied(rows) = out {
                    self.ledger.finish(origin, Some((*rows, lsn)));
                }
            },
        )?;
        Ok(match outcome {
            Outcome::Applied(rows) => Pushed { rows, lsn },
            Outcome::Repeat(rows, first) => Pushed { rows, lsn: first },
        })
    }

    /// Refuses a row buffer that is not `ids × dim` floats.
    fn check_rows(&self, ids: usize, floats: usize) -> Result<(), EngineError> {
        let dim = self.spec.dim as usize;
        if floats != ids * dim {
            return Err(EngineError::GradsLength {
                got: floats,
                ids,
                dim,
                expected: ids * dim,
            });
        }
        Ok(())
    }

    /// Copies up to `max_rows` whole rows of `slots` (see [`Tier::export_slots`]).
    pub fn export_slots(
        &self,
        slots: std::ops::Range<u32>,
        cursor: &mut ExportCursor,
        max_rows: usize,
    ) -> Result<RowBlock, EngineError> {
        Ok(self.tier.export_slots(slots, cursor, max_rows)?)
    }

    /// Whole rows of the `ids` that exist.
    pub fn read_rows(&self, ids: &[u64]) -> Result<RowBlock, EngineError> {
        Ok(self.tier.read_rows(ids)?)
    }

    /// Inserts or overwrites whole rows (a migration's); new rows are charged to the budget.
    pub fn import_rows(&self, block: &RowBlock) -> Result<u64, EngineError> {
        let (rows, _) = self.journal.change(
            || Ok(self.tier.import_rows(block)?),
            || Record::ImportRows {
                table: &self.spec.name,
                ids: le_bytes(&block.ids),
                rows: le_bytes(&block.rows),
            },
        )?;
        Ok(rows)
    }

    /// [`Table::import_rows`] from packed little-endian bytes (as received).
    pub fn import_packed(&self, ids: &[u64], rows: &[u8]) -> Result<u64, EngineError> {
        let (n, _) = self.journal.change(
            || Ok(self.tier.import_packed(ids, rows)?),
            || Record::ImportRows {
                table: &self.spec.name,
                ids: le_bytes(ids),
                rows,
            },
        )?;
        Ok(n)
    }

    /// Drops the rows of the slot ranges; returns how many.
    pub fn erase_slots(&self, ranges: &[(u32, u32)]) -> Result<u64, EngineError> {
        let (rows, _) = self.journal.change(
            || Ok(self.tier.erase_slots(ranges)?),
            || Record::EraseSlots {
                table: &self.spec.name,
                ranges: ranges.to_vec(),
            },
        )?;
        Ok(rows)
    }

    /// Rows held per slot range.
    pub fn count_slots(&self, ranges: &[(u32, u32)]) -> Vec<u64> {
        self.tier.count_slots(ranges)
    }

    /// f32 words per whole row (values, optimizer state, metadata).
    pub fn row_floats(&self) -> usize {
        self.tier.layout().row_floats()
    }

    /// Bytes a row costs against the memory budget.
    pub fn row_bytes(&self) -> u64 {
        self.tier.layout().accounted_bytes()
    }

    /// The table's spec.
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// Rows and bytes held.
    pub fn stats(&self) -> TierStats {
        self.tier.stats()
    }

    /// Rows and bytes per memory tier ("gpu", "host").
    pub fn breakdown(&self) -> Vec<TierBreakdown> {
        self.tier.breakdown()
    }

    /// How long the table's rows have gone without a push at `now_secs`, estimated from a
    /// sample of [`staleness::STALENESS_SAMPLE_ROWS`] rows (one stripe lock at a time).
    pub fn staleness(&self, now_secs: u64) -> staleness::Staleness {
        let mut times = Vec::with_capacity(staleness::STALENESS_SAMPLE_ROWS + 64);
        self.tier
            .sample_update_times(staleness::STALENESS_SAMPLE_ROWS, &mut times);
        staleness::Staleness::from_sample(self.stats().rows, &times, now_secs)
    }

    /// Hits, misses, admissions and evictions of the GPU tier (`None` for host tables).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.tier.cache_stats()
    }
}

/// Tables and dense tensors of one node.
pub struct Engine {
    config: EngineConfig,
    budget: Arc<MemoryBudget>,
    gpu_budget: Mutex<Arc<MemoryBudget>>,
    tables: DashMap<String, Arc<Table>>,
    dense: DashMap<String, Arc<DenseTensor>>,
    ownership: Ownership,
    traffic: Arc<Traffic>,
    journal: Arc<Journal>,
    ledger: Arc<PushLedger>,
    incarnations: AtomicU64,
}

impl Engine {
    /// An empty engine.
    pub fn new(config: EngineConfig) -> Self {
        let budget = Arc::new(MemoryBudget::new(config.memory_budget));
        let ownership = Ownership::all(config.num_slots);
        let gpu_budget = Mutex::new(Arc::new(MemoryBudget::new(config.gpu_memory_budget)));
        let traffic = Traffic::new(config.traffic_window);
        let expiry = config.client_expiry;
        Self {
            traffic,
            config,
            budget,
            gpu_budget,
            tables: DashMap::new(),
            dense: DashMap::new(),
            ownership,
            journal: Journal::new(),
            ledger: Arc::new(PushLedger::new(expiry)),
            incarnations: AtomicU64::new(0),
        }
    }

    /// A counter of the changes made to this engine's tables, dense tensors and rows
    /// (pushes, imports, erasures, creations, drops, restores), bumped after each change:
    /// read before a snapshot, it tells later whether anything changed since.
    pub fn changes(&self) -> u64 {
        self.journal.changes()
    }

    /// The pushes applied per client (exactly-once delivery).
    pub fn ledger(&self) -> &PushLedger {
        &self.ledger
    }

    /// Forgets clients idle for longer than the expiry; returns how many.
    pub fn expire_clients(&self) -> usize {
        self.ledger.expire(Instant::now())
    }

    /// Records every later change in `wal` (after the log was replayed into this engine).
    pub fn attach_wal(&self, wal: Arc<Wal>) -> Result<(), EngineError> {
        self.journal.attach(wal)?;
        self.ledger.set_durable();
        Ok(())
    }

    /// The write-ahead log changes are recorded in, if any.
    pub fn wal(&self) -> Option<&Arc<Wal>> {
        self.journal.wal()
    }

    /// Applies one logged change again (on start, before the log is attached).
    pub fn replay(&self, record: Record<'_>) -> Result<(), EngineError> {
        match record {
            Record::Push {
                table,
                origin,
                ids,
                grads,
            } => {
                let ids: Vec<u64> = words_of(ids);
                let grads: Vec<f32> = words_of(grads);
                self.table(table)?.push(&ids, &grads, origin).map(|_| ())
            }
            Record::PushDense { name, grad } => {
                let grad: Vec<f32> = words_of(grad);
                self.push_dense(name, &grad).map(|_| ())
            }
            Record::CreateTable(spec) => self.create_table(spec),
            Record::DropTable(name) => self.drop_table(name),
            Record::CreateDense(spec) => self.create_dense(spec),
            Record::DropDense(name) => self.drop_dense(name),
            Record::ImportRows { table, ids, rows } => {
                let ids: Vec<u64> = words_of(ids);
                self.table(table)?.import_packed(&ids, rows).map(|_| ())
            }
            Record::EraseSlots { table, ranges } => {
                self.table(table)?.erase_slots(&ranges).map(|_| ())
            }
        }
    }

    /// The node's traffic accounting (client locations and the rate window).
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Rates of data-path traffic over the window, read now (the heartbeat's reading).
    pub fn traffic_report(&self) -> TrafficReport {
        let tables = self.tables();
        self.traffic.window.rates(
            &self.traffic.locations,
            tables.iter().map(|t| (t.spec.name.as_str(), &t.traffic)),
            Instant::now(),
        )
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The node's row memory (its reserve's counters feed `/metrics`).
    pub fn row_memory(&self) -> &Arc<RowMemory> {
        &self.config.row_memory
    }

    /// The node's memory budget.
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Which slots this node serves, at which epoch.
    pub fn ownership(&self) -> &Ownership {
        &self.ownership
    }

    /// Creates a table.
    pub fn create_table(&self, spec: TableSpec) -> Result<(), EngineError> {
        spec.validate()?;
        let entry = self.tables.entry(spec.name.clone());
        if let dashmap::Entry::Occupied(_) = entry {
            return Err(EngineError::TableExists { name: spec.name });
        }
        let gpu_budget = self.gpu_budget.lock().clone();
        let table = self.build_table(spec.clone(), &gpu_budget)?;
        self.journal.change(
            || {
                entry.insert(Arc::new(table));
                Ok(())
            },
            || Record::CreateTable(spec),
        )?;
        Ok(())
    }

    /// A new, empty table: host tier, or GPU tier in front of it (device memory from `gpu_budget`).
    fn build_table(
        &self,
        spec: TableSpec,
        gpu_budget: &Arc<MemoryBudget>,
    ) -> Result<Table, EngineError> {
        let host = HostTier::new(
            spec.clone(),
            self.config.num_slots,
            self.budget.clone(),
            self.config.row_memory.clone(),
        );
        let (tier, gpu): (Box<dyn Tier>, _) = match spec.tier {
            TierKind::Host => (Box::new(host), None),
            TierKind::Gpu => {
                let (tier, reservation) = gpu::build(&self.config, gpu_budget, &spec, host)?;
                (tier, Some(reservation))
            }
        };
        Ok(Table {
            spec,
            tier,
            traffic: TableTraffic::new(self.config.num_slots),
            journal: self.journal.clone(),
            ledger: self.ledger.clone(),
            incarnation: self.incarnations.fetch_add(1, Ordering::Relaxed),
            _gpu: gpu,
        })
    }

    /// Drops a table and frees its rows.
    pub fn drop_table(&self, name: &str) -> Result<(), EngineError> {
        self.journal.change(
            || {
                self.tables
                    .remove(name)
                    .map(|_| ())
                    .ok_or_else(|| EngineError::TableNotFound { name: name.into() })
            },
            || Record::DropTable(name),
        )?;
        Ok(())
    }

    /// A table by name.
    pub fn table(&self, name: &str) -> Result<Arc<Table>, EngineError> {
        if name.is_empty() {
            return Err(EngineError::EmptyName { what: "table" });
        }
        self.tables
            .get(name)
            .map(|t| t.value().clone())
            .ok_or_else(|| EngineError::TableNotFound { name: name.into() })
    }

    /// All tables, sorted by name.
    pub fn tables(&self) -> Vec<Arc<Table>> {
        let mut all: Vec<_> = self.tables.iter().map(|t| t.value().clone()).collect();
        all.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        all
    }

    /// Rows and bytes held in each of the half-open slot `ranges`, over all tables.
    pub fn range_usage(&self, ranges: &[(u32, u32)]) -> Vec<TierStats> {
        let mut usage = vec![TierStats::default(); ranges.len()];
        for table in self.tables() {
            let per_row = table.row_bytes();
            for (u, rows) in usage.iter_mut().zip(table.count_slots(ranges)) {
                u.rows += rows;
                u.bytes += rows * per_row;
            }
        }
        usage
    }

    /// Checks a batch's size against the limit.
    pub fn check_batch(&self, rows: usize) -> Result<(), EngineError> {
        if rows > self.config.max_batch_rows {
            return Err(EngineError::BatchTooLarge {
                rows,
                limit: self.config.max_batch_rows,
            });
        }
        Ok(())
    }

    /// Rows of `ids` into `out` (`ids.len() * dim`), creating missing rows.
    pub fn pull(&self, table: &str, ids: &[u64], out: &mut [f32]) -> Result<(), EngineError> {
        self.check_batch(ids.len())?;
        self.table(table)?.pull(ids, out)
    }

    /// Applies `grads` for `ids`; returns the number of distinct rows updated.
    pub fn push(&self, table: &str, ids: &[u64], grads: &[f32]) -> Result<u64, EngineError> {
        self.check_batch(ids.len())?;
        Ok(self.table(table)?.push(ids, grads, Origin::default())?.rows)
    }

    /// Creates a dense tensor.
    pub fn create_dense(&self, spec: DenseSpec) -> Result<(), EngineError> {
        spec.validate()?;
        let bytes = spec.numel() as u64 * 4;
        if bytes > self.config.max_dense_bytes {
            return Err(EngineError::DenseTooLarge {
                name: spec.name,
                bytes,
                max: self.config.max_dense_bytes,
            });
        }
        let entry = self.dense.entry(spec.name.clone());
        if let dashmap::Entry::Occupied(_) = entry {
            return Err(EngineError::DenseExists { name: spec.name });
        }
        let tensor = DenseTensor::new(spec.clone(), &self.budget)?;
        self.journal.change(
            || {
                entry.insert(Arc::new(tensor));
                Ok(())
            },
            || Record::CreateDense(spec),
        )?;
        Ok(())
    }

    /// Drops a dense tensor.
    pub fn drop_dense(&self, name: &str) -> Result<(), EngineError> {
        self.journal.change(
            || {
                self.dense
                    .remove(name)
                    .map(|_| ())
                    .ok_or_else(|| EngineError::DenseNotFound { name: name.into() })
            },
            || Record::DropDense(name),
        )?;
        Ok(())
    }

    /// A dense tensor by name.
    pub fn dense(&self, name: &str) -> Result<Arc<DenseTensor>, EngineError> {
        if name.is_empty() {
            return Err(EngineError::EmptyName {
                what: "dense tensor",
            });
        }
        self.dense
            .get(name)
            .map(|t| t.value().clone())
            .ok_or_else(|| EngineError::DenseNotFound { name: name.into() })
    }

    /// All dense tensors, sorted by name.
    pub fn dense_tensors(&self) -> Vec<Arc<DenseTensor>> {
        let mut all: Vec<_> = self.dense.iter().map(|t| t.value().clone()).collect();
        all.sort_by(|a, b| a.spec().name.cmp(&b.spec().name));
        all
    }

    /// Applies a gradient to a whole dense tensor.
    pub fn push_dense(&self, name: &str, grad: &[f32]) -> Result<u64, EngineError> {
        let tensor = self.dense(name)?;
        validate::check_finite(grad)?;
        let (applied, _) = self.journal.change(
            || tensor.push(grad),
            || Record::PushDense {
                name,
                grad: le_bytes(grad),
            },
        )?;
        Ok(applied)
    }
}

/// A log failure as the engine reports it.
fn wal_error(e: WalError) -> EngineError {
    EngineError::WalWrite {
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod change_tests {
    use super::*;
    use strata_storage::optimizer::{OptimizerConfig, OptimizerKind};
    use strata_storage::spec::InitializerConfig;

    fn spec(name: &str) -> TableSpec {
        TableSpec {
            name: name.to_owned(),
            dim: 2,
            optimizer: OptimizerConfig::new(OptimizerKind::Sgd { lr: 1.0 }),
            initializer: InitializerConfig::Zeros,
            seed: 1,
            tier: TierKind::Host,
        }
    }

    /// Asserts the counter moved since `last`, and returns its value.
    fn counted(engine: &Engine, last: u64, what: &str) -> u64 {
        let now = engine.changes();
        assert!(now > last, "{what} was not counted");
        now
    }

    #[test]
    fn every_change_counts_and_reads_do_not() {
        let engine = Engine::new(EngineConfig::default());
        let mut last = engine.changes();
        engine.create_table(spec("e")).expect("create");
        last = counted(&engine, last, "create");
        engine.push("e", &[1, 2], &[1.0; 4]).expect("push");
        last = counted(&engine, last, "push");
        let snap = engine.snapshot().expect("snapshot");
        let mut out = [0f32; 4];
        engine.pull("e", &[1, 3], &mut out).expect("pull");
        assert_eq!(engine.changes(), last, "a snapshot or a pull is no change");
        engine
            .table("e")
            .expect("table")
            .erase_slots(&[(0, engine.ownership().num_slots())])
            .expect("erase");
        last = counted(&engine, last, "erase");
        engine.restore(&snap).expect("restore");
        last = counted(&engine, last, "restore");
        engine.drop_table("e").expect("drop");
        last = counted(&engine, last, "drop");
        assert!(engine.push("e", &[1], &[1.0; 2]).is_err());
        assert_eq!(engine.changes(), last, "a refused push is no change");
    }
}
