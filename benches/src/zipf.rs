//! Zipf ranks by rejection-inversion (Hörmann & Derflinger) and W1's fixed rank → id bijection.

use crate::rng::SplitMix64;

/// Errors of invalid Zipf parameters.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ZipfError {
    /// The number of ranks must be at least 1.
    #[error("zipf: the number of elements must be >= 1")]
    Empty,
    /// The exponent must be a finite number > 0.
    #[error("zipf: the exponent must be finite and > 0, got {0}")]
    Exponent(f64),
}

/// Zipf sampler over ranks `1..=n` with `P(k) ∝ k^-s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: u64,
    s: f64,
    /// `H(n + 1/2)`.
    h_n: f64,
    /// `H(1.5) - h(1)`.
    h_x1: f64,
    /// Quick-accept constant: `2 - H⁻¹(H(2.5) - h(2))`.
    quick: f64,
}

impl Zipf {
    /// A sampler over ranks `1..=n` with exponent `s`.
    pub fn new(n: u64, s: f64) -> Result<Self, ZipfError> {
        if n == 0 {
            return Err(ZipfError::Empty);
        }
        if !(s.is_finite() && s > 0.0) {
            return Err(ZipfError::Exponent(s));
        }
        let mut z = Self {
            n,
            s,
            h_n: 0.0,
            h_x1: 0.0,
            quick: 0.0,
        };
        z.h_n = z.big_h(n as f64 + 0.5);
        z.h_x1 = z.big_h(1.5) - 1.0;
        z.quick = 2.0 - z.big_h_inv(z.big_h(2.5) - z.h(2.0));
        Ok(z)
    }

    /// Number of ranks.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// `h(x) = x^-s`.
    #[inline]
    fn h(&self, x: f64) -> f64 {
        if self.s == 1.0 {
            1.0 / x
        } else {
            x.powf(-self.s)
        }
    }

    /// `H(x) = (x^(1-s) - 1) / (1 - s)`, or `ln x` when `s == 1`.
    #[inline]
    fn big_h(&self, x: f64) -> f64 {
        if self.s == 1.0 {
            x.ln()
        } else {
            let t = 1.0 - self.s;
            (x.powf(t) - 1.0) / t
        }
    }

    /// `H⁻¹(y) = (1 + (1-s) y)^(1/(1-s))`, or `exp y` when `s == 1`.
    #[inline]
    fn big_h_inv(&self, y: f64) -> f64 {
        if self.s == 1.0 {
            y.exp()
        } else {
            let t = 1.0 - self.s;
            (1.0 + t * y).powf(1.0 / t)
        }
    }

    /// One rank in `1..=n`, with the quick-accept shortcut (same draws as [`Zipf::sample_plain`]).
    #[inline]
    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        self.sample_impl(rng, true)
    }

    /// One rank in `1..=n`, exactly as WORKLOAD.md writes it (no quick-accept).
    pub fn sample_plain(&self, rng: &mut SplitMix64) -> u64 {
        self.sample_impl(rng, false)
    }

    #[inline]
    fn sample_impl(&self, rng: &mut SplitMix64, quick: bool) -> u64 {
        loop {
            let u = self.h_n + rng.uniform() * (self.h_x1 - self.h_n);
            let x = self.big_h_inv(u);
            let kf = x.round().clamp(1.0, self.n as f64);
            if quick && kf - x <= self.quick {
                return kf as u64;
            }
            if u >= self.big_h(kf + 0.5) - self.h(kf) {
                return kf as u64;
            }
        }
    }

    /// The exact probability of rank `k` (for tests; sums `n` terms once per call).
    pub fn pmf(&self, k: u64) -> f64 {
        let norm: f64 = (1..=self.n).map(|i| self.h(i as f64)).sum();
        self.h(k as f64) / norm
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// W1's rank → id multiplier: the smallest `a >= floor(0.6180339887498949 · n)` coprime with `n`.
pub fn multiplier(n: u64) -> u64 {
    let mut a = (0.618_033_988_749_894_9 * n as f64).floor() as u64;
    while gcd(a, n) != 1 {
        a += 1;
    }
    a
}

/// W1's fixed bijection of ranks `1..=n` onto ids `0..n`: `id = (k - 1) · a mod n`.
#[derive(Debug, Clone, Copy)]
pub struct RankToId {
    n: u64,
    a: u64,
    /// `⌊(2⁶⁴ − 1) / n⌋`: the reciprocal that replaces the division below 2³² ids.
    reciprocal: u64,
}

impl RankToId {
    /// The map for a key space of `n` ids.
    pub fn new(n: u64) -> Self {
        Self {
            n,
            a: multiplier(n),
            reciprocal: u64::MAX / n.max(1),
        }
    }

    /// The multiplier `a`.
    pub fn a(&self) -> u64 {
        self.a
    }

    /// The id of rank `k` (1-based).
    #[inline]
    pub fn id(&self, k: u64) -> u64 {
        // Both factors are below `n`: under 2³² their product `x` fits a u64, and its
        // remainder comes from a multiply by the reciprocal (Barrett): the estimated quotient
        // is ⌊x/n⌋ or one less, since `x · reciprocal / 2⁶⁴ > x/n − 1`. A hardware division
        // per draw was ~3% of the bench's CPU; u128's remainder is a library call.
        if self.n <= 1 << 32 {
            let x = (k - 1) * self.a;
            let quotient = ((u128::from(x) * u128::from(self.reciprocal)) >> 64) as u64;
            let remainder = x - quotient * self.n;
            return if remainder >= self.n {
                remainder - self.n
            } else {
                remainder
            };
        }
        ((u128::from(k - 1) * u128::from(self.a)) % u128::from(self.n)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_for_w1() {
        assert_eq!(multiplier(10_000_000), 6_180_339);
        assert_eq!(RankToId::new(10_000_000).id(1), 0);
    }

    #[test]
    fn rank_to_id_is_a_bijection_on_small_n() {
        for n in [1u64, 2, 3, 10, 12, 97, 100, 1000, 1024, 4096] {
            let m = RankToId::new(n);
            let mut seen = vec![false; n as usize];
            for k in 1..=n {
                let id = m.id(k);
                assert!(id < n);
                assert!(!seen[id as usize], "n={n} id {id} twice");
                seen[id as usize] = true;
            }
        }
    }

    #[test]
    fn rank_to_id_remainder_matches_the_division() {
        let mut rng = SplitMix64::from_state(7);
        let mut sizes = vec![
            1u64,
            2,
            3,
            7,
            10_000_000,
            (1 << 31) + 1,
            (1 << 32) - 1,
            1 << 32,
        ];
        sizes.extend((0..200).map(|_| 1 + (rng.next_u64() >> 32)));
        for n in sizes {
            let m = RankToId::new(n);
            let mut ranks = vec![1, 2, n / 2 + 1, n.saturating_sub(1).max(1), n];
            ranks.extend((0..200).map(|_| 1 + rng.next_u64() % n));
            for k in ranks {
                assert_eq!(m.id(k), (k - 1) * m.a() % n, "n {n} k {k}");
            }
        }
    }

    #[test]
    fn rank_to_id_agrees_with_wide_arithmetic_at_the_u32_edge() {
        for n in [(1u64 << 32) - 5, 1 << 32, (1 << 32) + 15] {
            let m = RankToId::new(n);
            for k in [1, 2, n / 2, n - 1, n] {
                let wide = ((u128::from(k - 1) * u128::from(m.a())) % u128::from(n)) as u64;
                assert_eq!(m.id(k), wide, "n {n} k {k}");
            }
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        assert_eq!(Zipf::new(0, 1.0).err(), Some(ZipfError::Empty));
        assert!(Zipf::new(10, 0.0).is_err());
        assert!(Zipf::new(10, f64::NAN).is_err());
    }

    #[test]
    fn quick_accept_gives_the_same_draws() {
        for &(n, s) in &[
            (10_000_000u64, 1.05),
            (1000, 1.0),
            (50, 0.7),
            (100_000, 2.0),
        ] {
            let z = Zipf::new(n, s).expect("valid");
            let mut a = SplitMix64::stream(1, 0);
            let mut b = SplitMix64::stream(1, 0);
            for i in 0..200_000 {
                assert_eq!(
                    z.sample(&mut a),
                    z.sample_plain(&mut b),
                    "n={n} s={s} draw {i}"
                );
            }
            assert_eq!(a, b);
        }
    }

    #[test]
    fn same_seed_same_ranks() {
        let z = Zipf::new(10_000_000, 1.05).expect("valid");
        let draw = |seed, s| {
            let mut g = SplitMix64::stream(seed, s);
            (0..1000).map(|_| z.sample(&mut g)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, 0), draw(1, 0));
        assert_ne!(draw(1, 0), draw(1, 1));
        assert_ne!(draw(1, 0), draw(2, 0));
    }

    /// Chi-square goodness of fit on ranks 1..=99 plus a tail bin, for several exponents.
    #[test]
    fn rank_frequencies_match_the_pmf() {
        for &(n, s) in &[(10_000u64, 1.05), (10_000, 1.0), (1_000, 0.8), (200, 1.5)] {
            let z = Zipf::new(n, s).expect("valid");
            let draws = 1_000_000u64;
            let bins = 100usize; // ranks 1..=99 and one tail bin
            let mut counts = vec![0u64; bins];
            let mut g = SplitMix64::stream(42, 0);
            for _ in 0..draws {
                let k = z.sample(&mut g);
                assert!((1..=n).contains(&k));
                counts[(k as usize).min(bins) - 1] += 1;
            }
            let norm: f64 = (1..=n).map(|i| (i as f64).powf(-s)).sum();
            let mut chi2 = 0.0;
            let mut head = 0.0;
            for (i, &c) in counts.iter().enumerate().take(bins - 1) {
                let p = ((i + 1) as f64).powf(-s) / norm;
                head += p;
                let e = p * draws as f64;
                chi2 += (c as f64 - e).powi(2) / e;
            }
            let e_tail = (1.0 - head) * draws as f64;
            chi2 += (counts[bins - 1] as f64 - e_tail).powi(2) / e_tail;
            // 99 degrees of freedom: the 0.999 quantile is ~148.2.
            assert!(chi2 < 148.2, "n={n} s={s}: chi2 {chi2}");
            // The hottest rank, to a tight relative tolerance.
            let p1 = z.pmf(1);
            let f1 = counts[0] as f64 / draws as f64;
            assert!((f1 - p1).abs() / p1 < 0.01, "n={n} s={s}: p1 {p1} f1 {f1}");
        }
    }
}
