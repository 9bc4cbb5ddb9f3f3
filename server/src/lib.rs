//! strata-server: the network floor — gRPC services, the process roles (`dev`,
//! `coordinator`, `shard`), the migration transport, `/metrics`, and the `strata-server`
//! binary.
//!
//! Rule: handlers translate and delegate. Storage logic lives in strata-storage, node logic
//! in strata-engine, cluster logic in strata-cluster; this crate converts wire messages to
//! their types and back, and wires the floors together.
//!
//! Module map:
//! - [`service`]: the gRPC services (Parameter, Coordinator, ShardControl), wire ↔ domain
//!   conversions, errors → status codes in one place.
//! - [`shard_node`]: a shard node's state: engine, checkpoints, node id, applied map.
//! - [`identity`]: what runs in this process (build, start, effective configuration and
//!   its hash, GPU).
//! - [`data_dir`]: the lock that gives one process a data dir.
//! - [`durable_file`]: small data-dir files written whole (temp file, fsync, rename).
//! - [`incarnation`]: the random id that tells a node's data dir from an empty or foreign one.
//! - [`local_nodes`]: the coordinator's calls to shard nodes in its own process.
//! - [`migration`]: the transport of live moves of slot ranges between shard servers.
//! - [`roles`]: the `coordinator` and `shard` process runners, membership, leading loops,
//!   and shard nodes served in the coordinator's process (`roles::local`: the dev node, the
//!   nodes of an in-process test cluster).
//! - [`etcd`]: the cluster record in etcd and the election of the leading coordinator.
//! - [`dev`]: the all-in-one `strata-server dev` runner (coordinator + one node).
//! - [`metrics`]: Prometheus families in an explicit registry; [`metrics_text`]: the two
//!   text formats of `/metrics` (OpenMetrics, Prometheus 0.0.4); [`process_metrics`]: the
//!   `process_*` series from `/proc/self`; [`cluster_metrics`]: the coordinator's cluster
//!   families.
//! - [`status_page`]: the live status page and `/api/status` on `--http-listen`.
//! - [`transport`]: tuned HTTP/2 settings of the servers.
//! - [`connections`]: the accept path: the cap on open connections, TLS handshakes and the
//!   HTTP/2 handshake deadline.
//! - [`tls`]: the TLS flags of every role, the loopback-only plaintext rule, [`tls::PeerInfo`].
//! - [`size`], [`args`]: byte sizes, durations and labels on the command line.
//! - [`advertise`]: the address a server gives out for itself, never an unspecified one.
//! - [`allocator`]: glibc allocator settings for the binaries.

#[cfg(target_endian = "big")]
compile_error!("strata's packed payloads assume a little-endian host");

pub mod advertise;
pub mod allocator;
pub mod args;
pub mod cluster_metrics;
pub mod connections;
pub mod data_dir;
pub mod dev;
pub mod durable_file;
pub mod etcd;
pub mod identity;
pub mod incarnation;
pub mod local_nodes;
pub mod metrics;
mod metrics_http;
pub mod metrics_text;
pub mod migration;
pub mod process_metrics;
pub mod roles;
pub mod service;
pub mod shard_node;
pub mod size;
pub mod status_page;
pub mod tls;
pub mod transport;
