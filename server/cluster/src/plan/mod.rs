//! Resharding plans: the target layout of a resize, rebalance or drain, and the data moves
//! that reach it from the current layout.
//!
//! Pure and deterministic: no I/O, no clock, no randomness. Rows and bytes are assumed to be
//! spread uniformly over the slots of a current shard, so a part of a shard is sized by its
//! slot count. The load of a node is the bytes it holds per unit of memory budget (an
//! unlimited budget weighs like the largest finite one, as in [`super::placement`]); shard
//! counts per unit of budget break ties and balance an empty cluster.

//!
//! The planner's rooms: `balance` (the target layouts of resize, rebalance and drain),
//! `moves` (slot arithmetic: the moves between two layouts, their refinement, pro-rating)
//! `render` (a plan as a table for operators) and `topology` (the topology objective: shards
//! nearer their trainers, within memory budgets and a load bound).

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use self::balance::{plan_drain, plan_rebalance, plan_resize};
pub use self::moves::{moves_between, refine};
pub use self::render::{render, render_predicted};
pub use self::topology::{
    plan_topology, BeforeAfter, Predicted, RankedMove, ShardTraffic, TopoNode, TopologyParams,
    TopologyPlan,
};

mod balance;
mod moves;
mod render;
#[cfg(test)]
mod tests;
mod topology;

/// A slot range and the node that holds (or will hold) it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// First slot.
    pub slot_start: u32,
    /// One past the last slot.
    pub slot_end: u32,
    /// Node id.
    pub node: String,
}

/// A current shard with its size, as reported by its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardLoad {
    /// Its slot range and holder.
    pub placement: Placement,
    /// Rows it holds.
    pub rows: u64,
    /// Bytes it holds.
    pub bytes: u64,
}

/// A node a plan may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanNode {
    /// Node id.
    pub id: String,
    /// Host memory budget in bytes (0 or `u64::MAX`: unlimited).
    pub memory_budget: u64,
    /// Up and not draining: may receive shards.
    pub accepts: bool,
}

/// What the plan is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanKind {
    /// Change the shard count to `count` even slot ranges.
    Resize {
        /// Shards after the resize.
        count: u32,
    },
    /// Keep the shards, even out the load over the accepting nodes.
    Rebalance,
    /// Move every shard off `node`.
    Drain {
        /// The node to empty.
        node: String,
    },
}

/// One data move: rows of a slot range go from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// First slot.
    pub slot_start: u32,
    /// One past the last slot.
    pub slot_end: u32,
    /// Node that holds the slots now.
    pub from: String,
    /// Node that will hold them.
    pub to: String,
    /// Rows moved (pro-rated by slots).
    pub rows: u64,
    /// Bytes moved (pro-rated by slots).
    pub bytes: u64,
}

/// A plan: the target layout and the moves that reach it from the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// What the plan is for.
    pub kind: PlanKind,
    /// The layout after all moves, in slot order.
    pub target: Vec<Placement>,
    /// The moves, in slot order.
    pub moves: Vec<Move>,
    /// Rows moved in all.
    pub rows: u64,
    /// Bytes moved in all.
    pub bytes: u64,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// No accepting node can take the shards that must move.
    #[error(
        "no node can take the shards: every other node is down or draining, or there is none (a dev server has only its own node)"
    )]
    NoNodes,
    /// A node named by the request or the current layout is not in the node list.
    #[error("unknown node {node:?}")]
    UnknownNode {
        /// The node id.
        node: String,
    },
    /// The node list names a node twice.
    #[error("node {node:?} is listed twice")]
    DuplicateNode {
        /// The node id.
        node: String,
    },
    /// A node would hold more bytes than its memory budget.
    #[error("node {node:?} would hold {needed} bytes, over its memory budget of {budget}")]
    NoRoom {
        /// The node id.
        node: String,
        /// Bytes it would hold.
        needed: u64,
        /// Its budget.
        budget: u64,
    },
    /// The shard count is not in `1..=num_slots`.
    #[error("shard count {count} is not in 1..={num_slots}")]
    BadCount {
        /// The count asked for.
        count: u32,
        /// Slots of the cluster.
        num_slots: u32,
    },
    /// A current shard has no slots.
    #[error("current shard {slot_start}..{slot_end} is empty")]
    EmptyShard {
        /// Its first slot.
        slot_start: u32,
        /// One past its last slot.
        slot_end: u32,
    },
    /// Slots that no current shard covers.
    #[error("slots {slot_start}..{slot_end} are in no current shard")]
    Gap {
        /// First uncovered slot.
        slot_start: u32,
        /// One past the last uncovered slot.
        slot_end: u32,
    },
    /// A slot covered twice, or current shards out of slot order.
    #[error("slot {slot} is in more than one current shard (or shards are out of order)")]
    Overlap {
        /// The first slot covered twice.
        slot: u32,
    },
    /// Traffic that is negative or not finite, or has an empty slot range.
    #[error("traffic to slots {slot_start}..{slot_end} is not a finite rate >= 0 over a non-empty range")]
    BadTraffic {
        /// Its first slot.
        slot_start: u32,
        /// One past its last slot.
        slot_end: u32,
    },
    /// A planner parameter out of range.
    #[error("{name} = {value} is out of range")]
    BadParam {
        /// The parameter.
        name: &'static str,
        /// The value given.
        value: String,
    },
    /// A current shard reaches past the slots of the cluster.
    #[error("current shard ends at slot {slot_end}, past the cluster's {num_slots} slots")]
    OutOfRange {
        /// Where it ends.
        slot_end: u32,
        /// Slots of the cluster.
        num_slots: u32,
    },
}
