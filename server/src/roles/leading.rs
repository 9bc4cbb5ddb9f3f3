//! A leading coordinator's background loops: silent nodes are marked down, every new map
//! is pushed to the nodes, a plan an earlier leader left running goes on, and (when asked
//! for) topology plans start on their own.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::serve;
use strata_cluster::cluster::ClusterCoordinator;
use strata_cluster::coordinator::{AutoDecision, AutoRebalance};

/// Automatic topology rebalancing: the policy and how long to wait between looks.
#[derive(Debug, Clone)]
pub struct AutoRebalanceLoop {
    /// When a plan is worth starting.
    pub policy: AutoRebalance,
    /// Time between looks (also the least time between two plans it starts).
    pub cool_down: Duration,
}

/// Starts the loops of `coordinator`, which now leads; they end when `stop` turns true.
pub fn start(
    coordinator: &Arc<ClusterCoordinator>,
    heartbeat_timeout: Duration,
    auto_rebalance: Option<AutoRebalanceLoop>,
    stop: &watch::Receiver<bool>,
) {
    tokio::spawn(sweep_loop(
        coordinator.clone(),
        heartbeat_timeout,
        stop.clone(),
    ));
    tokio::spawn(push_maps(coordinator.clone(), stop.clone()));
    if let Some(auto) = auto_rebalance {
        tokio::spawn(auto_rebalance_loop(coordinator.clone(), auto, stop.clone()));
    }
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

/// Looks every cool-down for a topology plan worth starting (the first look after one
/// cool-down, so the nodes' traffic windows fill first).
async fn auto_rebalance_loop(
    coordinator: Arc<ClusterCoordinator>,
    auto: AutoRebalanceLoop,
    stop: watch::Receiver<bool>,
) {
    let period = auto.cool_down.max(Duration::from_secs(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let stopped = serve::stopped(&stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = ticker.tick() => {
                match coordinator.auto_rebalance_step(&auto.policy) {
                    Ok(AutoDecision::Started(id, gain)) => tracing::info!(
                        plan = %id, cost_cut = gain, "automatic topology rebalance started"
                    ),
                    Ok(AutoDecision::BelowThreshold(gain)) => tracing::debug!(
                        cost_cut = gain, "automatic topology rebalance: below the threshold"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "automatic topology rebalance: no plan"),
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
