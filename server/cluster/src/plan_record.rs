//! Plans as the cluster record keeps them: the plan, its moves, and where each stands.

use serde::{Deserialize, Serialize};

use crate::plan::{Move, Placement, Plan};

/// Where a plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanState {
    /// Moves are being run.
    Running,
    /// Every move is done; the map has the target layout.
    Done,
    /// Stopped by the operator; moves in flight were rolled back.
    Cancelled,
    /// A move failed and was rolled back; later moves were not started.
    Failed,
}

/// Where one move stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveState {
    /// Not started.
    Pending,
    /// Copying or handing off.
    Running,
    /// Committed: the destination serves the range.
    Done,
    /// Failed and rolled back: the source serves the range.
    Aborted,
    /// Not run, or rolled back, because the plan was cancelled.
    Cancelled,
}

impl MoveState {
    /// The name used in status answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "copying",
            Self::Done => "done",
            Self::Aborted => "aborted",
            Self::Cancelled => "cancelled",
        }
    }
}

impl PlanState {
    /// The name used in status answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }
}

/// One move of a plan, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveRecord {
    /// Move id (`plan-N-mK`).
    pub id: String,
    /// What moves where.
    pub mv: Move,
    /// Where it stands.
    pub state: MoveState,
    /// Times it was started.
    pub attempts: u32,
    /// Why it failed, if it did.
    pub error: String,
}

/// A plan being run (or the last one), as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// Plan id (`plan-N`).
    pub id: String,
    /// The plan as made.
    pub plan: Plan,
    /// The layout when it started (a cancelled plan goes back to it where nothing moved).
    #[serde(default)]
    pub base: Vec<Placement>,
    /// Where it stands.
    pub state: PlanState,
    /// Its moves.
    pub moves: Vec<MoveRecord>,
    /// Throttle of each move, bytes/s (0: none).
    pub max_bytes_per_s: u64,
    /// Moves in flight at once.
    pub max_parallel: u32,
    /// Why it failed, if it did.
    pub error: String,
    /// When it started (ms since the Unix epoch).
    pub started_unix_ms: u64,
    /// When it ended (0 while running).
    #[serde(default)]
    pub finished_unix_ms: u64,
}

/// The id a move's attempt is known by on the nodes.
pub(crate) fn attempt_id(m: &MoveRecord) -> String {
    format!("{}-a{}", m.id, m.attempts)
}
