//! Tests of the planner: resize, rebalance and drain scenarios, and properties over random
//! layouts (every plan reaches its target by its moves).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::moves::share;
use super::*;
use crate::cluster_map::even_slot_ranges;

pub(super) const SLOTS: u32 = 4096;
const BYTES_PER_SLOT: u64 = 1000;
const ROWS_PER_SLOT: u64 = 10;

fn node(id: &str, budget: u64) -> PlanNode {
    PlanNode {
        id: id.into(),
        memory_budget: budget,
        accepts: true,
    }
}

pub(super) fn nodes(ids: &[&str]) -> Vec<PlanNode> {
    ids.iter().map(|id| node(id, 0)).collect()
}

/// `count` even shards over `holders` in turn, with uniform data.
pub(super) fn layout(count: u32, holders: &[&str]) -> Vec<ShardLoad> {
    even_slot_ranges(count, SLOTS)
        .into_iter()
        .enumerate()
        .map(|(i, (slot_start, slot_end))| ShardLoad {
            placement: Placement {
                slot_start,
                slot_end,
                node: holders[i % holders.len()].into(),
            },
            rows: u64::from(slot_end - slot_start) * ROWS_PER_SLOT,
            bytes: u64::from(slot_end - slot_start) * BYTES_PER_SLOT,
        })
        .collect()
}

/// Shards and bytes per node in a plan's target.
fn per_node(plan: &Plan, current: &[ShardLoad]) -> BTreeMap<String, (usize, u64)> {
    let mut out = BTreeMap::new();
    for p in &plan.target {
        let bytes: u64 = current
            .iter()
            .map(|s| share(s, s.bytes, p.slot_start, p.slot_end))
            .sum();
        let e = out.entry(p.node.clone()).or_insert((0, 0));
        *e = (e.0 + 1, e.1 + bytes);
    }
    out
}

/// The holder of each slot after applying `moves` to `current`.
fn apply(current: &[ShardLoad], moves: &[Move]) -> Vec<String> {
    let mut owner = Vec::new();
    for s in current {
        for _ in s.placement.slot_start..s.placement.slot_end {
            owner.push(s.placement.node.clone());
        }
    }
    for m in moves {
        for slot in m.slot_start..m.slot_end {
            assert_eq!(owner[slot as usize], m.from, "move {m:?} from a non-holder");
            owner[slot as usize] = m.to.clone();
        }
    }
    owner
}

fn slot_owners(target: &[Placement]) -> Vec<String> {
    target
        .iter()
        .flat_map(|p| (p.slot_start..p.slot_end).map(|_| p.node.clone()))
        .collect()
}

#[test]
fn split_and_merge_on_one_node_move_nothing() {
    let n = nodes(&["a"]);
    let split = plan_resize(&layout(8, &["a"]), &n, 13, SLOTS).expect("split");
    assert_eq!(
        (split.target.len(), split.moves.len(), split.bytes),
        (13, 0, 0)
    );
    let merge = plan_resize(&layout(13, &["a"]), &n, 5, SLOTS).expect("merge");
    assert_eq!(
        (merge.target.len(), merge.moves.len(), merge.bytes),
        (5, 0, 0)
    );
    assert!(merge.target.iter().all(|p| p.node == "a"));
}

#[test]
fn split_8_to_13_on_3_nodes_balances_counts_and_bytes() {
    let current = layout(8, &["a", "b", "c"]);
    let plan = plan_resize(&current, &nodes(&["a", "b", "c"]), 13, SLOTS).expect("plan");
    let loads = per_node(&plan, &current);
    let mut counts: Vec<usize> = loads.values().map(|l| l.0).collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![4, 4, 5], "{loads:?}");
    let shard = u64::from(SLOTS.div_ceil(13)) * BYTES_PER_SLOT;
    let even = u64::from(SLOTS) * BYTES_PER_SLOT / 3;
    assert!(
        loads.values().all(|l| l.1.abs_diff(even) <= shard),
        "{loads:?}"
    );
    assert_eq!(slot_owners(&plan.target), apply(&current, &plan.moves));
}

#[test]
fn empty_cluster_balances_by_count() {
    let mut current = layout(4, &["a"]);
    current.iter_mut().for_each(|s| (s.rows, s.bytes) = (0, 0));
    let plan = plan_resize(&current, &nodes(&["a", "b", "c"]), 9, SLOTS).expect("plan");
    let counts: Vec<usize> = per_node(&plan, &current).values().map(|l| l.0).collect();
    assert_eq!(counts, vec![3, 3, 3]);
    assert_eq!(plan.bytes, 0);
}

#[test]
fn drain_moves_exactly_the_drained_nodes_shards() {
    let current = layout(12, &["a", "b", "c"]);
    let plan = plan_drain(&current, &nodes(&["a", "b", "c"]), "b").expect("plan");
    let drained: Vec<&ShardLoad> = current.iter().filter(|s| s.placement.node == "b").collect();
    assert_eq!(plan.moves.len(), drained.len());
    for (m, s) in plan.moves.iter().zip(&drained) {
        assert_eq!(
            (m.from.as_str(), m.slot_start),
            ("b", s.placement.slot_start)
        );
        assert_ne!(m.to, "b");
    }
    assert!(plan.target.iter().all(|p| p.node != "b"));
    let loads = per_node(&plan, &current);
    assert_eq!((loads["a"].0, loads["c"].0), (6, 6));
}

#[test]
fn drain_errors() {
    let current = layout(4, &["a", "b"]);
    let n = nodes(&["a", "b"]);
    assert_eq!(
        plan_drain(&current, &n, "x"),
        Err(PlanError::UnknownNode { node: "x".into() })
    );
    assert_eq!(
        plan_drain(&current, &n[..1], "a"),
        Err(PlanError::UnknownNode { node: "b".into() })
    );
    let mut closed = n.clone();
    closed[1].accepts = false;
    assert_eq!(plan_drain(&current, &closed, "a"), Err(PlanError::NoNodes));
}

#[test]
fn rebalance_gives_a_new_empty_node_its_share() {
    let current = layout(12, &["a", "b"]);
    let plan = plan_rebalance(&current, &nodes(&["a", "b", "c"])).expect("plan");
    let loads = per_node(&plan, &current);
    assert_eq!(
        (loads["a"].0, loads["b"].0, loads["c"].0),
        (4, 4, 4),
        "{loads:?}"
    );
    assert!(plan.moves.iter().all(|m| m.to == "c"));
    let shard = u64::from(SLOTS.div_ceil(12)) * BYTES_PER_SLOT;
    assert!(plan.bytes.abs_diff(u64::from(SLOTS) * BYTES_PER_SLOT / 3) < shard);
}

#[test]
fn balanced_layout_gives_no_moves() {
    for (count, ids) in [
        (8, &["a", "b", "c"][..]),
        (13, &["a", "b", "c"]),
        (12, &["a", "b"]),
    ] {
        let plan = plan_rebalance(&layout(count, ids), &nodes(ids)).expect("plan");
        assert!(plan.moves.is_empty(), "{count} shards: {:?}", plan.moves);
    }
}

#[test]
fn non_accepting_nodes_receive_nothing_and_keep_their_shards() {
    let current = layout(12, &["a", "b"]);
    let mut n = nodes(&["a", "b", "c"]);
    n[2].accepts = false;
    let plan = plan_rebalance(&current, &n).expect("plan");
    assert!(plan.moves.is_empty());
    n[1].accepts = false;
    let plan = plan_rebalance(&current, &n).expect("plan");
    assert!(plan.moves.is_empty(), "b is closed: its shards stay");
}

#[test]
fn weights_follow_budgets() {
    let current = layout(12, &["a"]);
    let n = [node("a", 3 << 30), node("b", 1 << 30)];
    let loads = per_node(&plan_rebalance(&current, &n).expect("plan"), &current);
    assert_eq!((loads["a"].0, loads["b"].0), (9, 3));
}

#[test]
fn no_room() {
    let current = layout(4, &["a", "b"]);
    let total = u64::from(SLOTS) * BYTES_PER_SLOT;
    let n = [node("a", total), node("b", total / 4)];
    assert!(matches!(
        plan_drain(&current, &n, "a"),
        Err(PlanError::NoRoom { node, budget, .. }) if node == "b" && budget == total / 4
    ));
    let n = [node("a", total / 4)];
    assert!(matches!(
        plan_resize(&layout(4, &["a"]), &n, 8, SLOTS),
        Err(PlanError::NoRoom { needed, .. }) if needed == total
    ));
}

#[test]
fn invalid_inputs() {
    let n = nodes(&["a"]);
    let current = layout(4, &["a"]);
    assert_eq!(
        plan_resize(&current, &n, 0, SLOTS),
        Err(PlanError::BadCount {
            count: 0,
            num_slots: SLOTS
        })
    );
    assert!(matches!(
        plan_resize(&current, &n, SLOTS + 1, SLOTS),
        Err(PlanError::BadCount { .. })
    ));
    assert_eq!(
        plan_resize(&current[..3], &n, 4, SLOTS),
        Err(PlanError::Gap {
            slot_start: 3072,
            slot_end: SLOTS
        })
    );
    let swapped = vec![current[1].clone(), current[0].clone()];
    assert_eq!(
        plan_rebalance(&swapped, &n),
        Err(PlanError::Gap {
            slot_start: 0,
            slot_end: 1024
        })
    );
    let overlap = vec![current[0].clone(), current[0].clone()];
    assert_eq!(
        plan_rebalance(&overlap, &n),
        Err(PlanError::Overlap { slot: 0 })
    );
    assert_eq!(plan_rebalance(&current, &[]), Err(PlanError::NoNodes));
    let twice = nodes(&["a", "a"]);
    assert_eq!(
        plan_rebalance(&current, &twice),
        Err(PlanError::DuplicateNode { node: "a".into() })
    );
}

#[test]
fn same_input_same_plan_and_json_round_trip() {
    let current = layout(8, &["c", "a", "b"]);
    let n = nodes(&["b", "c", "a", "d"]);
    let plan = plan_resize(&current, &n, 13, SLOTS).expect("plan");
    let mut shuffled = n.clone();
    shuffled.reverse();
    assert_eq!(
        plan,
        plan_resize(&current, &shuffled, 13, SLOTS).expect("plan")
    );
    let json = serde_json::to_string(&plan).expect("json");
    assert!(
        json.contains(r#""kind":{"kind":"resize","count":13}"#),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<Plan>(&json).expect("parse"), plan);
    let drain = plan_drain(&current, &n, "a").expect("plan");
    let json = serde_json::to_string(&drain).expect("json");
    assert_eq!(serde_json::from_str::<Plan>(&json).expect("parse"), drain);
}

/// A random valid layout: cut points, holders among 4 nodes, sizes.
fn arb_layout() -> impl Strategy<Value = (Vec<ShardLoad>, Vec<PlanNode>, u32)> {
    (
        prop::collection::btree_set(1u32..SLOTS, 0..12),
        prop::collection::vec((0usize..4, 0u64..1 << 40, 0u64..1 << 20), 12),
        prop::collection::vec(any::<bool>(), 4),
        1u32..40,
    )
        .prop_map(|(cuts, sizes, accepts, count)| {
            let ids = ["n0", "n1", "n2", "n3"];
            let bounds: Vec<u32> = [0].into_iter().chain(cuts).chain([SLOTS]).collect();
            let current = bounds
                .windows(2)
                .zip(&sizes)
                .map(|(w, &(holder, bytes, rows))| ShardLoad {
                    placement: Placement {
                        slot_start: w[0],
                        slot_end: w[1],
                        node: ids[holder].into(),
                    },
                    rows,
                    bytes,
                })
                .collect();
            let mut n: Vec<PlanNode> = ids.iter().map(|id| node(id, 0)).collect();
            n.iter_mut().zip(accepts).for_each(|(n, a)| n.accepts = a);
            n[0].accepts = true;
            (current, n, count)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn plans_reach_their_target((current, n, count) in arb_layout()) {
        let plans = [
            plan_resize(&current, &n, count, SLOTS),
            plan_rebalance(&current, &n),
            plan_drain(&current, &n, "n1"),
        ];
        let closed: Vec<&str> = n.iter().filter(|n| !n.accepts).map(|n| n.id.as_str()).collect();
        for plan in plans {
            let plan = plan.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(slot_owners(&plan.target), apply(&current, &plan.moves));
            prop_assert!(plan.moves.iter().all(|m| !closed.contains(&m.to.as_str())));
            prop_assert!(plan.moves.windows(2).all(|w| w[0].slot_end <= w[1].slot_start));
            prop_assert_eq!(plan.bytes, plan.moves.iter().map(|m| m.bytes).sum::<u64>());
            let pieces = refine(
                &current.iter().map(|s| s.placement.clone()).collect::<Vec<_>>(),
                &plan.target,
            );
            let covered: Vec<u32> = pieces.iter().flat_map(|p| p.slot_start..p.slot_end).collect();
            prop_assert_eq!(covered, (0..SLOTS).collect::<Vec<_>>());
            let all = moves_between(&current, &plan.target);
            prop_assert_eq!(&all, &plan.moves);
        }
        let total: u64 = current.iter().map(|s| s.bytes).sum();
        let everywhere = [Placement { slot_start: 0, slot_end: SLOTS, node: "elsewhere".into() }];
        let moved: u64 = moves_between(&current, &everywhere).iter().map(|m| m.bytes).sum();
        prop_assert_eq!(moved, total);
    }
}
