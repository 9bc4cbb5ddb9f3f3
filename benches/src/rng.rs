//! SplitMix64 and W1's stream derivation, uniform and normal draws (WORKLOAD.md "Random numbers").

pub use strata_proto::routing::mix;
use strata_proto::routing::GAMMA;

/// A SplitMix64 generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from a raw state.
    pub fn from_state(state: u64) -> Self {
        Self { state }
    }

    /// Stream `s` of `seed`: initial state `mix(seed ^ mix(s + 1))`.
    pub fn stream(seed: u64, s: u64) -> Self {
        Self::from_state(mix(seed ^ mix(s.wrapping_add(1))))
    }

    /// The next 64 random bits: `state += GAMMA; mix(state)`.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// Uniform in `[0, 1)`: `(next >> 11) * 2^-53`.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal by Box–Muller: `sqrt(-2 ln(1 - u)) * cos(2π u')`, one value per two uniforms.
    #[inline]
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference_vector() {
        // Reference: SplitMix64 seeded with state 0 (Vigna's splitmix64.c).
        let mut g = SplitMix64::from_state(0);
        assert_eq!(g.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(g.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(g.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn streams_are_distinct_and_reproducible() {
        let a: Vec<u64> = {
            let mut g = SplitMix64::stream(1, 0);
            (0..4).map(|_| g.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut g = SplitMix64::stream(1, 0);
            (0..4).map(|_| g.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut g = SplitMix64::stream(1, 1);
            (0..4).map(|_| g.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            SplitMix64::stream(7, 3),
            SplitMix64::from_state(mix(7 ^ mix(4)))
        );
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut g = SplitMix64::stream(1, 5);
        let n = 200_000;
        let (mut su, mut sn, mut sn2) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            let u = g.uniform();
            assert!((0.0..1.0).contains(&u));
            su += u;
            let z = g.normal();
            sn += z;
            sn2 += z * z;
        }
        let n = n as f64;
        assert!((su / n - 0.5).abs() < 0.01);
        assert!((sn / n).abs() < 0.01);
        assert!((sn2 / n - 1.0).abs() < 0.02);
    }
}
