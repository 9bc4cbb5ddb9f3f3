//! Admission of missed ids to the GPU tier: always, or after N accesses counted in a
//! count-min sketch (DeepRec's counter filter; TinyLFU-style 4-bit counters with aging).

use super::layout::fmix64;
use super::GpuError;

/// Rows (independent hashes) of the sketch.
const ROWS: usize = 4;
/// 4-bit counters per u64 word.
const PER_WORD: usize = 16;
/// Largest counter value.
pub const MAX_COUNT: u8 = 15;
/// Per-row hash seeds.
const SEEDS: [u64; ROWS] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0x85eb_ca77_c2b2_ae63,
];

/// A count-min sketch of 4 rows of 4-bit saturating counters, halved every `sample_size` adds.
#[derive(Debug, Clone)]
pub struct CountMinSketch {
    words: Vec<u64>,
    counters_per_row: usize,
    additions: u64,
    sample_size: u64,
}

impl CountMinSketch {
    /// A sketch sized for about `expected_keys` distinct ids (rounded up to a power of two).
    pub fn new(expected_keys: usize) -> Self {
        let counters_per_row = expected_keys.max(PER_WORD).next_power_of_two();
        Self {
            words: vec![0; ROWS * counters_per_row / PER_WORD],
            counters_per_row,
            additions: 0,
            sample_size: 10 * counters_per_row as u64,
        }
    }

    /// Counter index (in the whole sketch) of `key` in `row`.
    fn index(&self, key: u64, row: usize) -> usize {
        let h = fmix64(key ^ SEEDS[row]) as usize & (self.counters_per_row - 1);
        row * self.counters_per_row + h
    }

    fn get(&self, idx: usize) -> u8 {
        ((self.words[idx / PER_WORD] >> ((idx % PER_WORD) * 4)) & 0xF) as u8
    }

    /// Counts one access of `key`; ages the sketch when the sample is complete.
    pub fn increment(&mut self, key: u64) {
        for row in 0..ROWS {
            let idx = self.index(key, row);
            if self.get(idx) < MAX_COUNT {
                self.words[idx / PER_WORD] += 1u64 << ((idx % PER_WORD) * 4);
            }
        }
        self.additions += 1;
        if self.additions >= self.sample_size {
            self.age();
        }
    }

    /// Estimated accesses of `key` (never below the true count, up to aging and saturation).
    pub fn estimate(&self, key: u64) -> u8 {
        (0..ROWS)
            .map(|row| self.get(self.index(key, row)))
            .min()
            .unwrap_or(0)
    }

    /// Halves every counter.
    pub fn age(&mut self) {
        for w in self.words.iter_mut() {
            *w = (*w >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
    }
}

/// When a missed id is admitted to the GPU tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionPolicy {
    /// Every miss is admitted.
    Always,
    /// An id is admitted once it was accessed at least this many times (1..=15).
    AfterAccesses(u8),
}

/// Applies an [`AdmissionPolicy`] to a stream of missed ids.
#[derive(Debug, Clone)]
pub struct Admitter {
    policy: AdmissionPolicy,
    sketch: Option<CountMinSketch>,
}

impl Admitter {
    /// An admitter; `expected_keys` sizes the sketch of [`AdmissionPolicy::AfterAccesses`].
    pub fn new(policy: AdmissionPolicy, expected_keys: usize) -> Result<Self, GpuError> {
        let sketch = match policy {
            AdmissionPolicy::Always => None,
            AdmissionPolicy::AfterAccesses(n) if (1..=MAX_COUNT).contains(&n) => {
                Some(CountMinSketch::new(expected_keys))
            }
            AdmissionPolicy::AfterAccesses(n) => {
                return Err(GpuError::InvalidConfig(format!(
                    "admission threshold must be in 1..=15, got {n}"
                )))
            }
        };
        Ok(Self { policy, sketch })
    }

    /// Counts an access of `key` and says whether it is admitted now.
    pub fn access(&mut self, key: u64) -> bool {
        match (&self.policy, self.sketch.as_mut()) {
            (AdmissionPolicy::AfterAccesses(n), Some(s)) => {
                s.increment(key);
                s.estimate(key) >= *n
            }
            _ => true,
        }
    }

    /// The sketch's estimate for `key` (0 without a sketch); usable as an LFU insert score.
    pub fn estimate(&self, key: u64) -> u8 {
        self.sketch.as_ref().map_or(0, |s| s.estimate(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_after_n_accesses() {
        let mut a = Admitter::new(AdmissionPolicy::AfterAccesses(3), 1024).expect("ok");
        assert!(!a.access(42));
        assert!(!a.access(42));
        assert!(a.access(42));
        assert!(!a.access(43));
        assert!(Admitter::new(AdmissionPolicy::AfterAccesses(16), 8).is_err());
        let mut always = Admitter::new(AdmissionPolicy::Always, 0).expect("ok");
        assert!(always.access(1));
    }

    #[test]
    fn counters_saturate_and_age() {
        let mut s = CountMinSketch::new(64);
        for _ in 0..40 {
            s.increment(7);
        }
        assert_eq!(s.estimate(7), MAX_COUNT);
        s.age();
        assert_eq!(s.estimate(7), 7);
        // Automatic aging after sample_size additions keeps counters bounded.
        for k in 0..10_000u64 {
            s.increment(k % 200);
        }
        assert!(s.estimate(7) <= MAX_COUNT);
    }

    #[test]
    fn estimate_never_below_true_count_before_aging() {
        let mut s = CountMinSketch::new(4096);
        for k in 0..500u64 {
            for _ in 0..(k % 5) {
                s.increment(k);
            }
        }
        for k in 0..500u64 {
            assert!(s.estimate(k) as u64 >= k % 5);
        }
    }
}
