//! The cluster's traffic view: the nodes' per-bucket traffic samples laid over the current
//! shards. Pure: no I/O, no clock.
//!
//! A node counts the requests it served per slot bucket; a bucket that holds slots of
//! several of the node's shards is split between them by their slots in it.

use std::collections::BTreeMap;

use crate::cluster_map::ShardEntry;
use crate::coordinator::NodeLive;

/// Bytes per second of one table's shard from clients at one location.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardTrafficRow {
    /// Table name.
    pub table: String,
    /// Shard id.
    pub shard: u32,
    /// First slot of the shard.
    pub slot_start: u32,
    /// One past its last slot.
    pub slot_end: u32,
    /// The node serving it.
    pub node: String,
    /// Client location (empty: unlabelled).
    pub location: String,
    /// Bytes pulled per second.
    pub pull_bytes_per_s: f64,
    /// Bytes pushed per second.
    pub push_bytes_per_s: f64,
}

/// Every node's traffic samples attributed to the shards it serves, sorted by table,
/// shard and location.
pub fn traffic_by_shard(
    shards: &[ShardEntry],
    live: &BTreeMap<String, NodeLive>,
) -> Vec<ShardTrafficRow> {
    let mut sums: BTreeMap<(String, u32, String), [f64; 2]> = BTreeMap::new();
    for (node, l) in live {
        let own: Vec<&ShardEntry> = shards.iter().filter(|s| &s.primary == node).collect();
        for sample in &l.traffic {
            let overlap = |s: &ShardEntry| {
                let lo = s.slot_start.max(sample.slot_start);
                let hi = s.slot_end.min(sample.slot_end);
                f64::from(hi.saturating_sub(lo))
            };
            let total: f64 = own.iter().map(|s| overlap(s)).sum();
            if total == 0.0 {
                continue;
            }
            for s in &own {
                let share = overlap(s) / total;
                if share == 0.0 {
                    continue;
                }
                let sum = sums
                    .entry((sample.table.clone(), s.id, sample.location.clone()))
                    .or_default();
                sum[0] += sample.pull_bytes_per_s * share;
                sum[1] += sample.push_bytes_per_s * share;
            }
        }
    }
    sums.into_iter()
        .filter_map(|((table, shard, location), [pull, push])| {
            let s = shards.iter().find(|s| s.id == shard)?;
            Some(ShardTrafficRow {
                table,
                shard,
                slot_start: s.slot_start,
                slot_end: s.slot_end,
                node: s.primary.clone(),
                location,
                pull_bytes_per_s: pull,
                push_bytes_per_s: push,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::report::TrafficSample;

    fn shard(id: u32, start: u32, end: u32, node: &str) -> ShardEntry {
        ShardEntry {
            id,
            slot_start: start,
            slot_end: end,
            primary: node.into(),
            replicas: Vec::new(),
        }
    }

    fn sample(start: u32, end: u32, location: &str, pull: f64) -> TrafficSample {
        TrafficSample {
            table: "emb".into(),
            slot_start: start,
            slot_end: end,
            location: location.into(),
            pull_bytes_per_s: pull,
            push_bytes_per_s: pull / 2.0,
        }
    }

    #[test]
    fn buckets_are_split_over_the_nodes_own_shards_by_slots() {
        let shards = [
            shard(0, 0, 48, "a"),
            shard(1, 48, 64, "a"),
            shard(2, 64, 128, "b"),
        ];
        let mut live = BTreeMap::new();
        let mut a = NodeLive::fresh(Instant::now());
        a.traffic = vec![
            sample(0, 32, "rack=r1", 100.0),
            sample(32, 64, "rack=r1", 100.0),
        ];
        let mut b = NodeLive::fresh(Instant::now());
        b.traffic = vec![sample(64, 96, "", 10.0)];
        live.insert("a".to_string(), a);
        live.insert("b".to_string(), b);
        let rows = traffic_by_shard(&shards, &live);
        let find = |shard: u32| rows.iter().find(|r| r.shard == shard).expect("row");
        assert_eq!(find(0).pull_bytes_per_s, 150.0);
        assert_eq!(find(1).pull_bytes_per_s, 50.0);
        assert_eq!(find(1).push_bytes_per_s, 25.0);
        assert_eq!(
            (find(2).node.as_str(), find(2).location.as_str()),
            ("b", "")
        );
        assert_eq!(rows.len(), 3);
    }
}
