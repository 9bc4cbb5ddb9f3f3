//! Conversions between wire messages and domain types, in one place.

use strata_proto::v1 as pb;
use thiserror::Error;

use strata_cluster::cluster::{
    Catalog, GpuIdentity, HeartbeatReport, MovePhase, MoveProgress, NodeCheckpoint,
    ProcessIdentity, RangeLoad, TableUsage,
};
use strata_cluster::report::TrafficSample;
use strata_cluster::traffic::ShardTrafficRow;
use strata_cluster::{ClusterMap, NodeEntry, ShardEntry};
use strata_storage::optimizer::{OptimizerConfig, OptimizerKind};
use strata_storage::spec::{DenseSpec, InitializerConfig, TableSpec, TierKind};
use strata_storage::{CacheStats, TierStats};

/// A wire message that does not describe a valid domain value.
#[derive(Debug, Error, PartialEq)]
pub enum ConvertError {
    /// A required field is absent.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A field has a value outside its vocabulary.
    #[error("unknown {field} {value:?}; expected one of {expected}")]
    Unknown {
        /// The field.
        field: &'static str,
        /// The value received.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// A hyperparameter was given for an optimizer that has no such parameter.
    #[error("{field} does not apply to optimizer {optimizer} (it takes {takes})")]
    NotForOptimizer {
        /// The hyperparameter.
        field: &'static str,
        /// The optimizer named.
        optimizer: &'static str,
        /// The hyperparameters that optimizer takes.
        takes: &'static str,
    },
}

/// The optimizer-specific hyperparameters of `s` that are set, by name.
fn set_hyperparameters(s: &pb::OptimizerSpec) -> impl Iterator<Item = &'static str> {
    [
        ("lr", s.lr.is_some()),
        ("initial_accumulator", s.initial_accumulator.is_some()),
        ("epsilon", s.epsilon.is_some()),
        ("beta1", s.beta1.is_some()),
        ("beta2", s.beta2.is_some()),
        ("lr_power", s.lr_power.is_some()),
        ("l1", s.l1.is_some()),
        ("l2", s.l2.is_some()),
        ("beta", s.beta.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
}

/// Refuses a hyperparameter of `s` that `optimizer` does not take (a `--beta1` on an
/// Adagrad table would otherwise be silently ignored).
fn check_hyperparameters(
    s: &pb::OptimizerSpec,
    optimizer: &'static str,
    takes: &'static str,
) -> Result<(), ConvertError> {
    let accepted: Vec<&str> = takes.split(", ").collect();
    match set_hyperparameters(s).find(|name| !accepted.contains(name)) {
        Some(field) => Err(ConvertError::NotForOptimizer {
            field,
            optimizer,
            takes,
        }),
        None => Ok(()),
    }
}

/// Domain optimizer from its wire form, with the documented defaults for unset fields.
pub fn optimizer_from_pb(
    spec: Option<&pb::OptimizerSpec>,
) -> Result<OptimizerConfig, ConvertError> {
    let default = pb::OptimizerSpec {
        kind: "sgd".into(),
        ..Default::default()
    };
    let s = spec.unwrap_or(&default);
    let (optimizer, takes) = match s.kind.as_str() {
        "" | "sgd" => ("sgd", "lr"),
        "adagrad" => ("adagrad", "lr, initial_accumulator, epsilon"),
        "adam" => ("adam", "lr, beta1, beta2, epsilon"),
        "ftrl" => ("ftrl", "lr, lr_power, l1, l2, beta, initial_accumulator"),
        _ => ("", ""),
    };
    if !optimizer.is_empty() {
        check_hyperparameters(s, optimizer, takes)?;
    }
    let kind = match s.kind.as_str() {
        "" | "sgd" => OptimizerKind::Sgd {
            lr: s.lr.unwrap_or(0.01),
        },
        "adagrad" => OptimizerKind::Adagrad {
            lr: s.lr.unwrap_or(0.01),
            initial_accumulator: s.initial_accumulator.unwrap_or(0.1),
            epsilon: s.epsilon.unwrap_or(0.0),
        },
        "adam" => OptimizerKind::Adam {
            lr: s.lr.unwrap_or(0.001),
            beta1: s.beta1.unwrap_or(0.9),
            beta2: s.beta2.unwrap_or(0.999),
            epsilon: s.epsilon.unwrap_or(1e-8),
        },
        "ftrl" => OptimizerKind::Ftrl {
            lr: s.lr.unwrap_or(0.05),
            lr_power: s.lr_power.unwrap_or(-0.5),
            l1: s.l1.unwrap_or(0.0),
            l2: s.l2.unwrap_or(0.0),
            beta: s.beta.unwrap_or(0.0),
            initial_accumulator: s.initial_accumulator.unwrap_or(0.1),
        },
        other => {
            return Err(ConvertError::Unknown {
                field: "optimizer",
                value: other.into(),
                expected: "sgd, adagrad, adam, ftrl",
            })
        }
    };
    Ok(OptimizerConfig {
        kind,
        weight_decay: s.weight_decay.unwrap_or(0.0),
        clip_value: s.clip_value.unwrap_or(0.0),
        clip_norm: s.clip_norm.unwrap_or(0.0),
    })
}

/// Wire form of a domain optimizer (every field set).
pub fn optimizer_to_pb(o: &OptimizerConfig) -> pb::OptimizerSpec {
    let mut s = pb::OptimizerSpec {
        weight_decay: Some(o.weight_decay),
        clip_value: Some(o.clip_value),
        clip_norm: Some(o.clip_norm),
        ..Default::default()
    };
    match o.kind {
        OptimizerKind::Sgd { lr } => {
            s.kind = "sgd".into();
            s.lr = Some(lr);
        }
        OptimizerKind::Adagrad {
            lr,
            initial_accumulator,
            epsilon,
        } => {
            s.kind = "adagrad".into();
            s.lr = Some(lr);
            s.initial_accumulator = Some(initial_accumulator);
            s.epsilon = Some(epsilon);
        }
        OptimizerKind::Adam {
            lr,
            beta1,
            beta2,
            epsilon,
        } => {
            s.kind = "adam".into();
            s.lr = Some(lr);
            s.beta1 = Some(beta1);
            s.beta2 = Some(beta2);
            s.epsilon = Some(epsilon);
        }
        OptimizerKind::Ftrl {
            lr,
            lr_power,
            l1,
            l2,
            beta,
            initial_accumulator,
        } => {
            s.kind = "ftrl".into();
            s.lr = Some(lr);
            s.lr_power = Some(lr_power);
            s.l1 = Some(l1);
            s.l2 = Some(l2);
            s.beta = Some(beta);
            s.initial_accumulator = Some(initial_accumulator);
        }
    }
    s
}

/// Domain initializer from its wire form (default: uniform with scale 0.01).
pub fn initializer_from_pb(
    spec: Option<&pb::InitializerSpec>,
) -> Result<InitializerConfig, ConvertError> {
    let Some(s) = spec else {
        return Ok(InitializerConfig::Uniform { scale: 0.01 });
    };
    match s.kind.as_str() {
        "zeros" => Ok(InitializerConfig::Zeros),
        "" | "uniform" => Ok(InitializerConfig::Uniform { scale: s.scale }),
        "normal" => Ok(InitializerConfig::Normal { std: s.scale }),
        other => Err(ConvertError::Unknown {
            field: "initializer",
            value: other.into(),
            expected: "zeros, uniform, normal",
        }),
    }
}

/// Wire form of a domain initializer.
pub fn initializer_to_pb(i: &InitializerConfig) -> pb::InitializerSpec {
    match *i {
        InitializerConfig::Zeros => pb::InitializerSpec {
            kind: "zeros".into(),
            scale: 0.0,
        },
        InitializerConfig::Uniform { scale } => pb::InitializerSpec {
            kind: "uniform".into(),
            scale,
        },
        InitializerConfig::Normal { std } => pb::InitializerSpec {
            kind: "normal".into(),
            scale: std,
        },
    }
}

/// Domain table spec from its wire form.
pub fn table_spec_from_pb(spec: Option<&pb::TableSpec>) -> Result<TableSpec, ConvertError> {
    let s = spec.ok_or(ConvertError::Missing("spec"))?;
    let tier = match s.tier.as_str() {
        "" | "host" => TierKind::Host,
        "gpu" => TierKind::Gpu,
        other => {
            return Err(ConvertError::Unknown {
                field: "tier",
                value: other.into(),
                expected: "host, gpu",
            })
        }
    };
    Ok(TableSpec {
        name: s.name.clone(),
        dim: s.dim,
        optimizer: optimizer_from_pb(s.optimizer.as_ref())?,
        initializer: initializer_from_pb(s.initializer.as_ref())?,
        seed: s.seed,
        tier,
    })
}

/// Wire form of a domain table spec.
pub fn table_spec_to_pb(s: &TableSpec) -> pb::TableSpec {
    pb::TableSpec {
        name: s.name.clone(),
        dim: s.dim,
        optimizer: Some(optimizer_to_pb(&s.optimizer)),
        initializer: Some(initializer_to_pb(&s.initializer)),
        seed: s.seed,
        tier: match s.tier {
            TierKind::Host => "host".into(),
            TierKind::Gpu => "gpu".into(),
        },
    }
}

/// Domain dense spec from its wire form.
pub fn dense_spec_from_pb(spec: Option<&pb::DenseSpec>) -> Result<DenseSpec, ConvertError> {
    let s = spec.ok_or(ConvertError::Missing("spec"))?;
    Ok(DenseSpec {
        name: s.name.clone(),
        shape: s.shape.clone(),
        optimizer: optimizer_from_pb(s.optimizer.as_ref())?,
        initializer: initializer_from_pb(s.initializer.as_ref())?,
        seed: s.seed,
    })
}

/// Wire form of a domain dense spec.
pub fn dense_spec_to_pb(s: &DenseSpec) -> pb::DenseSpec {
    pb::DenseSpec {
        name: s.name.clone(),
        shape: s.shape.clone(),
        optimizer: Some(optimizer_to_pb(&s.optimizer)),
        initializer: Some(initializer_to_pb(&s.initializer)),
        seed: s.seed,
    }
}

/// Wire form of a node checkpoint's description.
pub fn checkpoint_to_pb(c: &NodeCheckpoint) -> pb::CheckpointInfo {
    pb::CheckpointInfo {
        id: c.id.clone(),
        created_unix_ms: c.created_unix_ms,
        bytes: c.bytes,
        tables: c.tables,
        rows: c.rows,
        state: match &c.corrupt {
            None => "ok".into(),
            Some(reason) => format!("{CORRUPT_PREFIX}{reason}"),
        },
    }
}

/// How a corrupt checkpoint's state begins on the wire.
const CORRUPT_PREFIX: &str = "corrupt: ";

/// A node checkpoint's description from its wire form.
pub fn checkpoint_from_pb(c: &pb::CheckpointInfo) -> NodeCheckpoint {
    NodeCheckpoint {
        id: c.id.clone(),
        created_unix_ms: c.created_unix_ms,
        bytes: c.bytes,
        tables: c.tables,
        rows: c.rows,
        corrupt: (c.state != "ok").then(|| {
            c.state
                .strip_prefix(CORRUPT_PREFIX)
                .unwrap_or(&c.state)
                .to_string()
        }),
    }
}

/// Wire form of the catalog.
pub fn catalog_to_pb(c: &Catalog) -> pb::Catalog {
    pb::Catalog {
        version: c.version,
        tables: c.tables.iter().map(table_spec_to_pb).collect(),
        dense: c.dense.iter().map(dense_spec_to_pb).collect(),
    }
}

/// Domain catalog from its wire form.
pub fn catalog_from_pb(c: &pb::Catalog) -> Result<Catalog, ConvertError> {
    Ok(Catalog {
        version: c.version,
        tables: c
            .tables
            .iter()
            .map(|t| table_spec_from_pb(Some(t)))
            .collect::<Result<_, _>>()?,
        dense: c
            .dense
            .iter()
            .map(|d| dense_spec_from_pb(Some(d)))
            .collect::<Result<_, _>>()?,
    })
}

/// Wire form of the cluster map.
pub fn map_to_pb(map: &ClusterMap) -> pb::ClusterMap {
    pb::ClusterMap {
        epoch: map.epoch,
        num_slots: map.num_slots,
        nodes: map
            .nodes
            .iter()
            .map(|n| pb::NodeInfo {
                id: n.id.clone(),
                address: n.address.clone(),
                labels: n.labels.clone().into_iter().collect(),
                state: if n.up { "up" } else { "down" }.into(),
            })
            .collect(),
        shards: map
            .shards
            .iter()
            .map(|s| pb::ShardInfo {
                id: s.id,
                slot_start: s.slot_start,
                slot_end: s.slot_end,
                primary: s.primary.clone(),
                replicas: s.replicas.clone(),
                rows: 0,
                bytes: 0,
            })
            .collect(),
    }
}

/// Domain cluster map from its wire form.
pub fn map_from_pb(map: &pb::ClusterMap) -> ClusterMap {
    ClusterMap {
        epoch: map.epoch,
        num_slots: map.num_slots,
        nodes: map
            .nodes
            .iter()
            .map(|n| NodeEntry {
                id: n.id.clone(),
                address: n.address.clone(),
                labels: n.labels.clone().into_iter().collect(),
                up: n.state == "up",
            })
            .collect(),
        shards: map
            .shards
            .iter()
            .map(|s| ShardEntry {
                id: s.id,
                slot_start: s.slot_start,
                slot_end: s.slot_end,
                primary: s.primary.clone(),
                replicas: s.replicas.clone(),
            })
            .collect(),
    }
}

/// A table's usage on the wire, with its spec.
pub fn table_info_to_pb(spec: Option<pb::TableSpec>, usage: &TableUsage) -> pb::TableInfo {
    pb::TableInfo {
        spec,
        rows: usage.rows,
        bytes: usage.bytes,
        tiers: usage
            .tiers
            .iter()
            .map(|(tier, s)| pb::TierUsage {
                tier: tier.clone(),
                rows: s.rows,
                bytes: s.bytes,
            })
            .collect(),
        cache: usage.cache.map(|c| pb::CacheUsage {
            hits: c.hits,
            misses: c.misses,
            admissions: c.admissions,
            evictions: c.evictions,
            device_ns: c.device_ns,
        }),
    }
}

/// A node's report of one table (the name comes from its spec).
pub fn table_usage_from_pb(t: &pb::TableInfo) -> TableUsage {
    TableUsage {
        name: t.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
        rows: t.rows,
        bytes: t.bytes,
        tiers: t
            .tiers
            .iter()
            .map(|u| {
                let stats = TierStats {
                    rows: u.rows,
                    bytes: u.bytes,
                };
                (u.tier.clone(), stats)
            })
            .collect(),
        cache: t.cache.as_ref().map(|c| CacheStats {
            hits: c.hits,
            misses: c.misses,
            admissions: c.admissions,
            evictions: c.evictions,
            device_ns: c.device_ns,
        }),
    }
}

/// A node's report on the wire (a heartbeat). Tables are named by a spec holding only
/// their name: the coordinator keeps the catalog's specs.
pub fn report_to_pb(r: &HeartbeatReport) -> pb::HeartbeatRequest {
    let tables: Vec<pb::TableInfo> = r
        .tables
        .iter()
        .map(|t| {
            let spec = pb::TableSpec {
                name: t.name.clone(),
                ..Default::default()
            };
            table_info_to_pb(Some(spec), t)
        })
        .collect();
    pb::HeartbeatRequest {
        node_id: r.node_id.clone(),
        rows: r.tables.iter().map(|t| t.rows).sum(),
        bytes: r.tables.iter().map(|t| t.bytes).sum(),
        epoch: r.epoch,
        catalog_version: r.catalog_version,
        tables,
        last_checkpoint: r.last_checkpoint.as_ref().map(checkpoint_to_pb),
        address: r.address.clone(),
        ranges: r
            .ranges
            .iter()
            .map(|u| pb::RangeUsage {
                slot_start: u.start,
                slot_end: u.end,
                rows: u.rows,
                bytes: u.bytes,
            })
            .collect(),
        migrations: r.migrations.clone(),
        identity: r.identity.as_ref().map(identity_to_pb),
        traffic: r
            .traffic
            .iter()
            .map(|t| pb::TrafficRate {
                table: t.table.clone(),
                slot_start: t.slot_start,
                slot_end: t.slot_end,
                location: t.location.clone(),
                pull_bytes_per_s: t.pull_bytes_per_s,
                push_bytes_per_s: t.push_bytes_per_s,
                ..Default::default()
            })
            .collect(),
        pull_rows_per_s: r.pull_rows_per_s,
        push_rows_per_s: r.push_rows_per_s,
        unsaved_changes: r.unsaved_changes,
    }
}

/// A rate from the network: NaN, infinite or negative reads as 0.
fn rate(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

/// A shard's traffic from one location, as status shows it.
pub fn shard_traffic_to_pb(t: &ShardTrafficRow) -> pb::TrafficRate {
    pb::TrafficRate {
        table: t.table.clone(),
        slot_start: t.slot_start,
        slot_end: t.slot_end,
        location: t.location.clone(),
        pull_bytes_per_s: t.pull_bytes_per_s,
        push_bytes_per_s: t.push_bytes_per_s,
        node: t.node.clone(),
        shard: t.shard,
    }
}

/// A node's report from the wire.
pub fn report_from_pb(req: pb::HeartbeatRequest) -> HeartbeatReport {
    HeartbeatReport {
        node_id: req.node_id,
        address: req.address,
        epoch: req.epoch,
        catalog_version: req.catalog_version,
        tables: req.tables.iter().map(table_usage_from_pb).collect(),
        last_checkpoint: req.last_checkpoint.as_ref().map(checkpoint_from_pb),
        ranges: req
            .ranges
            .iter()
            .map(|r| RangeLoad {
                start: r.slot_start,
                end: r.slot_end,
                rows: r.rows,
                bytes: r.bytes,
            })
            .collect(),
        migrations: req.migrations,
        traffic: req
            .traffic
            .into_iter()
            .map(|t| TrafficSample {
                table: t.table,
                slot_start: t.slot_start,
                slot_end: t.slot_end,
                location: t.location,
                pull_bytes_per_s: rate(t.pull_bytes_per_s),
                push_bytes_per_s: rate(t.push_bytes_per_s),
            })
            .collect(),
        pull_rows_per_s: rate(req.pull_rows_per_s),
        push_rows_per_s: rate(req.push_rows_per_s),
        unsaved_changes: req.unsaved_changes,
        identity: req.identity.map(identity_from_pb),
    }
}

/// What runs in a process, on the wire.
pub fn identity_to_pb(i: &ProcessIdentity) -> pb::ProcessIdentity {
    pb::ProcessIdentity {
        version: i.version.clone(),
        commit: i.commit.clone(),
        dirty: i.dirty,
        profile: i.profile.clone(),
        started_unix_ms: i.started_unix_ms,
        config: i
            .config
            .iter()
            .map(|(name, value)| pb::ConfigEntry {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        config_hash: i.config_hash.clone(),
        data_dir: i.data_dir.clone(),
        gpu: i.gpu.as_ref().map(|g| pb::GpuIdentity {
            model: g.model.clone(),
            driver: g.driver.clone(),
            cuda: g.cuda.clone(),
        }),
        role: i.role.clone(),
    }
}

/// What runs in a process, from the wire.
pub fn identity_from_pb(i: pb::ProcessIdentity) -> ProcessIdentity {
    ProcessIdentity {
        version: i.version,
        commit: i.commit,
        dirty: i.dirty,
        profile: i.profile,
        role: i.role,
        started_unix_ms: i.started_unix_ms,
        config: i.config.into_iter().map(|e| (e.name, e.value)).collect(),
        config_hash: i.config_hash,
        data_dir: i.data_dir,
        gpu: i.gpu.map(|g| GpuIdentity {
            model: g.model,
            driver: g.driver,
            cuda: g.cuda,
        }),
    }
}

/// A move's progress on the wire.
pub fn progress_to_pb(p: &MoveProgress) -> pb::MigrationProgress {
    pb::MigrationProgress {
        phase: p.phase.as_str().into(),
        rows: p.rows,
        bytes: p.bytes,
        rows_total: p.rows_total,
        bytes_total: p.bytes_total,
        delta_round: p.delta_round,
    }
}

/// A move's progress from the wire.
pub fn progress_from_pb(p: &pb::MigrationProgress) -> Result<MoveProgress, ConvertError> {
    let phase = MovePhase::parse(&p.phase).ok_or_else(|| ConvertError::Unknown {
        field: "phase",
        value: p.phase.clone(),
        expected: "copy, delta, handoff, handed_off",
    })?;
    Ok(MoveProgress {
        phase,
        rows: p.rows,
        bytes: p.bytes,
        rows_total: p.rows_total,
        bytes_total: p.bytes_total,
        delta_round: p.delta_round,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_spec_round_trips_and_defaults_apply() {
        let wire = pb::TableSpec {
            name: "emb".into(),
            dim: 8,
            optimizer: Some(pb::OptimizerSpec {
                kind: "adam".into(),
                lr: Some(0.5),
                ..Default::default()
            }),
            initializer: None,
            seed: 3,
            tier: String::new(),
        };
        let spec = table_spec_from_pb(Some(&wire)).expect("valid");
        assert_eq!(
            spec.optimizer.kind,
            OptimizerKind::Adam {
                lr: 0.5,
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8
            }
        );
        assert_eq!(table_spec_from_pb(Some(&table_spec_to_pb(&spec))), Ok(spec));
    }

    #[test]
    fn a_hyperparameter_of_another_optimizer_is_refused() {
        let beta1_on_adagrad = pb::OptimizerSpec {
            kind: "adagrad".into(),
            beta1: Some(0.5),
            ..Default::default()
        };
        let err = optimizer_from_pb(Some(&beta1_on_adagrad)).expect_err("beta1 on adagrad");
        assert_eq!(
            err.to_string(),
            "beta1 does not apply to optimizer adagrad (it takes lr, initial_accumulator, epsilon)"
        );
        let l1_on_sgd = pb::OptimizerSpec {
            kind: String::new(),
            l1: Some(0.1),
            ..Default::default()
        };
        assert!(matches!(
            optimizer_from_pb(Some(&l1_on_sgd)),
            Err(ConvertError::NotForOptimizer {
                field: "l1",
                optimizer: "sgd",
                ..
            })
        ));
        // Every optimizer accepts its own parameters, as its wire form carries them.
        for kind in ["sgd", "adagrad", "adam", "ftrl"] {
            let own = pb::OptimizerSpec {
                kind: kind.into(),
                ..Default::default()
            };
            let config = optimizer_from_pb(Some(&own)).expect("defaults");
            assert_eq!(
                optimizer_from_pb(Some(&optimizer_to_pb(&config))),
                Ok(config)
            );
        }
    }

    #[test]
    fn unknown_names_are_refused_clearly() {
        let wire = pb::TableSpec {
            name: "emb".into(),
            dim: 8,
            tier: "ssd".into(),
            ..Default::default()
        };
        let err = table_spec_from_pb(Some(&wire)).expect_err("unknown tier");
        assert!(err.to_string().contains("host, gpu"), "{err}");
    }

    #[test]
    fn table_usage_round_trips_through_the_wire() {
        let usage = TableUsage {
            name: "g".into(),
            rows: 7,
            bytes: 70,
            tiers: vec![
                ("gpu".into(), TierStats { rows: 3, bytes: 30 }),
                ("host".into(), TierStats { rows: 7, bytes: 40 }),
            ],
            cache: Some(CacheStats {
                hits: 1,
                misses: 2,
                admissions: 3,
                evictions: 4,
                device_ns: 5,
            }),
        };
        let spec = pb::TableSpec {
            name: "g".into(),
            ..Default::default()
        };
        let wire = table_info_to_pb(Some(spec), &usage);
        assert_eq!(table_usage_from_pb(&wire), usage);
        let host = TableUsage {
            cache: None,
            ..usage
        };
        assert_eq!(
            table_usage_from_pb(&table_info_to_pb(None, &host)).cache,
            None
        );
    }
}
