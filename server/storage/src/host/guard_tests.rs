//! The numerical guard of the host tier: for every optimizer, a push whose step would leave
//! a row non-finite is refused whole and changes no row.

use std::sync::Arc;

use super::guard::UndoLog;
use super::{HostTier, RowMemory, Tier};
use crate::layout::META_ACCESS;
use crate::optimizer::{OptimizerConfig, OptimizerKind};
use crate::spec::{InitializerConfig, TableSpec, TierKind};
use crate::{MemoryBudget, StorageError};

const DIM: usize = 4;

fn tier(kind: OptimizerKind) -> HostTier {
    let spec = TableSpec {
        name: "t".into(),
        dim: DIM as u32,
        optimizer: OptimizerConfig::new(kind),
        initializer: InitializerConfig::Uniform { scale: 0.1 },
        seed: 7,
        tier: TierKind::Host,
    };
    HostTier::new(
        spec,
        4096,
        Arc::new(MemoryBudget::unlimited()),
        Arc::new(RowMemory::default()),
    )
}

fn optimizers() -> Vec<(&'static str, OptimizerKind)> {
    vec![
        ("sgd", OptimizerKind::Sgd { lr: 1.0 }),
        (
            "adagrad",
            OptimizerKind::Adagrad {
                lr: 0.1,
                initial_accumulator: 0.1,
                epsilon: 1e-8,
            },
        ),
        (
            "adam",
            OptimizerKind::Adam {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
            },
        ),
        (
            "ftrl",
            OptimizerKind::Ftrl {
                lr: 0.1,
                lr_power: -0.5,
                l1: 0.0,
                l2: 0.0,
                beta: 1.0,
                initial_accumulator: 0.1,
            },
        ),
    ]
}

/// Every word (values, state, metadata) of `ids`, in order.
fn words(tier: &HostTier, ids: &[u64]) -> Vec<u32> {
    let block = tier.read_rows(ids).expect("read rows");
    assert_eq!(block.ids, ids, "every row exists");
    block.rows.iter().map(|v| v.to_bits()).collect()
}

/// Ids over many stripes; the offender sits in the last stripe visited, so the stripes
/// stepped before it are undone after their locks were released.
fn many_ids() -> Vec<u64> {
    (0..512u64).map(|i| i * 7919).collect()
}

#[test]
fn every_optimizer_refuses_a_step_that_overflows_and_changes_nothing() {
    for (name, kind) in optimizers() {
        let tier = tier(kind);
        let ids = many_ids();
        let ok = vec![0.5f32; ids.len() * DIM];
        // Twice, so SGD's weights already sit near the edge for the second huge step.
        let mut huge = ok.clone();
        let at = (0..ids.len())
            .max_by_key(|&k| tier.stripe_of(ids[k]))
            .expect("ids");
        let offender = ids[at];
        huge[at * DIM..(at + 1) * DIM].fill(3.0e38);
        tier.push(&ids, &ok).expect("a finite push");
        if name == "sgd" {
            tier.push(&[offender], &[3.0e38; DIM])
                .expect("the first huge SGD step stays finite");
        }
        let before = words(&tier, &ids);
        let err = tier.push(&ids, &huge).expect_err(name);
        match &err {
            StorageError::NonFiniteResult {
                ids: named,
                count,
                not_undone_count,
                ..
            } => {
                assert_eq!(named, &vec![offender], "{name}: {err}");
                assert_eq!(*count, 1, "{name}");
                assert_eq!(*not_undone_count, 0, "{name}");
            }
            other => panic!("{name}: unexpected {other:?}"),
        }
        assert_eq!(
            words(&tier, &ids),
            before,
            "{name}: a refused push changes no row"
        );
        tier.push(&ids, &ok)
            .expect("a finite push after the refusal");
        assert_ne!(
            words(&tier, &ids),
            before,
            "{name}: later pushes still step"
        );
    }
}

#[test]
fn every_offender_is_named_and_the_refusal_holds_for_duplicates() {
    let tier = tier(OptimizerKind::Adagrad {
        lr: 0.1,
        initial_accumulator: 0.1,
        epsilon: 1e-8,
    });
    let ids = vec![3u64, 3, 9000, 12, 77_777];
    let mut grads = vec![0.25f32; ids.len() * DIM];
    // Two duplicates of 3 summing past f32::MAX when squared; 77_777 alone.
    grads[..2 * DIM].fill(2.0e19);
    grads[4 * DIM..].fill(-2.0e19);
    tier.push(&ids, &vec![0.0; ids.len() * DIM])
        .expect("create");
    let before = words(&tier, &[3, 12, 9000, 77_777]);
    match tier.push(&ids, &grads) {
        Err(StorageError::NonFiniteResult { mut ids, count, .. }) => {
            ids.sort_unstable();
            assert_eq!(ids, vec![3, 77_777]);
            assert_eq!(count, 2);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(words(&tier, &[3, 12, 9000, 77_777]), before);
}

#[test]
fn a_row_another_push_stepped_since_is_left_with_both_steps_and_named() {
    let tier = tier(OptimizerKind::Sgd { lr: 1.0 });
    let id = 42u64;
    tier.push(&[id], &[1.0; DIM]).expect("create");
    let stripe_index = tier.stripe_of(id) as usize;
    let rf = tier.layout.row_floats();
    let mut undo = UndoLog::checkout(rf);
    let first = {
        let mut stripe = tier.stripes[stripe_index].lock();
        let idx = stripe.find(id).expect("row exists");
        let row = stripe.arena.row_mut(idx);
        undo.save(stripe_index, id, idx, row);
        // This push's step, then a concurrent push's step, each counting an access.
        for _ in 0..2 {
            row[0] -= 1.0;
            let access = &mut row[rf - crate::layout::META_WORDS + META_ACCESS];
            *access = f32::from_bits(access.to_bits() + 1);
        }
        row[0]
    };
    let kept = undo.undo_released(|s| tier.stripes[s].lock());
    assert_eq!((kept.named.clone(), kept.count), (vec![id], 1));
    let mut out = [0.0f32; DIM];
    tier.pull(&[id], &mut out).expect("pull");
    assert_eq!(out[0], first, "the row keeps both steps");
}
