//! Balancing: the target layouts of resize, rebalance and drain, built by placing target
//! shards on nodes and then evening out bytes (and shard counts) per unit of budget.

use std::cmp::Ordering;

use super::moves::{moves_between, overlaps, share, span, spans, validate};
use super::{Placement, Plan, PlanError, PlanKind, PlanNode, ShardLoad};
use crate::cluster_map::even_slot_ranges;

/// Plans `count` even shards over `0..num_slots`.
///
/// Each target shard goes to the accepting node that holds most of its bytes (then slots),
/// so a split or merge on one node moves nothing; then whole target shards are balanced.
/// A target shard whose slots all sit on one non-accepting node stays there (nothing moves
/// to that node); any other target shard goes to an accepting node.
pub fn plan_resize(
    current: &[ShardLoad],
    nodes: &[PlanNode],
    count: u32,
    num_slots: u32,
) -> Result<Plan, PlanError> {
    if count == 0 || count > num_slots {
        return Err(PlanError::BadCount { count, num_slots });
    }
    validate(current, Some(num_slots))?;
    let mut layout = Layout::new(nodes, current)?;
    let ranges = even_slot_ranges(count, num_slots);
    let mut held: Vec<Vec<(u64, u64)>> = vec![vec![(0, 0); layout.nodes.len()]; ranges.len()];
    let mut rows = vec![0u64; ranges.len()];
    let mut bytes = vec![0u64; ranges.len()];
    for (c, t, lo, hi) in overlaps(&spans(current), &ranges) {
        let shard = &current[c];
        let node = layout.index(&shard.placement.node)?;
        let (r, b) = (
            share(shard, shard.rows, lo, hi),
            share(shard, shard.bytes, lo, hi),
        );
        rows[t] = rows[t].saturating_add(r);
        bytes[t] = bytes[t].saturating_add(b);
        let h = &mut held[t][node];
        *h = (h.0.saturating_add(b), h.1 + u64::from(hi - lo));
    }
    let mut homeless = Vec::new();
    for (t, &(slot_start, slot_end)) in ranges.iter().enumerate() {
        let holders: Vec<usize> = (0..layout.nodes.len())
            .filter(|&n| held[t][n].1 > 0)
            .collect();
        let pinned = match holders.as_slice() {
            [only] if !layout.nodes[*only].accepts => Some(*only),
            _ => None,
        };
        let affine = holders
            .iter()
            .copied()
            .filter(|&n| layout.nodes[n].accepts)
            .min_by(|&a, &b| {
                (held[t][b].0, held[t][b].1)
                    .cmp(&(held[t][a].0, held[t][a].1))
                    .then(layout.nodes[a].count.cmp(&layout.nodes[b].count))
                    .then(a.cmp(&b))
            });
        let unit = Unit::new(slot_start, slot_end, rows[t], bytes[t]);
        match pinned.or(affine) {
            Some(n) => layout.add(unit, n),
            None => homeless.push(unit),
        }
    }
    for unit in homeless {
        let dest = layout.least_loaded(None).ok_or(PlanError::NoNodes)?;
        layout.add(unit, dest);
    }
    layout.balance();
    layout.finish(PlanKind::Resize { count }, current)
}

/// Plans a rebalance: the current ranges stay, whole shards move between accepting nodes
/// to even out bytes per unit of budget (then shard counts). Shards on non-accepting nodes
/// stay put.
pub fn plan_rebalance(current: &[ShardLoad], nodes: &[PlanNode]) -> Result<Plan, PlanError> {
    validate(current, None)?;
    let mut layout = Layout::new(nodes, current)?;
    layout.keep(current)?;
    layout.balance();
    layout.finish(PlanKind::Rebalance, current)
}

/// Plans a drain: each shard of `node`, largest first, goes to the least loaded other
/// accepting node with room for it; other shards stay. Draining a node that holds nothing
/// gives an empty plan.
pub fn plan_drain(
    current: &[ShardLoad],
    nodes: &[PlanNode],
    node: &str,
) -> Result<Plan, PlanError> {
    validate(current, None)?;
    let mut layout = Layout::new(nodes, current)?;
    let drained = layout.index(node)?;
    layout.keep(current)?;
    let mut leaving: Vec<usize> = (0..layout.units.len())
        .filter(|&u| layout.units[u].node == drained)
        .collect();
    leaving.sort_by(|&a, &b| {
        let (a, b) = (&layout.units[a], &layout.units[b]);
        b.bytes
            .cmp(&a.bytes)
            .then(b.rows.cmp(&a.rows))
            .then(a.slot_start.cmp(&b.slot_start))
    });
    for u in leaving {
        let bytes = layout.units[u].bytes;
        let fits = |n: &NodeState| n.budget.is_none_or(|b| n.bytes.saturating_add(bytes) <= b);
        let dest = match layout.least_loaded(Some(drained)) {
            None => return Err(PlanError::NoNodes),
            Some(best) if fits(&layout.nodes[best]) => best,
            Some(best) => layout
                .least_loaded_where(Some(drained), fits)
                .ok_or_else(|| layout.no_room(best, bytes))?,
        };
        layout.relocate(u, dest);
    }
    layout.finish(
        PlanKind::Drain {
            node: node.to_string(),
        },
        current,
    )
}

/// `a_val / a_w` against `b_val / b_w`, exactly.
fn ratio_cmp(a_val: u64, a_w: u64, b_val: u64, b_w: u64) -> Ordering {
    (u128::from(a_val) * u128::from(b_w)).cmp(&(u128::from(b_val) * u128::from(a_w)))
}

/// What balancing evens out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    /// Bytes per unit of budget.
    Bytes,
    /// Shards per unit of budget.
    Count,
}

/// A node as the planner tracks it.
#[derive(Debug)]
struct NodeState {
    id: String,
    weight: u64,
    budget: Option<u64>,
    accepts: bool,
    bytes: u64,
    count: u64,
}

impl NodeState {
    /// Its amount of `metric`.
    fn amount(&self, metric: Metric) -> u64 {
        match metric {
            Metric::Bytes => self.bytes,
            Metric::Count => self.count,
        }
    }
}

/// A target shard and the node it is planned on.
#[derive(Debug)]
struct Unit {
    slot_start: u32,
    slot_end: u32,
    rows: u64,
    bytes: u64,
    node: usize,
}

impl Unit {
    /// An unplaced target shard.
    fn new(slot_start: u32, slot_end: u32, rows: u64, bytes: u64) -> Self {
        Self {
            slot_start,
            slot_end,
            rows,
            bytes,
            node: usize::MAX,
        }
    }
}

/// The target layout under construction: nodes (sorted by id) with their planned loads.
struct Layout {
    nodes: Vec<NodeState>,
    units: Vec<Unit>,
}

impl Layout {
    /// Nodes sorted by id, with weights; every holder in `current` must be among them.
    fn new(nodes: &[PlanNode], current: &[ShardLoad]) -> Result<Self, PlanError> {
        if nodes.is_empty() {
            return Err(PlanError::NoNodes);
        }
        let unlimited = |b: u64| b == 0 || b == u64::MAX;
        let finite_max = nodes
            .iter()
            .map(|n| n.memory_budget)
            .filter(|&b| !unlimited(b))
            .max()
            .unwrap_or(1);
        let mut states: Vec<NodeState> = nodes
            .iter()
            .map(|n| NodeState {
                id: n.id.clone(),
                weight: if unlimited(n.memory_budget) {
                    finite_max
                } else {
                    n.memory_budget
                },
                budget: (!unlimited(n.memory_budget)).then_some(n.memory_budget),
                accepts: n.accepts,
                bytes: 0,
                count: 0,
            })
            .collect();
        states.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(w) = states.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(PlanError::DuplicateNode {
                node: w[0].id.clone(),
            });
        }
        let layout = Self {
            nodes: states,
            units: Vec::new(),
        };
        for shard in current {
            layout.index(&shard.placement.node)?;
        }
        Ok(layout)
    }

    /// The index of node `id`.
    fn index(&self, id: &str) -> Result<usize, PlanError> {
        self.nodes
            .binary_search_by(|n| n.id.as_str().cmp(id))
            .map_err(|_| PlanError::UnknownNode {
                node: id.to_string(),
            })
    }

    /// Places `unit` on node `n`.
    fn add(&mut self, mut unit: Unit, n: usize) {
        unit.node = n;
        self.nodes[n].bytes = self.nodes[n].bytes.saturating_add(unit.bytes);
        self.nodes[n].count += 1;
        self.units.push(unit);
    }

    /// Keeps every current shard where it is.
    fn keep(&mut self, current: &[ShardLoad]) -> Result<(), PlanError> {
        for shard in current {
            let n = self.index(&shard.placement.node)?;
            let (start, end) = span(&shard.placement);
            self.add(Unit::new(start, end, shard.rows, shard.bytes), n);
        }
        Ok(())
    }

    /// Moves unit `u` to node `to`.
    fn relocate(&mut self, u: usize, to: usize) {
        let (from, bytes) = (self.units[u].node, self.units[u].bytes);
        self.nodes[from].bytes -= bytes.min(self.nodes[from].bytes);
        self.nodes[from].count -= 1;
        self.nodes[to].bytes = self.nodes[to].bytes.saturating_add(bytes);
        self.nodes[to].count += 1;
        self.units[u].node = to;
    }

    /// Orders nodes by `metric` load, then the other metric's load, then id.
    fn cmp_load(&self, a: usize, b: usize, metric: Metric) -> Ordering {
        let (x, y) = (&self.nodes[a], &self.nodes[b]);
        let other = match metric {
            Metric::Bytes => Metric::Count,
            Metric::Count => Metric::Bytes,
        };
        ratio_cmp(x.amount(metric), x.weight, y.amount(metric), y.weight)
            .then(ratio_cmp(
                x.amount(other),
                x.weight,
                y.amount(other),
                y.weight,
            ))
            .then(a.cmp(&b))
    }

    /// The least loaded accepting node other than `except`.
    fn least_loaded(&self, except: Option<usize>) -> Option<usize> {
        self.least_loaded_where(except, |_| true)
    }

    /// The least loaded accepting node other than `except` that passes `ok`.
    fn least_loaded_where(
        &self,
        except: Option<usize>,
        ok: impl Fn(&NodeState) -> bool,
    ) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|&n| self.nodes[n].accepts && Some(n) != except && ok(&self.nodes[n]))
            .min_by(|&a, &b| self.cmp_load(a, b, Metric::Bytes))
    }

    /// `NoRoom` for putting `bytes` more on node `n`.
    fn no_room(&self, n: usize, bytes: u64) -> PlanError {
        let node = &self.nodes[n];
        PlanError::NoRoom {
            node: node.id.clone(),
            needed: node.bytes.saturating_add(bytes),
            budget: node.budget.unwrap_or(u64::MAX),
        }
    }

    /// Evens out bytes, then (without raising any pair's byte maximum) shard counts.
    fn balance(&mut self) {
        let cap = 4 * (self.units.len() + 1) * (self.nodes.len() + 1);
        for metric in [Metric::Bytes, Metric::Count] {
            for _ in 0..cap {
                if !self.step(metric) {
                    break;
                }
            }
        }
    }

    /// Makes the best move from the most loaded accepting node that has one to the least
    /// loaded accepting node; false when there is none.
    fn step(&mut self, metric: Metric) -> bool {
        let mut accepting: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].accepts)
            .collect();
        accepting.sort_by(|&a, &b| self.cmp_load(a, b, metric));
        let Some(&dest) = accepting.first() else {
            return false;
        };
        for &source in accepting.iter().rev() {
            if source == dest || self.cmp_load(source, dest, metric) != Ordering::Greater {
                break;
            }
            if let Some(u) = self.best_move(source, dest, metric) {
                self.relocate(u, dest);
                return true;
            }
        }
        false
    }

    /// The unit of `s` whose move to `d` lowers `s` the most while leaving `d` no more
    /// loaded than `s` (so balanced layouts stay put), fits `d`'s budget, and in the count
    /// phase keeps `d`'s bytes per budget within the pair's current maximum.
    fn best_move(&self, s: usize, d: usize, metric: Metric) -> Option<usize> {
        let (src, dst) = (&self.nodes[s], &self.nodes[d]);
        let mut best: Option<usize> = None;
        for (u, unit) in self.units.iter().enumerate().filter(|(_, u)| u.node == s) {
            let x = match metric {
                Metric::Bytes => unit.bytes,
                Metric::Count => 1,
            };
            let (ns, nd) = (src.amount(metric) - x, dst.amount(metric).saturating_add(x));
            let nd_bytes = dst.bytes.saturating_add(unit.bytes);
            let lowers = x > 0 && ratio_cmp(nd, dst.weight, ns, src.weight) != Ordering::Greater;
            let fits = dst.budget.is_none_or(|b| nd_bytes <= b);
            let keeps_bytes = metric == Metric::Bytes
                || unit.bytes == 0
                || ratio_cmp(nd_bytes, dst.weight, src.bytes, src.weight) != Ordering::Greater;
            if !(lowers && fits && keeps_bytes) {
                continue;
            }
            // Bytes: the largest fitting unit; counts: the cheapest to move.
            let better = match best {
                None => true,
                Some(b) if metric == Metric::Bytes => unit.bytes > self.units[b].bytes,
                Some(b) => unit.bytes < self.units[b].bytes,
            };
            if better {
                best = Some(u);
            }
        }
        best
    }

    /// Checks budgets and turns the layout into a plan from `current`.
    fn finish(mut self, kind: PlanKind, current: &[ShardLoad]) -> Result<Plan, PlanError> {
        if let Some(n) = (0..self.nodes.len()).find(|&n| {
            self.nodes[n]
                .budget
                .is_some_and(|b| self.nodes[n].bytes > b)
        }) {
            return Err(self.no_room(n, 0));
        }
        self.units.sort_by_key(|u| u.slot_start);
        let target: Vec<Placement> = self
            .units
            .iter()
            .map(|u| Placement {
                slot_start: u.slot_start,
                slot_end: u.slot_end,
                node: self.nodes[u.node].id.clone(),
            })
            .collect();
        let moves = moves_between(current, &target);
        let rows = moves.iter().fold(0u64, |a, m| a.saturating_add(m.rows));
        let bytes = moves.iter().fold(0u64, |a, m| a.saturating_add(m.bytes));
        Ok(Plan {
            kind,
            target,
            moves,
            rows,
            bytes,
        })
    }
}
