//! Automatic topology rebalancing (off unless asked for): when no plan runs and a topology
//! plan would cut the cost of trainer↔shard traffic by at least a threshold, start it.
//! The caller decides how often to look (its cool-down).

use std::sync::Arc;

use super::ClusterCoordinator;
use crate::plan::TopologyParams;
use crate::plan_record::PlanState;
use crate::CoordinatorError;

/// When an automatic topology plan is worth starting.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoRebalance {
    /// Smallest fraction of the traffic cost a plan must remove (e.g. 0.2: a fifth).
    pub threshold: f64,
    /// The planner's bounds.
    pub params: TopologyParams,
}

/// What one look at the cluster decided.
#[derive(Debug, Clone, PartialEq)]
pub enum AutoDecision {
    /// A plan runs already.
    Busy,
    /// No labelled traffic, or no move pays for itself.
    NothingToDo,
    /// A plan exists but removes less than the threshold (the fraction it would remove).
    BelowThreshold(f64),
    /// The plan started, with its id and the fraction of cost it removes.
    Started(String, f64),
}

impl ClusterCoordinator {
    /// Plans by topology and starts the plan when it removes at least `policy.threshold`
    /// of the traffic cost and no plan runs.
    pub fn auto_rebalance_step(
        self: &Arc<Self>,
        policy: &AutoRebalance,
    ) -> Result<AutoDecision, CoordinatorError> {
        let running = self
            .plan_status()
            .is_some_and(|(p, _)| p.state == PlanState::Running);
        if running {
            return Ok(AutoDecision::Busy);
        }
        let planned = self.plan_by_topology(&policy.params)?;
        let cost = planned.predicted.cost;
        if planned.plan.moves.is_empty() || cost.before <= 0.0 {
            return Ok(AutoDecision::NothingToDo);
        }
        let gain = (cost.before - cost.after) / cost.before;
        if gain < policy.threshold {
            return Ok(AutoDecision::BelowThreshold(gain));
        }
        let (id, _) = self.start_plan(planned.plan, 0, 0)?;
        Ok(AutoDecision::Started(id, gain))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::coordinator::testkit::{reg, table, wait_end, Nodes};
    use crate::coordinator::{ClusterConfig, Registration};
    use crate::report::{HeartbeatReport, RangeLoad, TrafficSample};
    use crate::topology::Topology;

    /// Four nodes in two racks, 8 shards, every shard's traffic from rack r1.
    async fn two_racks(dir: &std::path::Path) -> Arc<ClusterCoordinator> {
        let config = ClusterConfig {
            data_dir: dir.to_path_buf(),
            shards: 8,
            num_slots: 64,
            heartbeat_timeout: Duration::from_secs(60),
            advertise_address: "c:1".into(),
            keep_checkpoints: 3,
            topology: Topology::default(),
        };
        let c = Arc::new(
            ClusterCoordinator::open(config, Arc::new(Nodes(Duration::ZERO))).expect("open"),
        );
        for (i, rack) in ["r1", "r1", "r2", "r2"].iter().enumerate() {
            let labels = BTreeMap::from([
                ("zone".to_string(), "z1".to_string()),
                ("rack".to_string(), rack.to_string()),
                ("host".to_string(), format!("h{i}")),
            ]);
            c.register(Registration {
                labels,
                ..reg(&format!("n{i}"), &format!("h:{i}"))
            })
            .expect("register");
        }
        c.create_table(table("t")).await.expect("table");
        for i in 0..4 {
            let node = format!("n{i}");
            let own: Vec<_> = c
                .cluster_map()
                .shards
                .into_iter()
                .filter(|s| s.primary == node)
                .collect();
            c.heartbeat(HeartbeatReport {
                node_id: node.clone(),
                ranges: own
                    .iter()
                    .map(|s| RangeLoad {
                        start: s.slot_start,
                        end: s.slot_end,
                        rows: 100,
                        bytes: 1000,
                    })
                    .collect(),
                traffic: own
                    .iter()
                    .map(|s| TrafficSample {
                        table: "t".into(),
                        slot_start: s.slot_start,
                        slot_end: s.slot_end,
                        location: "rack=r1,zone=z1".into(),
                        pull_bytes_per_s: 1e6,
                        push_bytes_per_s: 1e6,
                    })
                    .collect(),
                ..Default::default()
            })
            .expect("heartbeat");
        }
        c
    }

    #[tokio::test]
    async fn shards_placed_at_registration_alternate_racks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = two_racks(dir.path()).await;
        let rack = |node: &str| {
            if node == "n0" || node == "n1" {
                "r1"
            } else {
                "r2"
            }
        };
        let racks: Vec<&str> = c
            .cluster_map()
            .shards
            .iter()
            .map(|s| rack(&s.primary))
            .collect();
        assert!(racks.windows(2).all(|w| w[0] != w[1]), "{racks:?}");
    }

    #[tokio::test]
    async fn a_plan_that_cuts_enough_cost_starts_and_one_that_does_not_waits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = two_racks(dir.path()).await;
        let loose = TopologyParams {
            max_imbalance: 2.5,
            ..TopologyParams::default()
        };
        let strict = AutoRebalance {
            threshold: 0.99,
            params: loose.clone(),
        };
        match c.auto_rebalance_step(&strict).expect("step") {
            AutoDecision::BelowThreshold(gain) => assert!(gain > 0.2 && gain < 0.99, "{gain}"),
            other => panic!("expected below threshold, got {other:?}"),
        }
        assert!(c.plan_status().is_none(), "nothing started");
        let eager = AutoRebalance {
            threshold: 0.2,
            params: loose,
        };
        match c.auto_rebalance_step(&eager).expect("step") {
            AutoDecision::Started(_, gain) => assert!(gain >= 0.2, "{gain}"),
            other => panic!("expected a start, got {other:?}"),
        }
        let ended = wait_end(&c).await;
        assert_eq!(ended.state, PlanState::Done, "{ended:?}");
    }
}
