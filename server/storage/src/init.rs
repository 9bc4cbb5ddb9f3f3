//! Deterministic row initializers: a row depends only on (table seed, id), so a restart or
//! another node produces the same initial row.

use crate::hash::{mix, GAMMA};

use crate::spec::InitializerConfig;

/// SplitMix64 stream (WORKLOAD.md's generator), seeded per row.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream starting at `state`.
    pub fn new(state: u64) -> Self {
        Self { state }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// Uniform in [0, 1) with 53 bits.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Per-row stream state: depends on the table seed and the id only.
#[inline]
fn row_state(seed: u64, id: u64) -> u64 {
    mix(id ^ mix(seed ^ 0x1D55_EED0_5EED_0001))
}

/// Fills `out` with the initial values of row `id`.
pub fn init_row(config: &InitializerConfig, seed: u64, id: u64, out: &mut [f32]) {
    match *config {
        InitializerConfig::Zeros => out.fill(0.0),
        InitializerConfig::Uniform { scale } => {
            let mut rng = SplitMix64::new(row_state(seed, id));
            for v in out.iter_mut() {
                *v = ((2.0 * rng.next_f64() - 1.0) * scale as f64) as f32;
            }
        }
        InitializerConfig::Normal { std } => {
            let mut rng = SplitMix64::new(row_state(seed, id));
            let mut chunks = out.chunks_exact_mut(2);
            for pair in &mut chunks {
                let (a, b) = box_muller(&mut rng);
                pair[0] = (a * std as f64) as f32;
                pair[1] = (b * std as f64) as f32;
            }
            if let [last] = chunks.into_remainder() {
                *last = (box_muller(&mut rng).0 * std as f64) as f32;
            }
        }
    }
}

/// Two independent standard normals from two uniforms.
#[inline]
fn box_muller(rng: &mut SplitMix64) -> (f64, f64) {
    let u1 = 1.0 - rng.next_f64();
    let u2 = rng.next_f64();
    let r = (-2.0 * u1.ln()).sqrt();
    let theta = 2.0 * std::f64::consts::PI * u2;
    (r * theta.cos(), r * theta.sin())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_id_give_same_row() {
        let cfg = InitializerConfig::Uniform { scale: 0.5 };
        let mut a = vec![0.0; 17];
        let mut b = vec![0.0; 17];
        init_row(&cfg, 7, 42, &mut a);
        init_row(&cfg, 7, 42, &mut b);
        assert_eq!(a, b);
        init_row(&cfg, 8, 42, &mut b);
        assert_ne!(a, b);
        assert!(a.iter().all(|v| (-0.5..0.5).contains(v)));
    }

    #[test]
    fn normal_has_roughly_the_requested_std() {
        let cfg = InitializerConfig::Normal { std: 2.0 };
        let mut row = vec![0.0; 4095];
        init_row(&cfg, 1, 3, &mut row);
        let n = row.len() as f64;
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.15, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.15, "std {}", var.sqrt());
    }

    #[test]
    fn mix_is_the_bare_splitmix_mix() {
        // mix(0) == 0 for the bare finalizer.
        assert_eq!(mix(0), 0);
    }
}
