//! Deduplication of a batch and its split by owning node, and reassembly in request order.

use crate::routing::Routing;

/// A batch's distinct ids and where each request position finds its row.
pub struct Dedup {
    /// Distinct ids.
    pub unique: Vec<u64>,
    /// For each request position, its index in `unique` (empty when ids were already distinct).
    pub position: Vec<u32>,
}

impl Dedup {
    /// Deduplicates `ids`; cheap when they are already sorted and distinct.
    pub fn new(ids: &[u64]) -> Self {
        if ids.windows(2).all(|w| w[0] < w[1]) {
            return Self {
                unique: ids.to_vec(),
                position: Vec::new(),
            };
        }
        let mut order: Vec<u32> = (0..ids.len() as u32).collect();
        order.sort_unstable_by_key(|&i| ids[i as usize]);
        let mut unique = Vec::with_capacity(ids.len());
        let mut position = vec![0u32; ids.len()];
        for &i in &order {
            let id = ids[i as usize];
            if unique.last() != Some(&id) {
                unique.push(id);
            }
            position[i as usize] = (unique.len() - 1) as u32;
        }
        Self { unique, position }
    }

    /// Whether the request had duplicates.
    pub fn had_duplicates(&self) -> bool {
        !self.position.is_empty()
    }
}

/// Distinct ids split by node: `parts[k]` = (node index, indices into the distinct ids).
pub struct Split {
    /// Per node with work: its index in the routing table and the distinct-id indices.
    pub parts: Vec<(usize, Vec<u32>)>,
}

impl Split {
    /// Splits `unique` by owning node (one part per node, carrying all its shards' ids).
    pub fn new(routing: &Routing, unique: &[u64]) -> Self {
        if routing.nodes.len() == 1 {
            return Self {
                parts: vec![(0, (0..unique.len() as u32).collect())],
            };
        }
        let mut per_node: Vec<Vec<u32>> = vec![Vec::new(); routing.nodes.len()];
        for (i, &id) in unique.iter().enumerate() {
            per_node[routing.node_of(id)].push(i as u32);
        }
        Self {
            parts: per_node
                .into_iter()
                .enumerate()
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        }
    }
}
