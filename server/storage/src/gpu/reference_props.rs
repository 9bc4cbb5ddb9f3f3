//! Property tests of the CPU reference against a plain map: random batches of every operation,
//! with eviction and write-back accounting (no acknowledged update is ever lost).

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use crate::optimizer::{OptimizerConfig, OptimizerKind};

use super::fused::apply_row;
use super::layout::{place, KeyPlace, ScorePolicy, TableLayout, BUCKET_SLOTS};
use super::reference::{InsertOutcome, ReferenceTable};

/// One batch operation of a random sequence.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Evict(Vec<u64>),
    Assign(Vec<u64>),
    FindOrInsert(Vec<u64>),
    Apply(Vec<u64>),
    Erase(Vec<u64>),
    Find(Vec<u64>),
    Expire(u64),
}

fn key() -> impl Strategy<Value = u64> {
    prop_oneof![
        20 => 0u64..600,
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => Just(u64::MAX - 2),
    ]
}

fn batch() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(key(), 1..40).prop_map(|v| {
        let mut seen = HashSet::new();
        v.into_iter().filter(|k| seen.insert(*k)).collect()
    })
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => batch().prop_map(Op::Evict),
        2 => batch().prop_map(Op::Assign),
        4 => batch().prop_map(Op::FindOrInsert),
        3 => batch().prop_map(Op::Apply),
        1 => batch().prop_map(Op::Erase),
        2 => batch().prop_map(Op::Find),
        1 => (0u64..40).prop_map(Op::Expire),
    ]
}

pub(crate) fn policy() -> impl Strategy<Value = ScorePolicy> {
    prop_oneof![
        Just(ScorePolicy::Lru),
        Just(ScorePolicy::Lfu),
        Just(ScorePolicy::Step)
    ]
}

pub(crate) const DIM: usize = 2;

pub(crate) fn sgd() -> OptimizerConfig {
    OptimizerConfig::new(OptimizerKind::Sgd { lr: 0.5 })
}

/// A full row (dim 2, no state, 4 metadata words) that identifies op and key.
pub(crate) fn make_row(op: usize, key: u64) -> Vec<f32> {
    let v = (op * 1000) as f32 + (key % 1000) as f32;
    vec![v, -v, 0.0, 0.0, 0.0, 0.0]
}

/// The rest of the system: what the host tier holds and the latest acknowledged rows.
#[derive(Default)]
struct Model {
    truth: HashMap<u64, Vec<f32>>,
    host: HashMap<u64, Vec<f32>>,
    evictions: usize,
}

impl Model {
    fn write_back(&mut self, key: u64, row: Vec<f32>) {
        assert_eq!(
            self.truth.get(&key),
            Some(&row),
            "evicted row of {key} is stale"
        );
        self.host.insert(key, row);
    }

    fn upserted(&mut self, key: u64, row: Vec<f32>, o: &InsertOutcome) {
        match o {
            InsertOutcome::Evicted {
                key: e, row: er, ..
            } => {
                assert_ne!(*e, key);
                self.evictions += 1;
                self.write_back(*e, er.clone());
            }
            InsertOutcome::Refused => {
                self.host.insert(key, row.clone());
            }
            _ => {}
        }
        self.truth.insert(key, row);
    }

    fn check(&self, t: &ReferenceTable) {
        t.check_invariants().unwrap_or_else(|e| panic!("{e}"));
        assert!(t.len() <= t.layout().capacity());
        for (k, row) in &self.truth {
            match t.row(*k) {
                Some(r) => assert_eq!(r, &row[..], "resident row of {k}"),
                None => assert_eq!(self.host.get(k), Some(row), "lost update of {k}"),
            }
        }
        for e in t.export(0) {
            assert!(self.truth.contains_key(&e.key), "ghost key {}", e.key);
            if let KeyPlace::Hashed { bucket, .. } = place(e.key, t.layout().num_buckets) {
                let s = t.slot_of(e.key).unwrap_or(usize::MAX);
                assert_eq!(s / BUCKET_SLOTS, bucket as usize);
            }
        }
    }
}

/// Runs one random sequence against the reference and the model; returns the evictions.
fn run(buckets: u64, policy: ScorePolicy, ops: &[Op]) -> usize {
    let layout = TableLayout::new(buckets, DIM, 0).unwrap_or_else(|e| panic!("{e}"));
    let mut t = ReferenceTable::new(layout, policy);
    let mut m = Model::default();
    let cfg = sgd();
    let w = layout.row_width();
    for (i, op) in ops.iter().enumerate() {
        t.set_step(i as u64);
        match op {
            Op::Evict(keys) | Op::Assign(keys) => {
                let rows: Vec<f32> = keys.iter().flat_map(|&k| make_row(i, k)).collect();
                let out = match op {
                    Op::Evict(_) => t.insert_and_evict(keys, &rows, None),
                    _ => t.insert_or_assign(keys, &rows, None),
                }
                .unwrap_or_else(|e| panic!("{e}"));
                for (j, (&k, o)) in keys.iter().zip(&out).enumerate() {
                    if matches!(op, Op::Assign(_)) {
                        assert!(!matches!(o, InsertOutcome::Evicted { .. }));
                    }
                    m.upserted(k, rows[j * w..(j + 1) * w].to_vec(), o);
                }
            }
            Op::FindOrInsert(keys) => {
                let defaults: Vec<f32> = keys
                    .iter()
                    .flat_map(|&k| m.host.get(&k).cloned().unwrap_or_else(|| make_row(i, k)))
                    .collect();
                let (rows, out) = t
                    .find_or_insert(keys, &defaults, None)
                    .unwrap_or_else(|e| panic!("{e}"));
                for (j, (&k, o)) in keys.iter().zip(&out).enumerate() {
                    let got = rows[j * w..(j + 1) * w].to_vec();
                    if *o == InsertOutcome::Found {
                        assert_eq!(m.truth.get(&k), Some(&got));
                    } else {
                        assert_eq!(got, defaults[j * w..(j + 1) * w].to_vec());
                        m.upserted(k, got, o);
                    }
                }
            }
            Op::Apply(keys) => {
                let grads: Vec<f32> = keys.iter().flat_map(|_| [0.5, -0.25]).collect();
                let found = t
                    .apply(keys, &grads, &cfg, i as u32)
                    .unwrap_or_else(|e| panic!("{e}"));
                for (&k, f) in keys.iter().zip(found) {
                    if let Some(row) = m.truth.get_mut(&k) {
                        apply_row(&cfg, row, &[0.5, -0.25], i as u32);
                        if !f {
                            // The host tier applies misses.
                            m.host.insert(k, row.clone());
                        }
                    } else {
                        assert!(!f, "apply found unknown key {k}");
                    }
                }
            }
            Op::Erase(keys) => {
                let before: Vec<bool> = keys.iter().map(|&k| t.row(k).is_some()).collect();
                assert_eq!(t.erase(keys), before);
                for &k in keys {
                    assert!(t.row(k).is_none());
                    m.truth.remove(&k);
                    m.host.remove(&k);
                }
            }
            Op::Find(keys) => {
                let (out, found) = t.find(keys, DIM, true).unwrap_or_else(|e| panic!("{e}"));
                for (j, (&k, f)) in keys.iter().zip(found).enumerate() {
                    if f {
                        assert_eq!(
                            Some(&out[j * DIM..(j + 1) * DIM]),
                            m.truth.get(&k).map(|r| &r[..DIM])
                        );
                    }
                }
            }
            Op::Expire(below) => {
                for e in t.expire(*below) {
                    assert!(e.score < *below);
                    m.write_back(e.key, e.row);
                }
            }
        }
        m.check(&t);
    }
    m.evictions
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn gpu_reference_matches_map_model(
        buckets in 1u64..=3,
        policy in policy(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run(buckets, policy, &ops);
    }
}

#[test]
fn gpu_reference_evicts_under_pressure() {
    // Deterministic heavy sequence: 1 bucket, 600 distinct keys, every policy.
    for policy in [ScorePolicy::Lru, ScorePolicy::Lfu, ScorePolicy::Step] {
        let ops: Vec<Op> = (0..30)
            .map(|i| Op::Evict((i * 20..i * 20 + 20).collect()))
            .chain((0..10).map(|i| Op::Apply((i * 50..i * 50 + 30).collect())))
            .chain((0..10).map(|i| Op::FindOrInsert((i * 40..i * 40 + 25).collect())))
            .collect();
        assert!(run(1, policy, &ops) > 0, "{policy:?} never evicted");
    }
}
