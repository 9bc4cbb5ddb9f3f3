//! strata-bench: workload W1 (`shared/WORKLOAD.md`) against strata, strata in process, or Redis.
//!
//! Module map:
//! - [`cpu`]: machine-wide CPU time per step over the window, from `/proc/stat`.
//! - [`rng`]: SplitMix64 and W1's random streams.
//! - [`zipf`]: rejection-inversion Zipf ranks and the rank → id bijection.
//! - [`workload`]: id batches, gradient pool, initial rows.
//! - [`target`]: the systems under test behind one trait (strata, inproc, redis).
//! - [`runner`]: trainers, warm-up, measured window, histograms.
//! - [`report`]: the summary, human and JSON.
//! - [`sim`]: the topology planner on a synthetic datacenter (`strata-bench sim`).
//! - [`progress`]: the live progress line on a terminal.
//! - [`timeline`]: steps over wall-clock time, for windows such as a migration.

#[cfg(target_endian = "big")]
compile_error!("W1 payloads are little-endian f32; strata-bench assumes a little-endian host");

pub mod cpu;
pub mod progress;
pub mod report;
pub mod rng;
pub mod runner;
pub mod sim;
pub mod target;
pub mod timeline;
pub mod workload;
pub mod zipf;
