//! Dense tensors: named fixed-shape f32 weights updated whole by the table optimizers.

use parking_lot::Mutex;

use crate::checkpoint::DenseSnapshot;
use strata_storage::init::init_row;
use strata_storage::spec::DenseSpec;
use strata_storage::{RowLayout, META_WORDS};

use super::EngineError;

/// Id under which a dense tensor's initializer draws its values.
const DENSE_INIT_ID: u64 = 0xD3A5_E000;

/// One dense tensor: values, optimizer state and metadata in one buffer.
pub struct DenseTensor {
    spec: DenseSpec,
    layout: RowLayout,
    data: Mutex<Vec<f32>>,
}

impl DenseTensor {
    /// A new tensor initialized from its spec.
    pub fn new(spec: DenseSpec) -> Self {
        let numel = spec.numel();
        let layout = RowLayout {
            dim: numel,
            state: spec.optimizer.state_slots() * numel,
        };
        let mut data = vec![0.0f32; layout.row_floats()];
        init_row(
            &spec.initializer,
            spec.seed,
            DENSE_INIT_ID,
            &mut data[..numel],
        );
        spec.optimizer
            .init_state(&mut data[numel..numel + layout.state]);
        Self {
            spec,
            layout,
            data: Mutex::new(data),
        }
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
        let mut data = self.data.lock();
        let (values, rest) = data.split_at_mut(self.layout.dim);
        let (state, meta) = rest.split_at_mut(self.layout.state);
        let mut step = meta[0].to_bits();
        self.spec.optimizer.apply(values, state, &mut step, grad);
        meta[0] = f32::from_bits(step);
        Ok(1)
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        (self.layout.row_floats() * 4) as u64
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

    /// A tensor restored from a checkpoint.
    pub fn restore(snap: &DenseSnapshot) -> Result<Self, EngineError> {
        let tensor = Self::new(snap.spec.clone());
        let expected = tensor.layout.row_floats();
        if snap.data.len() != expected || expected < META_WORDS {
            return Err(EngineError::DenseLength {
                name: snap.spec.name.clone(),
                got: snap.data.len(),
                expected,
            });
        }
        *tensor.data.lock() = snap.data.clone();
        Ok(tensor)
    }
}
