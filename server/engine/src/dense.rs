//! Dense tensors: named fixed-shape f32 weights updated whole by the table optimizers.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::checkpoint::DenseSnapshot;
use strata_storage::init::init_row;
use strata_storage::spec::DenseSpec;
use strata_storage::{MemoryBudget, RowLayout, META_WORDS};

use super::EngineError;
use crate::validate;

/// Id under which a dense tensor's initializer draws its values.
const DENSE_INIT_ID: u64 = 0xD3A5_E000;

/// One dense tensor: values, optimizer state and metadata in one buffer, charged to the
/// node's memory budget for as long as it lives.
pub struct DenseTensor {
    spec: DenseSpec,
    layout: RowLayout,
    data: Mutex<Vec<f32>>,
    charge: BudgetCharge,
}

/// Bytes taken from a memory budget, given back when dropped.
struct BudgetCharge {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Drop for BudgetCharge {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// The buffer layout of a tensor of `spec`: its values, then the optimizer's state.
fn layout_of(spec: &DenseSpec) -> RowLayout {
    let numel = spec.numel();
    RowLayout {
        dim: numel,
        state: spec.optimizer.state_slots() * numel,
    }
}

impl DenseTensor {
    /// A new tensor initialized from its spec, its bytes reserved from `budget` first
    /// (refused whole when they do not fit).
    pub fn new(spec: DenseSpec, budget: &Arc<MemoryBudget>) -> Result<Self, EngineError> {
        let layout = layout_of(&spec);
        let bytes = (layout.row_floats() * 4) as u64;
        budget.try_reserve(1, bytes)?;
        let charge = BudgetCharge {
            budget: budget.clone(),
            bytes,
        };
        let numel = layout.dim;
        let mut data = vec![0.0f32; layout.row_floats()];
        init_row(
            &spec.initializer,
            spec.seed,
            DENSE_INIT_ID,
            &mut data[..numel],
        );
        spec.optimizer
            .init_state(&mut data[numel..numel + layout.state]);
        Ok(Self {
            spec,
            layout,
            data: Mutex::new(data),
            charge,
        })
    }

    /// The tensor's spec.
    pub fn spec(&self) -> &DenseSpec {
        &self.spec
    }

    /// A copy of the values.
    pub fn values(&self) -> Vec<f32> {
        self.data.lock()[..self.layout.dim].to_vec()
    }

    /// Applies one optimizer step with `grad` (already validated finite).
    pub fn push(&self, grad: &[f32]) -> Result<u64, EngineError> {
        if grad.len() != self.layout.dim {
            return Err(EngineError::DenseLength {
                name: self.spec.name.clone(),
                got: grad.len(),
                expected: self.layout.dim,
            });
        }
        let stepped = self.layout.dim + self.layout.state;
        let mut data = self.data.lock();
        // The step runs on a copy and is kept only when every word stays finite.
        let mut next = data[..stepped].to_vec();
        let (values, state) = next.split_at_mut(self.layout.dim);
        let mut step = data[stepped].to_bits();
        self.spec.optimizer.apply(values, state, &mut step, grad);
        if let Err(EngineError::NonFinite { index, .. }) = validate::check_finite(&next) {
            return Err(EngineError::DenseNonFiniteResult {
                name: self.spec.name.clone(),
                index,
                count: next.iter().filter(|v| !v.is_finite()).count(),
            });
        }
        data[..stepped].copy_from_slice(&next);
        data[stepped] = f32::from_bits(step);
        Ok(1)
    }

    /// Bytes held (charged to the memory budget).
    pub fn bytes(&self) -> u64 {
        self.charge.bytes
    }

    /// A copy of everything, for a checkpoint.
    pub fn snapshot(&self) -> DenseSnapshot {
        DenseSnapshot {
            spec: self.spec.clone(),
            data: self.data.lock().clone(),
        }
    }

    /// Replaces values, state and metadata with `data` (a migrated copy of this tensor).
    pub fn load(&self, data: &[f32]) -> Result<(), EngineError> {
        let expected = self.layout.row_floats();
        if data.len() != expected {
            return Err(EngineError::DenseLength {
                name: self.spec.name.clone(),
                got: data.len(),
                expected,
            });
        }
        self.data.lock().copy_from_slice(data);
        Ok(())
    }

    /// A tensor restored from a checkpoint: its bytes are charged to `budget` without a
    /// check (the node held them when the checkpoint was taken).
    pub fn restore(snap: &DenseSnapshot, budget: &Arc<MemoryBudget>) -> Result<Self, EngineError> {
        let layout = layout_of(&snap.spec);
        let expected = layout.row_floats();
        if snap.data.len() != expected || expected < META_WORDS {
            return Err(EngineError::DenseLength {
                name: snap.spec.name.clone(),
                got: snap.data.len(),
                expected,
            });
        }
        let bytes = (expected * 4) as u64;
        budget.force_reserve(bytes);
        Ok(Self {
            spec: snap.spec.clone(),
            layout,
            data: Mutex::new(snap.data.clone()),
            charge: BudgetCharge {
                budget: budget.clone(),
                bytes,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use strata_storage::optimizer::{OptimizerConfig, OptimizerKind};
    use strata_storage::spec::InitializerConfig;
    use strata_storage::StorageError;

    use crate::{Engine, EngineConfig, EngineError};

    use super::*;

    fn adam(name: &str, shape: Vec<u32>) -> DenseSpec {
        DenseSpec {
            name: name.into(),
            shape,
            optimizer: OptimizerConfig::new(OptimizerKind::Adam {
                lr: 0.1,
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
            }),
            initializer: InitializerConfig::Zeros,
            seed: 1,
        }
    }

    #[test]
    fn dense_tensors_are_charged_to_the_memory_budget_until_dropped() {
        let engine = Engine::new(EngineConfig {
            memory_budget: 1 << 20,
            ..EngineConfig::default()
        });
        // 64 Ki values with Adam's two state slots: 768 KiB and a few words.
        engine
            .create_dense(adam("w", vec![256, 256]))
            .expect("fits");
        let used = engine.budget().used();
        assert!(used >= 3 * 4 * 65536, "{used}");
        let err = engine
            .create_dense(adam("v", vec![256, 256]))
            .expect_err("a second one does not fit");
        assert!(
            matches!(err, EngineError::Storage(StorageError::MemoryBudget { .. })),
            "{err}"
        );
        assert!(engine.dense("v").is_err(), "nothing was created");
        engine.drop_dense("w").expect("drop");
        assert_eq!(engine.budget().used(), 0, "the bytes came back");
        engine
            .create_dense(adam("v", vec![256, 256]))
            .expect("fits again");
    }

    #[test]
    fn a_dense_tensor_larger_than_one_message_is_refused() {
        let engine = Engine::new(EngineConfig {
            max_dense_bytes: 1 << 20,
            ..EngineConfig::default()
        });
        let err = engine
            .create_dense(adam("big", vec![1024, 1024]))
            .expect_err("4 MiB of values over a 1 MiB limit");
        assert!(matches!(err, EngineError::DenseTooLarge { .. }), "{err}");
        assert_eq!(engine.budget().used(), 0);
    }
}
