//! Host-tier micro-benchmarks at dim 64 (Adagrad): gather (pull) and optimizer apply (push)
//! of W1-sized batches of existing rows, next to the memory-bandwidth floor for the same
//! bytes, plus the host tier's memory per row against the raw size.
//!
//! Run: `cargo bench -p strata-bench --bench host_tier` (`-- --quick` for a short run).
//!
//! The floor is measured in the same run: the same number of rows gathered from (or updated
//! in place in) a plain dense `Vec<f32>` of the same row width, at the same random row
//! indices, with the same software prefetch; plus a large sequential `copy_from_slice`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_storage::host::{HostTier, RowMemory};
use strata_storage::init::SplitMix64;
use strata_storage::optimizer::{OptimizerConfig, OptimizerKind};
use strata_storage::spec::{InitializerConfig, TableSpec, TierKind};
use strata_storage::ExportCursor;
use strata_storage::{MemoryBudget, Tier};

const DIM: usize = 64;
const BATCH: usize = 2302;

fn spec() -> TableSpec {
    TableSpec {
        name: "bench".into(),
        dim: DIM as u32,
        optimizer: OptimizerConfig::new(OptimizerKind::Adagrad {
            lr: 0.05,
            initial_accumulator: 0.1,
            epsilon: 0.0,
        }),
        initializer: InitializerConfig::Uniform { scale: 0.01 },
        seed: 1,
        tier: TierKind::Host,
    }
}

/// Resident set size of this process in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Median seconds per call of `f` over `reps` timed calls after warm-up.
fn time_it(reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..reps / 4 + 1 {
        f();
    }
    let mut samples: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn batches(keys: u64, count: usize, rng: &mut SplitMix64) -> Vec<Vec<u64>> {
    (0..count)
        .map(|_| {
            let mut ids: Vec<u64> = (0..BATCH).map(|_| rng.next_u64() % keys).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        })
        .collect()
}

fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in (0..row.len()).step_by(16) {
        // SAFETY: prefetch never faults; the address is inside `row`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                row.as_ptr().add(line) as *const i8,
            )
        };
    }
}

fn report(name: &str, rows: usize, secs: f64, bytes_per_row: usize, floor: Option<f64>) {
    let rows_s = rows as f64 / secs;
    let gb_s = rows_s * bytes_per_row as f64 / 1e9;
    match floor {
        Some(f) => println!(
            "{name:<34} {:>8.2} M rows/s {:>7.2} GB/s   {:>5.1}% of floor",
            rows_s / 1e6,
            gb_s,
            100.0 * rows_s / f
        ),
        None => println!(
            "{name:<34} {:>8.2} M rows/s {:>7.2} GB/s",
            rows_s / 1e6,
            gb_s
        ),
    }
}

fn main() {
    strata_server::allocator::keep_large_buffers_in_the_heap();
    let quick = std::env::args().any(|a| a == "--quick");
    let keys: u64 = if quick { 200_000 } else { 2_000_000 };
    let reps = if quick { 20 } else { 100 };
    let mut rng = SplitMix64::new(7);

    // Memory per row: RSS growth while the tier creates `keys` rows.
    let before = rss_bytes();
    let tier = HostTier::new(
        spec(),
        4096,
        Arc::new(MemoryBudget::unlimited()),
        Arc::new(RowMemory::default()),
    );
    let all: Vec<u64> = (0..keys).collect();
    let mut scratch = vec![0.0f32; 65_536 * DIM];
    for chunk in all.chunks(65_536) {
        tier.pull(chunk, &mut scratch[..chunk.len() * DIM])
            .expect("fill");
    }
    drop(scratch);
    let grown = rss_bytes().saturating_sub(before);
    let layout = tier.layout();
    let raw = layout.raw_bytes();
    println!("host tier, dim {DIM}, adagrad, {keys} rows, batches of ~{BATCH} unique ids");
    println!(
        "memory per row: {:.0} B measured (RSS), {} B accounted, raw {} B (8 B id + 4·dim·2) = {:.2}x raw",
        grown as f64 / keys as f64,
        layout.accounted_bytes(),
        raw,
        grown as f64 / keys as f64 / raw as f64
    );

    if std::env::args().any(|a| a == "--migration-only") {
        migration_ops(&tier);
        return;
    }
    let work = batches(keys, 64, &mut rng);
    let rows_per_pass: usize = work.iter().map(|b| b.len()).sum();
    let mut out = vec![0.0f32; BATCH * DIM];
    let grads: Vec<f32> = (0..BATCH * DIM)
        .map(|i| ((i % 13) as f32 - 6.0) * 1e-3)
        .collect();

    // Floors: the same rows in a plain dense array (values + accumulator side by side).
    let stride = DIM * 2;
    let dense: Vec<f32> = vec![0.01; keys as usize * stride];
    let mut dense_mut = dense.clone();
    let gather_floor = time_it(reps, || {
        for ids in &work {
            for (k, &id) in ids.iter().enumerate() {
                if let Some(&ahead) = ids.get(k + 4) {
                    prefetch(&dense[ahead as usize * stride..ahead as usize * stride + stride]);
                }
                let row = &dense[id as usize * stride..id as usize * stride + DIM];
                out[k * DIM..(k + 1) * DIM].copy_from_slice(row);
            }
        }
        black_box(&out);
    });
    let apply_floor = time_it(reps, || {
        for ids in &work {
            for (k, &id) in ids.iter().enumerate() {
                if let Some(&ahead) = ids.get(k + 4) {
                    prefetch(&dense_mut[ahead as usize * stride..ahead as usize * stride + stride]);
                }
                let row = &mut dense_mut[id as usize * stride..id as usize * stride + stride];
                let (w, acc) = row.split_at_mut(DIM);
                for ((w, a), g) in w
                    .iter_mut()
                    .zip(acc.iter_mut())
                    .zip(&grads[k * DIM..(k + 1) * DIM])
                {
                    *a += g * g;
                    *w -= 0.05 * g / a.sqrt();
                }
            }
        }
        black_box(&dense_mut);
    });
    let big = 64 << 20;
    let src = vec![1u8; big];
    let mut dst = vec![0u8; big];
    let memcpy = time_it(reps / 10 + 3, || {
        dst.copy_from_slice(&src);
        black_box(&dst);
    });
    println!(
        "sequential memcpy: {:.2} GB/s (bytes read + written)",
        2.0 * big as f64 / memcpy / 1e9
    );

    let gather_floor_rows = rows_per_pass as f64 / gather_floor;
    let apply_floor_rows = rows_per_pass as f64 / apply_floor;
    report(
        "floor: dense-array gather",
        rows_per_pass,
        gather_floor,
        DIM * 4,
        None,
    );
    report(
        "floor: dense-array adagrad apply",
        rows_per_pass,
        apply_floor,
        DIM * 4,
        None,
    );

    let pull = time_it(reps, || {
        for ids in &work {
            tier.pull(ids, &mut out[..ids.len() * DIM]).expect("pull");
        }
        black_box(&out);
    });
    report(
        "host tier pull (gather)",
        rows_per_pass,
        pull,
        DIM * 4,
        Some(gather_floor_rows),
    );
    let push = time_it(reps, || {
        for ids in &work {
            tier.push(ids, &grads[..ids.len() * DIM]).expect("push");
        }
    });
    report(
        "host tier push (adagrad apply)",
        rows_per_pass,
        push,
        DIM * 4,
        Some(apply_floor_rows),
    );
    println!("(GB/s counts the row payload: 256 B per row out of a pull or into a push)");
    migration_ops(&tier);
    let _ = Duration::ZERO;
}

/// What a live migration asks of the tiers: export a quarter of the slots in chunks, import
/// them into an empty tier, erase them again (whole rows: values, accumulator, metadata).
fn migration_ops(tier: &HostTier) {
    let row_bytes = tier.layout().row_floats() * 4 + 8;
    let max_rows = (4 << 20) / row_bytes;
    let start = Instant::now();
    let mut blocks = Vec::new();
    let mut cursor = ExportCursor::default();
    while !cursor.done {
        let b = tier
            .export_slots(0..1024, &mut cursor, max_rows)
            .expect("export");
        if !b.ids.is_empty() {
            blocks.push(b);
        }
    }
    let export = start.elapsed().as_secs_f64();
    let rows: usize = blocks.iter().map(|b| b.ids.len()).sum();
    let fresh = HostTier::new(
        spec(),
        4096,
        Arc::new(MemoryBudget::unlimited()),
        Arc::new(RowMemory::default()),
    );
    let start = Instant::now();
    for b in &blocks {
        fresh.import_rows(b).expect("import");
    }
    let import = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for b in &blocks {
        fresh.import_rows(b).expect("import again");
    }
    let overwrite = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let erased = fresh.erase_slots(&[(0, 1024)]).expect("erase");
    let erase = start.elapsed().as_secs_f64();
    assert_eq!(erased as usize, rows);
    report(
        "migration: export a slot range",
        rows,
        export,
        row_bytes,
        None,
    );
    report(
        "migration: import into an empty tier",
        rows,
        import,
        row_bytes,
        None,
    );
    report(
        "migration: import over existing rows",
        rows,
        overwrite,
        row_bytes,
        None,
    );
    report("migration: erase the range", rows, erase, row_bytes, None);
    println!("(migration GB/s counts whole rows: {row_bytes} B with id, values, state, metadata)");
}
