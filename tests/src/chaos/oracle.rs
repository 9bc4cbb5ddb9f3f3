//! What a row may hold after a schedule, from the durability promise (README, "Checkpoints
//! and restore"): a node restarted after SIGKILL serves its newest checkpoint that
//! verifies, so updates acknowledged after the last completed checkpoint may be lost; those
//! a completed checkpoint covers must survive; a node that was not restarted loses nothing.
//!
//! Tables are SGD with lr 1 from zeros, so a row is its verified base value minus the sum
//! of the gradients applied to it. Each pusher owns its rows and pushes one batch at a
//! time, so a checkpoint (which freezes the table for one instant) holds a *prefix* of its
//! pushes: the oracle looks for one cut `K` per pusher such that every one of its rows holds
//! exactly the acknowledged pushes before `K` — a row off the cut means a half-applied push,
//! one applied twice, or a lost one. A push whose outcome is unknown may or may not be in;
//! its rows are never pushed again in the schedule, and all of them agree.

use std::collections::HashMap;

/// What became of one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: applied.
    Acked,
    /// Refused before it was sent (node down or unreachable): not applied.
    NotApplied,
    /// Sent, then the connection failed: may or may not have been applied.
    Maybe,
}

/// One push of a pusher.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Distinct ids.
    pub ids: Vec<u64>,
    /// Gradients, `ids.len() × dim`, row-major.
    pub grads: Vec<f32>,
    /// What became of it.
    pub outcome: Outcome,
}

/// The cuts that fit one pusher's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The smallest fitting cut at or above the floor.
    pub k: usize,
    /// Pushes the pusher made.
    pub pushes: usize,
}

/// Rows as `id → values`.
pub type Rows = HashMap<u64, Vec<f32>>;

/// One row's history: its base and the acknowledged and maybe-applied gradients by push.
struct RowHistory<'a> {
    acked: Vec<(usize, &'a [f32])>,
    maybe: Option<(usize, &'a [f32])>,
}

fn minus(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// Per row of `pool`, its history in `attempts`; fails when a row has a push after one
/// with an unknown outcome (the pushers retire such rows).
fn histories<'a>(
    pool: &[u64],
    attempts: &'a [Attempt],
    dim: usize,
) -> Result<HashMap<u64, RowHistory<'a>>, String> {
    let mut rows: HashMap<u64, RowHistory<'a>> = pool
        .iter()
        .map(|&id| {
            (
                id,
                RowHistory {
                    acked: Vec::new(),
                    maybe: None,
                },
            )
        })
        .collect();
    for (j, a) in attempts.iter().enumerate() {
        if a.outcome == Outcome::NotApplied {
            continue;
        }
        for (i, id) in a.ids.iter().enumerate() {
            let g = &a.grads[i * dim..(i + 1) * dim];
            let h = rows
                .get_mut(id)
                .ok_or_else(|| format!("push {j} has id {id} outside the pool"))?;
            if let Some((q, _)) = h.maybe {
                return Err(format!(
                    "id {id}: push {j} after push {q} of unknown outcome"
                ));
            }
            match a.outcome {
                Outcome::Acked => h.acked.push((j, g)),
                Outcome::Maybe => h.maybe = Some((j, g)),
                Outcome::NotApplied => {}
            }
        }
    }
    Ok(rows)
}

/// The half-open ranges of cuts `K` (in `0..=n`) under which a row with this history and
/// `base` holds `value`.
fn fitting_cuts(h: &RowHistory<'_>, base: &[f32], value: &[f32], n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut prefix = base.to_vec();
    let mut start = 0usize;
    for i in 0..=h.acked.len() {
        let end = h.acked.get(i).map_or(n, |(j, _)| *j);
        if prefix == value {
            out.push((start, end + 1));
        }
        if let Some((j, g)) = h.acked.get(i) {
            prefix = minus(&prefix, g);
            start = j + 1;
        }
    }
    if let Some((q, g)) = h.maybe {
        // Applied: only with every acknowledged push of the row in, and the cut past it.
        if minus(&prefix, g) == value {
            out.push((start.max(q + 1), n + 1));
        }
    }
    out
}

/// Checks one pusher: `values` must fit one cut `K ≥ floor` of `attempts` (see the module
/// doc) over `base`; every push of unknown outcome is in on all its rows or on none.
/// Returns the cut found, or what is wrong.
pub fn check_pusher(
    pool: &[u64],
    base: &Rows,
    attempts: &[Attempt],
    floor: usize,
    values: &Rows,
    dim: usize,
) -> Result<Cut, String> {
    let n = attempts.len();
    let rows = histories(pool, attempts, dim)?;
    let mut count = vec![0i64; n + 2];
    let mut per_row: Vec<(u64, Vec<(usize, usize)>)> = Vec::with_capacity(pool.len());
    for &id in pool {
        let (b, v) = match (base.get(&id), values.get(&id)) {
            (Some(b), Some(v)) => (b, v),
            _ => return Err(format!("id {id}: no base or no value")),
        };
        let mut ranges = fitting_cuts(&rows[&id], b, v, n);
        ranges.sort_unstable();
        // Merge so that each K is counted once per row.
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.0 <= last.1 => last.1 = last.1.max(r.1),
                _ => merged.push(r),
            }
        }
        for &(a, b) in &merged {
            count[a] += 1;
            count[b] -= 1;
        }
        per_row.push((id, merged));
    }
    let mut running = 0i64;
    let mut best = (0i64, 0usize);
    let mut found = None;
    for (k, c) in count.iter().enumerate().take(n + 1) {
        running += c;
        if k >= floor && running > best.0 {
            best = (running, k);
        }
        if k >= floor && running == pool.len() as i64 {
            found = Some(k);
            break;
        }
    }
    let Some(k) = found else {
        let k = best.1;
        let off: Vec<String> = per_row
            .iter()
            .filter(|(_, r)| !r.iter().any(|&(a, b)| a <= k && k < b))
            .take(5)
            .map(|(id, r)| {
                format!(
                    "id {id}: value {:?} base {:?}, {} acked pushes, fits cuts {r:?}",
                    values[id],
                    base[id],
                    rows[id].acked.len()
                )
            })
            .collect();
        return Err(format!(
            "no cut K in {floor}..={n} fits every row (best K {k} fits {} of {}): {off:#?}",
            best.0,
            pool.len()
        ));
    };
    check_unknown_outcomes(&rows, base, values, k)?;
    Ok(Cut { k, pushes: n })
}

/// Every push of unknown outcome before cut `k` is in on all of its rows or on none.
fn check_unknown_outcomes(
    rows: &HashMap<u64, RowHistory<'_>>,
    base: &Rows,
    values: &Rows,
    k: usize,
) -> Result<(), String> {
    let mut by_push: HashMap<usize, (Vec<u64>, Vec<u64>)> = HashMap::new();
    for (id, h) in rows {
        let Some((q, g)) = h.maybe else { continue };
        if q >= k || g.iter().all(|&x| x == 0.0) {
            continue;
        }
        let full = h
            .acked
            .iter()
            .fold(base[id].clone(), |p, (_, g)| minus(&p, g));
        let entry = by_push.entry(q).or_default();
        if values[id] == minus(&full, g) {
            entry.0.push(*id);
        } else if values[id] == full {
            entry.1.push(*id);
        }
    }
    for (q, (applied, not)) in by_push {
        if !applied.is_empty() && !not.is_empty() {
            return Err(format!(
                "push {q} (unknown outcome) is in on ids {applied:?} but not on ids {not:?}"
            ));
        }
    }
    Ok(())
}
