//! Cluster checkpoints: every node that holds shards checkpointed at one epoch, listed with
//! each node's verification, and restored on every node together with the layout and
//! catalog they were taken with.

use std::collections::BTreeMap;

use futures::future::join_all;

use super::catalog::refuse_while_planning;
use super::membership::map_of;
use super::{bounded, unix_ms, ClusterCoordinator};
use crate::node_control::NodeErrorKind;
use crate::record::{shards_of, ClusterCheckpoint};
use crate::report::NodeCheckpoint;
use crate::CoordinatorError;

/// Prefix of cluster checkpoint ids.
const ID_PREFIX: &str = "cluster-";

/// What the nodes say of a cluster checkpoint's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterCheckpointState {
    /// Every node holds its part and it verified.
    Ok,
    /// A node's part failed verification.
    Corrupt {
        /// The node.
        node: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A node no longer holds its part (pruned, or its data dir was replaced).
    Missing {
        /// The node.
        node: String,
    },
    /// A node could not be asked.
    Unknown {
        /// The node.
        node: String,
        /// Why it could not be asked.
        reason: String,
    },
}

impl std::fmt::Display for ClusterCheckpointState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ok => write!(f, "ok"),
            Self::Corrupt { node, reason } => write!(f, "corrupt: on {node}: {reason}"),
            Self::Missing { node } => write!(f, "missing: {node} no longer holds its part"),
            Self::Unknown { node, reason } => write!(f, "unknown: {node}: {reason}"),
        }
    }
}

impl ClusterCoordinator {
    /// Checkpoints every node that holds shards at one epoch; refuses while one is down.
    pub async fn checkpoint(&self) -> Result<ClusterCheckpoint, CoordinatorError> {
        let _serial = self.ops.lock().await;
        let (epoch, members) = {
            let guard = self.state.lock();
            let (record, live) = &*guard;
            refuse_while_planning(record)?;
            let mut members = Vec::new();
            for n in &record.nodes {
                let shards = shards_of(record, &n.id);
                if shards.is_empty() {
                    continue;
                }
                if !live.get(&n.id).is_some_and(|l| l.up) {
                    return Err(CoordinatorError::NodeDown {
                        node: n.id.clone(),
                        address: n.address.clone(),
                        shards,
                    });
                }
                members.push((n.id.clone(), n.address.clone()));
            }
            (record.epoch, members)
        };
        // Every member snapshots at the coordinator's epoch: hand it the map first, so a
        // node that has not caught up by heartbeat does not refuse.
        let map = self.cluster_map();
        join_all(
            members
                .iter()
                .map(|(_, address)| bounded(self.nodes.apply_map(address, &map))),
        )
        .await;
        let results = join_all(
            members
                .iter()
                .map(|(_, address)| bounded(self.nodes.checkpoint(address, epoch))),
        )
        .await;
        let mut nodes = BTreeMap::new();
        let (mut rows, mut bytes) = (0u64, 0u64);
        for ((id, address), r) in members.iter().zip(results) {
            if let Err(e) = &r {
                // A node that moved to a newer map refuses a snapshot at the old epoch:
                // the map changed under the checkpoint, as the check below reports.
                let now = self.state.lock().0.epoch;
                if e.kind == NodeErrorKind::FailedPrecondition && now != epoch {
                    return Err(CoordinatorError::EpochChanged {
                        from: epoch,
                        to: now,
                    });
                }
            }
            let info = r.map_err(|source| CoordinatorError::NodeCall {
                op: "Checkpoint",
                node: id.clone(),
                address: address.clone(),
                source,
            })?;
            rows += info.rows;
            bytes += info.bytes;
            nodes.insert(id.clone(), info.id.clone());
            if let Some(l) = self.state.lock().1.get_mut(id) {
                l.last_checkpoint = Some(info);
                l.unsaved_changes = false;
            }
        }
        let mut guard = self.state.lock();
        if guard.0.epoch != epoch {
            return Err(CoordinatorError::EpochChanged {
                from: epoch,
                to: guard.0.epoch,
            });
        }
        let mut next = guard.0.clone();
        // Ids grow with every checkpoint and the newest is always kept: the next number
        // follows the last one's, whatever was pruned.
        let number = next
            .checkpoints
            .last()
            .and_then(|c| c.id.strip_prefix(ID_PREFIX)?.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let checkpoint = ClusterCheckpoint {
            id: format!("{ID_PREFIX}{number:08}"),
            epoch,
            created_unix_ms: unix_ms(),
            nodes,
            rows,
            bytes,
            tables: next.tables.len() as u32,
            shards: next.shards.clone(),
            table_specs: next.tables.clone(),
            dense_specs: next.dense.clone(),
        };
        next.checkpoints.push(checkpoint.clone());
        let keep = self.config.keep_checkpoints.max(1);
        if next.checkpoints.len() > keep {
            let drop = next.checkpoints.len() - keep;
            next.checkpoints.drain(..drop);
        }
        self.store.save_record(&next)?;
        guard.0 = next;
        Ok(checkpoint)
    }

    /// Checkpoints the cluster as [`ClusterCoordinator::checkpoint`] does, unless no node
    /// holding shards has reported changes since its newest checkpoint (`None`): the
    /// periodic checkpoint (`--checkpoint-interval`).
    pub async fn checkpoint_if_changed(
        &self,
    ) -> Result<Option<ClusterCheckpoint>, CoordinatorError> {
        let changed = {
            let guard = self.state.lock();
            let (record, live) = &*guard;
            record.nodes.iter().any(|n| {
                !shards_of(record, &n.id).is_empty()
                    && live.get(&n.id).is_none_or(|l| l.unsaved_changes)
            })
        };
        if !changed {
            return Ok(None);
        }
        self.checkpoint().await.map(Some)
    }

    /// The cluster checkpoints, newest first, each with what its nodes say of their parts
    /// (every node is asked once; a node that cannot be asked leaves its checkpoints
    /// `Unknown`).
    pub async fn list_checkpoints(
        &self,
    ) -> Result<Vec<(ClusterCheckpoint, ClusterCheckpointState)>, CoordinatorError> {
        let record = self.state.lock().0.clone();
        let involved: Vec<(String, String)> = record
            .nodes
            .iter()
            .filter(|n| {
                record
                    .checkpoints
                    .iter()
                    .any(|c| c.nodes.contains_key(&n.id))
            })
            .map(|n| (n.id.clone(), n.address.clone()))
            .collect();
        let answers = join_all(
            involved
                .iter()
                .map(|(_, address)| bounded(self.nodes.checkpoints(address))),
        )
        .await;
        let held: BTreeMap<&str, Result<Vec<NodeCheckpoint>, String>> = involved
            .iter()
            .zip(answers)
            .map(|((id, _), r)| (id.as_str(), r.map_err(|e| e.to_string())))
            .collect();
        Ok(record
            .checkpoints
            .iter()
            .rev()
            .map(|c| (c.clone(), state_of(c, &held)))
            .collect())
    }

    /// Puts every node back to cluster checkpoint `id`: the layout and catalog it was taken
    /// with, and each node's rows and optimizer state. Every node's part is verified first;
    /// when one is down, lacks its part or fails verification, the error names it and
    /// nothing changes.
    pub async fn restore(&self, id: &str) -> Result<ClusterCheckpoint, CoordinatorError> {
        let _serial = self.ops.lock().await;
        let (checkpoint, members) = {
            let guard = self.state.lock();
            let (record, live) = &*guard;
            refuse_while_planning(record)?;
            let checkpoint = record
                .checkpoints
                .iter()
                .find(|c| c.id == id)
                .cloned()
                .ok_or_else(|| CoordinatorError::NoSuchCheckpoint { id: id.into() })?;
            if checkpoint.shards.is_empty() {
                return Err(CoordinatorError::NotRestorable {
                    id: id.into(),
                    reason: "it was recorded without the shard layout it was taken with".into(),
                });
            }
            let mut members = Vec::new();
            for (node, part) in &checkpoint.nodes {
                let Some(n) = record.nodes.iter().find(|n| &n.id == node) else {
                    return Err(CoordinatorError::NotRestorable {
                        id: id.into(),
                        reason: format!("its node {node} is no longer registered"),
                    });
                };
                if !live.get(node).is_some_and(|l| l.up) {
                    return Err(CoordinatorError::NodeDown {
                        node: node.clone(),
                        address: n.address.clone(),
                        shards: shards_of(record, node),
                    });
                }
                members.push((node.clone(), n.address.clone(), part.clone()));
            }
            (checkpoint, members)
        };
        self.verify_parts(&checkpoint, &members).await?;
        let restored = join_all(
            members
                .iter()
                .map(|(_, address, part)| bounded(self.nodes.restore(address, part))),
        )
        .await;
        for ((node, address, _), r) in members.iter().zip(restored) {
            // A failure now leaves nodes on different data: the record keeps the current
            // layout and the restore can be run again.
            r.map_err(|source| CoordinatorError::NodeCall {
                op: "Restore",
                node: node.clone(),
                address: address.clone(),
                source,
            })?;
        }
        {
            let mut guard = self.state.lock();
            let (record, live) = &mut *guard;
            let mut next = record.clone();
            next.shards = checkpoint.shards.clone();
            next.tables = checkpoint.table_specs.clone();
            next.dense = checkpoint.dense_specs.clone();
            next.catalog_version += 1;
            next.epoch += 1;
            next.placement_frozen = true;
            self.store.save_record(&next)?;
            *record = next;
            self.map_tx.send_replace(map_of(record, live));
            tracing::info!(checkpoint = %id, epoch = record.epoch, "cluster restored");
        }
        if let Some((node, _, error)) = self.push_catalog().await {
            tracing::error!(%node, %error, "a node refused the restored catalog");
        }
        self.push_map().await;
        Ok(checkpoint)
    }

    /// Checks that every member holds its part of `checkpoint` and that it verifies.
    async fn verify_parts(
        &self,
        checkpoint: &ClusterCheckpoint,
        members: &[(String, String, String)],
    ) -> Result<(), CoordinatorError> {
        let verified = join_all(
            members
                .iter()
                .map(|(_, address, part)| bounded(self.nodes.verify_checkpoint(address, part))),
        )
        .await;
        for ((node, address, part), r) in members.iter().zip(verified) {
            match r {
                Ok(NodeCheckpoint { corrupt: None, .. }) => {}
                Ok(NodeCheckpoint {
                    corrupt: Some(reason),
                    ..
                }) => {
                    return Err(CoordinatorError::CheckpointPartCorrupt {
                        id: checkpoint.id.clone(),
                        node: node.clone(),
                        part: part.clone(),
                        reason,
                    })
                }
                Err(e) if e.kind == NodeErrorKind::NotFound => {
                    return Err(CoordinatorError::CheckpointPartMissing {
                        id: checkpoint.id.clone(),
                        node: node.clone(),
                        address: address.clone(),
                        part: part.clone(),
                    })
                }
                Err(e) if e.kind == NodeErrorKind::DataLoss => {
                    return Err(CoordinatorError::CheckpointPartCorrupt {
                        id: checkpoint.id.clone(),
                        node: node.clone(),
                        part: part.clone(),
                        reason: e.message,
                    })
                }
                Err(source) => {
                    return Err(CoordinatorError::NodeCall {
                        op: "VerifyCheckpoint",
                        node: node.clone(),
                        address: address.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

/// What the nodes' answers say of checkpoint `c`.
fn state_of(
    c: &ClusterCheckpoint,
    held: &BTreeMap<&str, Result<Vec<NodeCheckpoint>, String>>,
) -> ClusterCheckpointState {
    for (node, part) in &c.nodes {
        let infos = match held.get(node.as_str()) {
            Some(Ok(infos)) => infos,
            Some(Err(reason)) => {
                return ClusterCheckpointState::Unknown {
                    node: node.clone(),
                    reason: reason.clone(),
                }
            }
            None => {
                return ClusterCheckpointState::Unknown {
                    node: node.clone(),
                    reason: "no longer registered".into(),
                }
            }
        };
        match infos.iter().find(|i| &i.id == part).map(|i| &i.corrupt) {
            Some(None) => {}
            Some(Some(reason)) => {
                return ClusterCheckpointState::Corrupt {
                    node: node.clone(),
                    reason: reason.clone(),
                }
            }
            None => return ClusterCheckpointState::Missing { node: node.clone() },
        }
    }
    ClusterCheckpointState::Ok
}
