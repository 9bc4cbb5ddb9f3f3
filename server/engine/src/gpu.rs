//! Building the tier of a `--tier gpu` table: the device table on a CUDA device (feature
//! `gpu`), or the CPU reference table when the engine is configured to emulate the device.

use std::sync::Arc;

use strata_storage::gpu::{GpuError, ReferenceTable};
use strata_storage::host::HostTier;
use strata_storage::spec::TableSpec;
use strata_storage::{GpuTier, GpuTierConfig, MemoryBudget, Tier};

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
        strata_storage::gpu::check_gpu_available(config.gpu_device as usize).map_err(no_gpu)?;
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
    layout: strata_storage::gpu::TableLayout,
    tier_config: GpuTierConfig,
) -> Result<Box<dyn Tier>, GpuError> {
    use strata_storage::gpu::device::{GpuDevice, GpuTable};
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
    _layout: strata_storage::gpu::TableLayout,
    _tier_config: GpuTierConfig,
) -> Result<Box<dyn Tier>, GpuError> {
    strata_storage::gpu::check_gpu_available(config.gpu_device as usize).and(Err(
        GpuError::InvalidConfig("built without the `gpu` feature".into()),
    ))
}

#[cfg(test)]
mod tests {
    use crate::{Engine, EngineConfig, EngineError};
    use strata_storage::optimizer::{OptimizerConfig, OptimizerKind};
    use strata_storage::spec::{InitializerConfig, TableSpec, TierKind};

    fn gpu_spec(name: &str) -> TableSpec {
        TableSpec {
            name: name.into(),
            dim: 4,
            optimizer: OptimizerConfig::new(OptimizerKind::Sgd { lr: 1.0 }),
            initializer: InitializerConfig::Zeros,
            seed: 1,
            tier: TierKind::Gpu,
        }
    }

    #[test]
    fn gpu_table_without_device_is_no_gpu() {
        let engine = Engine::new(EngineConfig::default());
        match engine.create_table(gpu_spec("g")) {
            Err(e @ EngineError::NoGpu { .. }) => {
                assert!(
                    e.to_string().starts_with("no CUDA device on node local"),
                    "{e}"
                );
                assert!(engine.table("g").is_err(), "nothing was created");
            }
            Ok(()) => println!("a CUDA device is present"),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    #[test]
    fn reference_gpu_table_tiers_counts_and_renders() {
        let engine = Engine::new(EngineConfig {
            gpu_reference: true,
            gpu_memory_budget: 64 << 10,
            ..EngineConfig::default()
        });
        engine.create_table(gpu_spec("g")).expect("create");
        let ids: Vec<u64> = (0..5000).collect();
        let mut out = vec![0.0; ids.len() * 4];
        engine.pull("g", &ids, &mut out).expect("pull");
        engine
            .pull("g", &ids[4900..], &mut out[..400])
            .expect("pull");
        let table = engine.table("g").expect("table");
        let before = table.cache_stats().expect("gpu counters");
        assert!(before.hits > 0 && before.misses == 5000 + 100 - before.hits);
        let resident = table.breakdown()[0].stats.rows;
        engine
            .push("g", &ids, &vec![1.0; ids.len() * 4])
            .expect("push");
        let cache = table.cache_stats().expect("gpu counters");
        assert_eq!(
            cache.hits,
            before.hits + resident,
            "resident rows hit on push"
        );
        assert!(cache.evictions > 0, "{cache:?}");
        let parts = table.breakdown();
        assert_eq!(parts[0].tier, "gpu");
        assert!(parts[0].stats.rows > 0 && parts[0].stats.rows <= 1152 + 3);
        assert_eq!(parts[1].stats.rows, 5000);

        // Snapshot merges device rows over host rows; restore brings every update back.
        let snap = engine.snapshot().expect("snapshot");
        let other = Engine::new(EngineConfig {
            gpu_reference: true,
            gpu_memory_budget: 64 << 10,
            ..EngineConfig::default()
        });
        other.restore(&snap).expect("restore");
        let mut back = vec![0.0; ids.len() * 4];
        other.pull("g", &ids, &mut back).expect("pull");
        assert!(back.iter().all(|v| *v == -1.0));

        // The device budget went to the first table; it comes back when the table is dropped.
        let err = engine.create_table(gpu_spec("h")).expect_err("budget used");
        assert!(matches!(err, EngineError::GpuMemory { .. }), "{err}");
        drop(table);
        engine.drop_table("g").expect("drop");
        engine.create_table(gpu_spec("h")).expect("budget released");
    }
}
