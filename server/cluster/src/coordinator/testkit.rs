//! Test support for the coordinator's rooms: a fake of the nodes and a few clusters to
//! start from.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ClusterConfig, ClusterCoordinator, Registration};
use crate::cluster_map::ClusterMap;
use crate::node_control::{
    MigrateOut, MovePhase, MoveProgress, NodeControl, NodeError, NodeErrorKind, NodeResult,
};
use crate::plan_record::{PlanRecord, PlanState};
use crate::record::Catalog;
use crate::report::{HeartbeatReport, NodeCheckpoint, RangeLoad};
use strata_storage::optimizer::{OptimizerConfig, OptimizerKind};
use strata_storage::spec::{InitializerConfig, TableSpec, TierKind};

/// The failure of a call a test does not expect.
fn not_here() -> NodeError {
    NodeError::new(NodeErrorKind::Internal, "not in this test")
}

/// A NodeControl that accepts everything; its sources take `.0` to hand off (cancel stops
/// them).
pub(super) struct Nodes(pub(super) Duration);

impl NodeControl for Nodes {
    fn apply_catalog<'a>(&'a self, _: &'a str, _: &'a Catalog) -> NodeResult<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn apply_map<'a>(&'a self, _: &'a str, _: &'a ClusterMap) -> NodeResult<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn report<'a>(&'a self, _: &'a str) -> NodeResult<'a, HeartbeatReport> {
        Box::pin(async { Err(not_here()) })
    }
    fn checkpoint<'a>(&'a self, _: &'a str, _: u64) -> NodeResult<'a, NodeCheckpoint> {
        Box::pin(async { Err(not_here()) })
    }
    fn checkpoints<'a>(&'a self, _: &'a str) -> NodeResult<'a, Vec<NodeCheckpoint>> {
        Box::pin(async { Err(not_here()) })
    }
    fn verify_checkpoint<'a>(&'a self, _: &'a str, _: &'a str) -> NodeResult<'a, NodeCheckpoint> {
        Box::pin(async { Err(not_here()) })
    }
    fn restore<'a>(&'a self, _: &'a str, _: &'a str) -> NodeResult<'a, NodeCheckpoint> {
        Box::pin(async { Err(not_here()) })
    }
    fn migrate_out<'a>(
        &'a self,
        _: &'a str,
        request: &'a MigrateOut,
        progress: &'a (dyn Fn(MoveProgress) + Send + Sync),
        cancel: &'a AtomicBool,
    ) -> NodeResult<'a, ()> {
        Box::pin(async move {
            let end = Instant::now() + self.0;
            while Instant::now() < end {
                if cancel.load(Ordering::Acquire) {
                    return Err(NodeError::new(NodeErrorKind::Cancelled, "cancelled"));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            progress(MoveProgress {
                phase: MovePhase::HandedOff,
                rows: u64::from(request.slot_end - request.slot_start),
                ..Default::default()
            });
            Ok(())
        })
    }
    fn import_complete<'a>(&'a self, _: &'a str, _: &'a str) -> NodeResult<'a, bool> {
        Box::pin(async { Ok(true) })
    }
    fn abort_migration<'a>(&'a self, _: &'a str, _: &'a str) -> NodeResult<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// The settings of a test cluster of 6 shards over 64 slots in `dir`.
fn config(dir: &Path, heartbeat_timeout: Duration) -> ClusterConfig {
    ClusterConfig {
        data_dir: dir.to_path_buf(),
        shards: 6,
        num_slots: 64,
        heartbeat_timeout,
        advertise_address: "c:1".into(),
        keep_checkpoints: 3,
        topology: crate::topology::Topology::default(),
    }
}

/// A coordinator in `dir` whose nodes accept everything at once.
pub(super) fn open(dir: &Path, timeout: Duration) -> ClusterCoordinator {
    ClusterCoordinator::open(config(dir, timeout), Arc::new(Nodes(Duration::ZERO))).expect("open")
}

/// The registration of node `id` at `address`.
pub(super) fn reg(id: &str, address: &str) -> Registration {
    Registration {
        node_id: id.into(),
        address: address.into(),
        ..Default::default()
    }
}

/// A host table `name` of dimension 4.
pub(super) fn table(name: &str) -> TableSpec {
    TableSpec {
        name: name.into(),
        dim: 4,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd { lr: 1.0 }),
        initializer: InitializerConfig::Zeros,
        seed: 1,
        tier: TierKind::Host,
    }
}

/// Three registered nodes, rows reported on every shard, a table in the catalog.
pub(super) async fn three_nodes(dir: &Path, delay: Duration) -> Arc<ClusterCoordinator> {
    let config = config(dir, Duration::from_secs(60));
    let c = Arc::new(ClusterCoordinator::open(config, Arc::new(Nodes(delay))).expect("open"));
    for (id, address) in [("a", "h:1"), ("b", "h:2"), ("c", "h:3")] {
        c.register(reg(id, address)).expect("register");
    }
    c.create_table(table("t")).await.expect("table");
    for n in ["a", "b", "c"] {
        let ranges = c
            .cluster_map()
            .shards
            .iter()
            .filter(|s| s.primary == n)
            .map(|s| RangeLoad {
                start: s.slot_start,
                end: s.slot_end,
                rows: 100,
                bytes: 1000,
            })
            .collect();
        c.heartbeat(HeartbeatReport {
            node_id: n.into(),
            ranges,
            ..Default::default()
        })
        .expect("heartbeat");
    }
    c
}

/// Slot ranges and primaries of a map.
pub(super) fn map_layout(map: &ClusterMap) -> Vec<(u32, u32, String)> {
    map.shards
        .iter()
        .map(|s| (s.slot_start, s.slot_end, s.primary.clone()))
        .collect()
}

/// The plan once it has ended.
pub(super) async fn wait_end(c: &ClusterCoordinator) -> PlanRecord {
    for _ in 0..2000 {
        if let Some((p, _)) = c.plan_status() {
            if p.state != PlanState::Running {
                return p;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("plan still running after 10 s");
}
