//! The conformance suite every [`Tier`] implementation must pass.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::gpu::{AdmissionPolicy, ReferenceTable, ScorePolicy};
use super::host::{HostTier, RowMemory, RowMemoryConfig};
use super::{ExportCursor, GpuTier, GpuTierConfig, MemoryBudget, StorageError, Tier};
use crate::optimizer::{OptimizerConfig, OptimizerKind};
use crate::slot::slot_of;
use crate::spec::{InitializerConfig, TableSpec, TierKind};
use crate::RowBlock;

fn spec(dim: u32, kind: OptimizerKind) -> TableSpec {
    spec_with(dim, kind, InitializerConfig::Uniform { scale: 0.1 })
}

fn spec_with(dim: u32, kind: OptimizerKind, initializer: InitializerConfig) -> TableSpec {
    TableSpec {
        name: "t".into(),
        dim,
        optimizer: OptimizerConfig::new(kind),
        initializer,
        seed: 9,
        tier: TierKind::Host,
    }
}

/// Builds the tier under test.
type Factory = fn(TableSpec, Arc<MemoryBudget>) -> Box<dyn Tier>;

fn host(spec: TableSpec, budget: Arc<MemoryBudget>) -> Box<dyn Tier> {
    Box::new(HostTier::new(
        spec,
        4096,
        budget,
        Arc::new(RowMemory::default()),
    ))
}

/// A host tier whose node keeps a small reserve (4 chunks, no huge pages): rows land in
/// chunks from it and freed chunks go back to it.
fn host_with_reserve(spec: TableSpec, budget: Arc<MemoryBudget>) -> Box<dyn Tier> {
    let memory = RowMemory::new(RowMemoryConfig {
        reserve_bytes: 8 << 20,
        huge_pages: false,
    });
    Box::new(HostTier::new(spec, 4096, budget, Arc::new(memory)))
}

/// A GPU tier over the CPU reference table with one bucket (128 rows): constant eviction.
fn gpu_with(spec: TableSpec, budget: Arc<MemoryBudget>, config: GpuTierConfig) -> Box<dyn Tier> {
    let layout = config.table_layout(&spec).expect("layout");
    let table = ReferenceTable::new(layout, config.policy);
    let host = HostTier::new(spec.clone(), 4096, budget, Arc::new(RowMemory::default()));
    Box::new(GpuTier::new(&spec, host, table, config).expect("gpu tier"))
}

fn gpu_lru(spec: TableSpec, budget: Arc<MemoryBudget>) -> Box<dyn Tier> {
    gpu_with(spec, budget, GpuTierConfig::new(128))
}

fn gpu_lfu_admit_after_2(spec: TableSpec, budget: Arc<MemoryBudget>) -> Box<dyn Tier> {
    let config = GpuTierConfig {
        policy: ScorePolicy::Lfu,
        admission: AdmissionPolicy::AfterAccesses(2),
        admit_on_push: true,
        ..GpuTierConfig::new(128)
    };
    gpu_with(spec, budget, config)
}

fn pulled(tier: &dyn Tier, ids: &[u64]) -> Vec<f32> {
    let mut out = vec![0.0; ids.len() * tier.layout().dim];
    tier.pull(ids, &mut out).expect("pull");
    out
}

fn pull_is_deterministic_and_creates_rows(make: Factory) {
    let a = make(
        spec(8, OptimizerKind::Sgd { lr: 1.0 }),
        Arc::new(MemoryBudget::unlimited()),
    );
    let b = make(
        spec(8, OptimizerKind::Sgd { lr: 1.0 }),
        Arc::new(MemoryBudget::unlimited()),
    );
    let ids: Vec<u64> = (0..1000).map(|i| i * 7919).collect();
    let first = pulled(&*a, &ids);
    assert_eq!(
        first,
        pulled(&*a, &ids),
        "a second pull returns the same rows"
    );
    assert_eq!(
        first,
        pulled(&*b, &ids),
        "another instance initializes identically"
    );
    assert_eq!(a.stats().rows, 1000);
}

fn push_sums_duplicates_into_one_step(make: Factory) {
    let kind = OptimizerKind::Adagrad {
        lr: 0.5,
        initial_accumulator: 0.1,
        epsilon: 0.0,
    };
    let t = make(spec(2, kind), Arc::new(MemoryBudget::unlimited()));
    let before = pulled(&*t, &[5]);
    let applied = t
        .push(&[5, 6, 5], &[1.0, 2.0, 9.0, 9.0, 3.0, 4.0])
        .expect("push");
    assert_eq!(applied, 2);
    let after = pulled(&*t, &[5]);
    for j in 0..2 {
        let g = [4.0f32, 6.0][j];
        let acc = 0.1 + g * g;
        let want = before[j] - 0.5 * g / acc.sqrt();
        assert!(
            (after[j] - want).abs() <= 1e-6 * want.abs().max(1.0),
            "coord {j}"
        );
    }
}

fn sgd_integer_updates_are_exact(make: Factory) {
    let s = spec_with(4, OptimizerKind::Sgd { lr: 1.0 }, InitializerConfig::Zeros);
    let t = make(s, Arc::new(MemoryBudget::unlimited()));
    let ids: Vec<u64> = (0..300).collect();
    let start = pulled(&*t, &ids);
    let grads: Vec<f32> = (0..ids.len() * 4).map(|i| (i % 5) as f32).collect();
    for _ in 0..3 {
        t.push(&ids, &grads).expect("push");
    }
    let end = pulled(&*t, &ids);
    for i in 0..end.len() {
        assert_eq!(end[i], start[i] - 3.0 * grads[i]);
    }
}

fn budget_refuses_without_partial_write(make: Factory) {
    let s = spec(16, OptimizerKind::Sgd { lr: 1.0 });
    let per_row = (16 + super::META_WORDS) as u64 * 4
        + 8
        + super::layout::CHANGE_STAMP_BYTES as u64
        + super::layout::INDEX_BYTES_PER_ROW as u64;
    let budget = Arc::new(MemoryBudget::new(per_row * 100));
    let t = make(s, budget.clone());
    let ids: Vec<u64> = (0..90).collect();
    pulled(&*t, &ids);
    let more: Vec<u64> = (80..200).collect();
    let mut out = vec![0.0; more.len() * 16];
    let err = t.pull(&more, &mut out).expect_err("over budget");
    assert!(matches!(err, StorageError::MemoryBudget { .. }), "{err}");
    assert_eq!(
        t.stats().rows,
        90,
        "nothing was created by the refused request"
    );
    let fits: Vec<u64> = (85..95).collect();
    pulled(&*t, &fits);
    assert_eq!(t.stats().rows, 95);
    assert_eq!(budget.used(), 95 * per_row);
    drop(t);
    assert_eq!(budget.used(), 0, "dropping a table returns its budget");
}

fn snapshot_and_restore_round_trip(make: Factory) {
    let kind = OptimizerKind::Adagrad {
        lr: 0.1,
        initial_accumulator: 0.1,
        epsilon: 0.0,
    };
    let t = make(spec(3, kind), Arc::new(MemoryBudget::unlimited()));
    let ids: Vec<u64> = (0..500).map(|i| i * 31).collect();
    t.push(&ids, &vec![0.5; ids.len() * 3]).expect("push");
    let blocks = t.freeze().snapshot().expect("snapshot");
    let copy = make(spec(3, kind), Arc::new(MemoryBudget::unlimited()));
    copy.restore(&blocks).expect("restore");
    assert_eq!(copy.stats().rows, 500);
    assert_eq!(pulled(&*copy, &ids), pulled(&*t, &ids));
    t.push(&ids, &vec![0.5; ids.len() * 3]).expect("push");
    copy.push(&ids, &vec![0.5; ids.len() * 3]).expect("push");
    assert_eq!(
        pulled(&*copy, &ids),
        pulled(&*t, &ids),
        "optimizer state restored too"
    );
}

const SLOTS: u32 = 4096;

fn adagrad() -> OptimizerKind {
    OptimizerKind::Adagrad {
        lr: 0.1,
        initial_accumulator: 0.1,
        epsilon: 0.0,
    }
}

fn per_row(t: &dyn Tier) -> u64 {
    t.layout().accounted_bytes()
}

/// A tier holding `n` rows (ids `i * 7 + 1`), the first third pushed twice.
fn populated(make: Factory, budget: Arc<MemoryBudget>, n: u64) -> (Box<dyn Tier>, Vec<u64>) {
    let t = make(spec(4, adagrad()), budget);
    let ids: Vec<u64> = (0..n).map(|i| i * 7 + 1).collect();
    pulled(&*t, &ids);
    let hot = &ids[..ids.len() / 3];
    let grads: Vec<f32> = (0..hot.len() * 4).map(|i| (i % 7) as f32 * 0.1).collect();
    t.push(hot, &grads).expect("push");
    t.push(hot, &grads).expect("push");
    (t, ids)
}

fn in_ranges(id: u64, ranges: &[(u32, u32)]) -> bool {
    let s = slot_of(id, SLOTS);
    ranges.iter().any(|&(a, b)| a <= s && s < b)
}

/// Every chunk of an export of `slots`, each checked against `max_rows`.
fn export_chunks(t: &dyn Tier, slots: std::ops::Range<u32>, max_rows: usize) -> Vec<RowBlock> {
    let mut cursor = ExportCursor::default();
    let mut chunks = Vec::new();
    while !cursor.done {
        let block = t
            .export_slots(slots.clone(), &mut cursor, max_rows)
            .expect("export");
        assert!(block.ids.len() <= max_rows);
        assert_eq!(block.rows.len(), block.ids.len() * t.layout().row_floats());
        chunks.push(block);
        assert!(chunks.len() < 1_000_000, "export makes progress");
    }
    chunks
}

/// Rows by id as bit patterns; `unique` asserts that no id repeats.
fn by_id(t: &dyn Tier, blocks: &[RowBlock], unique: bool) -> BTreeMap<u64, Vec<u32>> {
    let rf = t.layout().row_floats();
    let mut out = BTreeMap::new();
    for block in blocks {
        for (id, row) in block.ids.iter().zip(block.rows.chunks_exact(rf)) {
            let row: Vec<u32> = row.iter().map(|v| v.to_bits()).collect();
            let old = out.insert(*id, row);
            assert!(!unique || old.is_none(), "id {id} exported twice");
        }
    }
    out
}

/// Values and optimizer state by id (metadata holds a clock).
fn weights(t: &dyn Tier, blocks: &[RowBlock]) -> BTreeMap<u64, Vec<u32>> {
    let keep = t.layout().dim + t.layout().state;
    by_id(t, blocks, false)
        .into_iter()
        .map(|(id, mut row)| {
            row.truncate(keep);
            (id, row)
        })
        .collect()
}

fn export_range_matches_read_rows(make: Factory) {
    let (t, ids) = populated(make, Arc::new(MemoryBudget::unlimited()), 3000);
    let mut cursor = ExportCursor::default();
    let block = t
        .export_slots(1000..2500, &mut cursor, usize::MAX)
        .expect("export");
    assert!(cursor.done, "a one-shot export finishes");
    let want: HashSet<u64> = ids
        .iter()
        .copied()
        .filter(|&id| in_ranges(id, &[(1000, 2500)]))
        .collect();
    let got: HashSet<u64> = block.ids.iter().copied().collect();
    assert_eq!(got.len(), block.ids.len(), "no id twice");
    assert_eq!(got, want);
    assert_eq!(t.read_rows(&block.ids).expect("read"), block);
    let dim = t.layout().dim;
    let rf = t.layout().row_floats();
    let values: Vec<f32> = block
        .rows
        .chunks_exact(rf)
        .flat_map(|r| r[..dim].to_vec())
        .collect();
    assert_eq!(
        values,
        pulled(&*t, &block.ids),
        "exported values are pulled values"
    );
    let absent = [2u64, ids[5], 9, ids[5]];
    let read = t.read_rows(&absent).expect("read");
    assert_eq!(read.ids, vec![ids[5], ids[5]], "absent ids are skipped");
    assert_eq!(
        t.stats().rows,
        3000,
        "neither export nor read_rows creates rows"
    );
}

fn chunked_export_matches_one_shot(make: Factory) {
    let (t, _) = populated(make, Arc::new(MemoryBudget::unlimited()), 3000);
    for (slots, max_rows) in [(0..SLOTS, 7), (100..101, 1), (63..65, 2), (0..9000, 500)] {
        let one_shot = by_id(&*t, &export_chunks(&*t, slots.clone(), usize::MAX), true);
        let chunked = by_id(&*t, &export_chunks(&*t, slots.clone(), max_rows), true);
        assert_eq!(chunked, one_shot, "slots {slots:?} in chunks of {max_rows}");
    }
    let mut cursor = ExportCursor::default();
    let empty = t.export_slots(5..5, &mut cursor, 10).expect("export");
    assert!(empty.ids.is_empty() && cursor.done);
    assert_eq!(t.stats().rows, 3000);
}

fn export_returns_newest_rows(make: Factory) {
    let (t, ids) = populated(make, Arc::new(MemoryBudget::unlimited()), 600);
    // Hot rows are cached by a caching tier; their device copy is newer than the host's.
    let hot = &ids[..100];
    pulled(&*t, hot);
    t.push(hot, &vec![0.5; hot.len() * 4]).expect("push");
    let snapshot = by_id(&*t, &t.freeze().snapshot().expect("snapshot"), true);
    let exported = by_id(&*t, &export_chunks(&*t, 0..SLOTS, 64), true);
    assert_eq!(exported, snapshot);
    assert_eq!(by_id(&*t, &[t.read_rows(hot).expect("read")], true), {
        let mut want = snapshot.clone();
        want.retain(|id, _| hot.contains(id));
        want
    });
}

fn erase_removes_rows_and_budget(make: Factory) {
    let budget = Arc::new(MemoryBudget::unlimited());
    let (t, ids) = populated(make, budget.clone(), 3000);
    let per_row = per_row(&*t);
    let ranges = [(0, 1000), (3000, 3100)];
    let doomed: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&id| in_ranges(id, &ranges))
        .collect();
    let kept: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&id| !in_ranges(id, &ranges))
        .collect();
    // Cache some doomed rows and make their cached copy newer.
    let cached = &doomed[..20];
    pulled(&*t, cached);
    t.push(cached, &vec![1.0; cached.len() * 4]).expect("push");
    let kept_before = t.read_rows(&kept).expect("read");
    assert_eq!(t.erase_slots(&ranges).expect("erase"), doomed.len() as u64);
    assert_eq!(t.stats().rows, kept.len() as u64);
    assert_eq!(budget.used(), kept.len() as u64 * per_row);
    assert_eq!(t.count_slots(&ranges), vec![0, 0]);
    for (a, b) in ranges {
        assert!(export_chunks(&*t, a..b, 100)
            .iter()
            .all(|b| b.ids.is_empty()));
    }
    assert!(t.read_rows(&doomed).expect("read").ids.is_empty());
    assert_eq!(
        t.read_rows(&kept).expect("read"),
        kept_before,
        "survivors untouched"
    );
    assert_eq!(t.erase_slots(&ranges).expect("erase"), 0, "idempotent");
    assert_eq!(t.erase_slots(&[(5, 5), (10, 3)]).expect("erase"), 0);
    // An erased row comes back fresh, not from a stale cached copy.
    let fresh = make(spec(4, adagrad()), Arc::new(MemoryBudget::unlimited()));
    assert_eq!(pulled(&*t, cached), pulled(&*fresh, cached));
    assert_eq!(t.stats().rows, (kept.len() + cached.len()) as u64);
    assert_eq!(budget.used(), t.stats().rows * per_row);
    drop(t);
    assert_eq!(budget.used(), 0);
}

fn import_continues_from_imported_state(make: Factory) {
    let (src, ids) = populated(make, Arc::new(MemoryBudget::unlimited()), 3000);
    let blocks = export_chunks(&*src, 0..SLOTS, 256);
    let budget = Arc::new(MemoryBudget::unlimited());
    let dst = make(spec(4, adagrad()), budget.clone());
    let created: u64 = blocks
        .iter()
        .map(|b| dst.import_rows(b).expect("import"))
        .sum();
    assert_eq!(created, 3000);
    assert_eq!(dst.stats().rows, 3000);
    assert_eq!(budget.used(), 3000 * per_row(&*dst));
    assert_eq!(pulled(&*dst, &ids), pulled(&*src, &ids));
    let grads: Vec<f32> = (0..ids.len() * 4).map(|i| (i % 5) as f32 - 2.0).collect();
    src.push(&ids, &grads).expect("push");
    dst.push(&ids, &grads).expect("push");
    assert_eq!(
        pulled(&*dst, &ids),
        pulled(&*src, &ids),
        "optimizer state imported"
    );
    let full = |t: &dyn Tier| weights(t, &[t.read_rows(&ids).expect("read")]);
    assert_eq!(full(&*dst), full(&*src));
    assert_eq!(
        dst.import_rows(&blocks[0]).expect("import"),
        0,
        "overwrite creates none"
    );
    assert_eq!(dst.stats().rows, 3000);
}

fn import_overwrites_cached_rows(make: Factory) {
    let (t, ids) = populated(make, Arc::new(MemoryBudget::unlimited()), 300);
    let hot = &ids[..50];
    let old = t.read_rows(hot).expect("read");
    pulled(&*t, hot);
    t.push(hot, &vec![2.0; hot.len() * 4]).expect("push");
    assert_ne!(t.read_rows(hot).expect("read"), old);
    assert_eq!(t.import_rows(&old).expect("import"), 0);
    assert_eq!(t.read_rows(hot).expect("read"), old);
    let dim = t.layout().dim;
    let rf = t.layout().row_floats();
    let values: Vec<f32> = old
        .rows
        .chunks_exact(rf)
        .flat_map(|r| r[..dim].to_vec())
        .collect();
    assert_eq!(
        pulled(&*t, hot),
        values,
        "no pull sees the older cached row"
    );
}

fn import_over_budget_is_refused_whole(make: Factory) {
    let (src, _) = populated(make, Arc::new(MemoryBudget::unlimited()), 200);
    let per_row = per_row(&*src);
    let block = src.read_rows(&(0..200).map(|i| i * 7 + 1).collect::<Vec<_>>());
    let block = block.expect("read");
    let budget = Arc::new(MemoryBudget::new(per_row * 100));
    let t = make(spec(4, adagrad()), budget.clone());
    let first: Vec<u64> = block.ids[..50].to_vec();
    pulled(&*t, &first);
    let rf = t.layout().row_floats();
    let slice = |a: usize, b: usize| RowBlock {
        ids: block.ids[a..b].to_vec(),
        rows: block.rows[a * rf..b * rf].to_vec(),
    };
    let err = t.import_rows(&slice(40, 150)).expect_err("over budget");
    assert!(matches!(err, StorageError::MemoryBudget { .. }), "{err}");
    assert_eq!(t.stats().rows, 50);
    assert_eq!(budget.used(), 50 * per_row);
    assert!(t
        .read_rows(&block.ids[50..150])
        .expect("read")
        .ids
        .is_empty());
    assert_ne!(
        t.read_rows(&block.ids[40..50]).expect("read"),
        slice(40, 50),
        "existing rows were not overwritten either"
    );
    assert_eq!(t.import_rows(&slice(40, 90)).expect("import"), 40);
    assert_eq!(t.stats().rows, 90);
    assert_eq!(budget.used(), 90 * per_row);
    let ragged = RowBlock {
        ids: vec![1, 2],
        rows: vec![0.0; rf],
    };
    let err = t.import_rows(&ragged).expect_err("ragged");
    assert!(matches!(err, StorageError::BadBlock { .. }), "{err}");
}

fn export_survives_erase_in_same_stripe(make: Factory) {
    // Slots 0..64 form one stripe (4096 slots, 64 stripes); export its lower half while its
    // upper half is erased and new rows arrive.
    let (t, ids) = populated(make, Arc::new(MemoryBudget::unlimited()), 40_000);
    let range = (0u32, 32u32);
    let want: HashSet<u64> = ids
        .iter()
        .copied()
        .filter(|&id| in_ranges(id, &[range]))
        .collect();
    assert!(want.len() > 100);
    let mut cursor = ExportCursor::default();
    let mut got = Vec::new();
    let mut chunk = 0;
    while !cursor.done {
        let block = t
            .export_slots(range.0..range.1, &mut cursor, 10)
            .expect("export");
        got.push(block);
        chunk += 1;
        match chunk {
            2 => assert!(t.erase_slots(&[(32, 64)]).expect("erase") > 0),
            4 => {
                pulled(&*t, &(1_000_000..1_000_500).collect::<Vec<_>>());
            }
            6 => assert!(t.erase_slots(&[(40, 4096)]).expect("erase") > 0),
            _ => {}
        }
    }
    let exported = by_id(&*t, &got, false);
    for id in &want {
        assert!(exported.contains_key(id), "row {id} lost by the export");
    }
    assert!(exported.keys().all(|&id| in_ranges(id, &[range])));
    let now = by_id(
        &*t,
        &[t.read_rows(&want.iter().copied().collect::<Vec<_>>())
            .expect("read")],
        true,
    );
    for (id, row) in &now {
        assert_eq!(exported.get(id), Some(row));
    }
}

fn count_slots_matches_brute_force(make: Factory) {
    let (t, ids) = populated(make, Arc::new(MemoryBudget::unlimited()), 5000);
    let ranges = [
        (0, SLOTS),
        (0, 0),
        (5, 5),
        (17, 18),
        (100, 3000),
        (4000, 5000),
        (64, 128),
        (3000, 100),
        (63, 65),
    ];
    let want: Vec<u64> = ranges
        .iter()
        .map(|&r| ids.iter().filter(|&&id| in_ranges(id, &[r])).count() as u64)
        .collect();
    assert_eq!(t.count_slots(&ranges), want);
    t.erase_slots(&[(10, 20), (70, 90)]).expect("erase");
    let left: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&id| !in_ranges(id, &[(10, 20), (70, 90)]))
        .collect();
    let want: Vec<u64> = ranges
        .iter()
        .map(|&r| left.iter().filter(|&&id| in_ranges(id, &[r])).count() as u64)
        .collect();
    assert_eq!(t.count_slots(&ranges), want);
    assert_eq!(t.count_slots(&[(0, SLOTS)]), vec![t.stats().rows]);
}

macro_rules! conformance {
    ($modname:ident, $factory:expr) => {
        mod $modname {
            #[test]
            fn pull_is_deterministic_and_creates_rows() {
                super::pull_is_deterministic_and_creates_rows($factory)
            }
            #[test]
            fn push_sums_duplicates_into_one_step() {
                super::push_sums_duplicates_into_one_step($factory)
            }
            #[test]
            fn sgd_integer_updates_are_exact() {
                super::sgd_integer_updates_are_exact($factory)
            }
            #[test]
            fn budget_refuses_without_partial_write() {
                super::budget_refuses_without_partial_write($factory)
            }
            #[test]
            fn snapshot_and_restore_round_trip() {
                super::snapshot_and_restore_round_trip($factory)
            }
            #[test]
            fn export_range_matches_read_rows() {
                super::export_range_matches_read_rows($factory)
            }
            #[test]
            fn chunked_export_matches_one_shot() {
                super::chunked_export_matches_one_shot($factory)
            }
            #[test]
            fn export_returns_newest_rows() {
                super::export_returns_newest_rows($factory)
            }
            #[test]
            fn erase_removes_rows_and_budget() {
                super::erase_removes_rows_and_budget($factory)
            }
            #[test]
            fn import_continues_from_imported_state() {
                super::import_continues_from_imported_state($factory)
            }
            #[test]
            fn import_overwrites_cached_rows() {
                super::import_overwrites_cached_rows($factory)
            }
            #[test]
            fn import_over_budget_is_refused_whole() {
                super::import_over_budget_is_refused_whole($factory)
            }
            #[test]
            fn export_survives_erase_in_same_stripe() {
                super::export_survives_erase_in_same_stripe($factory)
            }
            #[test]
            fn count_slots_matches_brute_force() {
                super::count_slots_matches_brute_force($factory)
            }
        }
    };
}

conformance!(host_tier, super::host);
conformance!(host_tier_with_reserve, super::host_with_reserve);
conformance!(gpu_tier_reference_lru, super::gpu_lru);
conformance!(
    gpu_tier_reference_lfu_admit_after_2,
    super::gpu_lfu_admit_after_2
);
