//! strata's engine linked into the bench process (temporary stub until the engine lands).

use std::sync::Arc;

use super::{TableParams, Target, TargetError};

/// The shared in-process engine (stub).
#[derive(Debug)]
pub struct Engine;

/// Create the engine and the benchmark table.
pub fn prepare(_p: &TableParams) -> Result<Arc<Engine>, TargetError> {
    Err(TargetError::Setup("the engine is not available yet".into()))
}

/// One trainer's handle on the shared engine.
#[derive(Debug)]
pub struct InprocTarget {
    _engine: Arc<Engine>,
}

impl InprocTarget {
    /// A trainer's handle.
    pub fn new(engine: Arc<Engine>, _p: &TableParams) -> Self {
        Self { _engine: engine }
    }
}

impl Target for InprocTarget {
    async fn pull(&mut self, _ids: &[u64], _out: &mut [f32]) -> Result<u64, TargetError> {
        Err(TargetError::Engine("not available yet".into()))
    }

    async fn push(&mut self, _ids: &[u64], _grads: &[f32]) -> Result<u64, TargetError> {
        Err(TargetError::Engine("not available yet".into()))
    }
}
