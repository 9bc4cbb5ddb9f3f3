//! Errors of optimizer configuration.

use thiserror::Error;

/// Why an [`OptimizerConfig`](super::OptimizerConfig) was rejected by `validate`.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OptimizerError {
    /// A hyperparameter is NaN or infinite.
    #[error("{optimizer} optimizer: `{name}` must be finite, got {value}")]
    NotFinite {
        /// The rule (`sgd`, `adagrad`, `adam`, `ftrl`).
        optimizer: &'static str,
        /// The hyperparameter's name.
        name: &'static str,
        /// The value given.
        value: f32,
    },
    /// A hyperparameter is finite but outside its allowed range.
    #[error("{optimizer} optimizer: `{name}` = {value} is out of range: it must be {expected}")]
    OutOfRange {
        /// The rule (`sgd`, `adagrad`, `adam`, `ftrl`).
        optimizer: &'static str,
        /// The hyperparameter's name.
        name: &'static str,
        /// The value given.
        value: f32,
        /// The allowed range, in words.
        expected: &'static str,
    },
}
