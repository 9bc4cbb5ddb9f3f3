//! CPU reference of the GPU hash table: the exact decisions the kernels make, one key at a time.
//!
//! Keys of a batch are processed in order. The kernels process a batch's keys in parallel, so
//! they match this reference exactly when no two keys of a batch share a bucket (and always in
//! what is resident and with which value; only *which* slot or victim may differ under
//! contention). Every batch must hold distinct keys (the tier deduplicates ids first).
//!
//! Decisions, per key:
//! - resident (digest match, then key match): read or overwrite its row, update its score;
//! - absent, bucket has a free slot: take the **lowest-index** free slot;
//! - absent, bucket full: `insert_or_assign` refuses; `insert_and_evict` and `find_or_insert`
//!   evict the slot with the **minimum score** (lowest index on ties) unless the new key's score
//!   is lower than that minimum (then refuse, as HierarchicalKV does).
//!
//! Ids that collide with the sentinels ([`RESERVED_MIN`](super::layout::RESERVED_MIN)..) have one
//! fixed slot each in the reserved bucket and are never evicted.

use std::collections::HashSet;

use crate::optimizer::OptimizerConfig;

use super::fused::apply_row;
use super::layout::{
    place, KeyPlace, ScorePolicy, TableLayout, BUCKET_SLOTS, EMPTY_KEY, LOCKED_KEY, RESERVED_TAG,
};
use super::GpuError;

/// What an inserting operation did with one key.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    /// The key was absent and took a free slot.
    Inserted,
    /// The key was resident and its row was overwritten.
    Updated,
    /// The key was resident and its row was returned unchanged (`find_or_insert`).
    Found,
    /// The key took the slot of `key`, whose row (with optimizer state) must be written back.
    Evicted {
        /// The evicted id.
        key: u64,
        /// Its score when evicted.
        score: u64,
        /// Its full row (weights, state, metadata).
        row: Vec<f32>,
    },
    /// The key was not stored (bucket full without eviction, or its score was too low).
    Refused,
}

impl InsertOutcome {
    /// Whether the key is resident after the operation.
    pub fn is_resident(&self) -> bool {
        !matches!(self, InsertOutcome::Refused)
    }
}

/// One resident entry, as exported for checkpoints and migration.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedEntry {
    /// The user id.
    pub key: u64,
    /// Its score.
    pub score: u64,
    /// Its full row.
    pub row: Vec<f32>,
}

/// Which inserting operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpsertMode {
    /// Return resident rows; insert absent keys with the given default row, evicting if needed.
    FindOrInsert,
    /// Overwrite or insert; never evict.
    Assign,
    /// Overwrite or insert; evict the minimum score when the bucket is full.
    Evict,
}

/// The CPU reference table.
#[derive(Debug, Clone)]
pub struct ReferenceTable {
    layout: TableLayout,
    policy: ScorePolicy,
    keys: Vec<u64>,
    digests: Vec<u8>,
    scores: Vec<u64>,
    values: Vec<f32>,
    clock: u64,
    step: u64,
    len: usize,
}

/// Checks that a batch holds distinct ids.
pub fn check_distinct(keys: &[u64]) -> Result<(), GpuError> {
    let mut seen = HashSet::with_capacity(keys.len());
    for k in keys {
        if !seen.insert(*k) {
            return Err(GpuError::BatchShape(format!(
                "duplicate id {k} in one batch"
            )));
        }
    }
    Ok(())
}

/// Checks that `buf` holds `n` items of `width` words.
pub fn check_len(what: &str, buf: usize, n: usize, width: usize) -> Result<(), GpuError> {
    if buf != n * width {
        return Err(GpuError::BatchShape(format!(
            "{what}: {buf} words for {n} ids of width {width}"
        )));
    }
    Ok(())
}

impl ReferenceTable {
    /// An empty table.
    pub fn new(layout: TableLayout, policy: ScorePolicy) -> Self {
        let slots = layout.total_slots();
        Self {
            layout,
            policy,
            keys: vec![EMPTY_KEY; slots],
            digests: vec![0; slots],
            scores: vec![0; slots],
            values: vec![0.0; slots * layout.row_width()],
            clock: 0,
            step: 0,
            len: 0,
        }
    }

    /// The table's geometry.
    pub fn layout(&self) -> &TableLayout {
        &self.layout
    }

    /// The score policy.
    pub fn policy(&self) -> ScorePolicy {
        self.policy
    }

    /// Resident keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is resident.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the global training step used by [`ScorePolicy::Step`].
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    /// The `now` of a new batch: LRU advances its clock, Step uses the training step.
    pub(crate) fn begin_batch(&mut self) -> u64 {
        match self.policy {
            ScorePolicy::Lru => {
                self.clock += 1;
                self.clock
            }
            ScorePolicy::Step => self.step,
            ScorePolicy::Lfu => 0,
        }
    }

    fn row_range(&self, slot: usize) -> std::ops::Range<usize> {
        let w = self.layout.row_width();
        slot * w..(slot + 1) * w
    }

    /// The slot holding `id`, if resident.
    pub fn slot_of(&self, id: u64) -> Option<usize> {
        let p = place(id, self.layout.num_buckets);
        let base = self.layout.base_slot(p);
        match p {
            KeyPlace::Reserved { .. } => (self.keys[base] == RESERVED_TAG).then_some(base),
            KeyPlace::Hashed { digest, .. } => (base..base + BUCKET_SLOTS)
                .find(|&s| self.digests[s] == digest && self.keys[s] == id),
        }
    }

    /// The full row of a resident id.
    pub fn row(&self, id: u64) -> Option<&[f32]> {
        self.slot_of(id).map(|s| &self.values[self.row_range(s)])
    }

    /// The score of a resident id.
    pub fn score(&self, id: u64) -> Option<u64> {
        self.slot_of(id).map(|s| self.scores[s])
    }

    fn fill(&mut self, slot: usize, stored: u64, digest: u8, row: &[f32], score: u64) {
        self.keys[slot] = stored;
        self.digests[slot] = digest;
        self.scores[slot] = score;
        let r = self.row_range(slot);
        self.values[r].copy_from_slice(row);
    }

    /// One key of an inserting batch; returns the outcome and the slot it now occupies.
    fn upsert_one(
        &mut self,
        id: u64,
        row: &[f32],
        score_in: Option<u64>,
        now: u64,
        mode: UpsertMode,
    ) -> (InsertOutcome, Option<usize>) {
        if let Some(s) = self.slot_of(id) {
            self.scores[s] = score_in.unwrap_or(self.policy.touch_score(self.scores[s], now));
            if mode == UpsertMode::FindOrInsert {
                return (InsertOutcome::Found, Some(s));
            }
            let r = self.row_range(s);
            self.values[r].copy_from_slice(row);
            return (InsertOutcome::Updated, Some(s));
        }
        let new_score = score_in.unwrap_or(self.policy.insert_score(now));
        let p = place(id, self.layout.num_buckets);
        let base = self.layout.base_slot(p);
        let digest = match p {
            KeyPlace::Reserved { .. } => {
                self.fill(base, RESERVED_TAG, 0, row, new_score);
                self.len += 1;
                return (InsertOutcome::Inserted, Some(base));
            }
            KeyPlace::Hashed { digest, .. } => digest,
        };
        let bucket = base..base + BUCKET_SLOTS;
        if let Some(s) = bucket.clone().find(|&s| self.keys[s] == EMPTY_KEY) {
            self.fill(s, id, digest, row, new_score);
            self.len += 1;
            return (InsertOutcome::Inserted, Some(s));
        }
        if mode == UpsertMode::Assign {
            return (InsertOutcome::Refused, None);
        }
        // Full bucket: the minimum score, lowest index on ties.
        let victim = bucket.min_by_key(|&s| (self.scores[s], s)).unwrap_or(base);
        if new_score < self.scores[victim] {
            return (InsertOutcome::Refused, None);
        }
        let evicted = InsertOutcome::Evicted {
            key: self.keys[victim],
            score: self.scores[victim],
            row: self.values[self.row_range(victim)].to_vec(),
        };
        self.fill(victim, id, digest, row, new_score);
        (evicted, Some(victim))
    }

    fn upsert(
        &mut self,
        keys: &[u64],
        rows: &[f32],
        scores: Option<&[u64]>,
        mode: UpsertMode,
    ) -> Result<Vec<InsertOutcome>, GpuError> {
        let w = self.layout.row_width();
        check_distinct(keys)?;
        check_len("rows", rows.len(), keys.len(), w)?;
        if let Some(s) = scores {
            check_len("scores", s.len(), keys.len(), 1)?;
        }
        let now = self.begin_batch();
        Ok(keys
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let sc = scores.map(|s| s[i]);
                self.upsert_one(k, &rows[i * w..(i + 1) * w], sc, now, mode)
                    .0
            })
            .collect())
    }

    /// Gathers the first `out_width` words of each resident row; `touch` updates scores.
    pub fn find(
        &mut self,
        keys: &[u64],
        out_width: usize,
        touch: bool,
    ) -> Result<(Vec<f32>, Vec<bool>), GpuError> {
        if out_width > self.layout.row_width() {
            return Err(GpuError::BatchShape(format!(
                "out_width {out_width} > row width {}",
                self.layout.row_width()
            )));
        }
        check_distinct(keys)?;
        let now = self.begin_batch();
        let mut out = vec![0.0; keys.len() * out_width];
        let mut found = vec![false; keys.len()];
        for (i, &k) in keys.iter().enumerate() {
            if let Some(s) = self.slot_of(k) {
                let start = self.row_range(s).start;
                out[i * out_width..(i + 1) * out_width]
                    .copy_from_slice(&self.values[start..start + out_width]);
                if touch {
                    self.scores[s] = self.policy.touch_score(self.scores[s], now);
                }
                found[i] = true;
            }
        }
        Ok((out, found))
    }

    /// Returns resident rows, inserting `default_rows` for absent keys (evicting if needed).
    ///
    /// The returned rows are the resident rows, or the default row for inserted and refused keys.
    pub fn find_or_insert(
        &mut self,
        keys: &[u64],
        default_rows: &[f32],
        scores: Option<&[u64]>,
    ) -> Result<(Vec<f32>, Vec<InsertOutcome>), GpuError> {
        let outcomes = self.upsert(keys, default_rows, scores, UpsertMode::FindOrInsert)?;
        let w = self.layout.row_width();
        let mut out = default_rows.to_vec();
        for (i, (&k, o)) in keys.iter().zip(&outcomes).enumerate() {
            if *o == InsertOutcome::Found {
                if let Some(r) = self.row(k) {
                    out[i * w..(i + 1) * w].copy_from_slice(r);
                }
            }
        }
        Ok((out, outcomes))
    }

    /// Overwrites resident rows and inserts absent keys into free slots; never evicts.
    pub fn insert_or_assign(
        &mut self,
        keys: &[u64],
        rows: &[f32],
        scores: Option<&[u64]>,
    ) -> Result<Vec<InsertOutcome>, GpuError> {
        self.upsert(keys, rows, scores, UpsertMode::Assign)
    }

    /// Overwrites or inserts, evicting the minimum-score slot of a full bucket.
    pub fn insert_and_evict(
        &mut self,
        keys: &[u64],
        rows: &[f32],
        scores: Option<&[u64]>,
    ) -> Result<Vec<InsertOutcome>, GpuError> {
        self.upsert(keys, rows, scores, UpsertMode::Evict)
    }

    /// Applies one gradient per resident id in place (`grads`: `dim` words per id).
    ///
    /// Returns which ids were resident; the others must be applied by the host tier.
    pub fn apply(
        &mut self,
        keys: &[u64],
        grads: &[f32],
        cfg: &OptimizerConfig,
        now_secs: u32,
    ) -> Result<Vec<bool>, GpuError> {
        let dim = self.layout.dim;
        if super::layout::state_slots(&cfg.kind) != self.layout.state_slots {
            return Err(GpuError::InvalidConfig(
                "optimizer state does not match the table layout".into(),
            ));
        }
        check_distinct(keys)?;
        check_len("grads", grads.len(), keys.len(), dim)?;
        let now = self.begin_batch();
        let mut found = vec![false; keys.len()];
        for (i, &k) in keys.iter().enumerate() {
            if let Some(s) = self.slot_of(k) {
                let r = self.row_range(s);
                apply_row(
                    cfg,
                    &mut self.values[r],
                    &grads[i * dim..(i + 1) * dim],
                    now_secs,
                );
                self.scores[s] = self.policy.touch_score(self.scores[s], now);
                found[i] = true;
            }
        }
        Ok(found)
    }

    /// Removes ids; returns which were resident.
    pub fn erase(&mut self, keys: &[u64]) -> Vec<bool> {
        keys.iter()
            .map(|&k| match self.slot_of(k) {
                Some(s) => {
                    self.keys[s] = EMPTY_KEY;
                    self.digests[s] = 0;
                    self.scores[s] = 0;
                    self.len -= 1;
                    true
                }
                None => false,
            })
            .collect()
    }

    fn entry(&self, slot: usize) -> ExportedEntry {
        ExportedEntry {
            key: self.layout.user_key(slot, self.keys[slot]),
            score: self.scores[slot],
            row: self.values[self.row_range(slot)].to_vec(),
        }
    }

    fn occupied(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.keys.len()).filter(|&s| self.keys[s] != EMPTY_KEY && self.keys[s] != LOCKED_KEY)
    }

    /// All resident entries with `score >= min_score`, in slot order.
    pub fn export(&self, min_score: u64) -> Vec<ExportedEntry> {
        self.occupied()
            .filter(|&s| self.scores[s] >= min_score)
            .map(|s| self.entry(s))
            .collect()
    }

    /// Removes and returns entries with `score < below` (TTL with [`ScorePolicy::Step`]).
    pub fn expire(&mut self, below: u64) -> Vec<ExportedEntry> {
        let slots: Vec<usize> = self
            .occupied()
            .filter(|&s| self.scores[s] < below)
            .collect();
        let out: Vec<ExportedEntry> = slots.iter().map(|&s| self.entry(s)).collect();
        let keys: Vec<u64> = out.iter().map(|e| e.key).collect();
        self.erase(&keys);
        out
    }

    /// Checks structural invariants: placement, digests, no duplicates, count.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut seen = HashSet::new();
        let mut count = 0;
        for s in self.occupied() {
            count += 1;
            let key = self.layout.user_key(s, self.keys[s]);
            if !seen.insert(key) {
                return Err(format!("id {key} resident twice"));
            }
            let p = place(key, self.layout.num_buckets);
            match p {
                KeyPlace::Hashed { bucket, digest } => {
                    if s / BUCKET_SLOTS != bucket as usize || self.digests[s] != digest {
                        return Err(format!("id {key} in slot {s}: wrong bucket or digest"));
                    }
                }
                KeyPlace::Reserved { .. } => {
                    if self.layout.base_slot(p) != s || self.keys[s] != RESERVED_TAG {
                        return Err(format!("reserved id {key} in wrong slot {s}"));
                    }
                }
            }
        }
        if count != self.len || count > self.layout.capacity() {
            return Err(format!("count {count}, len {}", self.len));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(policy: ScorePolicy) -> ReferenceTable {
        ReferenceTable::new(TableLayout::new(1, 1, 0).expect("layout"), policy)
    }

    fn row(v: f32) -> Vec<f32> {
        vec![v, 0.0, 0.0, 0.0, 0.0]
    }

    #[test]
    fn lru_evicts_oldest_and_assign_refuses_when_full() {
        let mut t = table(ScorePolicy::Lru);
        for k in 0..128u64 {
            let o = t.insert_and_evict(&[k], &row(k as f32), None).expect("ok");
            assert_eq!(o, vec![InsertOutcome::Inserted]);
        }
        // Touch key 0 so key 1 becomes the oldest.
        t.find(&[0], 1, true).expect("ok");
        assert_eq!(
            t.insert_or_assign(&[1000], &row(9.0), None).expect("ok"),
            vec![InsertOutcome::Refused]
        );
        let o = t.insert_and_evict(&[1000], &row(9.0), None).expect("ok");
        assert_eq!(
            o,
            vec![InsertOutcome::Evicted {
                key: 1,
                score: 2,
                row: row(1.0)
            }]
        );
        assert_eq!(t.row(1000), Some(&row(9.0)[..]));
        assert!(t.row(1).is_none());
        t.check_invariants().expect("invariants");
    }

    #[test]
    fn lfu_refuses_new_key_below_min_score() {
        let mut t = table(ScorePolicy::Lfu);
        let keys: Vec<u64> = (0..128).collect();
        let rows: Vec<f32> = keys.iter().flat_map(|&k| row(k as f32)).collect();
        t.insert_and_evict(&keys, &rows, None).expect("ok");
        t.find(&keys, 1, true).expect("ok"); // every count is now 2
        let o = t.insert_and_evict(&[500], &row(5.0), None).expect("ok");
        assert_eq!(o, vec![InsertOutcome::Refused]);
        // A caller-provided score (e.g. a sketch estimate) can win.
        let o = t
            .insert_and_evict(&[500], &row(5.0), Some(&[3]))
            .expect("ok");
        assert!(matches!(o[0], InsertOutcome::Evicted { key: 0, .. }));
    }

    #[test]
    fn reserved_ids_round_trip_and_export() {
        let mut t = table(ScorePolicy::Step);
        t.set_step(7);
        let keys = [u64::MAX, u64::MAX - 1, u64::MAX - 2, 5];
        let rows: Vec<f32> = (0..4).flat_map(|i| row(i as f32)).collect();
        let o = t.insert_and_evict(&keys, &rows, None).expect("ok");
        assert!(o.iter().all(|o| *o == InsertOutcome::Inserted));
        let (out, found) = t.find(&keys, 1, false).expect("ok");
        assert_eq!(out, vec![0.0, 1.0, 2.0, 3.0]);
        assert!(found.iter().all(|f| *f));
        assert_eq!(t.export(0).len(), 4);
        t.set_step(9);
        t.find(&[5], 1, true).expect("ok");
        let expired = t.expire(8);
        assert_eq!(expired.len(), 3);
        assert_eq!(t.len(), 1);
        assert_eq!(t.erase(&[5, 5 + 1]), vec![true, false]);
        t.check_invariants().expect("invariants");
    }

    #[test]
    fn duplicate_ids_rejected() {
        let mut t = table(ScorePolicy::Lru);
        assert!(t.insert_or_assign(&[1, 1], &[0.0; 10], None).is_err());
    }
}
