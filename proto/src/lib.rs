//! Generated gRPC code for strata's wire API (package `strata.v1`).
//!
//! Payload fields (`ids`, `values`, `grads`) are `bytes::Bytes`: packed little-endian.
//!
//! - [`v1`]: the generated messages, clients and servers.
//! - [`routing`]: the slot hash every client routes with.
//! - [`transport`]: HTTP/2 settings, message limits, status metadata keys and the endpoint
//!   builder, shared by servers and clients.
//! - [`wire`]: the hand-framed codec of the row payload methods.

/// The `strata.v1` package: messages, clients and servers.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("strata.v1");
}

/// Encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/strata_descriptor.bin"));

/// DESIGN.md's routing hash, shared by servers and every client: `slot(id) = splitmix64(id)
/// mod num_slots`.
pub mod routing {
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
}

pub mod transport;
pub mod wire;

#[cfg(test)]
mod tests {
    use super::routing::{slot_of, splitmix64};

    #[test]
    fn slot_of_is_the_remainder_for_every_slot_count() {
        for num_slots in [1u32, 2, 3, 7, 1000, 4096, 4097, 65_536, u32::MAX] {
            for id in (0..2000u64).chain([u64::MAX - 1, u64::MAX, 1 << 40]) {
                let expected = (splitmix64(id) % u64::from(num_slots)) as u32;
                assert_eq!(
                    slot_of(id, num_slots),
                    expected,
                    "id {id} of {num_slots} slots"
                );
            }
        }
    }
}
