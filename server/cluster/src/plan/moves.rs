//! Slot arithmetic: the moves that take one layout to another, the common refinement of two
//! layouts, and the pro-rating of a shard's rows and bytes over its slots.

use std::cmp::Ordering;

use super::{Move, Placement, PlanError, ShardLoad};

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

/// Checks that `current` is sorted, contiguous from slot 0, without empty shards, and (when
/// `num_slots` is given) covers exactly `0..num_slots`.
pub(super) fn validate(current: &[ShardLoad], num_slots: Option<u32>) -> Result<(), PlanError> {
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
pub(super) fn span(p: &Placement) -> (u32, u32) {
    (p.slot_start, p.slot_end)
}

/// The slot ranges of `current`, in input order.
pub(super) fn spans(current: &[ShardLoad]) -> Vec<(u32, u32)> {
    current.iter().map(|s| span(&s.placement)).collect()
}

/// Indices of `layout` in slot order (stable for equal starts).
pub(super) fn order<'a>(layout: impl Iterator<Item = &'a Placement>) -> Vec<usize> {
    let starts: Vec<u32> = layout.map(|p| p.slot_start).collect();
    let mut idx: Vec<usize> = (0..starts.len()).collect();
    idx.sort_by_key(|&i| starts[i]);
    idx
}

/// Every non-empty intersection of a range of `a` with a range of `b` (both in slot order)
/// as `(index in a, index in b, first slot, end slot)`, in slot order.
pub(super) fn overlaps(a: &[(u32, u32)], b: &[(u32, u32)]) -> Vec<(usize, usize, u32, u32)> {
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
pub(super) fn share(shard: &ShardLoad, total: u64, lo: u32, hi: u32) -> u64 {
    let (start, end) = span(&shard.placement);
    let len = u128::from(end.saturating_sub(start)).max(1);
    let upto = |slot: u32| u128::from(total) * u128::from(slot.clamp(start, end) - start) / len;
    (upto(hi) - upto(lo)) as u64
}

#[cfg(test)]
mod tests {
    use super::super::tests::{layout, SLOTS};
    use super::*;
    use crate::cluster_map::even_slot_ranges;

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
}
