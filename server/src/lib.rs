//! strata server library.
//!
//! Module map:
//! - [`slot`]: id → slot hashing (DESIGN.md's splitmix64).
//! - [`spec`]: table and dense-tensor specifications.
//! - [`init`]: deterministic row initializers.
//! - [`optimizer`]: server-side optimizers (SGD, Adagrad, Adam, FTRL).
//! - [`storage`]: memory tiers behind one trait (host arena tier).
//! - [`checkpoint`]: consistent on-disk snapshots with manifest and checksums.

#[cfg(target_endian = "big")]
compile_error!("strata's packed payloads assume a little-endian host");

pub mod checkpoint;
pub mod init;
pub mod optimizer;
pub mod slot;
pub mod spec;
pub mod storage;
