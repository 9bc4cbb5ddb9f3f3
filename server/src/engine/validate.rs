//! Checks of table and dense specs before anything is created.

use crate::spec::{DenseSpec, InitializerConfig, TableSpec, MAX_DIM};

use super::EngineError;

/// Largest dense tensor, in elements (1 Gi floats).
pub const MAX_DENSE_ELEMENTS: usize = 1 << 30;

/// Checks a table spec.
pub fn table_spec(spec: &TableSpec) -> Result<(), EngineError> {
    if spec.name.trim().is_empty() {
        return Err(EngineError::EmptyName { what: "table" });
    }
    if spec.dim == 0 || spec.dim > MAX_DIM {
        return Err(EngineError::BadDim {
            dim: spec.dim,
            max: MAX_DIM,
        });
    }
    spec.optimizer
        .validate()
        .map_err(|e| EngineError::BadOptimizer(e.to_string()))?;
    initializer(&spec.initializer)
}

/// Checks a dense spec.
pub fn dense_spec(spec: &DenseSpec) -> Result<(), EngineError> {
    if spec.name.trim().is_empty() {
        return Err(EngineError::EmptyName {
            what: "dense tensor",
        });
    }
    if spec.shape.is_empty() || spec.shape.contains(&0) {
        return Err(EngineError::BadShape {
            shape: spec.shape.clone(),
            reason: "every extent must be at least 1",
        });
    }
    let numel = spec
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize));
    if numel.is_none_or(|n| n > MAX_DENSE_ELEMENTS) {
        return Err(EngineError::BadShape {
            shape: spec.shape.clone(),
            reason: "more than 2^30 elements",
        });
    }
    spec.optimizer
        .validate()
        .map_err(|e| EngineError::BadOptimizer(e.to_string()))?;
    initializer(&spec.initializer)
}

fn initializer(init: &InitializerConfig) -> Result<(), EngineError> {
    let ok = match *init {
        InitializerConfig::Zeros => true,
        InitializerConfig::Uniform { scale } => scale.is_finite() && scale >= 0.0,
        InitializerConfig::Normal { std } => std.is_finite() && std >= 0.0,
    };
    if ok {
        Ok(())
    } else {
        Err(EngineError::BadInitializer(format!(
            "{init:?}: scale must be finite and >= 0"
        )))
    }
}
