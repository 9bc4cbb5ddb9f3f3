//! The seam between the coordinator and its shard servers: what it asks of a node, how a
//! move reports its progress, and how a failed call comes back (a kind the coordinator can
//! act on, not text to match). What a node reports of itself is in [`crate::report`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use thiserror::Error;

use super::record::Catalog;
use super::report::{HeartbeatReport, NodeCheckpoint};
use super::ClusterMap;

/// What kind of failure a call to a node met: the classes of outcome the coordinator treats
/// differently (the transport maps its own codes onto them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeErrorKind {
    /// The request was malformed.
    InvalidArgument,
    /// The node does not know what the request named (a checkpoint, a migration).
    NotFound,
    /// The node is in no state to do it (another epoch, a range it does not serve).
    FailedPrecondition,
    /// A memory budget or size limit refused it.
    ResourceExhausted,
    /// The operation stopped part-way (a move aborted, a catalog changed under it).
    Aborted,
    /// The caller gave up on it.
    Cancelled,
    /// No answer within the call's deadline.
    DeadlineExceeded,
    /// The node could not be reached, or is shutting down.
    Unavailable,
    /// Stored data failed verification.
    DataLoss,
    /// An unexpected failure on the node.
    Internal,
}

impl NodeErrorKind {
    /// Whether the same call may succeed when made again unchanged.
    pub fn is_retryable(self) -> bool {
        match self {
            Self::Unavailable | Self::DeadlineExceeded | Self::Aborted => true,
            Self::InvalidArgument
            | Self::NotFound
            | Self::FailedPrecondition
            | Self::ResourceExhausted
            | Self::Cancelled
            | Self::DataLoss
            | Self::Internal => false,
        }
    }
}

/// A failed call to a node.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind:?}: {message}")]
pub struct NodeError {
    /// What kind of failure.
    pub kind: NodeErrorKind,
    /// What the node (or the transport) said.
    pub message: String,
}

impl NodeError {
    /// A failure of `kind` described by `message`.
    pub fn new(kind: NodeErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The answer of a call to a node.
pub type NodeResult<'a, T> = BoxFuture<'a, Result<T, NodeError>>;

/// The phases of a move, as its source reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MovePhase {
    /// Copying the range's rows.
    #[default]
    Copy,
    /// Sending rows updated since the copy, round by round.
    Delta,
    /// Writes to the range are fenced; the last delta is on its way.
    Handoff,
    /// The destination holds every row; the range awaits its commit.
    HandedOff,
}

impl MovePhase {
    /// The phase's name on the wire and in `strata status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Copy => "copy",
            Self::Delta => "delta",
            Self::Handoff => "handoff",
            Self::HandedOff => "handed_off",
        }
    }

    /// The phase of a wire name, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Copy, Self::Delta, Self::Handoff, Self::HandedOff]
            .into_iter()
            .find(|p| p.as_str() == name)
    }

    /// Whether writes to the range are fenced (the hand-off began).
    pub fn is_handing_off(self) -> bool {
        matches!(self, Self::Handoff | Self::HandedOff)
    }
}

/// What the coordinator asks the source of a move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateOut {
    /// Move id (unique per attempt).
    pub id: String,
    /// First slot.
    pub slot_start: u32,
    /// One past the last slot.
    pub slot_end: u32,
    /// The destination's address.
    pub destination: String,
    /// Copy throttle (0: none).
    pub max_bytes_per_s: u64,
}

/// A source's report on a move.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoveProgress {
    /// Where the move is.
    pub phase: MovePhase,
    /// Rows sent so far.
    pub rows: u64,
    /// Bytes sent so far.
    pub bytes: u64,
    /// Rows of the range when the copy started.
    pub rows_total: u64,
    /// Bytes of the range when the copy started.
    pub bytes_total: u64,
    /// Replay rounds so far.
    pub delta_round: u32,
}

/// What the coordinator asks of shard servers, by address: over gRPC for nodes in other
/// processes, by direct calls for a node in the coordinator's own process.
pub trait NodeControl: Send + Sync {
    /// Makes the node hold exactly the catalog's tables and dense tensors.
    fn apply_catalog<'a>(&'a self, address: &'a str, catalog: &'a Catalog) -> NodeResult<'a, ()>;
    /// Makes the node serve the slots the map gives it.
    fn apply_map<'a>(&'a self, address: &'a str, map: &'a ClusterMap) -> NodeResult<'a, ()>;
    /// What the node would say in a heartbeat now (usage, epoch, migrations).
    fn report<'a>(&'a self, address: &'a str) -> NodeResult<'a, HeartbeatReport>;
    /// Checkpoints the node at `epoch`.
    fn checkpoint<'a>(&'a self, address: &'a str, epoch: u64) -> NodeResult<'a, NodeCheckpoint>;
    /// The node's checkpoints, newest first, each verified.
    fn checkpoints<'a>(&'a self, address: &'a str) -> NodeResult<'a, Vec<NodeCheckpoint>>;
    /// Verifies checkpoint `id` on the node (NotFound if it has none such, DataLoss if it
    /// fails verification).
    fn verify_checkpoint<'a>(
        &'a self,
        address: &'a str,
        id: &'a str,
    ) -> NodeResult<'a, NodeCheckpoint>;
    /// Replaces the node's tables and dense tensors with its checkpoint `id`.
    fn restore<'a>(&'a self, address: &'a str, id: &'a str) -> NodeResult<'a, NodeCheckpoint>;
    /// Runs the source side of a move until the range is handed off (`Ok`) or the move
    /// failed; `progress` sees each report; a set `cancel` stops it before the hand-off.
    fn migrate_out<'a>(
        &'a self,
        address: &'a str,
        request: &'a MigrateOut,
        progress: &'a (dyn Fn(MoveProgress) + Send + Sync),
        cancel: &'a AtomicBool,
    ) -> NodeResult<'a, ()>;
    /// Whether the node received move `id` completely and still holds it.
    fn import_complete<'a>(&'a self, address: &'a str, id: &'a str) -> NodeResult<'a, bool>;
    /// Rolls move `id` back on the node (source or destination; idempotent).
    fn abort_migration<'a>(&'a self, address: &'a str, id: &'a str) -> NodeResult<'a, ()>;
}

/// Longest silence of a source during a move (its hand-off is bounded well below this).
pub const MOVE_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often a followed move looks at its cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// Follows a source's reports until the range is handed off: each goes to `progress`; a
/// set `cancel` (dropping `reports` stops the source before its hand-off), `idle` without
/// a report, or reports that end early fail the move.
pub async fn follow_move<S>(
    mut reports: S,
    progress: &(dyn Fn(MoveProgress) + Send + Sync),
    cancel: &AtomicBool,
    idle: Duration,
) -> Result<(), NodeError>
where
    S: Stream<Item = Result<MoveProgress, NodeError>> + Unpin,
{
    let mut last = Instant::now();
    loop {
        let next = tokio::select! {
            next = reports.next() => next,
            () = tokio::time::sleep(CANCEL_POLL) => {
                if cancel.load(Ordering::Acquire) {
                    return Err(NodeError::new(NodeErrorKind::Cancelled, "cancelled"));
                }
                if last.elapsed() > idle {
                    return Err(NodeError::new(
                        NodeErrorKind::DeadlineExceeded,
                        format!("no progress from the source for {idle:?}"),
                    ));
                }
                continue;
            }
        };
        last = Instant::now();
        let Some(report) = next else {
            return Err(NodeError::new(
                NodeErrorKind::Aborted,
                "the source ended without handing the range off",
            ));
        };
        let report = report?;
        let handed_off = report.phase == MovePhase::HandedOff;
        progress(report);
        if handed_off {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_phases_round_trip_through_their_wire_names() {
        for phase in [
            MovePhase::Copy,
            MovePhase::Delta,
            MovePhase::Handoff,
            MovePhase::HandedOff,
        ] {
            assert_eq!(MovePhase::parse(phase.as_str()), Some(phase));
        }
        assert_eq!(MovePhase::parse("copying"), None);
        assert!(MovePhase::HandedOff.is_handing_off() && !MovePhase::Delta.is_handing_off());
    }
}
