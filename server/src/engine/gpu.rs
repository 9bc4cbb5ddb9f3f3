//! Building the tier of a `--tier gpu` table: the device table on a CUDA device (feature
//! `gpu`), or the CPU reference table when the engine is configured to emulate the device.

use std::sync::Arc;

use crate::spec::TableSpec;
use crate::storage::gpu::{GpuError, ReferenceTable};
use crate::storage::host::HostTier;
use crate::storage::{GpuTier, GpuTierConfig, MemoryBudget, Tier};

use super::{EngineConfig, EngineError};

/// Device memory held by one GPU table, given back to the node's GPU budget on drop.
pub(super) struct GpuReservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Drop for GpuReservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// Builds the GPU tier of `spec` in front of `host`, taking its device memory from `budget`.
///
/// The table's device hash table gets all of the GPU budget that is still free.
pub(super) fn build(
    config: &EngineConfig,
    budget: &Arc<MemoryBudget>,
    spec: &TableSpec,
    host: HostTier,
) -> Result<(Box<dyn Tier>, GpuReservation), EngineError> {
    let no_gpu = |e: GpuError| EngineError::NoGpu {
        node: config.node_name.clone(),
        table: spec.name.clone(),
        reason: e.to_string(),
    };
    if !config.gpu_reference {
        crate::storage::gpu::check_gpu_available(config.gpu_device as usize).map_err(no_gpu)?;
    }
    let free = budget.limit().saturating_sub(budget.used());
    let memory_err = |e: GpuError| EngineError::GpuMemory {
        table: spec.name.clone(),
        reason: e.to_string(),
    };
    let rows = GpuTierConfig::rows_for_budget(spec, free).map_err(memory_err)?;
    let tier_config = GpuTierConfig {
        admit_on_push: config.gpu_admit_on_push,
        ..GpuTierConfig::new(rows)
    };
    let layout = tier_config.table_layout(spec).map_err(memory_err)?;
    let bytes = layout.bytes() as u64;
    budget
        .try_reserve(0, bytes)
        .map_err(|e| EngineError::GpuMemory {
            table: spec.name.clone(),
            reason: e.to_string(),
        })?;
    let reservation = GpuReservation {
        budget: budget.clone(),
        bytes,
    };
    let tier: Box<dyn Tier> = if config.gpu_reference {
        let table = ReferenceTable::new(layout, tier_config.policy);
        Box::new(GpuTier::new(spec, host, table, tier_config).map_err(no_gpu)?)
    } else {
        device_tier(config, spec, host, layout, tier_config).map_err(no_gpu)?
    };
    Ok((tier, reservation))
}

/// The GPU tier on CUDA device `config.gpu_device`.
#[cfg(feature = "gpu")]
fn device_tier(
    config: &EngineConfig,
    spec: &TableSpec,
    host: HostTier,
    layout: crate::storage::gpu::TableLayout,
    tier_config: GpuTierConfig,
) -> Result<Box<dyn Tier>, GpuError> {
    use crate::storage::gpu::device::{GpuDevice, GpuTable};
    let device = GpuDevice::open(config.gpu_device as usize)?;
    let table = GpuTable::new(&device, layout, tier_config.policy)?;
    Ok(Box::new(GpuTier::new(spec, host, table, tier_config)?))
}

/// Without the `gpu` feature there is no device tier.
#[cfg(not(feature = "gpu"))]
fn device_tier(
    config: &EngineConfig,
    _spec: &TableSpec,
    _host: HostTier,
    _layout: crate::storage::gpu::TableLayout,
    _tier_config: GpuTierConfig,
) -> Result<Box<dyn Tier>, GpuError> {
    crate::storage::gpu::check_gpu_available(config.gpu_device as usize).and(Err(
        GpuError::InvalidConfig("built without the `gpu` feature".into()),
    ))
}
