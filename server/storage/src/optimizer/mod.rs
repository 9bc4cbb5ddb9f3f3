//! Server-side optimizers. Their state lives next to the row it belongs to.
//!
//! A row of `dim` f32 weights owns `state_slots()` state vectors of `dim` f32 each, stored
//! contiguously (`state.len() == state_slots() * dim`), and a `u32` step count kept in the
//! row's metadata (used by Adam's bias correction). [`OptimizerConfig::apply`] runs one step:
//! `clip_value` (per coordinate) → `clip_norm` (whole row) → weight decay → the rule.
//! Duplicate ids of one push are summed by the storage layer before `apply`.

mod adagrad;
mod adam;
mod clip;
mod config;
mod error;
mod ftrl;
mod sgd;
mod validate;

#[cfg(test)]
mod tests;

pub use config::{OptimizerConfig, OptimizerKind};
pub use error::OptimizerError;

use clip::{Adjusted, GradMap, Raw};

impl OptimizerConfig {
    /// Number of `dim`-sized f32 state vectors per row: sgd 0, adagrad 1, adam 2 (m, v), ftrl 2 (z, n).
    #[inline]
    pub fn state_slots(&self) -> usize {
        match self.kind {
            OptimizerKind::Sgd { .. } => 0,
            OptimizerKind::Adagrad { .. } => 1,
            OptimizerKind::Adam { .. } | OptimizerKind::Ftrl { .. } => 2,
        }
    }

    /// Writes a new row's state (`state.len() == state_slots() * dim`): accumulators get `initial_accumulator`, the rest 0.
    #[inline]
    pub fn init_state(&self, state: &mut [f32]) {
        match self.kind {
            OptimizerKind::Sgd { .. } | OptimizerKind::Adam { .. } => state.fill(0.0),
            OptimizerKind::Adagrad {
                initial_accumulator,
                ..
            } => state.fill(initial_accumulator),
            OptimizerKind::Ftrl {
                initial_accumulator,
                ..
            } => {
                // Layout [z | n].
                let (z, n) = state.split_at_mut(state.len() / 2);
                z.fill(0.0);
                n.fill(initial_accumulator);
            }
        }
    }

    /// One optimizer step on one row with its (duplicate-summed) gradient; Adam increments `step`.
    ///
    /// # Panics
    /// If `grad.len() != weights.len()` or `state.len() != state_slots() * weights.len()`.
    #[inline]
    pub fn apply(&self, weights: &mut [f32], state: &mut [f32], step: &mut u32, grad: &[f32]) {
        let dim = weights.len();
        assert_eq!(grad.len(), dim, "gradient length differs from the row's");
        assert_eq!(
            state.len(),
            self.state_slots() * dim,
            "optimizer state length differs from state_slots() * dim"
        );
        if self.weight_decay == 0.0 && self.clip_value == 0.0 && self.clip_norm == 0.0 {
            self.run(Raw, weights, state, step, grad);
        } else {
            let pre = Adjusted::new(self, grad);
            self.run(pre, weights, state, step, grad);
        }
    }

    /// The rule's step with gradient preprocessing `pre` (monomorphized per preprocessing).
    #[inline(always)]
    fn run<P: GradMap>(
        &self,
        pre: P,
        weights: &mut [f32],
        state: &mut [f32],
        step: &mut u32,
        grad: &[f32],
    ) {
        let dim = weights.len();
        match self.kind {
            OptimizerKind::Sgd { lr } => sgd::step(pre, lr, weights, grad),
            OptimizerKind::Adagrad { lr, epsilon, .. } => {
                adagrad::step(pre, lr, epsilon, weights, state, grad)
            }
            OptimizerKind::Adam {
                lr,
                beta1,
                beta2,
                epsilon,
            } => {
                let (m, v) = state.split_at_mut(dim);
                let params = adam::AdamParams {
                    lr,
                    beta1,
                    beta2,
                    epsilon,
                };
                adam::step(pre, params, weights, m, v, step, grad)
            }
            OptimizerKind::Ftrl {
                lr,
                lr_power,
                l1,
                l2,
                beta,
                ..
            } => {
                let (z, n) = state.split_at_mut(dim);
                let params = ftrl::FtrlParams {
                    lr,
                    lr_power,
                    l1,
                    l2,
                    beta,
                };
                ftrl::step(pre, params, weights, z, n, grad)
            }
        }
    }
}
