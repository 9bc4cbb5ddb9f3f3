//! The topology objective: move whole shards nearer the trainers that read and write them.
//!
//! Pure and deterministic: no I/O, no clock, no randomness; the same input gives the same
//! plan, and planning again on the layout a plan reaches gives no moves.
//!
//! **Objective.** The cost of a layout is Σ over shards and client locations of
//! `topology.cost(client, node) × (pull + push bytes/s)`: bytes that cross an outer level
//! cost more. Traffic from unlabelled clients (a location with no label of the topology's
//! levels) cannot be placed near anything: it counts in the load of the node that serves it
//! and not in the cost.
//!
//! **Constraints.** Current slot ranges stay; shards on non-accepting nodes stay and nothing
//! moves to one. A node never receives a shard past its memory budget. Two loads per
//! accepting node are bounded: *bytes* (bytes held per unit of budget, an unlimited budget
//! weighing like the largest finite one, as in [`super::plan_rebalance`]) and *traffic*
//! (bytes/s served, labelled or not). Each has a cap `max_imbalance × mean`, the mean taken
//! over accepting nodes (budget-weighted for bytes). A node may receive a shard when its
//! load after stays within the cap, or, for a shard too hot or too large for that, when its
//! load after is no more than the source's before and the source's after is within the cap
//! (the load moves, no node is newly over the cap and the maximum does not rise). So a plan
//! ends with max/mean within the bound, or no higher than before where the layout already
//! broke it.
//!
//! **Payback.** A move's benefit is the cost per second it removes; its price is the shard's
//! bytes × the cost of the crossing between its old and new node. A move is taken only when
//! `benefit × payback_secs >= price`.
//!
//! **Search.** Nodes are grouped into domains, one per prefix of their location (a zone, a
//! rack within it, a host within that), each keeping its accepting nodes ordered by load.
//! A shard's candidates are the least loaded node with room in each domain of its top client
//! location (by traffic), innermost first, and in the innermost domain of each of its next
//! three; the exact cost decides. When no move helps and the shard is not yet in its top
//! client's innermost domain, it may swap with a shard of a node in the domains of its top
//! two clients, if the pair's benefit pays for both moves. A pass finds every shard's best action, then takes them in order of benefit
//! per byte moved (rechecking each, else searching again); passes repeat until one changes
//! nothing, so the result is a fixed point of the same search and planning again finds
//! nothing to do. A pass costs O(S × c × L × (log N + k)) for S shards, c client locations
//! tried, L levels, N nodes and k shards a node.
//!
//! Rooms: `input` (traffic onto shards, interned locations), `state` (the layout under
//! construction, its costs and figures), `search` (the load rule, moves, swaps, passes).

use serde::Serialize;

use super::moves::validate;
use super::{Plan, PlanError, PlanNode, ShardLoad};
use crate::topology::{Location, Topology};
use state::State;

mod input;
mod search;
mod state;
#[cfg(test)]
mod tests;

/// Passes at most (each changes the layout or ends the plan).
const MAX_PASSES: usize = 64;

/// A node a topology plan may use, with its location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopoNode {
    /// The node as every plan sees it.
    pub node: PlanNode,
    /// Where it is.
    pub location: Location,
}

/// Traffic to the shard with one slot range from clients at one location.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardTraffic {
    /// First slot.
    pub slot_start: u32,
    /// One past the last slot.
    pub slot_end: u32,
    /// The clients' location; empty (or without a label of the topology's levels):
    /// unlabelled clients.
    pub location: Location,
    /// Bytes per second the clients pull.
    pub pull_bytes_per_s: f64,
    /// Bytes per second the clients push.
    pub push_bytes_per_s: f64,
}

/// The bounds of a topology plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopologyParams {
    /// Bound on max/mean of each load over accepting nodes (>= 1).
    pub max_imbalance: f64,
    /// Seconds within which a move's benefit must pay for its bytes (>= 0).
    pub payback_secs: f64,
}

impl Default for TopologyParams {
    /// `max_imbalance` 1.5, `payback_secs` 600.
    fn default() -> Self {
        Self {
            max_imbalance: 1.5,
            payback_secs: 600.0,
        }
    }
}

/// A topology plan: the plan the runner executes, and what it is predicted to change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopologyPlan {
    /// The plan (kind `Rebalance`: the current ranges stay); its moves are in slot order.
    pub plan: Plan,
    /// The shards it moves, by benefit per byte moved (best first).
    pub ranked: Vec<RankedMove>,
    /// Traffic and load before and after.
    pub predicted: Predicted,
}

/// One whole-shard move of a topology plan with its benefit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedMove {
    /// First slot.
    pub slot_start: u32,
    /// One past the last slot.
    pub slot_end: u32,
    /// Node that holds the shard now.
    pub from: String,
    /// Node that will hold it.
    pub to: String,
    /// Bytes moved.
    pub bytes: u64,
    /// Cost per second it removes (negative for a shard a swap displaces: its partner
    /// gains more).
    pub benefit_per_s: f64,
}

/// Predicted figures before and after a plan.
///
/// Cross-rack traffic is labelled traffic whose client and node differ at the rack level
/// (the level named `rack`, else the second to last) or an outer one; cross-zone, at the
/// zone level (named `zone`, else the outermost). Loads are max/mean over accepting nodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Predicted {
    /// Labelled bytes/s crossing racks.
    pub cross_rack_bytes_per_s: BeforeAfter,
    /// Labelled bytes/s crossing zones.
    pub cross_zone_bytes_per_s: BeforeAfter,
    /// The larger of the two loads' max/mean.
    pub max_over_mean_load: BeforeAfter,
    /// Bytes held per unit of budget, max/mean.
    pub max_over_mean_bytes: BeforeAfter,
    /// Traffic served, max/mean.
    pub max_over_mean_traffic: BeforeAfter,
    /// The objective: Σ cost × bytes/s.
    pub cost: BeforeAfter,
}

/// A figure before and after a plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BeforeAfter {
    /// Now.
    pub before: f64,
    /// After the plan.
    pub after: f64,
}

/// Plans moves that lower the cost of trainer↔shard traffic (module doc: the model).
pub fn plan_topology(
    current: &[ShardLoad],
    nodes: &[TopoNode],
    traffic: &[ShardTraffic],
    topology: &Topology,
    params: &TopologyParams,
) -> Result<TopologyPlan, PlanError> {
    check_params(params)?;
    validate(current, None)?;
    let mut state = State::new(current, nodes, traffic, topology, params)?;
    let before = state.figures();
    for _ in 0..MAX_PASSES {
        if state.pass() == 0 {
            break;
        }
    }
    let after = state.figures();
    Ok(state.finish(current, before, after))
}

/// Refuses bounds that are not finite or out of range.
fn check_params(params: &TopologyParams) -> Result<(), PlanError> {
    let bad = |name: &'static str, value: f64| PlanError::BadParam {
        name,
        value: value.to_string(),
    };
    if !(params.max_imbalance.is_finite() && params.max_imbalance >= 1.0) {
        return Err(bad("max_imbalance", params.max_imbalance));
    }
    if !(params.payback_secs.is_finite() && params.payback_secs >= 0.0) {
        return Err(bad("payback_secs", params.payback_secs));
    }
    Ok(())
}
