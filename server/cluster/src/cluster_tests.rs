//! Tests of the cluster coordinator's state machine (membership, placement, persistence).

use std::sync::atomic::AtomicBool;

use super::*;

/// The failure of a call a test does not expect.
fn not_here() -> NodeError {
    NodeError::new(NodeErrorKind::Internal, "not in this test")
}

/// A NodeControl that accepts everything.
struct Accept;

impl NodeControl for Accept {
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
        _: &'a AtomicBool,
    ) -> NodeResult<'a, ()> {
        Box::pin(async move {
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

fn open(dir: &std::path::Path, timeout: Duration) -> ClusterCoordinator {
    let config = ClusterConfig {
        data_dir: dir.to_path_buf(),
        shards: 6,
        num_slots: 64,
        heartbeat_timeout: timeout,
        advertise_address: "c:1".into(),
        keep_checkpoints: 3,
    };
    ClusterCoordinator::open(config, Arc::new(Accept)).expect("open")
}

fn reg(id: &str, address: &str) -> Registration {
    Registration {
        node_id: id.into(),
        address: address.into(),
        ..Default::default()
    }
}

fn primaries(c: &ClusterCoordinator) -> Vec<String> {
    c.cluster_map()
        .shards
        .iter()
        .map(|s| s.primary.clone())
        .collect()
}

#[test]
fn placement_spreads_while_empty_then_freezes_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = open(dir.path(), Duration::from_secs(60));
    let (a, _, _) = c.register(reg("", "h:1")).expect("a");
    assert_eq!(a, "node-1");
    assert!(primaries(&c).iter().all(|p| p == "node-1"));
    let e1 = c.cluster_map().epoch;
    c.register(reg("", "h:2")).expect("b");
    assert!(c.cluster_map().epoch > e1, "every change bumps the epoch");
    assert_eq!(primaries(&c).iter().filter(|p| *p == "node-2").count(), 3);

    // Rows reported: placement is frozen; a third node gets no shards.
    c.heartbeat(HeartbeatReport {
        node_id: "node-1".into(),
        tables: vec![TableUsage {
            name: "e".into(),
            rows: 5,
            bytes: 40,
            ..Default::default()
        }],
        ..Default::default()
    })
    .expect("heartbeat");
    let before = primaries(&c);
    c.register(reg("", "h:3")).expect("c");
    assert_eq!(primaries(&c), before);
    let map = c.cluster_map();
    drop(c);

    let again = open(dir.path(), Duration::from_secs(60));
    assert_eq!(again.cluster_map().shards, map.shards);
    assert_eq!(again.cluster_map().epoch, map.epoch);
    assert!(matches!(
        again.heartbeat(HeartbeatReport {
            node_id: "node-9".into(),
            ..Default::default()
        }),
        Err(CoordinatorError::UnknownNode { .. })
    ));
}

#[test]
fn silent_nodes_go_down_and_come_back_with_a_new_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = open(dir.path(), Duration::from_millis(1));
    c.register(reg("n", "h:1")).expect("register");
    std::thread::sleep(Duration::from_millis(5));
    assert!(c.sweep().expect("sweep"));
    let down = c.cluster_map();
    assert!(!down.nodes[0].up);
    assert!(down.shards.iter().all(|s| s.primary == "n"), "shards stay");
    let reply = c
        .heartbeat(HeartbeatReport {
            node_id: "n".into(),
            address: "h:2".into(),
            ..Default::default()
        })
        .expect("heartbeat");
    let up = c.cluster_map();
    assert!(up.nodes[0].up && up.nodes[0].address == "h:2");
    assert!(up.epoch > down.epoch);
    assert_eq!(reply.map.map(|m| m.epoch), Some(up.epoch));
}

/// A NodeControl whose sources take `delay` to hand off (cancel stops them).
struct Slow(Duration);

impl NodeControl for Slow {
    fn apply_catalog<'a>(&'a self, a: &'a str, c: &'a Catalog) -> NodeResult<'a, ()> {
        Accept.apply_catalog(a, c)
    }
    fn apply_map<'a>(&'a self, a: &'a str, m: &'a ClusterMap) -> NodeResult<'a, ()> {
        Accept.apply_map(a, m)
    }
    fn report<'a>(&'a self, a: &'a str) -> NodeResult<'a, HeartbeatReport> {
        Accept.report(a)
    }
    fn checkpoint<'a>(&'a self, a: &'a str, e: u64) -> NodeResult<'a, NodeCheckpoint> {
        Accept.checkpoint(a, e)
    }
    fn checkpoints<'a>(&'a self, a: &'a str) -> NodeResult<'a, Vec<NodeCheckpoint>> {
        Accept.checkpoints(a)
    }
    fn verify_checkpoint<'a>(&'a self, a: &'a str, id: &'a str) -> NodeResult<'a, NodeCheckpoint> {
        Accept.verify_checkpoint(a, id)
    }
    fn restore<'a>(&'a self, a: &'a str, id: &'a str) -> NodeResult<'a, NodeCheckpoint> {
        Accept.restore(a, id)
    }
    fn migrate_out<'a>(
        &'a self,
        address: &'a str,
        request: &'a MigrateOut,
        progress: &'a (dyn Fn(MoveProgress) + Send + Sync),
        cancel: &'a AtomicBool,
    ) -> NodeResult<'a, ()> {
        Box::pin(async move {
            let end = Instant::now() + self.0;
            while Instant::now() < end {
                if cancel.load(std::sync::atomic::Ordering::Acquire) {
                    return Err(NodeError::new(NodeErrorKind::Cancelled, "cancelled"));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Accept.migrate_out(address, request, progress, cancel).await
        })
    }
    fn import_complete<'a>(&'a self, a: &'a str, id: &'a str) -> NodeResult<'a, bool> {
        Accept.import_complete(a, id)
    }
    fn abort_migration<'a>(&'a self, a: &'a str, id: &'a str) -> NodeResult<'a, ()> {
        Accept.abort_migration(a, id)
    }
}

fn table(name: &str) -> strata_storage::spec::TableSpec {
    strata_storage::spec::TableSpec {
        name: name.into(),
        dim: 4,
        optimizer: strata_storage::optimizer::OptimizerConfig::new(
            strata_storage::optimizer::OptimizerKind::Sgd { lr: 1.0 },
        ),
        initializer: strata_storage::spec::InitializerConfig::Zeros,
        seed: 1,
        tier: strata_storage::spec::TierKind::Host,
    }
}

/// Three registered nodes, rows reported on every shard, a table in the catalog.
async fn three_nodes(dir: &std::path::Path, delay: Duration) -> Arc<ClusterCoordinator> {
    let config = ClusterConfig {
        data_dir: dir.to_path_buf(),
        shards: 6,
        num_slots: 64,
        heartbeat_timeout: Duration::from_secs(60),
        advertise_address: "c:1".into(),
        keep_checkpoints: 3,
    };
    let c = Arc::new(ClusterCoordinator::open(config, Arc::new(Slow(delay))).expect("open"));
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
fn map_layout(map: &ClusterMap) -> Vec<(u32, u32, String)> {
    map.shards
        .iter()
        .map(|s| (s.slot_start, s.slot_end, s.primary.clone()))
        .collect()
}

async fn wait_end(c: &ClusterCoordinator) -> PlanRecord {
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

#[tokio::test]
async fn a_resize_plan_runs_its_moves_and_ends_with_the_target_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = three_nodes(dir.path(), Duration::ZERO).await;
    let before = c.cluster_map().epoch;
    let plan = c.plan_resize(9).expect("plan");
    assert!(!plan.moves.is_empty(), "6 → 9 over 3 nodes moves data");
    let target = plan.target.clone();
    c.start_plan(plan, 0, 2).expect("start");
    let done = wait_end(&c).await;
    assert_eq!(done.state, PlanState::Done, "{done:?}");
    assert!(done.moves.iter().all(|m| m.state == MoveState::Done));
    let map = c.cluster_map();
    let layout: Vec<_> = map_layout(&map);
    let want: Vec<_> = target
        .iter()
        .map(|p| (p.slot_start, p.slot_end, p.node.clone()))
        .collect();
    assert_eq!(layout, want);
    assert!(
        map.epoch > before + done.moves.len() as u64,
        "an epoch per commit"
    );
    // The stored record has the same layout and the finished plan.
    let (record, _) = c.snapshot();
    drop(c);
    let again = open(dir.path(), Duration::from_secs(60));
    assert_eq!(again.snapshot().0.shards, record.shards);
    assert_eq!(
        again.snapshot().0.plan.map(|p| p.state),
        Some(PlanState::Done)
    );
}

#[tokio::test]
async fn a_running_plan_refuses_other_plans_catalog_changes_and_checkpoints_then_cancels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = three_nodes(dir.path(), Duration::from_secs(5)).await;
    let layout_before: Vec<_> = map_layout(&c.cluster_map());
    let plan = c.plan_resize(9).expect("plan");
    let stale = plan.clone();
    c.start_plan(plan, 0, 1).expect("start");
    assert!(matches!(
        c.start_plan(stale.clone(), 0, 1),
        Err(CoordinatorError::PlanRunning { .. })
    ));
    assert!(matches!(
        c.create_table(table("u")).await,
        Err(CoordinatorError::PlanRunning { .. })
    ));
    assert!(matches!(
        c.checkpoint().await,
        Err(CoordinatorError::PlanRunning { .. })
    ));
    for _ in 0..1000 {
        let running = c
            .plan_status()
            .is_some_and(|(p, _)| p.moves.iter().any(|m| m.state == MoveState::Running));
        if running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (id, running, pending) = c.cancel_plan().expect("cancel");
    assert_eq!((running, running + pending > 1), (1, true), "{id}");
    let end = wait_end(&c).await;
    assert_eq!(end.state, PlanState::Cancelled);
    assert!(end.moves.iter().all(|m| m.state == MoveState::Cancelled));
    let layout_after: Vec<_> = map_layout(&c.cluster_map());
    assert_eq!(
        layout_after, layout_before,
        "nothing moved: pieces merged back"
    );
    assert!(matches!(
        c.cancel_plan(),
        Err(CoordinatorError::NoPlanRunning)
    ));
    // The old plan no longer fits? It still does (nothing moved): it may start again.
    // A plan made for another layout is refused.
    let mut wrong = stale;
    wrong.moves.pop();
    assert!(matches!(
        c.start_plan(wrong, 0, 1),
        Err(CoordinatorError::StalePlan(_))
    ));
}
