//! The search: the load rule, the best move or swap of a shard, and passes of them.

use std::cmp::Ordering;

use super::state::{crossing, State};

/// Client locations of a shard whose domains are tried as destinations, by traffic.
const CLIENTS_TRIED: usize = 4;
/// Client locations of a shard whose domains are tried for swaps.
const SWAP_CLIENTS_TRIED: usize = 2;
/// Nodes of a domain checked, least loaded first.
const NODES_TRIED: usize = 8;

/// What a shard can do: move to a node, or swap nodes with another shard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Action {
    /// Shard `shard` goes to node `to`.
    Move { shard: usize, to: usize },
    /// Shards `shard` and `with` exchange nodes.
    Swap { shard: usize, with: usize },
}

/// Whether a transfer between two nodes keeps one load within the bound: the pair's maximum
/// does not rise past `max(cap, its maximum before)`, no more of the two are over the cap
/// than before, and one over the cap before does not grow. So across any sequence of
/// transfers no node newly exceeds the cap, and the maximum never rises above the cap or
/// where it started.
fn bounded(before: [f64; 2], after: [f64; 2], cap: f64) -> bool {
    let over = |v: [f64; 2]| v.iter().filter(|&&x| x > cap).count();
    let max = |v: [f64; 2]| v[0].max(v[1]);
    max(after) <= cap.max(max(before))
        && over(after) <= over(before)
        && (0..2).all(|i| before[i] <= cap || after[i] <= before[i])
}

impl State {
    /// Whether moving `bytes` and `traffic` from node `a` to node `b` (negative: the other
    /// way) keeps budgets and both load bounds.
    fn transfer_ok(&self, a: usize, b: usize, bytes: i128, traffic: i128) -> bool {
        let (x, y) = (&self.nodes[a], &self.nodes[b]);
        let xb = i128::from(x.bytes) - bytes;
        let yb = i128::from(y.bytes) + bytes;
        let over_budget =
            |n: &super::state::Node, after: i128| n.budget.is_some_and(|b| after > i128::from(b));
        if xb < 0
            || yb < 0
            || (bytes < 0 && over_budget(x, xb))
            || (bytes > 0 && over_budget(y, yb))
        {
            return false;
        }
        let (xw, yw) = (x.weight as f64, y.weight as f64);
        let bytes_ok = bounded(
            [x.bytes as f64 / xw, y.bytes as f64 / yw],
            [xb as f64 / xw, yb as f64 / yw],
            self.caps.bytes,
        );
        let (xt, yt) = (
            i128::from(x.traffic) - traffic,
            i128::from(y.traffic) + traffic,
        );
        bytes_ok
            && xt >= 0
            && yt >= 0
            && bounded(
                [x.traffic as f64, y.traffic as f64],
                [xt as f64, yt as f64],
                self.caps.traffic,
            )
    }

    /// Whether node `d` may receive shard `s` now.
    fn fits(&self, s: usize, d: usize) -> bool {
        let shard = &self.shards[s];
        self.transfer_ok(
            shard.node,
            d,
            i128::from(shard.bytes),
            i128::from(shard.traffic),
        )
    }

    /// Whether shards `s` and `u` (on different nodes) may exchange nodes now.
    fn swap_fits(&self, s: usize, u: usize) -> bool {
        let (a, b) = (&self.shards[s], &self.shards[u]);
        self.transfer_ok(
            a.node,
            b.node,
            i128::from(a.bytes) - i128::from(b.bytes),
            i128::from(a.traffic) - i128::from(b.traffic),
        )
    }

    /// The price of moving shard `s` from its node to `d`: bytes × crossing cost.
    fn price(&self, s: usize, d: usize) -> f64 {
        let from = &self.nodes[self.shards[s].node].path;
        crossing(from, &self.nodes[d].path)
            .map_or(0.0, |level| self.costs[level] * self.shards[s].bytes as f64)
    }

    /// Whether a benefit per second pays for `price` within the horizon.
    fn pays(&self, benefit: f64, price: f64) -> bool {
        benefit > 0.0 && benefit * self.payback >= price
    }

    /// The domains to try for shard `s`: every domain of its top client location,
    /// innermost first, then the innermost domain of each of its next `clients - 1`.
    fn domains(&self, s: usize, clients: usize) -> impl Iterator<Item = usize> + '_ {
        self.shards[s]
            .clients
            .iter()
            .take(clients)
            .enumerate()
            .flat_map(move |(i, &(c, _))| {
                let inner = self.clients[c].domains.iter().rev().flatten().copied();
                inner.take(if i == 0 { usize::MAX } else { 1 })
            })
    }

    /// Whether shard `s` is in the innermost domain of its top client location (then a
    /// swap is not searched: the top client would lose).
    fn at_home(&self, s: usize) -> bool {
        let shard = &self.shards[s];
        let node = &self.nodes[shard.node];
        shard.clients.first().is_some_and(|&(c, _)| {
            let client = &self.clients[c];
            client
                .domains
                .iter()
                .zip(&node.domains)
                .rev()
                .find(|(d, _)| d.is_some())
                .is_some_and(|(d, n)| *d == Some(*n))
        })
    }

    /// Up to [`NODES_TRIED`] accepting nodes of `domain`, least loaded first.
    fn nodes_of(&self, domain: usize) -> impl Iterator<Item = usize> + '_ {
        self.sets[domain].iter().take(NODES_TRIED).map(|&(_, n)| n)
    }

    /// The best action of shard `s` now with its benefit per second: the best move, else
    /// the best swap; `None` when neither lowers the cost and pays back.
    pub(super) fn best(&self, s: usize) -> Option<(f64, Action)> {
        let shard = &self.shards[s];
        if !self.nodes[shard.node].accepts || shard.clients.is_empty() {
            return None;
        }
        let here = self.cost(s, shard.node);
        if here <= 0.0 {
            return None;
        }
        self.best_move(s, here).or_else(|| {
            if self.at_home(s) {
                None
            } else {
                self.best_swap(s, here)
            }
        })
    }

    /// The best move of shard `s` (costing `here` now): in each domain tried, the least
    /// loaded node with room; ties go to the first found.
    fn best_move(&self, s: usize, here: f64) -> Option<(f64, Action)> {
        let from = self.shards[s].node;
        let mut best: Option<(f64, usize)> = None;
        for domain in self.domains(s, CLIENTS_TRIED) {
            let Some(d) = self
                .nodes_of(domain)
                .find(|&d| d != from && self.fits(s, d))
            else {
                continue;
            };
            let benefit = here - self.cost(s, d);
            if benefit > best.map_or(0.0, |b| b.0) && self.pays(benefit, self.price(s, d)) {
                best = Some((benefit, d));
            }
        }
        best.map(|(benefit, to)| (benefit, Action::Move { shard: s, to }))
    }

    /// The best swap of shard `s` (costing `here` now) with a shard of a node tried, the
    /// pair's benefit paying for both moves; ties go to the first found.
    fn best_swap(&self, s: usize, here: f64) -> Option<(f64, Action)> {
        let from = self.shards[s].node;
        let mut best: Option<(f64, usize)> = None;
        let mut others = Vec::new();
        for domain in self.domains(s, SWAP_CLIENTS_TRIED) {
            for d in self.nodes_of(domain) {
                if d == from {
                    continue;
                }
                let gain = here - self.cost(s, d);
                if gain <= 0.0 {
                    continue;
                }
                let price = self.price(s, d);
                others.clear();
                others.extend_from_slice(&self.held[d]);
                others.sort_unstable();
                for &u in &others {
                    let benefit = gain + self.cost(u, d) - self.cost(u, from);
                    if benefit > best.map_or(0.0, |b| b.0)
                        && self.pays(benefit, price + self.price(u, from))
                        && self.swap_fits(s, u)
                    {
                        best = Some((benefit, u));
                    }
                }
            }
        }
        best.map(|(benefit, with)| (benefit, Action::Swap { shard: s, with }))
    }

    /// Bytes an action moves.
    fn bytes_moved(&self, action: Action) -> u64 {
        match action {
            Action::Move { shard, .. } => self.shards[shard].bytes,
            Action::Swap { shard, with } => self.shards[shard]
                .bytes
                .saturating_add(self.shards[with].bytes),
        }
    }

    /// Whether `action` (found earlier in this pass) can still be taken as found.
    fn still_fits(&self, action: Action, shard_node: usize, with_node: usize) -> bool {
        match action {
            Action::Move { shard, to } => {
                self.shards[shard].node == shard_node && self.fits(shard, to)
            }
            Action::Swap { shard, with } => {
                self.shards[shard].node == shard_node
                    && self.shards[with].node == with_node
                    && self.swap_fits(shard, with)
            }
        }
    }

    /// Takes `action`.
    fn take(&mut self, action: Action) {
        match action {
            Action::Move { shard, to } => self.relocate(shard, to),
            Action::Swap { shard, with } => {
                let (a, b) = (self.shards[shard].node, self.shards[with].node);
                self.relocate(shard, b);
                self.relocate(with, a);
            }
        }
    }

    /// One pass: every shard's best action, taken by benefit per byte moved (then slot
    /// order); an action no longer possible is searched again. Returns actions taken.
    pub(super) fn pass(&mut self) -> usize {
        let mut found: Vec<(f64, usize, Action, usize, usize)> = (0..self.shards.len())
            .filter_map(|s| {
                self.best(s).map(|(benefit, action)| {
                    let per_byte = benefit / self.bytes_moved(action).max(1) as f64;
                    let with_node = match action {
                        Action::Swap { with, .. } => self.shards[with].node,
                        Action::Move { .. } => usize::MAX,
                    };
                    (per_byte, s, action, self.shards[s].node, with_node)
                })
            })
            .collect();
        found.sort_by(|a, b| match b.0.total_cmp(&a.0) {
            Ordering::Equal => a.1.cmp(&b.1),
            o => o,
        });
        let mut taken = 0;
        for (_, s, action, shard_node, with_node) in found {
            let action = if self.still_fits(action, shard_node, with_node) {
                Some(action)
            } else {
                self.best(s).map(|(_, a)| a)
            };
            if let Some(action) = action {
                self.take(action);
                taken += 1;
            }
        }
        taken
    }
}
