//! On a CUDA device: the GPU table against the CPU reference under the same random operation
//! sequences (eviction decisions, outcomes, rows, scores, exports), for every optimizer and
//! score policy. Without a device the test prints "skipped: no CUDA device" and passes.

use crate::optimizer::{OptimizerConfig, OptimizerKind};
use crate::slot::splitmix64;

use super::device::{GpuDevice, GpuTable};
use super::layout::{place, state_slots, KeyPlace, ScorePolicy, TableLayout};
use super::reference::{ExportedEntry, InsertOutcome, ReferenceTable};
use super::GpuError;

fn device() -> Option<GpuDevice> {
    match GpuDevice::open(0) {
        Ok(d) => Some(d),
        Err(e @ GpuError::NoDevice { .. }) => {
            println!("skipped: no CUDA device ({e})");
            None
        }
        Err(e) => panic!("opening the device failed: {e}"),
    }
}

/// A small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        splitmix64(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in [lo, hi).
    fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// Distinct ids of distinct buckets, so the parallel kernels decide exactly as the reference.
fn batch(rng: &mut Rng, layout: &TableLayout, max: usize) -> Vec<u64> {
    let mut keys = Vec::new();
    let mut buckets = std::collections::HashSet::new();
    for _ in 0..max * 3 {
        let k = if rng.below(40) == 0 {
            u64::MAX - rng.below(3)
        } else {
            rng.below(2000)
        };
        let fresh = match place(k, layout.num_buckets) {
            KeyPlace::Hashed { bucket, .. } => buckets.insert(bucket),
            KeyPlace::Reserved { .. } => !keys.contains(&k),
        };
        if fresh && !keys.contains(&k) {
            keys.push(k);
        }
        if keys.len() == max {
            break;
        }
    }
    keys
}

fn rows(rng: &mut Rng, layout: &TableLayout, n: usize) -> Vec<f32> {
    let w = layout.row_width();
    let data = layout.dim * (1 + layout.state_slots);
    (0..n * w)
        .map(|i| if i % w < data { rng.f32(0.0, 1.0) } else { 0.0 })
        .collect()
}

fn close(a: &[f32], b: &[f32], exact: bool) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            if exact {
                x.to_bits() == y.to_bits()
            } else {
                (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0)
            }
        })
}

fn same_outcomes(a: &[InsertOutcome], b: &[InsertOutcome], exact: bool) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (
                InsertOutcome::Evicted { key, score, row },
                InsertOutcome::Evicted {
                    key: k2,
                    score: s2,
                    row: r2,
                },
            ) => key == k2 && score == s2 && close(row, r2, exact),
            _ => x == y,
        })
}

fn sorted(mut v: Vec<ExportedEntry>) -> Vec<ExportedEntry> {
    v.sort_by_key(|e| e.key);
    v
}

fn same_entries(a: Vec<ExportedEntry>, b: Vec<ExportedEntry>, exact: bool) -> bool {
    let (a, b) = (sorted(a), sorted(b));
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| x.key == y.key && x.score == y.score && close(&x.row, &y.row, exact))
}

fn compare(dev: &GpuDevice, cfg: OptimizerConfig, policy: ScorePolicy, seed: u64) {
    let layout = TableLayout::new(4, 33, state_slots(&cfg.kind)).unwrap_or_else(|e| panic!("{e}"));
    let exact = matches!(
        cfg.kind,
        OptimizerKind::Sgd { .. } | OptimizerKind::Adagrad { .. }
    );
    let mut r = ReferenceTable::new(layout, policy);
    let mut g = GpuTable::new(dev, layout, policy).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng(seed);
    let ctx = |step: usize, op: &str| format!("{policy:?} {:?} step {step} {op}", cfg.kind);
    for step in 0..200usize {
        r.set_step(step as u64);
        g.set_step(step as u64);
        let keys = batch(&mut rng, &layout, 4);
        let n = keys.len();
        match rng.below(8) {
            0..=2 => {
                let rows = rows(&mut rng, &layout, n);
                let a = r
                    .insert_and_evict(&keys, &rows, None)
                    .unwrap_or_else(|e| panic!("{e}"));
                let b = g
                    .insert_and_evict(&keys, &rows, None)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    same_outcomes(&a, &b, exact),
                    "{}: {a:?} vs {b:?}",
                    ctx(step, "evict")
                );
            }
            3 => {
                let rows = rows(&mut rng, &layout, n);
                let a = r
                    .insert_or_assign(&keys, &rows, None)
                    .unwrap_or_else(|e| panic!("{e}"));
                let b = g
                    .insert_or_assign(&keys, &rows, None)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(a, b, "{}", ctx(step, "assign"));
            }
            4 => {
                let rows = rows(&mut rng, &layout, n);
                let (ra, a) = r
                    .find_or_insert(&keys, &rows, None)
                    .unwrap_or_else(|e| panic!("{e}"));
                let (rb, b) = g
                    .find_or_insert(&keys, &rows, None)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    same_outcomes(&a, &b, exact),
                    "{}",
                    ctx(step, "find_or_insert")
                );
                assert!(
                    close(&ra, &rb, exact),
                    "{}",
                    ctx(step, "find_or_insert rows")
                );
            }
            5 => {
                let grads: Vec<f32> = (0..n * layout.dim).map(|_| rng.f32(-1.0, 1.0)).collect();
                let a = r
                    .apply(&keys, &grads, &cfg, step as u32)
                    .unwrap_or_else(|e| panic!("{e}"));
                let b = g
                    .apply(&keys, &grads, &cfg, step as u32)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(a, b, "{}", ctx(step, "apply"));
            }
            6 => {
                let w = layout.row_width();
                let (oa, a) = r.find(&keys, w, true).unwrap_or_else(|e| panic!("{e}"));
                let (ob, b) = g.find(&keys, w, true).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(a, b, "{}", ctx(step, "find"));
                assert!(close(&oa, &ob, exact), "{}", ctx(step, "find rows"));
            }
            _ => {
                if step % 2 == 0 {
                    assert_eq!(
                        r.erase(&keys),
                        g.erase(&keys).unwrap_or_else(|e| panic!("{e}"))
                    );
                } else {
                    let below = (step as u64).saturating_sub(20);
                    let a = r.expire(below);
                    let b = g.expire(below).unwrap_or_else(|e| panic!("{e}"));
                    assert!(same_entries(a, b, exact), "{}", ctx(step, "expire"));
                }
            }
        }
        assert_eq!(r.len(), g.len(), "{}", ctx(step, "len"));
        if step % 25 == 24 {
            let b = g.export(0).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                same_entries(r.export(0), b, exact),
                "{}",
                ctx(step, "export")
            );
        }
    }
}

#[test]
fn gpu_device_table_matches_reference() {
    let Some(dev) = device() else { return };
    println!("device: {}", dev.name());
    let opts = [
        OptimizerKind::Sgd { lr: 0.1 },
        OptimizerKind::Adagrad {
            lr: 0.05,
            initial_accumulator: 0.1,
            epsilon: 1e-8,
        },
        OptimizerKind::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        },
        OptimizerKind::Ftrl {
            lr: 0.05,
            lr_power: -0.5,
            l1: 0.001,
            l2: 0.01,
            beta: 0.0,
            initial_accumulator: 0.1,
        },
    ];
    for (i, kind) in opts.into_iter().enumerate() {
        let mut cfg = OptimizerConfig::new(kind);
        if i == 1 {
            cfg.clip_norm = 0.5;
            cfg.weight_decay = 0.01;
        }
        for policy in [ScorePolicy::Lru, ScorePolicy::Lfu, ScorePolicy::Step] {
            compare(&dev, cfg, policy, 1000 + i as u64);
        }
    }
}
