//! strata over the network through `strata-client` (temporary stub until the client lands).

use super::{TableParams, Target, TargetError};

/// One trainer's strata client.
#[derive(Debug)]
pub struct StrataTarget {
    _p: TableParams,
}

/// Drop and recreate the benchmark table.
pub async fn prepare(_coordinator: &str, _p: &TableParams) -> Result<(), TargetError> {
    Err(TargetError::Setup(
        "the strata client is not available yet".into(),
    ))
}

impl StrataTarget {
    /// Open one trainer's connections.
    pub async fn connect(_coordinator: &str, p: &TableParams) -> Result<Self, TargetError> {
        Ok(Self { _p: p.clone() })
    }
}

impl Target for StrataTarget {
    async fn pull(&mut self, _ids: &[u64], _out: &mut [f32]) -> Result<u64, TargetError> {
        Err(TargetError::Client("not available yet".into()))
    }

    async fn push(&mut self, _ids: &[u64], _grads: &[f32]) -> Result<u64, TargetError> {
        Err(TargetError::Client("not available yet".into()))
    }
}
