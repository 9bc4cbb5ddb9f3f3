//! The cluster map: shards (slot ranges) → nodes, versioned by epoch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A node of the cluster as the map knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Stable node id.
    pub id: String,
    /// gRPC address clients connect to.
    pub address: String,
    /// Topology labels (zone, rack, host).
    pub labels: BTreeMap<String, String>,
    /// Whether the node answers heartbeats.
    pub up: bool,
}

/// A shard: a half-open slot range and the nodes that hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Shard id.
    pub id: u32,
    /// First slot.
    pub slot_start: u32,
    /// One past the last slot.
    pub slot_end: u32,
    /// Node id of the primary.
    pub primary: String,
    /// Node ids of the replicas.
    pub replicas: Vec<String>,
}

/// Shards → nodes at one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMap {
    /// Monotonically increasing version.
    pub epoch: u64,
    /// Slots of the cluster.
    pub num_slots: u32,
    /// Known nodes.
    pub nodes: Vec<NodeEntry>,
    /// Shards, ordered by slot range.
    pub shards: Vec<ShardEntry>,
}

/// `count` contiguous shards of near-equal slot ranges covering `0..num_slots`.
pub fn even_slot_ranges(count: u32, num_slots: u32) -> Vec<(u32, u32)> {
    let count = count.clamp(1, num_slots.max(1));
    (0..count)
        .map(|i| {
            let start = (i as u64 * num_slots as u64 / count as u64) as u32;
            let end = ((i as u64 + 1) * num_slots as u64 / count as u64) as u32;
            (start, end)
        })
        .collect()
}

/// `count` shards of [`even_slot_ranges`], numbered in slot order, with `primary` as their
/// primary ("" for none) and no replicas.
pub fn even_shards(count: u32, num_slots: u32, primary: &str) -> Vec<ShardEntry> {
    even_slot_ranges(count, num_slots)
        .into_iter()
        .enumerate()
        .map(|(i, (slot_start, slot_end))| ShardEntry {
            id: i as u32,
            slot_start,
            slot_end,
            primary: primary.to_string(),
            replicas: Vec::new(),
        })
        .collect()
}

impl ClusterMap {
    /// A map of `shards` shards, all on `node`.
    pub fn single_node(epoch: u64, num_slots: u32, shards: u32, node: NodeEntry) -> Self {
        Self {
            epoch,
            num_slots,
            shards: even_shards(shards, num_slots, &node.id),
            nodes: vec![node],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ranges_cover_every_slot_once() {
        for count in [1, 3, 8, 13, 4096] {
            let r = even_slot_ranges(count, 4096);
            assert_eq!(r.len(), count as usize);
            assert_eq!(r[0].0, 0);
            assert_eq!(r[r.len() - 1].1, 4096);
            assert!(r.windows(2).all(|w| w[0].1 == w[1].0 && w[0].0 < w[0].1));
        }
    }
}
