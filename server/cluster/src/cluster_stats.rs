//! The cluster at a glance as plain numbers, for the coordinator's `/metrics`: nodes by state,
//! shards per node, rows and bytes per table and tier summed over the nodes' last reports, the
//! plan's progress and the newest cluster checkpoint (pure: no I/O, no clock).

use std::collections::{BTreeMap, HashMap};

use crate::coordinator::NodeLive;
use crate::node_control::MoveProgress;
use crate::plan_record::{MoveState, PlanState};
use crate::record::{shards_of, ClusterRecord};
use crate::report::TableUsage;

/// Where a registered node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Heard from within the heartbeat timeout, and takes shards.
    Up,
    /// Silent for longer than the heartbeat timeout.
    Down,
    /// Heard from, but being drained (or drained): takes no shards.
    Draining,
}

impl NodeState {
    /// Every state, in the order metrics list them.
    pub const ALL: [NodeState; 3] = [Self::Up, Self::Down, Self::Draining];

    /// The state's name in metrics and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Draining => "draining",
        }
    }
}

/// One registered node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStats {
    /// Node id.
    pub id: String,
    /// Where it stands (a silent node is down, draining or not).
    pub state: NodeState,
    /// Shards it is primary of.
    pub shards: u32,
}

/// Rows and bytes of one table in one tier, summed over the nodes' last reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableTierStats {
    /// Table name.
    pub table: String,
    /// Tier name ("host", "gpu").
    pub tier: String,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
}

/// How far the running (or last) plan got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanProgress {
    /// Plan id (`plan-N`).
    pub id: String,
    /// Whether its moves are being run.
    pub running: bool,
    /// Moves of the plan.
    pub moves_total: u64,
    /// Moves committed.
    pub moves_done: u64,
    /// Bytes the plan moves in all (as planned).
    pub bytes_total: u64,
    /// Bytes copied so far: the planned bytes of committed moves plus what running moves
    /// have sent.
    pub bytes_copied: u64,
}

/// The cluster as the coordinator's metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStats {
    /// Epoch of the cluster map.
    pub epoch: u64,
    /// Registered nodes, in registration order.
    pub nodes: Vec<NodeStats>,
    /// Catalog tables by tier, in creation order.
    pub tables: Vec<TableTierStats>,
    /// The running or last plan.
    pub plan: Option<PlanProgress>,
    /// When the newest cluster checkpoint was written (ms since the Unix epoch).
    pub newest_checkpoint_unix_ms: Option<u64>,
}

impl ClusterStats {
    /// Nodes in `state`.
    pub fn nodes_in(&self, state: NodeState) -> usize {
        self.nodes.iter().filter(|n| n.state == state).count()
    }
}

/// The stats of `record` with the nodes' liveness `live` and the live progress of running
/// moves by move id.
pub fn cluster_stats(
    record: &ClusterRecord,
    live: &BTreeMap<String, NodeLive>,
    moves: &HashMap<String, MoveProgress>,
) -> ClusterStats {
    let nodes = record
        .nodes
        .iter()
        .map(|n| NodeStats {
            id: n.id.clone(),
            state: match live.get(&n.id) {
                Some(l) if l.up && n.draining => NodeState::Draining,
                Some(l) if l.up => NodeState::Up,
                _ => NodeState::Down,
            },
            shards: shards_of(record, &n.id).len() as u32,
        })
        .collect();
    ClusterStats {
        epoch: record.epoch,
        nodes,
        tables: table_tiers(record, live),
        plan: record.plan.as_ref().map(|p| {
            let copied = p.moves.iter().map(|m| match m.state {
                MoveState::Done => m.mv.bytes,
                MoveState::Running => moves.get(&m.id).map_or(0, |l| l.bytes),
                _ => 0,
            });
            PlanProgress {
                id: p.id.clone(),
                running: p.state == PlanState::Running,
                moves_total: p.moves.len() as u64,
                moves_done: p
                    .moves
                    .iter()
                    .filter(|m| m.state == MoveState::Done)
                    .count() as u64,
                bytes_total: p.plan.bytes,
                bytes_copied: copied.fold(0u64, u64::saturating_add),
            }
        }),
        newest_checkpoint_unix_ms: record.checkpoints.iter().map(|c| c.created_unix_ms).max(),
    }
}

/// Every catalog table's rows and bytes per tier over the nodes' last reports (down nodes
/// included: their rows are still the cluster's); a table no node reported shows 0 host rows.
fn table_tiers(record: &ClusterRecord, live: &BTreeMap<String, NodeLive>) -> Vec<TableTierStats> {
    let mut out = Vec::new();
    for spec in &record.tables {
        let mut total = TableUsage::default();
        live.values()
            .flat_map(|l| l.tables.iter())
            .filter(|t| t.name == spec.name)
            .for_each(|t| total.add(t));
        if total.tiers.is_empty() {
            total.tiers.push(("host".into(), Default::default()));
        }
        for (tier, stats) in total.tiers {
            out.push(TableTierStats {
                table: spec.name.clone(),
                tier,
                rows: stats.rows,
                bytes: stats.bytes,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::cluster_map::ShardEntry;
    use crate::plan::{Move, Plan, PlanKind};
    use crate::plan_record::{MoveRecord, PlanRecord};
    use crate::record::{new_record, ClusterCheckpoint, NodeRecord};
    use strata_storage::optimizer::{OptimizerConfig, OptimizerKind};
    use strata_storage::spec::{InitializerConfig, TableSpec, TierKind};
    use strata_storage::TierStats;

    fn node(id: &str, draining: bool) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            address: format!("{id}:1"),
            labels: Default::default(),
            memory_budget: 0,
            draining,
            incarnation: String::new(),
            held_rows: false,
        }
    }

    fn live(up: bool, tables: Vec<TableUsage>) -> NodeLive {
        let mut l = NodeLive::fresh(Instant::now());
        l.up = up;
        l.tables = tables;
        l
    }

    fn usage(name: &str, tiers: &[(&str, u64, u64)]) -> TableUsage {
        TableUsage {
            name: name.into(),
            rows: tiers.iter().map(|t| t.1).sum(),
            bytes: tiers.iter().map(|t| t.2).sum(),
            tiers: tiers
                .iter()
                .map(|&(t, rows, bytes)| (t.to_string(), TierStats { rows, bytes }))
                .collect(),
            cache: None,
        }
    }

    fn spec(name: &str) -> TableSpec {
        TableSpec {
            name: name.into(),
            dim: 4,
            optimizer: OptimizerConfig::new(OptimizerKind::Sgd { lr: 1.0 }),
            initializer: InitializerConfig::Zeros,
            seed: 1,
            tier: TierKind::Host,
        }
    }

    fn mv(bytes: u64) -> Move {
        Move {
            slot_start: 0,
            slot_end: 1,
            from: "n1".into(),
            to: "n2".into(),
            rows: 1,
            bytes,
        }
    }

    #[test]
    fn nodes_tables_plan_and_checkpoint_are_summed_from_the_record_and_reports() {
        let mut record = new_record(4, 64);
        record.epoch = 7;
        record.nodes = vec![node("n1", false), node("n2", true), node("n3", true)];
        record.shards = vec![
            ShardEntry {
                id: 0,
                slot_start: 0,
                slot_end: 32,
                primary: "n1".into(),
                replicas: vec![],
            },
            ShardEntry {
                id: 1,
                slot_start: 32,
                slot_end: 64,
                primary: "n1".into(),
                replicas: vec![],
            },
        ];
        record.tables = vec![spec("a"), spec("empty")];
        record.checkpoints = vec![
            ClusterCheckpoint {
                id: "c1".into(),
                created_unix_ms: 1_000,
                ..record_checkpoint()
            },
            ClusterCheckpoint {
                id: "c2".into(),
                created_unix_ms: 5_000,
                ..record_checkpoint()
            },
        ];
        let moves = vec![
            MoveRecord {
                id: "plan-1-m1".into(),
                mv: mv(100),
                state: MoveState::Done,
                attempts: 1,
                error: String::new(),
            },
            MoveRecord {
                id: "plan-1-m2".into(),
                mv: mv(50),
                state: MoveState::Running,
                attempts: 1,
                error: String::new(),
            },
            MoveRecord {
                id: "plan-1-m3".into(),
                mv: mv(30),
                state: MoveState::Pending,
                attempts: 0,
                error: String::new(),
            },
        ];
        record.plan = Some(PlanRecord {
            id: "plan-1".into(),
            plan: Plan {
                kind: PlanKind::Rebalance,
                target: vec![],
                moves: moves.iter().map(|m| m.mv.clone()).collect(),
                rows: 3,
                bytes: 180,
            },
            base: vec![],
            state: PlanState::Running,
            moves,
            max_bytes_per_s: 0,
            max_parallel: 2,
            error: String::new(),
            started_unix_ms: 0,
            finished_unix_ms: 0,
        });
        let lives = BTreeMap::from([
            (
                "n1".to_string(),
                live(true, vec![usage("a", &[("host", 10, 100), ("gpu", 2, 20)])]),
            ),
            (
                "n2".to_string(),
                live(true, vec![usage("a", &[("host", 5, 50)])]),
            ),
            // Down and draining: down. Its last report still counts.
            (
                "n3".to_string(),
                live(false, vec![usage("a", &[("host", 1, 10)])]),
            ),
        ]);
        let running = HashMap::from([(
            "plan-1-m2".to_string(),
            MoveProgress {
                bytes: 20,
                ..Default::default()
            },
        )]);

        let stats = cluster_stats(&record, &lives, &running);

        assert_eq!(stats.epoch, 7);
        let states: Vec<_> = stats
            .nodes
            .iter()
            .map(|n| (n.id.as_str(), n.state, n.shards))
            .collect();
        assert_eq!(
            states,
            vec![
                ("n1", NodeState::Up, 2),
                ("n2", NodeState::Draining, 0),
                ("n3", NodeState::Down, 0)
            ]
        );
        assert_eq!(
            NodeState::ALL.map(|s| stats.nodes_in(s)),
            [1, 1, 1],
            "up, down, draining"
        );
        let tables: Vec<_> = stats
            .tables
            .iter()
            .map(|t| (t.table.as_str(), t.tier.as_str(), t.rows, t.bytes))
            .collect();
        assert_eq!(
            tables,
            vec![
                ("a", "host", 16, 160),
                ("a", "gpu", 2, 20),
                ("empty", "host", 0, 0)
            ]
        );
        assert_eq!(
            stats.plan,
            Some(PlanProgress {
                id: "plan-1".into(),
                running: true,
                moves_total: 3,
                moves_done: 1,
                bytes_total: 180,
                bytes_copied: 120,
            })
        );
        assert_eq!(stats.newest_checkpoint_unix_ms, Some(5_000));
    }

    fn record_checkpoint() -> ClusterCheckpoint {
        ClusterCheckpoint {
            id: String::new(),
            epoch: 0,
            created_unix_ms: 0,
            nodes: Default::default(),
            rows: 0,
            bytes: 0,
            tables: 0,
            shards: vec![],
            table_specs: vec![],
            dense_specs: vec![],
        }
    }

    #[test]
    fn a_new_cluster_has_no_nodes_plan_or_checkpoint() {
        let stats = cluster_stats(&new_record(8, 64), &BTreeMap::new(), &HashMap::new());
        assert!(stats.nodes.is_empty());
        assert!(stats.tables.is_empty());
        assert_eq!(stats.plan, None);
        assert_eq!(stats.newest_checkpoint_unix_ms, None);
    }
}
