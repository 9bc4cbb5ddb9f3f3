//! Tests of the cluster coordinator's state machine (membership, placement, persistence).

use super::*;

/// A NodeControl that accepts everything.
struct Accept;

impl NodeControl for Accept {
    fn apply_catalog<'a>(
        &'a self,
        _: &'a str,
        _: &'a Catalog,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    fn apply_map<'a>(&'a self, _: &'a str, _: &'a ClusterMap) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    fn checkpoint<'a>(
        &'a self,
        _: &'a str,
        _: u64,
    ) -> BoxFuture<'a, Result<CheckpointInfo, String>> {
        Box::pin(async { Err("not in this test".to_string()) })
    }
    fn migrate_out<'a>(
        &'a self,
        _: &'a str,
        request: &'a MigrateOut,
        progress: &'a (dyn Fn(MoveProgress) + Send + Sync),
        _: &'a AtomicBool,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            progress(MoveProgress {
                phase: "handed_off".into(),
                rows: u64::from(request.slot_end - request.slot_start),
                ..Default::default()
            });
            Ok(())
        })
    }
    fn import_complete<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async { Ok(true) })
    }
    fn abort_migration<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<(), String>> {
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
