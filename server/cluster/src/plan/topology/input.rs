//! The planner's input made compact: traffic spread onto the current shards, and locations
//! interned level by level so that they compare as small integers.

use std::collections::HashMap;

use super::state::Shard;
use super::ShardTraffic;
use crate::plan::moves::span;
use crate::plan::{PlanError, ShardLoad};
use crate::topology::Location;

/// A label a location lacks.
pub(super) const MISSING: u32 = u32::MAX;

/// Spreads `traffic` over the current shards it overlaps (pro-rated by slots), fills each
/// shard's total traffic and its clients (most traffic first), and returns the distinct
/// client locations in location order (the clients' indices). A location with no label of
/// the topology's `levels` is unlabelled: its traffic counts in load only.
pub(super) fn assign_traffic<'a>(
    current: &[ShardLoad],
    traffic: &'a [ShardTraffic],
    levels: &[&str],
    shards: &mut [Shard],
) -> Result<Vec<&'a Location>, PlanError> {
    // Ids in location order, so they do not depend on the order of the input.
    let mut seen: HashMap<&Location, usize> = HashMap::new();
    for t in traffic {
        if levels.iter().any(|l| t.location.get(l).is_some()) {
            seen.insert(&t.location, 0);
        }
    }
    let mut sorted: Vec<&Location> = seen.keys().copied().collect();
    sorted.sort_unstable();
    for (i, l) in sorted.iter().enumerate() {
        seen.insert(l, i);
    }
    let starts: Vec<u32> = current.iter().map(|s| s.placement.slot_start).collect();
    let mut parts: Vec<Vec<(Option<usize>, f64)>> = vec![Vec::new(); shards.len()];
    for t in traffic {
        let total = t.pull_bytes_per_s + t.push_bytes_per_s;
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !(ok(t.pull_bytes_per_s) && ok(t.push_bytes_per_s) && total.is_finite())
            || t.slot_start >= t.slot_end
        {
            return Err(PlanError::BadTraffic {
                slot_start: t.slot_start,
                slot_end: t.slot_end,
            });
        }
        let client = seen.get(&t.location).copied();
        let len = f64::from(t.slot_end - t.slot_start);
        let first = starts
            .partition_point(|&s| s <= t.slot_start)
            .saturating_sub(1);
        for (i, shard) in current.iter().enumerate().skip(first) {
            // (`skip` on a slice iterator is O(1).)
            let (lo, hi) = span(&shard.placement);
            if lo >= t.slot_end {
                break;
            }
            let overlap = hi.min(t.slot_end).saturating_sub(lo.max(t.slot_start));
            if overlap > 0 {
                parts[i].push((client, total * f64::from(overlap) / len));
            }
        }
    }
    for (shard, mut part) in shards.iter_mut().zip(parts) {
        // Sorted first, so the sums do not depend on the order of the input.
        part.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut all = 0.0;
        for &(client, bytes) in &part {
            all += bytes;
            let Some(c) = client else { continue };
            match shard.clients.last_mut() {
                Some(last) if last.0 == c => last.1 += bytes,
                _ => shard.clients.push((c, bytes)),
            }
        }
        shard.clients.retain(|c| c.1 > 0.0);
        shard
            .clients
            .sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        shard.traffic = all.round().min(u64::MAX as f64) as u64;
    }
    Ok(sorted)
}

/// Label values interned per level, so locations compare as small integers.
pub(super) struct Interner {
    values: Vec<HashMap<String, u32>>,
}

impl Interner {
    /// An interner for `levels` levels.
    pub(super) fn new(levels: usize) -> Self {
        Self {
            values: vec![HashMap::new(); levels],
        }
    }

    /// The path of `location` over `levels`; values not seen before get new ids when `add`,
    /// else an id no node has.
    pub(super) fn path(&mut self, levels: &[&str], location: &Location, add: bool) -> Vec<u32> {
        levels
            .iter()
            .zip(self.values.iter_mut())
            .map(|(level, values)| match location.get(level) {
                None => MISSING,
                Some(v) => match values.get(v) {
                    Some(&id) => id,
                    None if add => {
                        let id = values.len() as u32;
                        values.insert(v.to_string(), id);
                        id
                    }
                    None => MISSING - 1,
                },
            })
            .collect()
    }
}
