//! The coordinator's `/metrics` families, encoded on each scrape from the coordinator's own
//! record and the nodes' last reports (no calls to the nodes): nodes by state, the map's
//! epoch, shards per node, rows and bytes per table and tier, the plan's progress, the age of
//! the newest cluster checkpoint, and whether this coordinator leads.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::service::leader::LeaderSlot;
use strata_cluster::cluster::unix_ms;
use strata_cluster::cluster_stats::{ClusterStats, NodeState};

/// Encodes the cluster families of the coordinator `slot` holds (only the leader flag while
/// this process does not lead).
pub struct ClusterCollector {
    slot: Arc<LeaderSlot>,
}

impl ClusterCollector {
    /// A collector over `slot`.
    pub fn new(slot: Arc<LeaderSlot>) -> Self {
        Self { slot }
    }
}

impl fmt::Debug for ClusterCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCollector").finish_non_exhaustive()
    }
}

/// One gauge family: name (before the unit), help, unit, and its samples as label pairs
/// with a value.
struct GaugeFamily<'a> {
    name: &'a str,
    help: &'a str,
    unit: Option<Unit>,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl GaugeFamily<'_> {
    fn encode(self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let mut family = encoder.encode_descriptor(
            self.name,
            self.help,
            self.unit.as_ref(),
            MetricType::Gauge,
        )?;
        for (labels, value) in self.samples {
            if labels.is_empty() {
                // A family without labels has this one sample.
                return encode_value(value, family);
            }
            encode_value(value, family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// A gauge sample: whole numbers as integers (`3`, not `3.0`).
fn encode_value(value: f64, encoder: MetricEncoder) -> fmt::Result {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        ConstGauge::new(value as i64).encode(encoder)
    } else {
        ConstGauge::new(value).encode(encoder)
    }
}

impl Collector for ClusterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let coordinator = self.slot.current();
        GaugeFamily {
            name: "coordinator_leader",
            help:
                "1 when this coordinator leads the cluster (always without etcd), 0 on a standby.",
            unit: None,
            samples: vec![(vec![], f64::from(u8::from(coordinator.is_some())))],
        }
        .encode(&mut encoder)?;
        let Some(coordinator) = coordinator else {
            return Ok(());
        };
        for family in cluster_families(&coordinator.stats(), unix_ms()) {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}

/// The cluster families of `stats` at wall-clock time `now_ms`.
fn cluster_families(stats: &ClusterStats, now_ms: u64) -> Vec<GaugeFamily<'static>> {
    let plan_series = |value: fn(&strata_cluster::cluster_stats::PlanProgress) -> u64| {
        stats
            .plan
            .iter()
            .map(|p| (vec![("plan", p.id.clone())], value(p) as f64))
            .collect::<Vec<_>>()
    };
    let mut families = vec![
        GaugeFamily {
            name: "cluster_nodes",
            help: "Registered shard servers by state (a silent node is down, draining or not).",
            unit: None,
            samples: NodeState::ALL
                .iter()
                .map(|&s| (vec![("state", s.as_str().into())], stats.nodes_in(s) as f64))
                .collect(),
        },
        GaugeFamily {
            name: "cluster_map_epoch",
            help: "Epoch of the cluster map.",
            unit: None,
            samples: vec![(vec![], stats.epoch as f64)],
        },
        GaugeFamily {
            name: "cluster_node_shards",
            help: "Shards each registered node is primary of.",
            unit: None,
            samples: stats
                .nodes
                .iter()
                .map(|n| (vec![("node", n.id.clone())], f64::from(n.shards)))
                .collect(),
        },
        GaugeFamily {
            name: "cluster_table_rows",
            help: "Rows per table and tier, summed over the nodes' last reports.",
            unit: None,
            samples: stats
                .tables
                .iter()
                .map(|t| (table_labels(t), t.rows as f64))
                .collect(),
        },
        GaugeFamily {
            name: "cluster_table",
            help: "Bytes per table and tier, summed over the nodes' last reports.",
            unit: Some(Unit::Bytes),
            samples: stats
                .tables
                .iter()
                .map(|t| (table_labels(t), t.bytes as f64))
                .collect(),
        },
        GaugeFamily {
            name: "cluster_plan_running",
            help: "1 while a plan (resize, rebalance, drain) is moving shards.",
            unit: None,
            samples: vec![(
                vec![],
                f64::from(u8::from(stats.plan.as_ref().is_some_and(|p| p.running))),
            )],
        },
        GaugeFamily {
            name: "cluster_plan_moves",
            help: "Moves of the running or last plan.",
            unit: None,
            samples: plan_series(|p| p.moves_total),
        },
        GaugeFamily {
            name: "cluster_plan_moves_done",
            help: "Moves of the running or last plan that are committed.",
            unit: None,
            samples: plan_series(|p| p.moves_done),
        },
        GaugeFamily {
            name: "cluster_plan",
            help: "Bytes the running or last plan moves in all.",
            unit: Some(Unit::Bytes),
            samples: plan_series(|p| p.bytes_total),
        },
        GaugeFamily {
            name: "cluster_plan_copied",
            help: "Bytes the running or last plan has copied so far.",
            unit: Some(Unit::Bytes),
            samples: plan_series(|p| p.bytes_copied),
        },
    ];
    if let Some(created) = stats.newest_checkpoint_unix_ms {
        families.push(GaugeFamily {
            name: "cluster_checkpoint_age",
            help: "Seconds since the newest cluster checkpoint was written.",
            unit: Some(Unit::Seconds),
            samples: vec![(vec![], now_ms.saturating_sub(created) as f64 / 1000.0)],
        });
    }
    families
}

fn table_labels(t: &strata_cluster::cluster_stats::TableTierStats) -> Vec<(&'static str, String)> {
    vec![("table", t.table.clone()), ("tier", t.tier.clone())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;
    use strata_cluster::cluster_stats::{NodeStats, PlanProgress, TableTierStats};

    #[derive(Debug)]
    struct Fixed(ClusterStats);

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
            for family in cluster_families(&self.0, 10_500) {
                family.encode(&mut encoder)?;
            }
            Ok(())
        }
    }

    #[test]
    fn cluster_stats_are_encoded_as_gauges() {
        let stats = ClusterStats {
            epoch: 12,
            nodes: vec![
                NodeStats {
                    id: "n1".into(),
                    state: NodeState::Up,
                    shards: 3,
                },
                NodeStats {
                    id: "n2".into(),
                    state: NodeState::Down,
                    shards: 1,
                },
            ],
            tables: vec![TableTierStats {
                table: "emb".into(),
                tier: "host".into(),
                rows: 40,
                bytes: 4096,
            }],
            plan: Some(PlanProgress {
                id: "plan-2".into(),
                running: true,
                moves_total: 4,
                moves_done: 1,
                bytes_total: 1000,
                bytes_copied: 300,
            }),
            newest_checkpoint_unix_ms: Some(8_000),
        };
        let mut registry = Registry::with_prefix("strata");
        registry.register_collector(Box::new(Fixed(stats)));
        let mut text = String::new();
        encode(&mut text, &registry).expect("encode");
        for line in [
            "strata_cluster_nodes{state=\"up\"} 1",
            "strata_cluster_nodes{state=\"down\"} 1",
            "strata_cluster_nodes{state=\"draining\"} 0",
            "strata_cluster_map_epoch 12",
            "strata_cluster_node_shards{node=\"n1\"} 3",
            "strata_cluster_table_rows{table=\"emb\",tier=\"host\"} 40",
            "strata_cluster_table_bytes{table=\"emb\",tier=\"host\"} 4096",
            "strata_cluster_plan_running 1",
            "strata_cluster_plan_moves{plan=\"plan-2\"} 4",
            "strata_cluster_plan_moves_done{plan=\"plan-2\"} 1",
            "strata_cluster_plan_bytes{plan=\"plan-2\"} 1000",
            "strata_cluster_plan_copied_bytes{plan=\"plan-2\"} 300",
            "strata_cluster_checkpoint_age_seconds 2.5",
        ] {
            assert!(
                text.contains(&format!("{line}\n")),
                "{line} missing:\n{text}"
            );
        }
    }
}
