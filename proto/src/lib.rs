//! Generated gRPC code for strata's wire API (package `strata.v1`).
//!
//! Payload fields (`ids`, `values`, `grads`) are `bytes::Bytes`: packed little-endian.

#![allow(clippy::all, missing_docs)]

/// The `strata.v1` package: messages, clients and servers.
pub mod v1 {
    tonic::include_proto!("strata.v1");
}

/// Encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/strata_descriptor.bin"));
