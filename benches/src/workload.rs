//! W1's per-trainer data: id batches, the gradient pool and its per-step slice, initial rows.

use bytes::Bytes;

use crate::rng::{mix, SplitMix64};
use crate::zipf::{RankToId, Zipf, ZipfError};

/// Stream offset of the gradient streams: trainer `t` draws gradients from stream `2^32 + t`.
pub const GRAD_STREAM_BASE: u64 = 1 << 32;

/// Seed constant of initial rows: a row's generator state is `mix(id ^ ROW_SEED)`.
pub const ROW_SEED: u64 = 0x1D5_5EED;

/// The W1 parameters a trainer's data depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    /// Key space: ids `0..keys`.
    pub keys: u64,
    /// Row width.
    pub dim: usize,
    /// Draws per step before deduplication.
    pub batch: usize,
    /// Zipf exponent.
    pub zipf: f64,
    /// Run seed.
    pub seed: u64,
    /// Gradient scale: gradients are `N(0, 1) · grad_scale`.
    pub grad_scale: f64,
}

impl WorkloadSpec {
    /// W1's defaults (WORKLOAD.md): 10 M ids, dim 64, batches of 4096 Zipf(1.05) draws, seed 1.
    pub fn w1() -> Self {
        Self {
            keys: 10_000_000,
            dim: 64,
            batch: 4096,
            zipf: 1.05,
            seed: 1,
            grad_scale: 0.01,
        }
    }
}

/// Draws W1 id batches for one trainer (stream `t` of the seed).
#[derive(Debug, Clone)]
pub struct IdStream {
    rng: SplitMix64,
    zipf: Zipf,
    map: RankToId,
    batch: usize,
}

impl IdStream {
    /// The id stream of trainer `trainer`.
    pub fn new(spec: &WorkloadSpec, trainer: u64) -> Result<Self, ZipfError> {
        Ok(Self {
            rng: SplitMix64::stream(spec.seed, trainer),
            zipf: Zipf::new(spec.keys, spec.zipf)?,
            map: RankToId::new(spec.keys),
            batch: spec.batch,
        })
    }

    /// Fill `ids` with the next batch: `batch` draws, sorted ascending, duplicates removed.
    pub fn next_batch(&mut self, ids: &mut Vec<u64>) {
        ids.clear();
        ids.extend((0..self.batch).map(|_| self.map.id(self.zipf.sample(&mut self.rng))));
        ids.sort_unstable();
        ids.dedup();
    }
}

/// One trainer's gradient pool: `2 · batch` rows of `N(0,1) · grad_scale`, from stream `2^32 + t`.
#[derive(Debug, Clone)]
pub struct GradPool {
    rng: SplitMix64,
    pool: Vec<f32>,
    /// The same rows as packed f32 LE bytes, for targets that send them without a copy.
    packed: Bytes,
    dim: usize,
    batch: usize,
}

/// The gradient rows of one step, as values and as packed f32 LE bytes (the same rows).
#[derive(Debug, Clone)]
pub struct GradRows<'a> {
    /// Row-major values.
    pub values: &'a [f32],
    /// The same values, packed (shares the pool's buffer).
    pub packed: Bytes,
}

impl<'a> GradRows<'a> {
    /// Rows of `values` (packed by copying: for tests and one-off calls).
    pub fn from_values(values: &'a [f32]) -> Self {
        Self {
            values,
            packed: Bytes::copy_from_slice(bytemuck::cast_slice(values)),
        }
    }
}

impl GradPool {
    /// The pool of trainer `trainer` (drawn once, row-major).
    pub fn new(spec: &WorkloadSpec, trainer: u64) -> Self {
        let mut rng = SplitMix64::stream(spec.seed, GRAD_STREAM_BASE + trainer);
        let len = 2 * spec.batch * spec.dim;
        let pool: Vec<f32> = (0..len)
            .map(|_| (rng.normal() * spec.grad_scale) as f32)
            .collect();
        let packed = Bytes::copy_from_slice(bytemuck::cast_slice(&pool));
        Self {
            rng,
            pool,
            packed,
            dim: spec.dim,
            batch: spec.batch,
        }
    }

    /// The gradients of a step with `n` unique ids: `n` pool rows starting at row `next_u64 mod batch`.
    pub fn step(&mut self, n: usize) -> GradRows<'_> {
        let n = n.min(self.batch);
        let start = (self.rng.next_u64() % self.batch.max(1) as u64) as usize;
        let range = start * self.dim..(start + n) * self.dim;
        GradRows {
            packed: self.packed.slice(range.start * 4..range.end * 4),
            values: &self.pool[range],
        }
    }
}

/// Write the W1 initial row of `id` into `out` (`len = dim`): `f32((2u - 1) · scale)` per coordinate.
pub fn initial_row(id: u64, scale: f64, out: &mut [f32]) {
    let mut g = SplitMix64::from_state(mix(id ^ ROW_SEED));
    for v in out.iter_mut() {
        *v = ((2.0 * g.uniform() - 1.0) * scale) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_sorted_unique_and_in_range() {
        let spec = WorkloadSpec::w1();
        let mut s = IdStream::new(&spec, 0).expect("valid");
        let mut ids = Vec::new();
        let mut total = 0usize;
        for _ in 0..50 {
            s.next_batch(&mut ids);
            assert!(ids.windows(2).all(|w| w[0] < w[1]));
            assert!(ids.iter().all(|&id| id < spec.keys));
            total += ids.len();
        }
        // WORKLOAD.md: mean unique ≈ 2302.
        let mean = total as f64 / 50.0;
        assert!((mean - 2302.0).abs() < 40.0, "mean unique {mean}");
        // The hottest id (0) is in every batch.
        assert_eq!(ids[0], 0);
    }

    #[test]
    fn id_stream_is_reproducible_per_seed_and_trainer() {
        let spec = WorkloadSpec::w1();
        let run = |spec: &WorkloadSpec, t| {
            let mut s = IdStream::new(spec, t).expect("valid");
            let mut out = Vec::new();
            let mut ids = Vec::new();
            for _ in 0..3 {
                s.next_batch(&mut ids);
                out.extend_from_slice(&ids);
            }
            out
        };
        assert_eq!(run(&spec, 0), run(&spec, 0));
        assert_ne!(run(&spec, 0), run(&spec, 1));
        let other = WorkloadSpec {
            seed: 2,
            ..spec.clone()
        };
        assert_ne!(run(&spec, 0), run(&other, 0));
    }

    #[test]
    fn gradient_slices_stay_in_the_pool() {
        let spec = WorkloadSpec {
            batch: 16,
            dim: 4,
            ..WorkloadSpec::w1()
        };
        let mut p = GradPool::new(&spec, 0);
        assert_eq!(p.pool.len(), 2 * 16 * 4);
        for n in [0, 1, 7, 16, 100] {
            let g = p.step(n);
            assert_eq!(g.values.len(), n.min(16) * 4);
            assert_eq!(g.packed[..], *bytemuck::cast_slice::<f32, u8>(g.values));
        }
        let mut a = GradPool::new(&spec, 3);
        let mut b = GradPool::new(&spec, 3);
        assert_eq!(a.step(5).values, b.step(5).values);
        // Gradients are ~N(0, 0.01²).
        let big = GradPool::new(&WorkloadSpec::w1(), 0);
        let n = big.pool.len() as f64;
        let var = big.pool.iter().map(|&g| f64::from(g).powi(2)).sum::<f64>() / n;
        assert!((var.sqrt() - 0.01).abs() < 0.0002);
    }

    #[test]
    fn initial_rows_are_deterministic_and_bounded() {
        let mut a = [0f32; 64];
        let mut b = [0f32; 64];
        initial_row(12345, 0.01, &mut a);
        initial_row(12345, 0.01, &mut b);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (-0.01..0.01).contains(v)));
        initial_row(12346, 0.01, &mut b);
        assert_ne!(a, b);
        let mut g = SplitMix64::from_state(mix(12345 ^ ROW_SEED));
        assert_eq!(a[0], ((2.0 * g.uniform() - 1.0) * 0.01) as f32);
    }
}
