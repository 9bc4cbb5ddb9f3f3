//! strata server library.
//!
//! Module map:
//! - [`slot`]: id → slot hashing (DESIGN.md's splitmix64).
//! - [`spec`]: table and dense-tensor specifications.
//! - [`init`]: deterministic row initializers.
//! - [`optimizer`]: server-side optimizers (SGD, Adagrad, Adam, FTRL).
//! - [`storage`]: memory tiers behind one trait (host arena tier).
//! - [`engine`]: the node engine: tables, dense tensors, validation, snapshots.
//! - [`checkpoint`]: consistent on-disk snapshots with manifest and checksums.
//! - [`coordinator`]: cluster map, catalog (metadata store), checkpoint orchestration.
//! - [`service`]: the thin gRPC layer (Parameter, Coordinator), errors → status codes.
//! - [`metrics`]: Prometheus families in an explicit registry.
//! - [`migration`]: live moves of slot ranges between shard servers.
//! - [`transport`]: tuned HTTP/2 settings.
//! - [`dev`]: the all-in-one `strata-server dev` runner.
//! - [`local_nodes`]: the coordinator's calls to shard nodes in its own process.
//! - [`shard_node`]: a shard server's state: engine, checkpoints, node id, applied map.
//! - [`roles`]: the `coordinator` and `shard` process runners.
//! - [`size`]: human byte sizes on the command line.
//! - [`args`]: durations and labels on the command line.
//! - [`allocator`]: glibc allocator settings for the binaries.

#[cfg(target_endian = "big")]
compile_error!("strata's packed payloads assume a little-endian host");

pub mod allocator;
pub mod args;
pub mod checkpoint;
pub mod coordinator;
pub mod dev;
pub mod engine;
pub mod init;
pub mod local_nodes;
pub mod metrics;
mod metrics_http;
pub mod migration;
pub mod optimizer;
pub mod roles;
pub mod service;
pub mod shard_node;
pub mod size;
pub mod slot;
pub mod spec;
pub mod storage;
pub mod thread_priority;
pub mod transport;
