//! Tests of the topology objective: scenarios, and properties over random clusters checked
//! against a reference model written with [`Topology::cost`] (budgets, the load bound,
//! determinism, a fixed point after applying, the objective never rising, payback).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::cluster_map::even_slot_ranges;
use crate::plan::{moves_between, Placement, PlanKind};
use crate::topology::{Location, Topology};

const MIB: u64 = 1 << 20;

fn loc(text: &str) -> Location {
    Location::parse(text).expect("labels")
}

fn topo_node(id: &str, at: &str, budget: u64, accepts: bool) -> TopoNode {
    TopoNode {
        node: PlanNode {
            id: id.into(),
            memory_budget: budget,
            accepts,
        },
        location: loc(at),
    }
}

/// `holders.len()` even shards over `slots` slots, shard i on `holders[i]`, `bytes[i]` each.
fn shards(slots: u32, holders: &[&str], bytes: &[u64]) -> Vec<ShardLoad> {
    even_slot_ranges(holders.len() as u32, slots)
        .into_iter()
        .zip(holders.iter().zip(bytes))
        .map(|((slot_start, slot_end), (node, &bytes))| ShardLoad {
            placement: Placement {
                slot_start,
                slot_end,
                node: (*node).into(),
            },
            rows: bytes / 256,
            bytes,
        })
        .collect()
}

fn flow(shard: &ShardLoad, at: &str, pull: f64, push: f64) -> ShardTraffic {
    ShardTraffic {
        slot_start: shard.placement.slot_start,
        slot_end: shard.placement.slot_end,
        location: loc(at),
        pull_bytes_per_s: pull,
        push_bytes_per_s: push,
    }
}

/// Four nodes in two racks of one zone.
fn two_racks(budget: u64) -> Vec<TopoNode> {
    vec![
        topo_node("a1", "zone=z,rack=a,host=a1", budget, true),
        topo_node("a2", "zone=z,rack=a,host=a2", budget, true),
        topo_node("b1", "zone=z,rack=b,host=b1", budget, true),
        topo_node("b2", "zone=z,rack=b,host=b2", budget, true),
    ]
}

fn plan(
    current: &[ShardLoad],
    nodes: &[TopoNode],
    traffic: &[ShardTraffic],
) -> Result<TopologyPlan, PlanError> {
    plan_topology(
        current,
        nodes,
        traffic,
        &Topology::default(),
        &TopologyParams::default(),
    )
}

#[test]
fn shards_move_to_the_rack_of_their_trainers() {
    // Rack a's trainers read shards 0 and 1, held in rack b; rack b's read 2 and 3, in a.
    let current = shards(64, &["b1", "b2", "a1", "a2"], &[MIB; 4]);
    let traffic = vec![
        flow(&current[0], "zone=z,rack=a", 4e6, 1e6),
        flow(&current[1], "zone=z,rack=a", 4e6, 1e6),
        flow(&current[2], "zone=z,rack=b", 4e6, 1e6),
        flow(&current[3], "zone=z,rack=b", 4e6, 1e6),
    ];
    let p = plan(&current, &two_racks(0), &traffic).expect("plan");
    let racks: Vec<char> = p
        .plan
        .target
        .iter()
        .map(|t| t.node.chars().next().unwrap_or('?'))
        .collect();
    assert_eq!(racks, vec!['a', 'a', 'b', 'b']);
    assert_eq!(p.predicted.cross_rack_bytes_per_s.before, 20e6);
    assert_eq!(p.predicted.cross_rack_bytes_per_s.after, 0.0);
    assert_eq!(p.predicted.cross_zone_bytes_per_s.before, 0.0);
    assert_eq!(p.predicted.cost.before, 4.0 * 20e6);
    assert_eq!(p.predicted.cost.after, 1.0 * 20e6);
    assert_eq!(p.ranked.len(), 4);
    assert_eq!(p.plan.kind, PlanKind::Rebalance);
    // The loads stay even: one shard per node.
    assert_eq!(p.predicted.max_over_mean_load.after, 1.0);
}

#[test]
fn a_move_that_does_not_pay_back_is_not_made() {
    // 1 GiB shard, 1 KB/s of cross-rack traffic: saving 3 KB/s × 600 s < 4 GiB of price.
    let current = shards(64, &["b1", "a1"], &[1 << 30, 1 << 30]);
    let traffic = vec![flow(&current[0], "zone=z,rack=a", 1e3, 0.0)];
    let p = plan(&current, &two_racks(0), &traffic).expect("plan");
    assert!(p.plan.moves.is_empty());
    let p = plan_topology(
        &current,
        &two_racks(0),
        &traffic,
        &Topology::default(),
        &TopologyParams {
            payback_secs: 1e9,
            ..TopologyParams::default()
        },
    )
    .expect("plan");
    assert_eq!(p.plan.moves.len(), 1, "a long horizon pays it back");
}

#[test]
fn the_load_bound_and_budgets_hold_back_moves() {
    // Every shard is read from rack a, but rack a cannot hold them all: budgets allow two
    // shards a node, the bound 1.5 × mean (one a node) allows one.
    let current = shards(64, &["a1", "a2", "b1", "b2"], &[MIB; 4]);
    let traffic: Vec<ShardTraffic> = current
        .iter()
        .map(|s| flow(s, "zone=z,rack=a", 1e6, 0.0))
        .collect();
    let p = plan(&current, &two_racks(2 * MIB), &traffic).expect("plan");
    assert!(p.plan.moves.is_empty(), "{:?}", p.plan.moves);
    let loose = TopologyParams {
        max_imbalance: 2.0,
        ..TopologyParams::default()
    };
    let p = plan_topology(
        &current,
        &two_racks(2 * MIB),
        &traffic,
        &Topology::default(),
        &loose,
    )
    .expect("plan");
    assert!(p.plan.target.iter().all(|t| t.node.starts_with('a')));
    assert_eq!(p.predicted.max_over_mean_load.after, 2.0);
}

#[test]
fn non_accepting_nodes_neither_give_nor_take() {
    let mut nodes = two_racks(0);
    nodes[0].node.accepts = false; // a1
    let current = shards(64, &["b1", "b2", "b1"], &[MIB; 3]);
    let traffic = vec![
        flow(&current[0], "zone=z,rack=a,host=a1", 1e6, 0.0),
        flow(&current[1], "zone=z,rack=a,host=a1", 1e6, 0.0),
    ];
    let p = plan(&current, &nodes, &traffic).expect("plan");
    assert!(p.plan.target.iter().all(|t| t.node != "a1"));
    assert_eq!(p.plan.target[0].node, "a2");
    // A shard on a non-accepting node stays however it is read.
    let current = shards(64, &["a1", "b1"], &[MIB; 2]);
    let traffic = vec![flow(&current[0], "zone=z,rack=b", 1e6, 0.0)];
    let p = plan(&current, &nodes, &traffic).expect("plan");
    assert!(p.plan.moves.is_empty());
}

#[test]
fn unlabelled_traffic_counts_in_load_not_in_cost() {
    let current = shards(64, &["a1", "b1"], &[MIB; 2]);
    let traffic = vec![
        flow(&current[0], "", 5e8, 0.0),
        flow(&current[0], "gpu=a100", 5e8, 0.0),
    ];
    let p = plan(&current, &two_racks(0), &traffic).expect("plan");
    assert!(p.plan.moves.is_empty());
    assert_eq!(p.predicted.cost.before, 0.0);
    // All the traffic on one of four nodes: max/mean 4.
    assert_eq!(p.predicted.max_over_mean_traffic.before, 4.0);
}

#[test]
fn traffic_is_pro_rated_over_the_shards_it_spans() {
    // One entry over both shards' slots: half of it is each shard's.
    let current = shards(64, &["b1", "b2"], &[MIB; 2]);
    let traffic = vec![ShardTraffic {
        slot_start: 0,
        slot_end: 64,
        location: loc("zone=z,rack=a"),
        pull_bytes_per_s: 2e6,
        push_bytes_per_s: 0.0,
    }];
    let p = plan(&current, &two_racks(0), &traffic).expect("plan");
    assert_eq!(p.predicted.cross_rack_bytes_per_s.before, 2e6);
    assert_eq!(p.plan.moves.len(), 2);
}

#[test]
fn bad_input_is_refused() {
    let current = shards(64, &["a1"], &[MIB]);
    let nan = vec![flow(&current[0], "rack=a", f64::NAN, 0.0)];
    assert!(matches!(
        plan(&current, &two_racks(0), &nan),
        Err(PlanError::BadTraffic { .. })
    ));
    let negative = vec![flow(&current[0], "rack=a", 0.0, -1.0)];
    assert!(matches!(
        plan(&current, &two_racks(0), &negative),
        Err(PlanError::BadTraffic { .. })
    ));
    for params in [
        TopologyParams {
            max_imbalance: 0.5,
            ..TopologyParams::default()
        },
        TopologyParams {
            payback_secs: f64::INFINITY,
            ..TopologyParams::default()
        },
    ] {
        let r = plan_topology(&current, &two_racks(0), &[], &Topology::default(), &params);
        assert!(matches!(r, Err(PlanError::BadParam { .. })), "{r:?}");
    }
    let unknown = shards(64, &["zz"], &[MIB]);
    assert!(matches!(
        plan(&unknown, &two_racks(0), &[]),
        Err(PlanError::UnknownNode { .. })
    ));
    let mut twice = two_racks(0);
    twice.push(topo_node("a1", "", 0, true));
    assert!(matches!(
        plan(&current, &twice, &[]),
        Err(PlanError::DuplicateNode { .. })
    ));
}

/// A random cluster: nodes over 2 zones × 2 racks, shards on them within budgets, traffic
/// from rack locations (and some unlabelled).
#[derive(Debug, Clone)]
struct Case {
    nodes: Vec<TopoNode>,
    current: Vec<ShardLoad>,
    traffic: Vec<ShardTraffic>,
    params: TopologyParams,
}

fn case() -> impl Strategy<Value = Case> {
    let node = (0u8..4, 0u8..3, any::<bool>(), 0u8..10);
    let shard = (0usize..64, 1u64..64);
    let flow_spec = (0usize..64, 0u8..5, 0u8..4, 0.0f64..1e6, 0.0f64..1e6);
    (
        prop::collection::vec(node, 2..10),
        prop::collection::vec(shard, 1..24),
        prop::collection::vec(flow_spec, 0..40),
        1.0f64..3.0,
        prop_oneof![Just(0.0), Just(600.0), Just(1e9)],
    )
        .prop_map(|(node_specs, shard_specs, flows, max_imbalance, payback)| {
            let holders: Vec<String> = shard_specs
                .iter()
                .map(|&(h, _)| format!("n{}", h % node_specs.len()))
                .collect();
            let bytes: Vec<u64> = shard_specs.iter().map(|&(_, b)| b * MIB).collect();
            let holder_refs: Vec<&str> = holders.iter().map(String::as_str).collect();
            let current = shards(256, &holder_refs, &bytes);
            let mut held: BTreeMap<String, u64> = BTreeMap::new();
            for s in &current {
                *held.entry(s.placement.node.clone()).or_default() += s.bytes;
            }
            let nodes = node_specs
                .iter()
                .enumerate()
                .map(|(i, &(rack, host, accepts, room))| {
                    let id = format!("n{i}");
                    let at = format!("zone=z{},rack=r{rack},host=h{i}_{host}", rack / 2);
                    // Room 0: unlimited; else the bytes held now plus some.
                    let budget = match room {
                        0 => 0,
                        r => held.get(&id).copied().unwrap_or(0) + u64::from(r) * 8 * MIB,
                    };
                    topo_node(&id, &at, budget, accepts || i == 0)
                })
                .collect();
            let traffic = flows
                .iter()
                .map(|&(s, rack, push_share, rate, _)| {
                    let s = &current[s % current.len()];
                    let at = match rack {
                        4 => String::new(),
                        r => format!("zone=z{},rack=r{r}", r / 2),
                    };
                    let push = rate * f64::from(push_share) / 4.0;
                    flow(s, &at, rate, push)
                })
                .collect();
            Case {
                nodes,
                current,
                traffic,
                params: TopologyParams {
                    max_imbalance,
                    payback_secs: payback,
                },
            }
        })
}

/// The reference model: per node (bytes / weight, traffic), over accepting nodes.
fn loads(case: &Case, layout: &[Placement]) -> Vec<(f64, f64)> {
    let finite_max = case
        .nodes
        .iter()
        .map(|n| n.node.memory_budget)
        .filter(|&b| b != 0)
        .max()
        .unwrap_or(1);
    case.nodes
        .iter()
        .filter(|n| n.node.accepts)
        .map(|n| {
            let weight = match n.node.memory_budget {
                0 => finite_max,
                b => b,
            } as f64;
            let mut bytes = 0u64;
            let mut traffic = 0.0;
            for (p, s) in layout.iter().zip(&case.current) {
                if p.node == n.node.id {
                    bytes += s.bytes;
                    traffic += shard_traffic(case, s, None);
                }
            }
            (bytes as f64 / weight, traffic)
        })
        .collect()
}

/// Traffic to `shard` from `at` (None: from anywhere).
fn shard_traffic(case: &Case, shard: &ShardLoad, at: Option<&Location>) -> f64 {
    case.traffic
        .iter()
        .filter(|t| t.slot_start == shard.placement.slot_start)
        .filter(|t| at.is_none_or(|a| &t.location == a))
        .map(|t| t.pull_bytes_per_s + t.push_bytes_per_s)
        .sum()
}

/// The objective of a layout, by the reference model.
fn objective(case: &Case, layout: &[Placement]) -> f64 {
    let topology = Topology::default();
    let at: BTreeMap<&str, &Location> = case
        .nodes
        .iter()
        .map(|n| (n.node.id.as_str(), &n.location))
        .collect();
    case.traffic
        .iter()
        .filter(|t| !t.location.is_empty())
        .map(|t| {
            let p = layout
                .iter()
                .find(|p| p.slot_start == t.slot_start)
                .expect("shard");
            topology.cost(&t.location, at[p.node.as_str()])
                * (t.pull_bytes_per_s + t.push_bytes_per_s)
        })
        .sum()
}

/// max/mean of each load: (bytes, traffic); mean bytes budget-weighted.
fn imbalance(case: &Case, layout: &[Placement]) -> (f64, f64) {
    let l = loads(case, layout);
    let finite_max = case
        .nodes
        .iter()
        .map(|n| n.node.memory_budget)
        .filter(|&b| b != 0)
        .max()
        .unwrap_or(1);
    let accepting: Vec<&TopoNode> = case.nodes.iter().filter(|n| n.node.accepts).collect();
    let weight: f64 = accepting
        .iter()
        .map(|n| match n.node.memory_budget {
            0 => finite_max,
            b => b,
        } as f64)
        .sum();
    let bytes: f64 = l
        .iter()
        .zip(&accepting)
        .map(|(x, n)| {
            x.0 * match n.node.memory_budget {
                0 => finite_max,
                b => b,
            } as f64
        })
        .sum();
    let traffic: f64 = l.iter().map(|x| x.1).sum();
    let (mb, mt) = (bytes / weight, traffic / l.len() as f64);
    let max = |f: fn(&(f64, f64)) -> f64| l.iter().map(f).fold(0.0, f64::max);
    (
        if mb > 0.0 { max(|x| x.0) / mb } else { 0.0 },
        if mt > 0.0 { max(|x| x.1) / mt } else { 0.0 },
    )
}

fn current_layout(case: &Case) -> Vec<Placement> {
    case.current.iter().map(|s| s.placement.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn topology_plans_keep_their_bounds_and_are_fixed_points(case in case()) {
        let topology = Topology::default();
        let p = plan_topology(&case.current, &case.nodes, &case.traffic, &topology, &case.params)
            .expect("plan");
        let (before, after) = (current_layout(&case), p.plan.target.clone());
        let eps = 1e-9;

        // Budgets: no node ends over its budget unless it was and received nothing.
        for n in &case.nodes {
            let held = |layout: &[Placement]| -> u64 {
                layout.iter().zip(&case.current)
                    .filter(|(p, _)| p.node == n.node.id)
                    .map(|(_, s)| s.bytes).sum()
            };
            let b = n.node.memory_budget;
            prop_assert!(b == 0 || held(&after) <= b || held(&after) <= held(&before),
                "node {} over budget", n.node.id);
        }
        // The load bound: max/mean within max_imbalance, or no worse than before.
        let (ib, it) = imbalance(&case, &before);
        let (ab, at) = imbalance(&case, &after);
        let bound = case.params.max_imbalance;
        prop_assert!(ab <= bound.max(ib) * (1.0 + eps), "bytes {ib} -> {ab}");
        prop_assert!(at <= bound.max(it) * (1.0 + eps), "traffic {it} -> {at}");

        // The objective never rises, and the prediction matches the reference.
        let (ob, oa) = (objective(&case, &before), objective(&case, &after));
        prop_assert!(oa <= ob * (1.0 + eps), "objective {ob} -> {oa}");
        prop_assert!((p.predicted.cost.before - ob).abs() <= eps * ob.max(1.0));
        prop_assert!((p.predicted.cost.after - oa).abs() <= eps * oa.max(1.0));

        // Nothing leaves or enters a non-accepting node; moved shards pay back.
        let accepts: BTreeMap<&str, bool> =
            case.nodes.iter().map(|n| (n.node.id.as_str(), n.node.accepts)).collect();
        let at_node: BTreeMap<&str, &Location> =
            case.nodes.iter().map(|n| (n.node.id.as_str(), &n.location)).collect();
        let (mut benefit, mut price) = (0.0, 0.0);
        for m in &p.ranked {
            prop_assert!(accepts[m.from.as_str()] && accepts[m.to.as_str()]);
            price += topology.cost(at_node[m.from.as_str()], at_node[m.to.as_str()])
                * m.bytes as f64;
            benefit += m.benefit_per_s;
        }
        prop_assert!(p.ranked.is_empty() || benefit > 0.0);
        prop_assert!(benefit * case.params.payback_secs >= price * (1.0 - eps),
            "benefit {benefit}/s does not pay for {price}");
        // The moves reach the target; the target keeps the current ranges.
        prop_assert_eq!(&p.plan.moves, &moves_between(&case.current, &after));
        prop_assert_eq!(after.len(), before.len());

        // Deterministic, whatever the order of the traffic.
        let again = plan_topology(&case.current, &case.nodes, &case.traffic, &topology, &case.params)
            .expect("plan");
        prop_assert_eq!(&again, &p);
        let mut reversed = case.traffic.clone();
        reversed.reverse();
        let shuffled = plan_topology(&case.current, &case.nodes, &reversed, &topology, &case.params)
            .expect("plan");
        prop_assert_eq!(&shuffled.plan, &p.plan);

        // Planning again on the layout reached moves nothing.
        let applied: Vec<ShardLoad> = case.current.iter().zip(&after)
            .map(|(s, t)| ShardLoad { placement: t.clone(), ..s.clone() })
            .collect();
        let replan = plan_topology(&applied, &case.nodes, &case.traffic, &topology, &case.params)
            .expect("replan");
        prop_assert!(replan.plan.moves.is_empty(), "replan moves {:?}", replan.plan.moves);
    }
}
