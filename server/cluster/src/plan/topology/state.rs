//! The layout under construction: nodes with their loads and domains, shards with their
//! clients, the cost of a shard on a node, and the figures a plan predicts.

use std::collections::{BTreeSet, HashMap};

use super::input::{assign_traffic, Interner};
use super::{
    BeforeAfter, Predicted, RankedMove, ShardTraffic, TopoNode, TopologyParams, TopologyPlan,
};
use crate::plan::moves::{moves_between, span};
use crate::plan::{Placement, Plan, PlanError, PlanKind, ShardLoad};
use crate::topology::Topology;

/// A node as the planner tracks it.
#[derive(Debug)]
pub(super) struct Node {
    pub(super) id: String,
    pub(super) weight: u64,
    pub(super) budget: Option<u64>,
    pub(super) accepts: bool,
    pub(super) bytes: u64,
    pub(super) traffic: u64,
    /// Interned label per level (`MISSING` when absent).
    pub(super) path: Vec<u32>,
    /// Its domain at each depth 1..=levels.
    pub(super) domains: Vec<usize>,
    /// Its key in its domains' sets.
    pub(super) key: u64,
}

/// A current shard and where the plan puts it.
#[derive(Debug)]
pub(super) struct Shard {
    pub(super) bytes: u64,
    /// Bytes/s served, labelled or not (rounded).
    pub(super) traffic: u64,
    /// Labelled traffic: (client location, bytes/s), most first.
    pub(super) clients: Vec<(usize, f64)>,
    pub(super) origin: usize,
    pub(super) node: usize,
}

/// A client location: its interned path and the domains that share its prefixes.
#[derive(Debug)]
pub(super) struct Client {
    pub(super) path: Vec<u32>,
    pub(super) domains: Vec<Option<usize>>,
}

/// The cost model's load caps.
#[derive(Debug, Clone, Copy)]
pub(super) struct Caps {
    /// Bytes per unit of weight.
    pub(super) bytes: f64,
    /// Bytes/s.
    pub(super) traffic: f64,
    /// Means, for the figures.
    pub(super) mean_bytes: f64,
    pub(super) mean_traffic: f64,
}

/// The figures [`Predicted`] reports, at one moment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Figures {
    pub(super) cross_rack: f64,
    pub(super) cross_zone: f64,
    pub(super) bytes: f64,
    pub(super) traffic: f64,
    pub(super) cost: f64,
}

/// The layout under construction.
pub(super) struct State {
    pub(super) costs: Vec<f64>,
    pub(super) rack: usize,
    pub(super) zone: usize,
    pub(super) payback: f64,
    pub(super) nodes: Vec<Node>,
    pub(super) shards: Vec<Shard>,
    pub(super) clients: Vec<Client>,
    /// Per domain: its accepting nodes by (load key, index).
    pub(super) sets: Vec<BTreeSet<(u64, usize)>>,
    /// Per node: the shards it holds.
    pub(super) held: Vec<Vec<usize>>,
    pub(super) caps: Caps,
}

impl State {
    /// Interns locations, builds domains, assigns traffic to shards.
    pub(super) fn new(
        current: &[ShardLoad],
        nodes: &[TopoNode],
        traffic: &[ShardTraffic],
        topology: &Topology,
        params: &TopologyParams,
    ) -> Result<Self, PlanError> {
        if nodes.is_empty() {
            return Err(PlanError::NoNodes);
        }
        let levels: Vec<&str> = topology.levels.iter().map(|l| l.name.as_str()).collect();
        let mut interner = Interner::new(levels.len());
        let mut sorted: Vec<&TopoNode> = nodes.iter().collect();
        sorted.sort_by(|a, b| a.node.id.cmp(&b.node.id));
        if let Some(w) = sorted.windows(2).find(|w| w[0].node.id == w[1].node.id) {
            return Err(PlanError::DuplicateNode {
                node: w[0].node.id.clone(),
            });
        }
        let unlimited = |b: u64| b == 0 || b == u64::MAX;
        let finite_max = sorted
            .iter()
            .map(|n| n.node.memory_budget)
            .filter(|&b| !unlimited(b))
            .max()
            .unwrap_or(1);
        let mut domain_ids: HashMap<Vec<u32>, usize> = HashMap::new();
        let mut state_nodes = Vec::with_capacity(sorted.len());
        for n in &sorted {
            let path = interner.path(&levels, &n.location, true);
            let domains = (1..=path.len())
                .map(|d| {
                    let next = domain_ids.len();
                    *domain_ids.entry(path[..d].to_vec()).or_insert(next)
                })
                .collect();
            let b = n.node.memory_budget;
            state_nodes.push(Node {
                id: n.node.id.clone(),
                weight: if unlimited(b) { finite_max } else { b },
                budget: (!unlimited(b)).then_some(b),
                accepts: n.node.accepts,
                bytes: 0,
                traffic: 0,
                path,
                domains,
                key: 0,
            });
        }
        let index = |id: &str| {
            state_nodes
                .binary_search_by(|n: &Node| n.id.as_str().cmp(id))
                .map_err(|_| PlanError::UnknownNode { node: id.into() })
        };
        let mut shards = Vec::with_capacity(current.len());
        for s in current {
            let n = index(&s.placement.node)?;
            shards.push(Shard {
                bytes: s.bytes,
                traffic: 0,
                clients: Vec::new(),
                origin: n,
                node: n,
            });
        }
        let clients = assign_traffic(current, traffic, &levels, &mut shards)?
            .into_iter()
            .map(|loc| {
                let path = interner.path(&levels, loc, false);
                let domains = (1..=path.len())
                    .map(|d| domain_ids.get(&path[..d]).copied())
                    .collect();
                Client { path, domains }
            })
            .collect();
        let mut held = vec![Vec::new(); state_nodes.len()];
        for (i, s) in shards.iter().enumerate() {
            let n = &mut state_nodes[s.node];
            n.bytes = n.bytes.saturating_add(s.bytes);
            n.traffic = n.traffic.saturating_add(s.traffic);
            held[s.node].push(i);
        }
        let caps = caps(&state_nodes, params.max_imbalance);
        let mut state = Self {
            costs: topology.levels.iter().map(|l| l.cost).collect(),
            rack: topology.rack_level(),
            zone: topology.zone_level(),
            payback: params.payback_secs,
            nodes: state_nodes,
            shards,
            clients,
            sets: vec![BTreeSet::new(); domain_ids.len()],
            held,
            caps,
        };
        for n in 0..state.nodes.len() {
            state.nodes[n].key = state.key(n);
            state.insert(n);
        }
        Ok(state)
    }

    /// A node's key in its domains: the larger of its loads as a fraction of its cap.
    pub(super) fn key(&self, n: usize) -> u64 {
        let node = &self.nodes[n];
        let part = |load: f64, cap: f64| if cap > 0.0 { load / cap } else { 0.0 };
        let bytes = part(node.bytes as f64 / node.weight as f64, self.caps.bytes);
        let traffic = part(node.traffic as f64, self.caps.traffic);
        // Non-negative floats order as their bits.
        bytes.max(traffic).to_bits()
    }

    /// Puts node `n` in its domains' sets under its key.
    pub(super) fn insert(&mut self, n: usize) {
        if !self.nodes[n].accepts {
            return;
        }
        for &d in &self.nodes[n].domains {
            self.sets[d].insert((self.nodes[n].key, n));
        }
    }

    /// Takes node `n` out of its domains' sets.
    pub(super) fn remove(&mut self, n: usize) {
        for &d in &self.nodes[n].domains {
            self.sets[d].remove(&(self.nodes[n].key, n));
        }
    }

    /// The cost per second of shard `s` on node `n`.
    pub(super) fn cost(&self, s: usize, n: usize) -> f64 {
        let path = &self.nodes[n].path;
        self.shards[s].clients.iter().fold(0.0, |sum, &(c, bytes)| {
            match crossing(&self.clients[c].path, path) {
                Some(level) => sum + self.costs[level] * bytes,
                None => sum,
            }
        })
    }

    /// Moves shard `s` to node `d`, keeping the domain sets ordered.
    pub(super) fn relocate(&mut self, s: usize, d: usize) {
        let (from, bytes, traffic) = {
            let shard = &self.shards[s];
            (shard.node, shard.bytes, shard.traffic)
        };
        for n in [from, d] {
            self.remove(n);
        }
        let src = &mut self.nodes[from];
        src.bytes = src.bytes.saturating_sub(bytes);
        src.traffic = src.traffic.saturating_sub(traffic);
        let dst = &mut self.nodes[d];
        dst.bytes = dst.bytes.saturating_add(bytes);
        dst.traffic = dst.traffic.saturating_add(traffic);
        self.shards[s].node = d;
        if let Some(i) = self.held[from].iter().position(|&x| x == s) {
            self.held[from].swap_remove(i);
        }
        self.held[d].push(s);
        for n in [from, d] {
            self.nodes[n].key = self.key(n);
            self.insert(n);
        }
    }

    /// The figures of the layout as planned so far.
    pub(super) fn figures(&self) -> Figures {
        let (mut cross_rack, mut cross_zone, mut cost) = (0.0, 0.0, 0.0);
        for (s, shard) in self.shards.iter().enumerate() {
            let path = &self.nodes[shard.node].path;
            for &(c, bytes) in &shard.clients {
                if let Some(level) = crossing(&self.clients[c].path, path) {
                    if level <= self.rack {
                        cross_rack += bytes;
                    }
                    if level <= self.zone {
                        cross_zone += bytes;
                    }
                }
            }
            cost += self.cost(s, shard.node);
        }
        let (mut bytes, mut traffic) = (0.0f64, 0.0f64);
        for n in self.nodes.iter().filter(|n| n.accepts) {
            if self.caps.mean_bytes > 0.0 {
                let r = n.bytes as f64 / n.weight as f64 / self.caps.mean_bytes;
                bytes = bytes.max(r);
            }
            if self.caps.mean_traffic > 0.0 {
                traffic = traffic.max(n.traffic as f64 / self.caps.mean_traffic);
            }
        }
        Figures {
            cross_rack,
            cross_zone,
            bytes,
            traffic,
            cost,
        }
    }

    /// The plan from `current` to the layout reached.
    pub(super) fn finish(
        self,
        current: &[ShardLoad],
        before: Figures,
        after: Figures,
    ) -> TopologyPlan {
        let target: Vec<Placement> = current
            .iter()
            .zip(&self.shards)
            .map(|(c, s)| {
                let (slot_start, slot_end) = span(&c.placement);
                Placement {
                    slot_start,
                    slot_end,
                    node: self.nodes[s.node].id.clone(),
                }
            })
            .collect();
        let moves = moves_between(current, &target);
        let mut ranked: Vec<RankedMove> = current
            .iter()
            .zip(&self.shards)
            .enumerate()
            .filter(|(_, (_, s))| s.node != s.origin)
            .map(|(i, (c, s))| RankedMove {
                slot_start: c.placement.slot_start,
                slot_end: c.placement.slot_end,
                from: self.nodes[s.origin].id.clone(),
                to: self.nodes[s.node].id.clone(),
                bytes: s.bytes,
                benefit_per_s: self.cost(i, s.origin) - self.cost(i, s.node),
            })
            .collect();
        ranked.sort_by(|a, b| {
            let per_byte = |m: &RankedMove| m.benefit_per_s / m.bytes.max(1) as f64;
            per_byte(b)
                .total_cmp(&per_byte(a))
                .then(a.slot_start.cmp(&b.slot_start))
        });
        let pair = |b: f64, a: f64| BeforeAfter {
            before: b,
            after: a,
        };
        let predicted = Predicted {
            cross_rack_bytes_per_s: pair(before.cross_rack, after.cross_rack),
            cross_zone_bytes_per_s: pair(before.cross_zone, after.cross_zone),
            max_over_mean_load: pair(
                before.bytes.max(before.traffic),
                after.bytes.max(after.traffic),
            ),
            max_over_mean_bytes: pair(before.bytes, after.bytes),
            max_over_mean_traffic: pair(before.traffic, after.traffic),
            cost: pair(before.cost, after.cost),
        };
        let rows = moves.iter().fold(0u64, |a, m| a.saturating_add(m.rows));
        let bytes = moves.iter().fold(0u64, |a, m| a.saturating_add(m.bytes));
        TopologyPlan {
            plan: Plan {
                kind: PlanKind::Rebalance,
                target,
                moves,
                rows,
                bytes,
            },
            ranked,
            predicted,
        }
    }
}

/// The index of the outermost level at which two interned paths differ.
pub(super) fn crossing(a: &[u32], b: &[u32]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// The load caps: `max_imbalance ×` the mean over accepting nodes.
fn caps(nodes: &[Node], max_imbalance: f64) -> Caps {
    let accepting = nodes.iter().filter(|n| n.accepts);
    let (mut bytes, mut weight, mut traffic, mut count) = (0u128, 0u128, 0u128, 0u64);
    for n in accepting {
        bytes += u128::from(n.bytes);
        weight += u128::from(n.weight);
        traffic += u128::from(n.traffic);
        count += 1;
    }
    let mean_bytes = if weight > 0 {
        bytes as f64 / weight as f64
    } else {
        0.0
    };
    let mean_traffic = if count > 0 {
        traffic as f64 / count as f64
    } else {
        0.0
    };
    Caps {
        bytes: max_imbalance * mean_bytes,
        traffic: max_imbalance * mean_traffic,
        mean_bytes,
        mean_traffic,
    }
}
