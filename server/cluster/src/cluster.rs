//! The coordinator's public names at the path the server crate imports them from: the
//! coordinator, its record, what nodes report and the [`NodeControl`] seam, re-exported
//! from the modules that define them.

pub use crate::coordinator::{
    unix_ms, ClusterCheckpointState, ClusterConfig, ClusterCoordinator, HeartbeatReply, NodeLive,
    Registration, RECORD_FILE,
};
pub use crate::node_control::{
    follow_move, MigrateOut, MovePhase, MoveProgress, NodeControl, NodeError, NodeErrorKind,
    NodeResult, MOVE_IDLE_TIMEOUT,
};
pub use crate::plan_record::{MoveRecord, MoveState, PlanRecord, PlanState};
pub use crate::record::{
    known_attempts, new_record, shards_of, Catalog, ClusterCheckpoint, ClusterRecord, NodeRecord,
};
pub use crate::report::{
    GpuIdentity, HeartbeatReport, NodeCheckpoint, ProcessIdentity, RangeLoad, TableUsage,
};

/// Plans and their moves as the coordinator runs them.
pub mod migrations {
    pub use crate::coordinator::{shard_loads, LiveMove, DEFAULT_MAX_PARALLEL};
}
