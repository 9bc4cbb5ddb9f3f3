//! strata's engine linked into the bench process: same table and optimizer code, no network.

use std::sync::Arc;

use strata_engine::{Engine, EngineConfig};
use strata_storage::host::RowMemory;
use strata_storage::optimizer::{OptimizerConfig, OptimizerKind};
use strata_storage::spec::{InitializerConfig, TableSpec, TierKind};

use super::{TableParams, Target, TargetError};
use crate::workload::GradRows;

/// The engine spec of the benchmark table (the same as the networked target's).
pub fn table_spec(p: &TableParams) -> TableSpec {
    TableSpec {
        name: p.name.clone(),
        dim: p.dim as u32,
        optimizer: OptimizerConfig::new(OptimizerKind::Adagrad {
            lr: p.lr,
            initial_accumulator: p.init_acc,
            epsilon: 0.0,
        }),
        initializer: InitializerConfig::Uniform {
            scale: p.init_scale as f32,
        },
        seed: p.seed,
        tier: TierKind::Host,
    }
}

/// Create an engine with default settings and the node's `row_memory`, and the benchmark
/// table.
pub fn prepare(p: &TableParams, row_memory: Arc<RowMemory>) -> Result<Arc<Engine>, TargetError> {
    let engine = Engine::new(EngineConfig {
        row_memory,
        ..EngineConfig::default()
    });
    engine
        .create_table(table_spec(p))
        .map_err(|e| TargetError::Setup(format!("creating table {}: {e}", p.name)))?;
    Ok(Arc::new(engine))
}

/// One trainer's handle on the shared engine.
pub struct InprocTarget {
    engine: Arc<Engine>,
    table: String,
    row_bytes: u64,
}

impl InprocTarget {
    /// A trainer's handle.
    pub fn new(engine: Arc<Engine>, p: &TableParams) -> Self {
        Self {
            engine,
            table: p.name.clone(),
            row_bytes: 4 * p.dim as u64,
        }
    }
}

impl Target for InprocTarget {
    async fn pull(&mut self, ids: &[u64], out: &mut [f32]) -> Result<u64, TargetError> {
        self.engine
            .pull(&self.table, ids, out)
            .map_err(|e| TargetError::Engine(e.to_string()))?;
        Ok(ids.len() as u64 * self.row_bytes)
    }

    async fn push(&mut self, ids: &[u64], grads: &GradRows<'_>) -> Result<u64, TargetError> {
        self.engine
            .push(&self.table, ids, grads.values)
            .map_err(|e| TargetError::Engine(e.to_string()))?;
        Ok(ids.len() as u64 * self.row_bytes)
    }
}
