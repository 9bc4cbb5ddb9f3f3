//! The GPU table in device memory (feature `gpu`): opens a device without ever panicking,
//! compiles and loads the kernels, and runs the same operations as the CPU reference.
//!
//! Host buffers are staged with plain copies on one stream; pinned buffers, double buffering
//! and batch coalescing belong to the tier that drives this table.

use std::panic::catch_unwind;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DriverError, LaunchArgs,
    LaunchConfig, PushKernelArg,
};

use crate::optimizer::OptimizerConfig;

use super::fused;
use super::layout::{state_slots, status, ScorePolicy, TableLayout};
use super::ptx;
use super::reference::{check_len, ExportedEntry, InsertOutcome};
use super::{node_name, GpuError};

impl From<DriverError> for GpuError {
    fn from(e: DriverError) -> Self {
        GpuError::Driver(e.to_string())
    }
}

/// Threads per block of the warp-per-key kernels (4 keys per block).
const BLOCK: u32 = 128;
/// Keys handled by one block.
const KEYS_PER_BLOCK: u64 = (BLOCK / 32) as u64;

/// An opened CUDA device with one stream.
#[derive(Debug, Clone)]
pub struct GpuDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    name: String,
    arch: Option<&'static str>,
}

impl GpuDevice {
    /// Opens device `ordinal`; `GpuError::NoDevice` when libcuda is absent or has no such device.
    pub fn open(ordinal: usize) -> Result<GpuDevice, GpuError> {
        let no_device = |reason: String| GpuError::NoDevice {
            node: node_name(),
            reason,
        };
        // SAFETY: only tries to dlopen libcuda; no driver symbol is called.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(no_device("libcuda (the CUDA driver) not found".into()));
        }
        let count = catch_unwind(CudaContext::device_count)
            .map_err(|_| no_device("the CUDA driver library is unusable".into()))?
            .map_err(|e| no_device(format!("cannot initialise the CUDA driver: {e}")))?;
        if count <= 0 {
            return Err(no_device("the driver reports 0 devices".into()));
        }
        if ordinal >= count as usize {
            return Err(no_device(format!(
                "device {ordinal} requested, {count} present"
            )));
        }
        let ctx = catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| no_device("the CUDA driver library is unusable".into()))??;
        let name = ctx.name()?;
        let (major, minor) = ctx.compute_capability()?;
        let stream = ctx.default_stream();
        Ok(GpuDevice {
            ctx,
            stream,
            name,
            arch: ptx::arch_for(major, minor),
        })
    }

    /// The device's name (e.g. "NVIDIA H100 80GB HBM3").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ctx.ordinal()
    }

    /// Free and total device memory in bytes.
    pub fn memory(&self) -> Result<(usize, usize), GpuError> {
        Ok(self.ctx.mem_get_info()?)
    }
}

/// The model of device `ordinal` and the CUDA version its driver supports (e.g. `13.0`),
/// read without creating a context; `None` when libcuda is absent or has no such device.
pub fn describe(ordinal: usize) -> Option<(String, String)> {
    use cudarc::driver::{result, sys};
    // SAFETY: only tries to dlopen libcuda; no driver symbol is called.
    if !unsafe { sys::is_culib_present() } {
        return None;
    }
    let ordinal = i32::try_from(ordinal).ok()?;
    catch_unwind(|| {
        result::init().ok()?;
        let device = result::device::get(ordinal).ok()?;
        let model = result::device::get_name(device).ok()?;
        let mut version = 0;
        // SAFETY: cuDriverGetVersion writes one int through the pointer it is given.
        let cuda = match unsafe { sys::cuDriverGetVersion(&mut version) }.result() {
            Ok(()) => format!("{}.{}", version / 1000, (version % 1000) / 10),
            Err(_) => String::new(),
        };
        Some((model, cuda))
    })
    .ok()
    .flatten()
}

/// Loaded kernels.
#[derive(Debug)]
struct Kernels {
    init_keys: CudaFunction,
    find: CudaFunction,
    find_or_insert: CudaFunction,
    insert_or_assign: CudaFunction,
    insert_and_evict: CudaFunction,
    erase: CudaFunction,
    export_range: CudaFunction,
    expire_range: CudaFunction,
    apply_sgd: CudaFunction,
    apply_adagrad: CudaFunction,
    apply_adam: CudaFunction,
    apply_ftrl: CudaFunction,
}

impl Kernels {
    fn load(dev: &GpuDevice) -> Result<Self, GpuError> {
        let mut modules: Vec<Arc<CudaModule>> = Vec::new();
        for (_, ptx) in ptx::compile_all(dev.arch)? {
            modules.push(dev.ctx.load_module(ptx)?);
        }
        let get = |name: &str| -> Result<CudaFunction, GpuError> {
            for m in &modules {
                if let Ok(f) = m.load_function(name) {
                    return Ok(f);
                }
            }
            Err(GpuError::Driver(format!(
                "kernel {name} not found in the loaded modules"
            )))
        };
        Ok(Self {
            init_keys: get("init_keys")?,
            find: get("find")?,
            find_or_insert: get("find_or_insert")?,
            insert_or_assign: get("insert_or_assign")?,
            insert_and_evict: get("insert_and_evict")?,
            erase: get("erase")?,
            export_range: get("export_range")?,
            expire_range: get("expire_range")?,
            apply_sgd: get("apply_sgd")?,
            apply_adagrad: get("apply_adagrad")?,
            apply_adam: get("apply_adam")?,
            apply_ftrl: get("apply_ftrl")?,
        })
    }
}

/// Launch configuration of a warp-per-key kernel over `n` keys.
fn per_key(n: usize) -> Result<LaunchConfig, GpuError> {
    let blocks = (n as u64).div_ceil(KEYS_PER_BLOCK);
    let blocks = u32::try_from(blocks)
        .map_err(|_| GpuError::BatchShape(format!("batch of {n} ids is too large")))?;
    Ok(LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Launch configuration of a thread-per-slot kernel over `n` slots.
fn per_slot(n: usize) -> Result<LaunchConfig, GpuError> {
    let blocks = u32::try_from((n as u64).div_ceil(256))
        .map_err(|_| GpuError::InvalidConfig(format!("{n} slots is too many")))?;
    Ok(LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Which inserting kernel to launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upsert {
    FindOrInsert,
    Assign,
    Evict,
}

/// A bucketed hash table of rows in device memory.
#[derive(Debug)]
pub struct GpuTable {
    stream: Arc<CudaStream>,
    layout: TableLayout,
    policy: ScorePolicy,
    policy_code: u32,
    row_width: u32,
    keys: CudaSlice<u64>,
    digests: CudaSlice<u8>,
    scores: CudaSlice<u64>,
    values: CudaSlice<f32>,
    k: Kernels,
    clock: u64,
    step: u64,
    len: usize,
}

impl GpuTable {
    /// Allocates an empty table on `dev` and loads its kernels.
    pub fn new(
        dev: &GpuDevice,
        layout: TableLayout,
        policy: ScorePolicy,
    ) -> Result<Self, GpuError> {
        let k = Kernels::load(dev)?;
        let stream = dev.stream.clone();
        let slots = layout.total_slots();
        let row_width = u32::try_from(layout.row_width())
            .map_err(|_| GpuError::InvalidConfig("row too wide".into()))?;
        let mut keys = stream.alloc_zeros::<u64>(slots)?;
        let digests = stream.alloc_zeros::<u8>(slots)?;
        let scores = stream.alloc_zeros::<u64>(slots)?;
        let values = stream.alloc_zeros::<f32>(slots * layout.row_width())?;
        let n = slots as u64;
        let mut b = stream.launch_builder(&k.init_keys);
        b.arg(&mut keys).arg(&n);
        // SAFETY: init_keys(u64* keys, u64 n) writes keys[0..n), and keys holds n slots.
        unsafe { b.launch(per_slot(slots)?) }?;
        stream.synchronize()?;
        Ok(Self {
            stream,
            layout,
            policy,
            policy_code: policy.code(),
            row_width,
            keys,
            digests,
            scores,
            values,
            k,
            clock: 0,
            step: 0,
            len: 0,
        })
    }

    /// The table's geometry.
    pub fn layout(&self) -> &TableLayout {
        &self.layout
    }

    /// Resident keys (tracked from kernel outcomes).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is resident.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the global training step used by [`ScorePolicy::Step`].
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    /// The `now` of a new batch, exactly as the reference computes it.
    fn begin_batch(&mut self) -> u64 {
        match self.policy {
            ScorePolicy::Lru => {
                self.clock += 1;
                self.clock
            }
            ScorePolicy::Step => self.step,
            ScorePolicy::Lfu => 0,
        }
    }

    /// Pushes the `TABLE_PARAMS` arguments shared by every kernel.
    fn table_args<'a>(&'a self, b: &mut LaunchArgs<'a>) {
        b.arg(&self.keys)
            .arg(&self.digests)
            .arg(&self.scores)
            .arg(&self.values)
            .arg(&self.layout.num_buckets)
            .arg(&self.row_width)
            .arg(&self.policy_code);
    }

    fn check_batch(&self, keys: &[u64]) -> Result<(), GpuError> {
        if cfg!(debug_assertions) {
            super::reference::check_distinct(keys)?;
        }
        Ok(())
    }

    /// Gathers the first `out_width` words of each resident row; `touch` updates scores.
    pub fn find(
        &mut self,
        keys: &[u64],
        out_width: usize,
        touch: bool,
    ) -> Result<(Vec<f32>, Vec<bool>), GpuError> {
        if out_width > self.layout.row_width() || out_width == 0 {
            return Err(GpuError::BatchShape(format!("out_width {out_width}")));
        }
        self.check_batch(keys)?;
        let now = self.begin_batch();
        let n = keys.len();
        if n == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let d_keys = self.stream.clone_htod(keys)?;
        let mut d_out = self.stream.alloc_zeros::<f32>(n * out_width)?;
        let mut d_status = self.stream.alloc_zeros::<u32>(n)?;
        let (n64, ow, touch) = (n as u64, out_width as u32, touch as u32);
        let mut b = self.stream.launch_builder(&self.k.find);
        self.table_args(&mut b);
        b.arg(&d_keys)
            .arg(&n64)
            .arg(&ow)
            .arg(&touch)
            .arg(&now)
            .arg(&mut d_out)
            .arg(&mut d_status);
        // SAFETY: arguments follow `find`'s signature in table.cu; d_out holds n*out_width
        // words, d_status n, and the table buffers match self.layout.
        unsafe { b.launch(per_key(n)?) }?;
        let out = self.stream.clone_dtoh(&d_out)?;
        let st = self.stream.clone_dtoh(&d_status)?;
        Ok((out, st.iter().map(|s| *s == status::FOUND).collect()))
    }

    fn upsert(
        &mut self,
        keys: &[u64],
        rows: &[f32],
        scores: Option<&[u64]>,
        op: Upsert,
    ) -> Result<(Vec<f32>, Vec<InsertOutcome>), GpuError> {
        let w = self.layout.row_width();
        self.check_batch(keys)?;
        check_len("rows", rows.len(), keys.len(), w)?;
        if let Some(s) = scores {
            check_len("scores", s.len(), keys.len(), 1)?;
        }
        let now = self.begin_batch();
        let n = keys.len();
        if n == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let d_keys = self.stream.clone_htod(keys)?;
        let d_rows = self.stream.clone_htod(rows)?;
        let d_scores = match scores {
            Some(s) => Some(self.stream.clone_htod(s)?),
            None => None,
        };
        let null: u64 = 0;
        let n64 = n as u64;
        let mut d_status = self.stream.alloc_zeros::<u32>(n)?;
        let evicts = op != Upsert::Assign;
        let mut ev = if evicts {
            Some((
                self.stream.alloc_zeros::<u64>(n)?,
                self.stream.alloc_zeros::<u64>(n)?,
                self.stream.alloc_zeros::<f32>(n * w)?,
            ))
        } else {
            None
        };
        let mut out_rows = if op == Upsert::FindOrInsert {
            Some(self.stream.alloc_zeros::<f32>(n * w)?)
        } else {
            None
        };
        let func = match op {
            Upsert::FindOrInsert => &self.k.find_or_insert,
            Upsert::Assign => &self.k.insert_or_assign,
            Upsert::Evict => &self.k.insert_and_evict,
        };
        let mut b = self.stream.launch_builder(func);
        self.table_args(&mut b);
        b.arg(&d_keys).arg(&d_rows);
        match &d_scores {
            Some(s) => b.arg(s),
            None => b.arg(&null),
        };
        b.arg(&now).arg(&n64).arg(&mut d_status);
        if let Some((k, s, r)) = ev.as_mut() {
            b.arg(k).arg(s).arg(r);
        }
        if let Some(o) = out_rows.as_mut() {
            b.arg(o);
        }
        // SAFETY: arguments follow the signatures of find_or_insert / insert_or_assign /
        // insert_and_evict in table.cu (a null u64 stands for an absent scores pointer); every
        // output holds n entries of its width, rows holds n*row_width words.
        unsafe { b.launch(per_key(n)?) }?;
        let st = self.stream.clone_dtoh(&d_status)?;
        let (ek, es, er) = match &ev {
            Some((k, s, r)) => (
                self.stream.clone_dtoh(k)?,
                self.stream.clone_dtoh(s)?,
                self.stream.clone_dtoh(r)?,
            ),
            None => (Vec::new(), Vec::new(), Vec::new()),
        };
        let out = match &out_rows {
            Some(o) => self.stream.clone_dtoh(o)?,
            None => Vec::new(),
        };
        let mut outcomes = Vec::with_capacity(n);
        for (i, s) in st.iter().enumerate() {
            outcomes.push(match *s {
                status::INSERTED => {
                    self.len += 1;
                    InsertOutcome::Inserted
                }
                status::UPDATED => InsertOutcome::Updated,
                status::FOUND => InsertOutcome::Found,
                status::EVICTED if evicts => InsertOutcome::Evicted {
                    key: ek[i],
                    score: es[i],
                    row: er[i * w..(i + 1) * w].to_vec(),
                },
                status::REFUSED => InsertOutcome::Refused,
                other => return Err(GpuError::Driver(format!("kernel returned status {other}"))),
            });
        }
        Ok((out, outcomes))
    }

    /// Returns resident rows, inserting `default_rows` for absent keys (evicting if needed).
    pub fn find_or_insert(
        &mut self,
        keys: &[u64],
        default_rows: &[f32],
        scores: Option<&[u64]>,
    ) -> Result<(Vec<f32>, Vec<InsertOutcome>), GpuError> {
        self.upsert(keys, default_rows, scores, Upsert::FindOrInsert)
    }

    /// Overwrites resident rows and inserts absent keys into free slots; never evicts.
    pub fn insert_or_assign(
        &mut self,
        keys: &[u64],
        rows: &[f32],
        scores: Option<&[u64]>,
    ) -> Result<Vec<InsertOutcome>, GpuError> {
        Ok(self.upsert(keys, rows, scores, Upsert::Assign)?.1)
    }

    /// Overwrites or inserts, evicting the minimum-score slot of a full bucket.
    pub fn insert_and_evict(
        &mut self,
        keys: &[u64],
        rows: &[f32],
        scores: Option<&[u64]>,
    ) -> Result<Vec<InsertOutcome>, GpuError> {
        Ok(self.upsert(keys, rows, scores, Upsert::Evict)?.1)
    }

    /// Applies one gradient per resident id in place; returns which ids were resident.
    pub fn apply(
        &mut self,
        keys: &[u64],
        grads: &[f32],
        cfg: &OptimizerConfig,
        now_secs: u32,
    ) -> Result<Vec<bool>, GpuError> {
        let dim = self.layout.dim;
        if state_slots(&cfg.kind) != self.layout.state_slots {
            return Err(GpuError::InvalidConfig(
                "optimizer state does not match the table layout".into(),
            ));
        }
        self.check_batch(keys)?;
        check_len("grads", grads.len(), keys.len(), dim)?;
        let now = self.begin_batch();
        let n = keys.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let params = fused::pack(cfg);
        let func = match fused::kernel_name(&cfg.kind) {
            "apply_sgd" => &self.k.apply_sgd,
            "apply_adagrad" => &self.k.apply_adagrad,
            "apply_adam" => &self.k.apply_adam,
            _ => &self.k.apply_ftrl,
        };
        let d_keys = self.stream.clone_htod(keys)?;
        let d_grads = self.stream.clone_htod(grads)?;
        let mut d_status = self.stream.alloc_zeros::<u32>(n)?;
        let (n64, dim32, slots32) = (n as u64, dim as u32, self.layout.state_slots as u32);
        let mut b = self.stream.launch_builder(func);
        self.table_args(&mut b);
        b.arg(&d_keys)
            .arg(&d_grads)
            .arg(&n64)
            .arg(&dim32)
            .arg(&slots32)
            .arg(&params)
            .arg(&now)
            .arg(&now_secs)
            .arg(&mut d_status);
        // SAFETY: arguments follow APPLY_KERNEL's signature in optim.cu (OptParams is 10 f32
        // passed by value); grads holds n*dim words, d_status n.
        unsafe { b.launch(per_key(n)?) }?;
        let st = self.stream.clone_dtoh(&d_status)?;
        Ok(st.iter().map(|s| *s == status::FOUND).collect())
    }

    /// Removes ids; returns which were resident.
    pub fn erase(&mut self, keys: &[u64]) -> Result<Vec<bool>, GpuError> {
        self.check_batch(keys)?;
        let n = keys.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let d_keys = self.stream.clone_htod(keys)?;
        let mut d_status = self.stream.alloc_zeros::<u32>(n)?;
        let n64 = n as u64;
        let mut b = self.stream.launch_builder(&self.k.erase);
        self.table_args(&mut b);
        b.arg(&d_keys).arg(&n64).arg(&mut d_status);
        // SAFETY: arguments follow `erase`'s signature in table.cu; d_status holds n entries.
        unsafe { b.launch(per_key(n)?) }?;
        let erased: Vec<bool> = self
            .stream
            .clone_dtoh(&d_status)?
            .iter()
            .map(|s| *s == status::FOUND)
            .collect();
        self.len -= erased.iter().filter(|e| **e).count();
        Ok(erased)
    }

    /// Runs export_range or expire_range over every slot, in chunks.
    fn scan(&mut self, threshold: u64, expire: bool) -> Result<Vec<ExportedEntry>, GpuError> {
        let w = self.layout.row_width();
        let total = self.layout.total_slots();
        let chunk = ((64usize << 20) / (4 * w)).clamp(1024, total.max(1024));
        let mut counter = self.stream.alloc_zeros::<u64>(1)?;
        let mut o_keys = self.stream.alloc_zeros::<u64>(chunk)?;
        let mut o_scores = self.stream.alloc_zeros::<u64>(chunk)?;
        let mut o_rows = self.stream.alloc_zeros::<f32>(chunk * w)?;
        let mut out = Vec::new();
        let mut first = 0usize;
        while first < total {
            let count = chunk.min(total - first);
            self.stream.memset_zeros(&mut counter)?;
            let (f64_, c64) = (first as u64, count as u64);
            let func = if expire {
                &self.k.expire_range
            } else {
                &self.k.export_range
            };
            let mut b = self.stream.launch_builder(func);
            self.table_args(&mut b);
            b.arg(&f64_)
                .arg(&c64)
                .arg(&threshold)
                .arg(&mut counter)
                .arg(&mut o_keys)
                .arg(&mut o_scores)
                .arg(&mut o_rows);
            // SAFETY: arguments follow export_range/expire_range in table.cu; at most `count`
            // (<= chunk) entries are written, and every output holds chunk entries.
            unsafe { b.launch(per_slot(count)?) }?;
            let got = self.stream.clone_dtoh(&counter)?[0] as usize;
            if got > 0 {
                let keys = self.stream.clone_dtoh(&o_keys.slice(0..got))?;
                let scores = self.stream.clone_dtoh(&o_scores.slice(0..got))?;
                let rows = self.stream.clone_dtoh(&o_rows.slice(0..got * w))?;
                for i in 0..got {
                    out.push(ExportedEntry {
                        key: keys[i],
                        score: scores[i],
                        row: rows[i * w..(i + 1) * w].to_vec(),
                    });
                }
            }
            first += count;
        }
        if expire {
            self.len -= out.len();
        }
        Ok(out)
    }

    /// All resident entries with `score >= min_score` (in no particular order).
    pub fn export(&mut self, min_score: u64) -> Result<Vec<ExportedEntry>, GpuError> {
        self.scan(min_score, false)
    }

    /// Removes and returns entries with `score < below` (TTL with [`ScorePolicy::Step`]).
    pub fn expire(&mut self, below: u64) -> Result<Vec<ExportedEntry>, GpuError> {
        self.scan(below, true)
    }
}
