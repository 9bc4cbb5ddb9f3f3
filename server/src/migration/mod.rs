//! Live migration of slot ranges between shard servers.
//!
//! The source ([`source`]) streams the rows of a range to the destination ([`destination`])
//! while it keeps serving, records the ids updated meanwhile and re-sends them in rounds,
//! then fences the range (no request is admitted any more), sends the last changes and the
//! dense tensors homed in the range, and reports the hand-off. The coordinator then commits
//! the move in a new map epoch; the source drops its copy when that map arrives. Until the
//! commit the source keeps ownership: any failure before it rolls back (unfence on the
//! source, imported rows dropped on the destination).

pub mod background;
pub mod destination;
mod error;
mod frames;
mod queue_body;
pub mod source;
mod throttle;

pub use error::MigrationError;
pub use throttle::Throttle;

/// Counters of one node's migrations, for `/metrics`.
#[derive(Debug, Default)]
pub struct MigrationCounters {
    /// Bytes of rows sent to destinations.
    pub bytes_out: std::sync::atomic::AtomicU64,
    /// Bytes of rows received from sources.
    pub bytes_in: std::sync::atomic::AtomicU64,
    /// Rows sent.
    pub rows_out: std::sync::atomic::AtomicU64,
    /// Rows received.
    pub rows_in: std::sync::atomic::AtomicU64,
    /// Migrations under way here (either side).
    pub active: std::sync::atomic::AtomicI64,
    /// Moves this node sends: id → (bytes sent, bytes of the range at the start).
    pub progress: parking_lot::Mutex<std::collections::HashMap<String, (u64, u64)>>,
}
