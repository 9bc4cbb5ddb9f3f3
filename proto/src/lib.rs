//! Generated gRPC code for strata's wire API (package `strata.v1`).
//!
//! Payload fields (`ids`, `values`, `grads`) are `bytes::Bytes`: packed little-endian.
//!
//! - [`v1`]: the generated messages, clients and servers.
//! - [`routing`]: the slot hash every client routes with.
//! - [`codec`]: the services' protobuf codec (undecodable messages are `INVALID_ARGUMENT`).
//! - [`transport`]: HTTP/2 settings, message limits, status metadata keys and the endpoint
//!   builder, shared by servers and clients.
//! - [`tls`]: TLS of every connection (rustls, aws-lc-rs): PEM files that reload, the
//!   client connector, the server config.
//! - [`wire`]: the hand-framed codec of the row payload methods.
//! - [`status_json`]: the JSON form of the `Status` reply (`strata status -o json`, a
//!   server's `/api/status`).
//! - [`build_info`]: what a binary was built from (version, commit, dirty tree, profile),
//!   shared by every binary.
//! - `fuzz_entry` (hidden): the body of the `wire_decode` fuzz target, shared with its tests.

/// The `strata.v1` package: messages, clients and servers.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("strata.v1");
}

/// Encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/strata_descriptor.bin"));

/// DESIGN.md's routing hash, shared by servers and every client (one source file, owned by
/// the storage crate that hashes ids to slots).
#[path = "../../server/storage/src/hash.rs"]
pub mod routing;

pub mod build_info;
pub mod codec;
pub mod status_json;
pub mod tls;
pub mod transport;
pub mod wire;

#[doc(hidden)]
pub mod fuzz_entry;

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
