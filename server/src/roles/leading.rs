//! A leading coordinator's background loops: silent nodes are marked down, every new map
//! is pushed to the nodes, and a plan an earlier leader left running goes on.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::serve;
use strata_cluster::cluster::ClusterCoordinator;

/// Starts the loops of `coordinator`, which now leads; they end when `stop` turns true.
pub fn start(
    coordinator: &Arc<ClusterCoordinator>,
    heartbeat_timeout: Duration,
    stop: &watch::Receiver<bool>,
) {
    tokio::spawn(sweep_loop(
        coordinator.clone(),
        heartbeat_timeout,
        stop.clone(),
    ));
    tokio::spawn(push_maps(coordinator.clone(), stop.clone()));
    // A plan an earlier leader left running: roll its moves in flight back, then go on.
    coordinator.resume_plan();
}

/// Marks silent nodes down, checking several times per timeout.
async fn sweep_loop(
    coordinator: Arc<ClusterCoordinator>,
    timeout: Duration,
    stop: watch::Receiver<bool>,
) {
    let period = (timeout / 4).max(Duration::from_millis(50));
    let mut ticker = tokio::time::interval(period);
    let stopped = serve::stopped(&stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = ticker.tick() => {
                if let Err(e) = coordinator.sweep() {
                    tracing::error!(error = %e, "cannot record a node going down");
                }
            }
        }
    }
}

/// Sends every new map to the up nodes, so they refuse slots they no longer own at once.
async fn push_maps(coordinator: Arc<ClusterCoordinator>, stop: watch::Receiver<bool>) {
    let mut maps = coordinator.watch_map();
    let stopped = serve::stopped(&stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            changed = maps.changed() => {
                if changed.is_err() {
                    return;
                }
                maps.borrow_and_update();
                coordinator.push_map().await;
            }
        }
    }
}
