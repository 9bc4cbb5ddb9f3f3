//! Membership: nodes register and send heartbeats; silent nodes are swept down. Shards are
//! placed on registration while the cluster holds no rows.

use std::collections::BTreeMap;
use std::time::Instant;

use super::ClusterCoordinator;
use crate::cluster_map::{ClusterMap, NodeEntry};
use crate::placement::{spread_across, Candidate};
use crate::record::{catalog_of, known_attempts, shards_of, Catalog, ClusterRecord, NodeRecord};
use crate::report::{
    HeartbeatReport, NodeCheckpoint, ProcessIdentity, RangeLoad, TableUsage, TrafficSample,
};
use crate::CoordinatorError;

/// What the coordinator knows of a node from its heartbeats (not persisted).
#[derive(Debug, Clone)]
pub struct NodeLive {
    /// Whether it answered within the heartbeat timeout.
    pub up: bool,
    /// When it was last heard from.
    pub last_seen: Instant,
    /// Rows over its tables.
    pub rows: u64,
    /// Bytes over its tables.
    pub bytes: u64,
    /// Per-table usage.
    pub tables: Vec<TableUsage>,
    /// Map epoch it has applied.
    pub applied_epoch: u64,
    /// Catalog version it has applied.
    pub catalog_version: u64,
    /// Its newest good checkpoint.
    pub last_checkpoint: Option<NodeCheckpoint>,
    /// Rows and bytes per slot range it serves.
    pub ranges: Vec<RangeLoad>,
    /// Its data-path traffic per table, slot range and client location.
    pub traffic: Vec<TrafficSample>,
    /// Rows pulled per second.
    pub pull_rows_per_s: f64,
    /// Rows pushed per second.
    pub push_rows_per_s: f64,
    /// Whether it holds changes its newest checkpoint lacks (true until it says otherwise).
    pub unsaved_changes: bool,
    /// What runs on it, as it last reported (`None`: not reported).
    pub identity: Option<ProcessIdentity>,
}

impl NodeLive {
    /// A node heard from at `now`, with nothing reported yet.
    pub(crate) fn fresh(now: Instant) -> Self {
        Self {
            up: true,
            last_seen: now,
            rows: 0,
            bytes: 0,
            tables: Vec::new(),
            applied_epoch: 0,
            catalog_version: 0,
            last_checkpoint: None,
            ranges: Vec::new(),
            traffic: Vec::new(),
            pull_rows_per_s: 0.0,
            push_rows_per_s: 0.0,
            unsaved_changes: true,
            identity: None,
        }
    }
}

/// A node's registration.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// Id it had before (empty: a new node).
    pub node_id: String,
    /// Address clients reach it at.
    pub address: String,
    /// Topology labels.
    pub labels: BTreeMap<String, String>,
    /// Host memory budget in bytes.
    pub memory_budget: u64,
    /// Incarnation id of its data dir (empty: it sent none).
    pub incarnation: String,
    /// Take this registration even when the node comes back without the data of its
    /// shards (they are then served with fresh rows).
    pub accept_data_loss: bool,
    /// What runs on the node (`None`: it sent none).
    pub identity: Option<ProcessIdentity>,
}

/// The answer to a heartbeat: what the node lacks.
#[derive(Debug, Clone)]
pub struct HeartbeatReply {
    /// Current epoch.
    pub epoch: u64,
    /// The map, when newer than the node's.
    pub map: Option<ClusterMap>,
    /// The catalog, when newer than the node's.
    pub catalog: Option<Catalog>,
    /// Migrations the node holds that no plan knows: to roll back.
    pub abort: Vec<String>,
}

impl ClusterCoordinator {
    /// Registers (or re-registers) a node; places shards while the cluster holds no rows.
    pub fn register(
        &self,
        reg: Registration,
    ) -> Result<(String, ClusterMap, Catalog), CoordinatorError> {
        check_registration(&reg)?;
        let mut guard = self.state.lock();
        let (record, live) = &mut *guard;
        let mut next = record.clone();
        let id = if reg.node_id.is_empty() {
            next.next_node += 1;
            format!("node-{}", next.next_node)
        } else {
            reg.node_id.clone()
        };
        let known = next.nodes.iter().find(|n| n.id == id);
        let same_data = known.is_none_or(|n| !n.held_rows || n.incarnation == reg.incarnation);
        let held_rows = known.is_some_and(|n| n.held_rows) && same_data;
        if let Some(n) = known.filter(|_| !same_data) {
            refuse_foreign_data(record, n, &reg)?;
        }
        let node = NodeRecord {
            id: id.clone(),
            address: reg.address,
            labels: reg.labels,
            memory_budget: reg.memory_budget,
            draining: false,
            incarnation: reg.incarnation,
            held_rows,
        };
        match next.nodes.iter_mut().find(|n| n.id == id) {
            Some(n) => {
                let draining = n.draining;
                *n = NodeRecord { draining, ..node };
            }
            None => next.nodes.push(node),
        }
        let was_up = live.get(&id).is_some_and(|l| l.up);
        let mut fresh = NodeLive::fresh(Instant::now());
        if let Some(old) = live.get(&id) {
            fresh.last_checkpoint = old.last_checkpoint.clone();
        }
        fresh.identity = reg.identity;
        live.insert(id.clone(), fresh);
        // Shards are re-spread over the nodes only while no table exists: once one does,
        // rows may exist and moving them needs a plan (rebalance), never a re-placement.
        // Shards no node holds have no rows anywhere: they are placed whenever a node comes.
        let respread = !next.placement_frozen && next.tables.is_empty();
        if respread || next.shards.iter().any(|s| s.primary.is_empty()) {
            let up: Vec<Candidate> = next
                .nodes
                .iter()
                .filter(|n| !n.draining && live.get(&n.id).is_some_and(|l| l.up))
                .map(|n| Candidate {
                    id: n.id.clone(),
                    memory_budget: n.memory_budget,
                })
                .collect();
            // Spread across zones and racks in turn: with no traffic known yet, no rack
            // holds all of a table.
            let locations = next
                .nodes
                .iter()
                .map(|n| (n.id.clone(), self.config.topology.locate(&n.labels)))
                .collect();
            let placed = spread_across(
                next.shards.len() as u32,
                &up,
                &locations,
                &self.config.topology,
            );
            for (shard, primary) in next.shards.iter_mut().zip(placed) {
                if respread || shard.primary.is_empty() {
                    shard.primary = primary;
                }
            }
        }
        if next != *record || !was_up {
            next.epoch += 1;
            self.store.save_record(&next)?;
            *record = next;
            tracing::info!(node = %id, epoch = record.epoch, "node registered");
        }
        let map = map_of(record, live);
        let catalog = catalog_of(record);
        self.map_tx.send_replace(map.clone());
        Ok((id, map, catalog))
    }

    /// Records a heartbeat; answers with the map and catalog when the node is behind.
    pub fn heartbeat(&self, hb: HeartbeatReport) -> Result<HeartbeatReply, CoordinatorError> {
        let mut guard = self.state.lock();
        let (record, live) = &mut *guard;
        let Some(node_index) = record.nodes.iter().position(|n| n.id == hb.node_id) else {
            return Err(CoordinatorError::UnknownNode { id: hb.node_id });
        };
        let entry = live
            .entry(hb.node_id.clone())
            .or_insert_with(|| NodeLive::fresh(Instant::now()));
        let came_back = !entry.up;
        entry.up = true;
        entry.last_seen = Instant::now();
        entry.rows = hb.tables.iter().fold(0u64, |a, t| a.saturating_add(t.rows));
        entry.bytes = hb
            .tables
            .iter()
            .fold(0u64, |a, t| a.saturating_add(t.bytes));
        entry.tables = hb.tables;
        entry.ranges = hb.ranges;
        entry.traffic = hb.traffic;
        entry.pull_rows_per_s = hb.pull_rows_per_s;
        entry.push_rows_per_s = hb.push_rows_per_s;
        entry.unsaved_changes = hb.unsaved_changes;
        entry.applied_epoch = hb.epoch;
        entry.catalog_version = hb.catalog_version;
        if hb.last_checkpoint.is_some() {
            entry.last_checkpoint = hb.last_checkpoint;
        }
        if hb.identity.is_some() {
            entry.identity = hb.identity;
        }
        let moved = !hb.address.is_empty() && record.nodes[node_index].address != hb.address;
        let freeze = !record.placement_frozen && entry.rows > 0;
        let first_rows = !record.nodes[node_index].held_rows && entry.rows > 0;
        if (freeze || first_rows) && !(came_back || moved) {
            let mut next = record.clone();
            next.placement_frozen |= freeze;
            next.nodes[node_index].held_rows |= first_rows;
            self.store.save_record(&next)?;
            *record = next;
        }
        if came_back || moved {
            let mut next = record.clone();
            next.placement_frozen |= freeze;
            next.nodes[node_index].held_rows |= first_rows;
            if moved {
                next.nodes[node_index].address = hb.address;
            }
            next.epoch += 1;
            self.store.save_record(&next)?;
            *record = next;
            self.map_tx.send_replace(map_of(record, live));
            tracing::info!(node = %hb.node_id, epoch = record.epoch, "node is up");
        }
        let known = known_attempts(record);
        Ok(HeartbeatReply {
            epoch: record.epoch,
            map: (hb.epoch != record.epoch).then(|| map_of(record, live)),
            catalog: (hb.catalog_version != record.catalog_version).then(|| catalog_of(record)),
            abort: hb
                .migrations
                .into_iter()
                .filter(|id| !known.contains(id))
                .collect(),
        })
    }

    /// Marks nodes silent for longer than the timeout down; returns whether any changed.
    pub fn sweep(&self) -> Result<bool, CoordinatorError> {
        let mut guard = self.state.lock();
        let (record, live) = &mut *guard;
        let timeout = self.config.heartbeat_timeout;
        let mut changed = false;
        for (id, l) in live.iter_mut() {
            if l.up && l.last_seen.elapsed() > timeout {
                l.up = false;
                changed = true;
                tracing::warn!(node = %id, ?timeout, "node missed heartbeats: marked down");
            }
        }
        if changed {
            let mut next = record.clone();
            next.epoch += 1;
            self.store.save_record(&next)?;
            *record = next;
            self.map_tx.send_replace(map_of(record, live));
        }
        Ok(changed)
    }
}

/// Refuses node `known` coming back with another data dir (`reg`'s incarnation) while it
/// is primary of shards, unless it accepts the loss of their rows.
fn refuse_foreign_data(
    record: &ClusterRecord,
    known: &NodeRecord,
    reg: &Registration,
) -> Result<(), CoordinatorError> {
    let shards = shards_of(record, &known.id);
    if shards.is_empty() || known.incarnation.is_empty() {
        return Ok(());
    }
    if reg.accept_data_loss {
        tracing::error!(
            node = %known.id, ?shards, known = %known.incarnation, incarnation = %reg.incarnation,
            "node came back without the data dir that held its shards' rows; registering it as --accept-data-loss asks: those shards start with fresh rows"
        );
        return Ok(());
    }
    Err(CoordinatorError::ForeignDataDir {
        node: known.id.clone(),
        shards,
        known: known.incarnation.clone(),
        incarnation: reg.incarnation.clone(),
    })
}

/// The map of `record` with each node up or down as `live` says.
pub(crate) fn map_of(record: &ClusterRecord, live: &BTreeMap<String, NodeLive>) -> ClusterMap {
    ClusterMap {
        epoch: record.epoch,
        num_slots: record.num_slots,
        nodes: record
            .nodes
            .iter()
            .map(|n| NodeEntry {
                id: n.id.clone(),
                address: n.address.clone(),
                labels: n.labels.clone(),
                up: live.get(&n.id).is_some_and(|l| l.up),
            })
            .collect(),
        shards: record.shards.clone(),
    }
}

/// Longest node id, address, label key or label value, in bytes.
pub const MAX_MEMBER_FIELD_BYTES: usize = 256;
/// Most topology labels a node may carry.
pub const MAX_LABELS: usize = 32;

/// Refuses a registration whose fields are empty where they must not be, or over the
/// limits (a record of such fields would be kept and sent to every client).
fn check_registration(reg: &Registration) -> Result<(), CoordinatorError> {
    let bad = |reason: String| Err(CoordinatorError::BadRegistration(reason));
    if reg.address.trim().is_empty() {
        return bad("the node's address must not be empty".into());
    }
    let fields = [("node id", &reg.node_id), ("address", &reg.address)];
    let labels = reg
        .labels
        .iter()
        .flat_map(|(k, v)| [("label key", k), ("label value", v)]);
    for (what, value) in fields.into_iter().chain(labels) {
        if value.len() > MAX_MEMBER_FIELD_BYTES {
            return bad(format!(
                "{what} of {} bytes is longer than {MAX_MEMBER_FIELD_BYTES} bytes",
                value.len()
            ));
        }
    }
    if reg.labels.len() > MAX_LABELS {
        return bad(format!(
            "{} labels are more than {MAX_LABELS}",
            reg.labels.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testkit::{open, reg};
    use super::*;

    fn primaries(c: &ClusterCoordinator) -> Vec<String> {
        c.cluster_map()
            .shards
            .iter()
            .map(|s| s.primary.clone())
            .collect()
    }

    #[test]
    fn registrations_over_the_limits_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = open(dir.path(), Duration::from_secs(60));
        let epoch = c.cluster_map().epoch;
        let long = "x".repeat(MAX_MEMBER_FIELD_BYTES + 1);
        let mut labelled = reg("", "h:1");
        labelled.labels.insert("rack".into(), long.clone());
        let mut many = reg("", "h:1");
        for i in 0..=MAX_LABELS {
            many.labels.insert(format!("k{i}"), "v".into());
        }
        for bad in [
            reg(&long, "h:1"),
            reg("", &long),
            reg("", " "),
            labelled,
            many,
        ] {
            assert!(matches!(
                c.register(bad),
                Err(CoordinatorError::BadRegistration(_))
            ));
        }
        assert_eq!(c.cluster_map().epoch, epoch);
        assert!(c.cluster_map().nodes.is_empty());
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
    fn a_node_back_with_another_data_dir_is_refused_unless_it_accepts_the_loss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = open(dir.path(), Duration::from_secs(60));
        let with = |incarnation: &str, accept_data_loss: bool| Registration {
            incarnation: incarnation.into(),
            accept_data_loss,
            ..reg("n", "h:1")
        };
        c.register(with("aaaa", false)).expect("first");
        // Before it reports rows, another data dir is nothing lost.
        c.register(with("bbbb", false)).expect("no rows yet");
        let rows = HeartbeatReport {
            node_id: "n".into(),
            tables: vec![TableUsage {
                name: "e".into(),
                rows: 3,
                ..Default::default()
            }],
            ..Default::default()
        };
        c.heartbeat(rows.clone()).expect("heartbeat");
        c.register(with("bbbb", false))
            .expect("same data dir again");
        drop(c);

        // The record keeps the incarnation across a coordinator restart.
        let c = open(dir.path(), Duration::from_secs(60));
        for foreign in ["cccc", ""] {
            let err = c.register(with(foreign, false)).expect_err("refused");
            let text = err.to_string();
            assert!(
                matches!(err, CoordinatorError::ForeignDataDir { .. }),
                "{text}"
            );
            assert!(
                text.contains("node n") && text.contains("[0, 1, 2"),
                "{text}"
            );
        }
        c.register(with("cccc", true))
            .expect("accepted with the loss");
        // Now the new data dir is the node's: it registers again without the flag.
        c.register(with("cccc", false))
            .expect("its own data dir now");
        c.heartbeat(rows).expect("heartbeat");
        assert!(c.register(with("dddd", false)).is_err());
    }

    #[test]
    fn the_identity_registered_is_replaced_by_the_next_reported_and_kept_without_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = open(dir.path(), Duration::from_secs(60));
        let identity = |commit: &str| ProcessIdentity {
            version: "0.1.0".into(),
            commit: commit.into(),
            config_hash: "0123456789ab".into(),
            ..Default::default()
        };
        let registered = Registration {
            identity: Some(identity("aaaa")),
            ..reg("n", "h:1")
        };
        c.register(registered).expect("register");
        let seen = |c: &ClusterCoordinator| c.snapshot().1["n"].identity.clone();
        assert_eq!(seen(&c), Some(identity("aaaa")));
        let beat = |identity| HeartbeatReport {
            node_id: "n".into(),
            identity,
            ..Default::default()
        };
        c.heartbeat(beat(None)).expect("heartbeat");
        assert_eq!(seen(&c), Some(identity("aaaa")), "kept without a report");
        c.heartbeat(beat(Some(identity("bbbb"))))
            .expect("heartbeat");
        assert_eq!(seen(&c), Some(identity("bbbb")));
        drop(c);
        // Not kept across a coordinator restart: the node's next heartbeat brings it.
        let c = open(dir.path(), Duration::from_secs(60));
        assert_eq!(seen(&c), None);
        c.heartbeat(beat(Some(identity("cccc"))))
            .expect("heartbeat");
        assert_eq!(seen(&c), Some(identity("cccc")));
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
}
