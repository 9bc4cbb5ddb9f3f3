//! Id → slot hashing, fixed by DESIGN.md so every client routes the same way.

/// Default number of slots in a cluster.
pub const DEFAULT_NUM_SLOTS: u32 = 4096;

pub use crate::hash::{slot_of, splitmix64};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_reference_values() {
        // Reference: the first outputs of SplitMix64 seeded with 0 are mix(k * golden).
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(slot_of(0, 4096), (0xE220_A839_7B1D_CDAFu64 % 4096) as u32);
    }
}
