//! The conformance suite every [`Tier`] implementation must pass.

use std::sync::Arc;

use super::gpu::{AdmissionPolicy, ReferenceTable, ScorePolicy};
use super::host::HostTier;
use super::{GpuTier, GpuTierConfig, MemoryBudget, StorageError, Tier};
use crate::optimizer::{OptimizerConfig, OptimizerKind};
use crate::spec::{InitializerConfig, TableSpec, TierKind};

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
    Box::new(HostTier::new(spec, 4096, budget))
}

/// A GPU tier over the CPU reference table with one bucket (128 rows): constant eviction.
fn gpu_with(spec: TableSpec, budget: Arc<MemoryBudget>, config: GpuTierConfig) -> Box<dyn Tier> {
    let layout = config.table_layout(&spec).expect("layout");
    let table = ReferenceTable::new(layout, config.policy);
    let host = HostTier::new(spec.clone(), 4096, budget);
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
    let per_row =
        (16 + super::META_WORDS) as u64 * 4 + 8 + super::layout::INDEX_BYTES_PER_ROW as u64;
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
        }
    };
}

conformance!(host_tier, super::host);
conformance!(gpu_tier_reference_lru, super::gpu_lru);
conformance!(
    gpu_tier_reference_lfu_admit_after_2,
    super::gpu_lfu_admit_after_2
);
