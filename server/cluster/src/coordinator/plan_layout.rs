//! Plans against the current layout: the planner's inputs taken from the record and the
//! nodes' reports, the check that a plan still fits, and the pieces and merges of the
//! shards while a plan runs. Pure functions, apart from the coordinator's two entry points.

use std::collections::BTreeMap;

use super::{ClusterCoordinator, NodeLive};
use crate::cluster_map::ShardEntry;
use crate::plan::{
    moves_between, plan_drain, plan_rebalance, plan_resize, Move, Placement, Plan, PlanNode,
    ShardLoad,
};
use crate::plan::{plan_topology, ShardTraffic, TopoNode, TopologyParams, TopologyPlan};
use crate::record::{address_of, shards_of, ClusterRecord};
use crate::topology::Location;
use crate::traffic::traffic_by_shard;
use crate::CoordinatorError;

impl ClusterCoordinator {
    /// A plan to resize to `count` shards (moves only what must move).
    pub fn plan_resize(&self, count: u32) -> Result<Plan, CoordinatorError> {
        let guard = self.state.lock();
        let (loads, nodes) = plan_inputs(&guard.0, &guard.1);
        Ok(plan_resize(&loads, &nodes, count, guard.0.num_slots)?)
    }

    /// A plan that moves shards nearer the trainers that use them (the topology objective),
    /// from the nodes' labels and their reported traffic.
    pub fn plan_by_topology(
        &self,
        params: &TopologyParams,
    ) -> Result<TopologyPlan, CoordinatorError> {
        let guard = self.state.lock();
        let (record, live) = &*guard;
        let (loads, nodes) = plan_inputs(record, live);
        let topology = &self.config.topology;
        let nodes: Vec<TopoNode> = nodes
            .into_iter()
            .map(|node| {
                let labels = record
                    .nodes
                    .iter()
                    .find(|n| n.id == node.id)
                    .map(|n| n.labels.clone())
                    .unwrap_or_default();
                TopoNode {
                    location: topology.locate(&labels),
                    node,
                }
            })
            .collect();
        let traffic = shard_traffic(&record.shards, live);
        Ok(plan_topology(&loads, &nodes, &traffic, topology, params)?)
    }

    /// A plan to even out bytes per memory budget, or to drain `drain` when given.
    pub fn plan_rebalance(&self, drain: Option<&str>) -> Result<Plan, CoordinatorError> {
        let guard = self.state.lock();
        let (loads, nodes) = plan_inputs(&guard.0, &guard.1);
        Ok(match drain {
            Some(node) => plan_drain(&loads, &nodes, node)?,
            None => plan_rebalance(&loads, &nodes)?,
        })
    }
}

/// The reported traffic per current shard and client location, summed over tables; a
/// location that does not parse as labels counts as unlabelled.
fn shard_traffic(shards: &[ShardEntry], live: &BTreeMap<String, NodeLive>) -> Vec<ShardTraffic> {
    let mut sums: BTreeMap<(u32, u32, String), [f64; 2]> = BTreeMap::new();
    for row in traffic_by_shard(shards, live) {
        let sum = sums
            .entry((row.slot_start, row.slot_end, row.location))
            .or_default();
        sum[0] += row.pull_bytes_per_s;
        sum[1] += row.push_bytes_per_s;
    }
    sums.into_iter()
        .map(
            |((slot_start, slot_end, location), [pull, push])| ShardTraffic {
                slot_start,
                slot_end,
                location: Location::parse(&location).unwrap_or_default(),
                pull_bytes_per_s: pull,
                push_bytes_per_s: push,
            },
        )
        .collect()
}

/// The slot range and primary of a shard.
pub(crate) fn placement_of(s: &ShardEntry) -> Placement {
    Placement {
        slot_start: s.slot_start,
        slot_end: s.slot_end,
        node: s.primary.clone(),
    }
}

/// Shard entries for a layout, numbered in slot order.
pub(crate) fn shards_from(layout: &[Placement]) -> Vec<ShardEntry> {
    layout
        .iter()
        .enumerate()
        .map(|(i, p)| ShardEntry {
            id: i as u32,
            slot_start: p.slot_start,
            slot_end: p.slot_end,
            primary: p.node.clone(),
            replicas: Vec::new(),
        })
        .collect()
}

/// Adjacent shards on the same node that lie in the same range of `target`, merged.
pub(crate) fn merge_within(shards: &[ShardEntry], target: &[Placement]) -> Vec<ShardEntry> {
    let target_of = |slot: u32| {
        target
            .iter()
            .position(|t| t.slot_start <= slot && slot < t.slot_end)
    };
    let mut merged: Vec<Placement> = Vec::new();
    for s in shards {
        match merged.last_mut() {
            Some(last)
                if last.node == s.primary
                    && last.slot_end == s.slot_start
                    && target_of(last.slot_start) == target_of(s.slot_start) =>
            {
                last.slot_end = s.slot_end;
            }
            _ => merged.push(placement_of(s)),
        }
    }
    shards_from(&merged)
}

/// The current shards with their sizes (pro-rated from the nodes' range reports) and the
/// nodes a plan may use.
fn plan_inputs(
    record: &ClusterRecord,
    live: &BTreeMap<String, NodeLive>,
) -> (Vec<ShardLoad>, Vec<PlanNode>) {
    let nodes = record
        .nodes
        .iter()
        .map(|n| PlanNode {
            id: n.id.clone(),
            memory_budget: n.memory_budget,
            accepts: !n.draining && live.get(&n.id).is_some_and(|l| l.up),
        })
        .collect();
    (shard_loads(record, live), nodes)
}

/// The current shards with their rows and bytes, pro-rated from the nodes' range reports.
pub fn shard_loads(record: &ClusterRecord, live: &BTreeMap<String, NodeLive>) -> Vec<ShardLoad> {
    record
        .shards
        .iter()
        .map(|s| {
            let (mut rows, mut bytes) = (0u64, 0u64);
            for r in live.get(&s.primary).map_or(&[][..], |l| &l.ranges[..]) {
                let lo = r.start.max(s.slot_start);
                let hi = r.end.min(s.slot_end);
                if lo >= hi || r.end <= r.start {
                    continue;
                }
                let part =
                    |v: u64| (v as u128 * (hi - lo) as u128 / (r.end - r.start) as u128) as u64;
                rows += part(r.rows);
                bytes += part(r.bytes);
            }
            ShardLoad {
                placement: placement_of(s),
                rows,
                bytes,
            }
        })
        .collect()
}

/// Refuses a plan whose moves are not the ones the current layout needs, or whose nodes
/// are not up.
pub(crate) fn check_plan_fits(
    record: &ClusterRecord,
    live: &BTreeMap<String, NodeLive>,
    plan: &Plan,
) -> Result<(), CoordinatorError> {
    let mut next_slot = 0;
    for t in &plan.target {
        if t.slot_start != next_slot || t.slot_end <= t.slot_start {
            return Err(CoordinatorError::BadPlan(format!(
                "target shards must cover the slots in order; got {}..{} after slot {next_slot}",
                t.slot_start, t.slot_end
            )));
        }
        if !record.nodes.iter().any(|n| n.id == t.node) {
            return Err(CoordinatorError::BadPlan(format!(
                "unknown node {:?}",
                t.node
            )));
        }
        next_slot = t.slot_end;
    }
    if next_slot != record.num_slots {
        return Err(CoordinatorError::BadPlan(format!(
            "target shards cover {next_slot} of {} slots",
            record.num_slots
        )));
    }
    let loads = shard_loads(record, live);
    let key = |m: &Move| (m.slot_start, m.slot_end, m.from.clone(), m.to.clone());
    let needed: Vec<_> = moves_between(&loads, &plan.target)
        .iter()
        .map(key)
        .collect();
    let planned: Vec<_> = plan.moves.iter().map(key).collect();
    if needed != planned {
        return Err(CoordinatorError::StalePlan(format!(
            "the layout needs {} moves, the plan has {}",
            needed.len(),
            planned.len()
        )));
    }
    for m in &plan.moves {
        for node in [&m.from, &m.to] {
            if !live.get(node).is_some_and(|l| l.up) {
                let address = address_of(record, node);
                return Err(CoordinatorError::NodeDown {
                    node: node.clone(),
                    address,
                    shards: shards_of(record, node),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: u32, start: u32, end: u32, node: &str) -> ShardEntry {
        ShardEntry {
            id,
            slot_start: start,
            slot_end: end,
            primary: node.into(),
            replicas: Vec::new(),
        }
    }

    fn place(start: u32, end: u32, node: &str) -> Placement {
        Placement {
            slot_start: start,
            slot_end: end,
            node: node.into(),
        }
    }

    #[test]
    fn pieces_merge_only_within_a_target_shard_and_node() {
        let pieces = [
            shard(0, 0, 4, "a"),
            shard(1, 4, 8, "a"),
            shard(2, 8, 12, "b"),
            shard(3, 12, 16, "a"),
        ];
        let target = [place(0, 8, "a"), place(8, 16, "a")];
        let merged = merge_within(&pieces, &target);
        let ranges: Vec<_> = merged
            .iter()
            .map(|s| (s.id, s.slot_start, s.slot_end, s.primary.as_str()))
            .collect();
        assert_eq!(
            ranges,
            vec![(0, 0, 8, "a"), (1, 8, 12, "b"), (2, 12, 16, "a")]
        );
    }
}
