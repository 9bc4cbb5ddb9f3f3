//! Checkpoints a process writes on its own, each skipped when nothing changed since the
//! newest one: on exit (SIGTERM or SIGINT, once requests in flight drained, or after the
//! drain timeout) and every `--checkpoint-interval` (the cluster checkpoint of
//! `checkpoint create`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::{serve, RoleError};
use crate::shard_node::ShardNode;
use strata_cluster::cluster::ClusterCoordinator;

/// How serving ended after the shutdown signal.
#[derive(Debug)]
pub enum Drained<T> {
    /// Every connection closed: the server's own result.
    Finished(T),
    /// Connections were still open when the drain timeout passed.
    TimedOut,
}

/// Wraps a shutdown future: the receiver resolves once it did.
pub fn watch_shutdown(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (
    impl Future<Output = ()> + Send + 'static,
    oneshot::Receiver<()>,
) {
    let (fired, signalled) = oneshot::channel();
    let wrapped = async move {
        shutdown.await;
        let _ = fired.send(());
    };
    (wrapped, signalled)
}

/// Awaits `serving` until it ends, or until `timeout` after `signalled` resolved: a client
/// that neither finishes nor closes its connection must not keep the exit checkpoint from
/// being written before the process is killed. On a timeout `serving` is dropped (no
/// connection is accepted any more, nor a request started after the signal); the caller
/// stops the node before it checkpoints.
pub async fn drain_bounded<T>(
    serving: impl Future<Output = T>,
    signalled: oneshot::Receiver<()>,
    timeout: Duration,
) -> Drained<T> {
    let deadline = async {
        if signalled.await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(timeout).await;
    };
    tokio::select! {
        r = serving => Drained::Finished(r),
        () = deadline => {
            tracing::warn!(
                ?timeout,
                "connections still open after the drain timeout: the node stops serving and exits"
            );
            Drained::TimedOut
        }
    }
}

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
