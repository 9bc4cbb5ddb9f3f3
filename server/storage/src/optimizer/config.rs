//! Optimizer hyperparameters, fixed per table at creation.

use serde::{Deserialize, Serialize};

/// Which update rule a table uses, with its own hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerKind {
    /// `w -= lr * g`. No state.
    Sgd {
        /// Learning rate.
        lr: f32,
    },
    /// `acc += g²; w -= lr * g / (sqrt(acc) + epsilon)`. One accumulator per coordinate.
    Adagrad {
        /// Learning rate.
        lr: f32,
        /// Initial accumulator value of a new row.
        initial_accumulator: f32,
        /// Added to `sqrt(acc)`; 0 gives W1's exact rule.
        epsilon: f32,
    },
    /// Sparse (lazy) Adam: moments per coordinate, a step count per row for bias correction.
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Added to `sqrt(v_hat)`.
        epsilon: f32,
    },
    /// FTRL-Proximal (McMahan et al. 2013) with TensorFlow/Keras semantics.
    Ftrl {
        /// Learning rate (alpha).
        lr: f32,
        /// Learning-rate power, usually -0.5.
        lr_power: f32,
        /// L1 regularization strength.
        l1: f32,
        /// L2 regularization strength.
        l2: f32,
        /// Beta of the paper; adds `beta / (2 * lr)` to the L2 strength, as in Keras.
        beta: f32,
        /// Initial accumulator value of a new row.
        initial_accumulator: f32,
    },
}

/// An optimizer: the rule plus options common to all rules.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// The update rule.
    pub kind: OptimizerKind,
    /// L2 weight decay: `g += weight_decay * w` before the rule (0: off).
    pub weight_decay: f32,
    /// Clip each gradient coordinate to `[-clip_value, clip_value]` (0: off).
    pub clip_value: f32,
    /// Scale a row's gradient to L2 norm at most `clip_norm` (0: off); after `clip_value`.
    pub clip_norm: f32,
}

impl OptimizerConfig {
    /// An optimizer with the given rule and no decay or clipping.
    pub fn new(kind: OptimizerKind) -> Self {
        Self {
            kind,
            weight_decay: 0.0,
            clip_value: 0.0,
            clip_norm: 0.0,
        }
    }
}
