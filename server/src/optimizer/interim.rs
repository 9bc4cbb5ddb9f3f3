//! Interim optimizer math (replaced by the full optimizer module).

use super::{OptimizerConfig, OptimizerKind};

impl OptimizerConfig {
    /// Number of dim-sized f32 state vectors.
    pub fn state_slots(&self) -> usize {
        match self.kind {
            OptimizerKind::Sgd { .. } => 0,
            OptimizerKind::Adagrad { .. } => 1,
            OptimizerKind::Adam { .. } | OptimizerKind::Ftrl { .. } => 2,
        }
    }

    /// Writes the initial state of a new row.
    pub fn init_state(&self, state: &mut [f32]) {
        match self.kind {
            OptimizerKind::Adagrad {
                initial_accumulator,
                ..
            } => state.fill(initial_accumulator),
            _ => state.fill(0.0),
        }
    }

    /// One optimizer step on one row.
    #[inline]
    pub fn apply(&self, weights: &mut [f32], state: &mut [f32], step: &mut u32, grad: &[f32]) {
        *step += 1;
        match self.kind {
            OptimizerKind::Sgd { lr } => {
                for (w, g) in weights.iter_mut().zip(grad) {
                    *w -= lr * g;
                }
            }
            OptimizerKind::Adagrad { lr, epsilon, .. } => {
                for ((w, a), g) in weights.iter_mut().zip(state.iter_mut()).zip(grad) {
                    *a += g * g;
                    *w -= lr * g / (a.sqrt() + epsilon);
                }
            }
            _ => {}
        }
    }
}

/// Interim validation error.
#[derive(Debug, thiserror::Error)]
#[error("invalid optimizer")]
pub struct OptimizerError;

impl OptimizerConfig {
    /// Checks hyperparameters.
    pub fn validate(&self) -> Result<(), OptimizerError> {
        Ok(())
    }
}
