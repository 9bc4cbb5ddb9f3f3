//! Checkpoints a process writes on its own, each skipped when nothing changed since the
//! newest one: on exit (SIGTERM or SIGINT, once requests in flight drained) and every
//! `--checkpoint-interval` (the cluster checkpoint of `checkpoint create`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{serve, RoleError};
use crate::shard_node::ShardNode;
use strata_cluster::cluster::ClusterCoordinator;

/// Writes the node's own checkpoint before a shard server exits, unless nothing changed
/// since its newest one; logs what was saved.
pub async fn save_node_on_exit(node: &Arc<ShardNode>) -> Result<(), RoleError> {
    match node.checkpoint_if_changed().await? {
        Some(info) => tracing::info!(
            id = %info.id, epoch = info.epoch, tables = info.tables, dense = info.dense,
            rows = info.rows, bytes = info.bytes, "checkpoint written on exit"
        ),
        None => log_unchanged(node),
    }
    Ok(())
}

/// Before `strata-server dev` exits: the cluster checkpoint of `checkpoint create` (listed
/// and restorable like any), or the node's own while that is refused (a plan runs), unless
/// nothing changed since the newest checkpoint; logs what was saved.
pub async fn save_dev_on_exit(
    coordinator: &ClusterCoordinator,
    node: &Arc<ShardNode>,
) -> Result<(), RoleError> {
    if !node.has_unsaved_changes() {
        log_unchanged(node);
        return Ok(());
    }
    match coordinator.checkpoint().await {
        Ok(c) => {
            tracing::info!(
                id = %c.id, epoch = c.epoch, tables = c.tables, rows = c.rows, bytes = c.bytes,
                "checkpoint written on exit"
            );
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "no cluster checkpoint on exit; writing the node's own");
            save_node_on_exit(node).await
        }
    }
}

/// Logs that the exit wrote no checkpoint as nothing changed.
fn log_unchanged(node: &ShardNode) {
    match node.last_checkpoint() {
        Some(info) => tracing::info!(
            id = %info.id, rows = info.rows,
            "nothing changed since the newest checkpoint: none written on exit"
        ),
        None => tracing::info!("no table or row to save: no checkpoint written on exit"),
    }
}

/// Every `interval`, has `coordinator` checkpoint the cluster when a node holding shards
/// reported changes since its newest checkpoint; ends when `stop` turns true.
pub fn start_periodic(
    coordinator: &Arc<ClusterCoordinator>,
    interval: Duration,
    stop: &watch::Receiver<bool>,
) {
    let coordinator = coordinator.clone();
    let stop = stop.clone();
    tokio::spawn(async move {
        let period = interval.max(Duration::from_millis(100));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopped = serve::stopped(&stop);
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                _ = ticker.tick() => {}
            }
            match coordinator.checkpoint_if_changed().await {
                Ok(Some(c)) => tracing::info!(
                    id = %c.id, epoch = c.epoch, tables = c.tables, rows = c.rows,
                    bytes = c.bytes, "periodic checkpoint written"
                ),
                Ok(None) => tracing::debug!("periodic checkpoint: nothing changed"),
                Err(e) => {
                    tracing::warn!(error = %e, "periodic checkpoint not written; trying again next interval")
                }
            }
        }
    });
}
