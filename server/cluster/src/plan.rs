//! Resharding plans: the target layout of a resize, rebalance or drain, and the data moves
//! that reach it from the current layout.
//!
//! Pure and deterministic: no I/O, no clock, no randomness. Rows and bytes are assumed to be
//! spread uniformly over the slots of a current shard, so a part of a shard is sized by its
//! slot count. The load of a node is the bytes it holds per unit of memory budget (an
//! unlimited budget weighs like the largest finite one, as in [`super::placement`]); shard
//! counts per unit of budget break ties and balance an empty cluster.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::cluster_map::even_slot_ranges;

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
    #[error("no accepting node can take the shards")]
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
    /// A current shard reaches past the slots of the cluster.
    #[error("current shard ends at slot {slot_end}, past the cluster's {num_slots} slots")]
    OutOfRange {
        /// Where it ends.
        slot_end: u32,
        /// Slots of the cluster.
        num_slots: u32,
    },
}

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

/// The moves that take `current` to `target`: one per maximal run of slots with the same
/// (from, to), from != to; rows/bytes pro-rated by slots within each current shard.
///
/// Only slots covered by both layouts are considered.
pub fn moves_between(current: &[ShardLoad], target: &[Placement]) -> Vec<Move> {
    let (c_order, t_order) = (
        order(current.iter().map(|s| &s.placement)),
        order(target.iter()),
    );
    let c_spans: Vec<(u32, u32)> = c_order
        .iter()
        .map(|&i| span(&current[i].placement))
        .collect();
    let t_spans: Vec<(u32, u32)> = t_order.iter().map(|&i| span(&target[i])).collect();
    let mut moves: Vec<Move> = Vec::new();
    for (c, t, lo, hi) in overlaps(&c_spans, &t_spans) {
        let shard = &current[c_order[c]];
        let (from, to) = (&shard.placement.node, &target[t_order[t]].node);
        if from == to {
            continue;
        }
        let (rows, bytes) = (
            share(shard, shard.rows, lo, hi),
            share(shard, shard.bytes, lo, hi),
        );
        match moves.last_mut() {
            Some(m) if m.slot_end == lo && &m.from == from && &m.to == to => {
                m.slot_end = hi;
                m.rows = m.rows.saturating_add(rows);
                m.bytes = m.bytes.saturating_add(bytes);
            }
            _ => moves.push(Move {
                slot_start: lo,
                slot_end: hi,
                from: from.clone(),
                to: to.clone(),
                rows,
                bytes,
            }),
        }
    }
    moves
}

/// The common refinement of two layouts covering the same slots: pieces cut at every
/// boundary of either, each keeping its holder in `current`.
///
/// Only slots covered by both layouts are returned, in slot order.
pub fn refine(current: &[Placement], target: &[Placement]) -> Vec<Placement> {
    let (c_order, t_order) = (order(current.iter()), order(target.iter()));
    let c_spans: Vec<(u32, u32)> = c_order.iter().map(|&i| span(&current[i])).collect();
    let t_spans: Vec<(u32, u32)> = t_order.iter().map(|&i| span(&target[i])).collect();
    overlaps(&c_spans, &t_spans)
        .into_iter()
        .map(|(c, _, lo, hi)| Placement {
            slot_start: lo,
            slot_end: hi,
            node: current[c_order[c]].node.clone(),
        })
        .collect()
}

/// The plan as a table for operators: one line per move and a total with the time the
/// moves take at `rate_bytes_per_s` (0: unknown).
pub fn render(plan: &Plan, rate_bytes_per_s: u64) -> String {
    let title = match &plan.kind {
        PlanKind::Resize { count } => format!("resize to {count} shards"),
        PlanKind::Rebalance => "rebalance".to_string(),
        PlanKind::Drain { node } => format!("drain node {node}"),
    };
    let mut out = format!("plan: {title}, {} target shards\n", plan.target.len());
    if plan.moves.is_empty() {
        out.push_str("no moves: the layout is already the target\n");
        return out;
    }
    let slots: Vec<String> = plan
        .moves
        .iter()
        .map(|m| format!("{}..{}", m.slot_start, m.slot_end))
        .collect();
    let paths: Vec<String> = plan
        .moves
        .iter()
        .map(|m| format!("{} → {}", m.from, m.to))
        .collect();
    let sw = slots
        .iter()
        .map(|s| s.chars().count())
        .chain([5])
        .max()
        .unwrap_or(5);
    let pw = paths
        .iter()
        .map(|s| s.chars().count())
        .chain([9])
        .max()
        .unwrap_or(9);
    let _ = writeln!(
        out,
        "  {:<sw$}  {:<pw$}  {:>12}  {:>10}",
        "slots", "from → to", "rows", "bytes"
    );
    for ((m, s), p) in plan.moves.iter().zip(&slots).zip(&paths) {
        let _ = writeln!(
            out,
            "  {s:<sw$}  {p:<pw$}  {:>12}  {:>10}",
            m.rows,
            human_bytes(m.bytes)
        );
    }
    let time = match rate_bytes_per_s {
        0 => "time unknown (no transfer rate)".to_string(),
        rate => format!(
            "about {} at {}/s",
            human_duration(plan.bytes.div_ceil(rate)),
            human_bytes(rate)
        ),
    };
    let _ = writeln!(
        out,
        "total: {} moves, {} rows, {}; {time}",
        plan.moves.len(),
        plan.rows,
        human_bytes(plan.bytes)
    );
    out
}

/// `bytes` in B, KiB, MiB, GiB or TiB.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `secs` as `1 h 2 min`, `3 min 4 s` or `5 s`.
fn human_duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// Checks that `current` is sorted, contiguous from slot 0, without empty shards, and (when
/// `num_slots` is given) covers exactly `0..num_slots`.
fn validate(current: &[ShardLoad], num_slots: Option<u32>) -> Result<(), PlanError> {
    let mut next = 0u32;
    for shard in current {
        let (slot_start, slot_end) = span(&shard.placement);
        if slot_start >= slot_end {
            return Err(PlanError::EmptyShard {
                slot_start,
                slot_end,
            });
        }
        match slot_start.cmp(&next) {
            Ordering::Greater => {
                return Err(PlanError::Gap {
                    slot_start: next,
                    slot_end: slot_start,
                })
            }
            Ordering::Less => return Err(PlanError::Overlap { slot: slot_start }),
            Ordering::Equal => next = slot_end,
        }
    }
    match num_slots {
        Some(num_slots) if next > num_slots => Err(PlanError::OutOfRange {
            slot_end: next,
            num_slots,
        }),
        Some(num_slots) if next < num_slots => Err(PlanError::Gap {
            slot_start: next,
            slot_end: num_slots,
        }),
        _ => Ok(()),
    }
}

/// The slot range of a placement.
fn span(p: &Placement) -> (u32, u32) {
    (p.slot_start, p.slot_end)
}

/// The slot ranges of `current`, in input order.
fn spans(current: &[ShardLoad]) -> Vec<(u32, u32)> {
    current.iter().map(|s| span(&s.placement)).collect()
}

/// Indices of `layout` in slot order (stable for equal starts).
fn order<'a>(layout: impl Iterator<Item = &'a Placement>) -> Vec<usize> {
    let starts: Vec<u32> = layout.map(|p| p.slot_start).collect();
    let mut idx: Vec<usize> = (0..starts.len()).collect();
    idx.sort_by_key(|&i| starts[i]);
    idx
}

/// Every non-empty intersection of a range of `a` with a range of `b` (both in slot order)
/// as `(index in a, index in b, first slot, end slot)`, in slot order.
fn overlaps(a: &[(u32, u32)], b: &[(u32, u32)]) -> Vec<(usize, usize, u32, u32)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let (lo, hi) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
        if lo < hi {
            out.push((i, j, lo, hi));
        }
        if a[i].1 <= b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The part of `total` (spread uniformly over `shard`'s slots) that falls in `lo..hi`.
///
/// Cumulative rounding: the parts of any partition of the shard sum exactly to `total`.
fn share(shard: &ShardLoad, total: u64, lo: u32, hi: u32) -> u64 {
    let (start, end) = span(&shard.placement);
    let len = u128::from(end.saturating_sub(start)).max(1);
    let upto = |slot: u32| u128::from(total) * u128::from(slot.clamp(start, end) - start) / len;
    (upto(hi) - upto(lo)) as u64
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const SLOTS: u32 = 4096;
    const BYTES_PER_SLOT: u64 = 1000;
    const ROWS_PER_SLOT: u64 = 10;

    fn node(id: &str, budget: u64) -> PlanNode {
        PlanNode {
            id: id.into(),
            memory_budget: budget,
            accepts: true,
        }
    }

    fn nodes(ids: &[&str]) -> Vec<PlanNode> {
        ids.iter().map(|id| node(id, 0)).collect()
    }

    /// `count` even shards over `holders` in turn, with uniform data.
    fn layout(count: u32, holders: &[&str]) -> Vec<ShardLoad> {
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
    fn moves_between_sums_rows_and_bytes_exactly() {
        let current: Vec<ShardLoad> = layout(3, &["a", "b", "c"])
            .into_iter()
            .map(|mut s| {
                (s.rows, s.bytes) = (1_000_003, 7_777_777_777);
                s
            })
            .collect();
        let target: Vec<Placement> = even_slot_ranges(7, SLOTS)
            .into_iter()
            .map(|(slot_start, slot_end)| Placement {
                slot_start,
                slot_end,
                node: "d".into(),
            })
            .collect();
        let moves = moves_between(&current, &target);
        assert_eq!(moves.len(), 3, "one run per current holder");
        assert_eq!(moves.iter().map(|m| m.rows).sum::<u64>(), 3 * 1_000_003);
        assert_eq!(
            moves.iter().map(|m| m.bytes).sum::<u64>(),
            3 * 7_777_777_777
        );
    }

    #[test]
    fn refine_cuts_at_both_boundaries() {
        let current: Vec<Placement> = layout(3, &["a", "b"])
            .into_iter()
            .map(|s| s.placement)
            .collect();
        let target = vec![
            Placement {
                slot_start: 0,
                slot_end: 100,
                node: "x".into(),
            },
            Placement {
                slot_start: 100,
                slot_end: SLOTS,
                node: "y".into(),
            },
        ];
        let pieces = refine(&current, &target);
        let bounds: Vec<(u32, u32, &str)> = pieces
            .iter()
            .map(|p| (p.slot_start, p.slot_end, p.node.as_str()))
            .collect();
        assert_eq!(
            bounds,
            vec![
                (0, 100, "a"),
                (100, 1365, "a"),
                (1365, 2730, "b"),
                (2730, SLOTS, "a")
            ]
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

    #[test]
    fn render_lists_moves_and_time() {
        let current = layout(12, &["a", "b"]);
        let plan = plan_rebalance(&current, &nodes(&["a", "b", "c"])).expect("plan");
        let text = render(&plan, 1 << 20);
        assert!(text.contains("a → c") && text.contains("KiB"), "{text}");
        assert!(
            text.contains("total: 4 moves") && text.contains("1.0 MiB/s"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 2 + plan.moves.len() + 1, "{text}");
        let idle = plan_rebalance(&layout(2, &["a", "b"]), &nodes(&["a", "b"])).expect("plan");
        assert!(render(&idle, 0).contains("no moves"));
        assert_eq!(human_duration(3725), "1 h 2 min");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
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
}
