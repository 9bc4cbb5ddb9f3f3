//! Initial placement: shards spread over nodes evenly by count, weighted by memory budget,
//! and (with locations) interleaved over the topology's zones and racks.
//!
//! Pure and deterministic: no I/O, no clock, no randomness.

use std::collections::BTreeMap;

use crate::topology::{Location, Topology};

/// A node that can take shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Node id.
    pub id: String,
    /// Host memory budget in bytes (`u64::MAX` or 0: unlimited, weighted like the largest).
    pub memory_budget: u64,
}

/// The primary node id of each of `shards` shards (in shard order); empty when no node.
///
/// Each shard goes to the node with the fewest shards per unit of budget so far (ties: the
/// smaller id), so equal budgets give counts that differ by at most one.
pub fn spread(shards: u32, nodes: &[Candidate]) -> Vec<String> {
    if nodes.is_empty() {
        return vec![String::new(); shards as usize];
    }
    let finite_max = finite_max(nodes);
    let mut nodes: Vec<&Candidate> = nodes.iter().collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let weight = |n: &Candidate| weight(n, finite_max);
    let mut counts = vec![0u32; nodes.len()];
    let mut out = Vec::with_capacity(shards as usize);
    for _ in 0..shards {
        let mut best = 0usize;
        for i in 1..nodes.len() {
            let load_i = (counts[i] + 1) as f64 / weight(nodes[i]);
            let load_b = (counts[best] + 1) as f64 / weight(nodes[best]);
            if load_i < load_b {
                best = i;
            }
        }
        counts[best] += 1;
        out.push(nodes[best].id.clone());
    }
    out
}

/// As [`spread`], but over the topology: each shard goes to the zone, then the rack within
/// it, and so on down the levels, then the node, with the fewest shards per unit of budget
/// (ties: the smaller label, then id). Every group gets shards in proportion to its budget,
/// so equal budgets keep counts within one per node, and consecutive shards land in
/// different zones and racks while there are several. A node missing from `locations` is
/// at the empty location (a label missing on both sides does not separate, as in
/// [`Topology::crossing`]).
pub fn spread_across(
    shards: u32,
    nodes: &[Candidate],
    locations: &BTreeMap<String, Location>,
    topology: &Topology,
) -> Vec<String> {
    if nodes.is_empty() {
        return vec![String::new(); shards as usize];
    }
    let finite_max = finite_max(nodes);
    let none = Location::default();
    // Each node's path of labels, outermost first, then its id: the leaves of the tree.
    let mut leaves: Vec<(Vec<Option<&str>>, &Candidate)> = nodes
        .iter()
        .map(|n| {
            let at = locations.get(&n.id).unwrap_or(&none);
            let path = topology.levels.iter().map(|l| at.get(&l.name)).collect();
            (path, n)
        })
        .collect();
    leaves.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
    let weights: Vec<f64> = leaves.iter().map(|l| weight(l.1, finite_max)).collect();
    let mut groups = 0;
    let tree = Group::build(&leaves, &weights, 0..leaves.len(), 0, &mut groups);
    let mut counts = Counts {
        groups: vec![0; groups],
        leaves: vec![0; leaves.len()],
    };
    (0..shards)
        .map(|_| leaves[counts.place(&tree, &weights)].1.id.clone())
        .collect()
}

/// A group of nodes sharing a location prefix: its child groups a level down (none at the
/// bottom), its weight (budgets summed) and its range of leaves.
struct Group {
    weight: f64,
    children: Vec<Group>,
    leaves: std::ops::Range<usize>,
    /// Its index in [`Counts::groups`].
    index: usize,
}

impl Group {
    /// The group of `leaves[range]` (sorted by path) split from `level` down; `next` counts
    /// the groups built.
    fn build(
        leaves: &[(Vec<Option<&str>>, &Candidate)],
        weights: &[f64],
        range: std::ops::Range<usize>,
        level: usize,
        next: &mut usize,
    ) -> Group {
        let index = *next;
        *next += 1;
        let mut children = Vec::new();
        let depth = leaves.get(range.start).map_or(0, |l| l.0.len());
        if level < depth {
            let mut start = range.start;
            while start < range.end {
                let key = leaves[start].0[level];
                let end = start + leaves[start..range.end].partition_point(|l| l.0[level] == key);
                children.push(Self::build(leaves, weights, start..end, level + 1, next));
                start = end;
            }
        }
        Group {
            weight: weights[range.clone()].iter().sum(),
            children,
            leaves: range,
            index,
        }
    }
}

/// Shards placed so far per group and per leaf.
struct Counts {
    groups: Vec<u64>,
    leaves: Vec<u64>,
}

impl Counts {
    /// Places one shard under `g`: the child group, then the leaf, with the fewest shards
    /// per unit of weight after it (ties: the first); returns the leaf.
    fn place(&mut self, g: &Group, weights: &[f64]) -> usize {
        self.groups[g.index] += 1;
        let group_load = |x: &Group| (self.groups[x.index] + 1) as f64 / x.weight;
        if let Some(child) = g
            .children
            .iter()
            .min_by(|a, b| group_load(a).total_cmp(&group_load(b)))
        {
            return self.place(child, weights);
        }
        let leaf_load = |i: usize| (self.leaves[i] + 1) as f64 / weights[i];
        let leaf = g
            .leaves
            .clone()
            .min_by(|&a, &b| leaf_load(a).total_cmp(&leaf_load(b)))
            .unwrap_or(g.leaves.start);
        self.leaves[leaf] += 1;
        leaf
    }
}

/// The largest finite budget (1 when none is finite).
fn finite_max(nodes: &[Candidate]) -> u64 {
    nodes
        .iter()
        .map(|n| n.memory_budget)
        .filter(|&b| b != 0 && b != u64::MAX)
        .max()
        .unwrap_or(1)
}

/// A node's weight: its budget, an unlimited one weighing like the largest finite one.
fn weight(n: &Candidate, finite_max: u64) -> f64 {
    match n.memory_budget {
        0 | u64::MAX => finite_max as f64,
        b => b as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, budget: u64) -> Candidate {
        Candidate {
            id: id.into(),
            memory_budget: budget,
        }
    }

    #[test]
    fn equal_budgets_give_counts_within_one() {
        let nodes = [node("c", 0), node("a", 0), node("b", 0)];
        let p = spread(8, &nodes);
        let count = |id: &str| p.iter().filter(|n| *n == id).count();
        assert_eq!((count("a"), count("b"), count("c")), (3, 3, 2));
        assert_eq!(p, spread(8, &nodes), "deterministic");
    }

    #[test]
    fn larger_budget_takes_more_shards() {
        let p = spread(9, &[node("a", 2 << 30), node("b", 1 << 30)]);
        assert_eq!(p.iter().filter(|n| *n == "a").count(), 6);
    }

    #[test]
    fn no_nodes_leaves_shards_unassigned() {
        assert_eq!(spread(2, &[]), vec![String::new(), String::new()]);
        let none = BTreeMap::new();
        assert_eq!(
            spread_across(2, &[], &none, &Topology::default()),
            vec![String::new(), String::new()]
        );
    }

    /// Nodes `n0..` with `zone=z{i % zones}`, `rack=r{i % racks}` (racks within zones).
    fn located(count: usize, zones: usize, racks: usize) -> BTreeMap<String, Location> {
        (0..count)
            .map(|i| {
                let rack = i % racks;
                let at = format!("zone=z{},rack=r{rack},host=h{i}", rack % zones);
                (format!("n{i}"), Location::parse(&at).expect("labels"))
            })
            .collect()
    }

    #[test]
    fn consecutive_shards_land_in_different_zones_and_racks() {
        let locations = located(8, 2, 4);
        let nodes: Vec<Candidate> = locations.keys().map(|id| node(id, 0)).collect();
        let p = spread_across(16, &nodes, &locations, &Topology::default());
        let at = |id: &String| &locations[id];
        for w in p.windows(2) {
            assert_ne!(at(&w[0]).get("zone"), at(&w[1]).get("zone"), "{p:?}");
        }
        for w in p.windows(4) {
            let mut racks: Vec<_> = w.iter().map(|id| at(id).get("rack")).collect();
            racks.sort();
            racks.dedup();
            assert_eq!(racks.len(), 4, "four shards in a row, four racks: {p:?}");
        }
        let count = |id: &str| p.iter().filter(|n| *n == id).count();
        assert!(nodes.iter().all(|n| count(&n.id) == 2), "{p:?}");
        assert_eq!(
            p,
            spread_across(16, &nodes, &locations, &Topology::default())
        );
    }

    #[test]
    fn budgets_weigh_across_racks_too() {
        let locations = located(2, 1, 2);
        let nodes = [node("n0", 2 << 30), node("n1", 1 << 30)];
        let p = spread_across(9, &nodes, &locations, &Topology::default());
        assert_eq!(p.iter().filter(|n| *n == "n0").count(), 6);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(100))]

        #[test]
        fn equal_budgets_stay_even_across_any_racks(
            racks in proptest::collection::vec(0usize..6, 1..20),
            shards in 0u32..100,
        ) {
            let locations: BTreeMap<String, Location> = racks
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let at = format!("zone=z{},rack=r{r},host=h{i}", r % 2);
                    (format!("n{i:02}"), Location::parse(&at).expect("labels"))
                })
                .collect();
            let nodes: Vec<Candidate> = locations.keys().map(|id| node(id, 0)).collect();
            let p = spread_across(shards, &nodes, &locations, &Topology::default());
            let counts: Vec<usize> = nodes
                .iter()
                .map(|n| p.iter().filter(|x| **x == n.id).count())
                .collect();
            let (min, max) = (counts.iter().min(), counts.iter().max());
            proptest::prop_assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{counts:?}");
        }
    }
}
