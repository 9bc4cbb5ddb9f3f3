//! Property tests of the GPU tier over the CPU reference table against a plain host tier:
//! with a device capacity far below the key count, eviction and write-back never lose an update.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::gpu::{AdmissionPolicy, ReferenceTable, ScorePolicy};
use super::host::{HostTier, RowMemory};
use super::{GpuTier, GpuTierConfig, MemoryBudget, Tier};
use crate::optimizer::{OptimizerConfig, OptimizerKind};
use crate::spec::{InitializerConfig, TableSpec, TierKind};

const DIM: usize = 3;

/// One request of a random sequence.
#[derive(Debug, Clone)]
enum Op {
    Pull(Vec<u64>),
    Push(Vec<u64>, Vec<f32>),
}

fn ids() -> impl Strategy<Value = Vec<u64>> {
    // 600 keys against one 128-slot bucket; duplicates are frequent.
    prop::collection::vec(
        prop_oneof![8 => 0u64..600, 2 => 0u64..20, 1 => (u64::MAX - 2)..=u64::MAX],
        1..60,
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        ids().prop_map(Op::Pull),
        ids().prop_flat_map(|ids| {
            let n = ids.len() * DIM;
            (
                Just(ids),
                prop::collection::vec((-3i8..=3).prop_map(f32::from), n),
            )
                .prop_map(|(ids, g)| Op::Push(ids, g))
        }),
    ]
}

fn config() -> impl Strategy<Value = GpuTierConfig> {
    (
        prop_oneof![
            Just(ScorePolicy::Lru),
            Just(ScorePolicy::Lfu),
            Just(ScorePolicy::Step)
        ],
        prop_oneof![
            Just(AdmissionPolicy::Always),
            (1u8..4).prop_map(AdmissionPolicy::AfterAccesses)
        ],
        any::<bool>(),
    )
        .prop_map(|(policy, admission, admit_on_push)| GpuTierConfig {
            policy,
            admission,
            admit_on_push,
            ..GpuTierConfig::new(128)
        })
}

fn spec() -> TableSpec {
    TableSpec {
        name: "t".into(),
        dim: DIM as u32,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd { lr: 1.0 }),
        initializer: InitializerConfig::Uniform { scale: 0.5 },
        seed: 3,
        tier: TierKind::Gpu,
    }
}

/// Every row's values and optimizer state (metadata words differ by design), by id.
fn rows(tier: &dyn Tier) -> HashMap<u64, Vec<u32>> {
    let keep = tier.layout().dim + tier.layout().state;
    let mut out = HashMap::new();
    for block in tier.freeze().snapshot().expect("snapshot") {
        let rf = tier.layout().row_floats();
        for (i, id) in block.ids.iter().enumerate() {
            let row = &block.rows[i * rf..i * rf + keep];
            let bits = row.iter().map(|v| v.to_bits()).collect();
            assert!(
                out.insert(*id, bits).is_none(),
                "id {id} twice in a snapshot"
            );
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn gpu_tier_equals_host_tier(config in config(), ops in prop::collection::vec(op(), 1..80)) {
        let budget = Arc::new(MemoryBudget::unlimited());
        let plain = HostTier::new(spec(), 4096, budget.clone(), Arc::new(RowMemory::default()));
        let layout = config.table_layout(&spec()).expect("layout");
        let table = ReferenceTable::new(layout, config.policy);
        let host = HostTier::new(spec(), 4096, budget, Arc::new(RowMemory::default()));
        let tiered = GpuTier::new(&spec(), host, table, config).expect("tier");
        for op in &ops {
            match op {
                Op::Pull(ids) => {
                    let mut a = vec![0.0f32; ids.len() * DIM];
                    let mut b = a.clone();
                    plain.pull(ids, &mut a).expect("pull");
                    tiered.pull(ids, &mut b).expect("pull");
                    let (a, b): (Vec<u32>, Vec<u32>) = (
                        a.iter().map(|v| v.to_bits()).collect(),
                        b.iter().map(|v| v.to_bits()).collect(),
                    );
                    prop_assert_eq!(a, b);
                }
                Op::Push(ids, grads) => {
                    let n = plain.push(ids, grads).expect("push");
                    prop_assert_eq!(tiered.push(ids, grads).expect("push"), n);
                }
            }
            prop_assert!(tiered.resident_rows() <= 128 + 3);
        }
        prop_assert_eq!(tiered.stats().rows, plain.stats().rows);
        prop_assert_eq!(rows(&tiered), rows(&plain));
        let c = tiered.cache_stats().expect("counters");
        prop_assert!(c.evictions <= c.admissions);
        prop_assert_eq!(c.admissions - c.evictions, tiered.resident_rows());
    }
}

#[test]
fn eviction_writes_back_pushed_rows() {
    let config = GpuTierConfig::new(128);
    let budget = Arc::new(MemoryBudget::unlimited());
    let plain = HostTier::new(spec(), 4096, budget.clone(), Arc::new(RowMemory::default()));
    let table = ReferenceTable::new(config.table_layout(&spec()).expect("layout"), config.policy);
    let tiered = GpuTier::new(
        &spec(),
        HostTier::new(spec(), 4096, budget, Arc::new(RowMemory::default())),
        table,
        config,
    )
    .expect("tier");
    let ids: Vec<u64> = (0..2000).collect();
    let grads = vec![1.0f32; ids.len() * DIM];
    for chunk in ids.chunks(100) {
        let mut out = vec![0.0; chunk.len() * DIM];
        tiered.pull(chunk, &mut out).expect("pull");
        plain.pull(chunk, &mut out).expect("pull");
        tiered
            .push(chunk, &grads[..chunk.len() * DIM])
            .expect("push");
        plain
            .push(chunk, &grads[..chunk.len() * DIM])
            .expect("push");
    }
    let c = tiered.cache_stats().expect("counters");
    assert!(c.evictions >= 1800, "{c:?}");
    assert_eq!(c.hits, 2000, "every pushed row was resident after its pull");
    let want = rows(&plain);
    assert_eq!(rows(&tiered), want);
    // The host tier alone (device rows excluded) already holds every evicted update.
    let host_only = rows(tiered.host());
    let cached = tiered.resident_rows() as usize;
    let stale = host_only.iter().filter(|(id, r)| want[*id] != **r).count();
    assert!(stale <= cached, "{stale} stale host rows, {cached} cached");
}
