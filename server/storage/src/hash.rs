//! DESIGN.md's routing hash, the same for servers and every client: `slot(id) =
//! splitmix64(id) mod num_slots`.
//!
//! strata-proto compiles this file as its `routing` module, so clients route with these very
//! functions without depending on the storage crate.

/// SplitMix64's increment (the golden-ratio constant).
pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output mixing function, without the increment (WORKLOAD.md's `mix`).
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 finalizer of DESIGN.md: `mix(x + GAMMA)` (wrapping arithmetic).
#[inline]
pub fn splitmix64(x: u64) -> u64 {
    mix(x.wrapping_add(GAMMA))
}

/// The slot an id belongs to.
#[inline]
pub fn slot_of(id: u64, num_slots: u32) -> u32 {
    let h = splitmix64(id);
    // The same remainder; a mask costs a cycle where a 64-bit division costs tens, and it
    // runs for every id of every request on both sides (4096 slots by default).
    if num_slots.is_power_of_two() {
        return (h & (num_slots as u64 - 1)) as u32;
    }
    (h % num_slots as u64) as u32
}

/// The routing key of a dense tensor: FNV-1a of its name. The tensor is served by the
/// node that owns `slot_of(dense_key(name))`, and moves with that slot.
pub fn dense_key(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}
