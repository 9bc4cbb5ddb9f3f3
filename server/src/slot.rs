//! Id → slot hashing, fixed by DESIGN.md so every client routes the same way.

/// Default number of slots in a cluster.
pub const DEFAULT_NUM_SLOTS: u32 = 4096;

/// SplitMix64 finalizer of DESIGN.md: `slot(id) = splitmix64(id) mod num_slots`.
#[inline]
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The slot an id belongs to.
#[inline]
pub fn slot_of(id: u64, num_slots: u32) -> u32 {
    (splitmix64(id) % num_slots as u64) as u32
}

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
