//! Initial placement: shards spread over nodes evenly by count, weighted by memory budget.
//!
//! Pure and deterministic: no I/O, no clock, no randomness.

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
    let mut nodes: Vec<&Candidate> = nodes.iter().collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let finite_max = nodes
        .iter()
        .map(|n| n.memory_budget)
        .filter(|&b| b != 0 && b != u64::MAX)
        .max()
        .unwrap_or(1);
    let weight = |n: &Candidate| -> f64 {
        match n.memory_budget {
            0 | u64::MAX => finite_max as f64,
            b => b as f64,
        }
    };
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
    }
}
