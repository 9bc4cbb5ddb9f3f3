//! The plan runner: how the coordinator starts, runs, cancels and resumes the plans that
//! move data (resize, rebalance, drain).
//!
//! Starting a plan cuts the map at every boundary of the current and the target layout
//! (no data moves: each piece keeps its node), then runs the plan's moves, a few at a time.
//! Each move is driven by its source ([`NodeControl::migrate_out`]); once the source has
//! handed the range off, the move is committed by giving its pieces to the destination in
//! a new epoch, saved with the move's state in one record write. A move that fails or is
//! cancelled before its commit is rolled back on both nodes. When every move is done the
//! pieces are merged into the target shards. The plan and each move's state are in the
//! cluster record, so a new coordinator (restart, new leader) rolls back the moves that
//! were in flight and resumes the plan.
//!
//! [`NodeControl::migrate_out`]: crate::node_control::NodeControl::migrate_out

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::task::JoinSet;

use super::membership::map_of;
use super::plan_layout::{check_plan_fits, merge_within, placement_of, shards_from};
use super::{unix_ms, ClusterCoordinator, NODE_CALL_TIMEOUT};
use crate::node_control::{MigrateOut, MoveProgress};
use crate::plan::{refine, Placement, Plan, PlanKind};
use crate::plan_record::{attempt_id, MoveRecord, MoveState, PlanRecord, PlanState};
use crate::record::address_of;
use crate::CoordinatorError;

/// Moves in flight at once when the operator does not say.
pub const DEFAULT_MAX_PARALLEL: u32 = 2;
/// Tries of a roll-back call before giving up on a node.
const ABORT_TRIES: u32 = 5;

/// A move's progress as last reported, with its rate.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveMove {
    /// The source's last report.
    pub progress: MoveProgress,
    /// Bytes per second since the move started.
    pub bytes_per_s: f64,
    /// Seconds left at that rate.
    pub eta_s: f64,
}

/// Live state of the running plan (not stored).
#[derive(Default)]
pub struct PlanRun {
    cancel: AtomicBool,
    active: AtomicBool,
    progress: Mutex<HashMap<String, (MoveProgress, Instant)>>,
}

impl ClusterCoordinator {
    /// Starts `plan` (made against the current layout); returns its id and the new epoch.
    pub fn start_plan(
        self: &Arc<Self>,
        plan: Plan,
        max_bytes_per_s: u64,
        max_parallel: u32,
    ) -> Result<(String, u64), CoordinatorError> {
        let (id, epoch, run) = {
            let mut guard = self.state.lock();
            let (record, live) = &mut *guard;
            if let Some(p) = record
                .plan
                .as_ref()
                .filter(|p| p.state == PlanState::Running)
            {
                return Err(CoordinatorError::PlanRunning { id: p.id.clone() });
            }
            check_plan_fits(record, live, &plan)?;
            let mut next = record.clone();
            next.plans_started += 1;
            next.placement_frozen = true;
            let id = format!("plan-{}", next.plans_started);
            if let PlanKind::Drain { node } = &plan.kind {
                if let Some(n) = next.nodes.iter_mut().find(|n| &n.id == node) {
                    n.draining = true;
                }
            }
            let current: Vec<Placement> = next.shards.iter().map(placement_of).collect();
            next.shards = shards_from(&refine(&current, &plan.target));
            let base = current;
            let moves: Vec<MoveRecord> = plan
                .moves
                .iter()
                .enumerate()
                .map(|(i, mv)| MoveRecord {
                    id: format!("{id}-m{}", i + 1),
                    mv: mv.clone(),
                    state: MoveState::Pending,
                    attempts: 0,
                    error: String::new(),
                })
                .collect();
            let run = !moves.is_empty();
            let mut state = PlanState::Running;
            if !run {
                next.shards = shards_from(&plan.target);
                state = PlanState::Done;
            }
            next.plan = Some(PlanRecord {
                id: id.clone(),
                plan,
                base,
                state,
                moves,
                max_bytes_per_s,
                max_parallel: if max_parallel == 0 {
                    DEFAULT_MAX_PARALLEL
                } else {
                    max_parallel
                },
                error: String::new(),
                started_unix_ms: unix_ms(),
                finished_unix_ms: if run { 0 } else { unix_ms() },
            });
            next.epoch += 1;
            self.store.save_record(&next)?;
            *record = next;
            self.map_tx.send_replace(map_of(record, live));
            tracing::info!(plan = %id, epoch = record.epoch, "plan started");
            (id, record.epoch, run)
        };
        if run {
            self.run.cancel.store(false, Ordering::Release);
            self.spawn_runner(false);
        }
        Ok((id, epoch))
    }

    /// Resumes a plan left running by an earlier coordinator: its moves in flight are
    /// rolled back on their nodes first, then started again.
    pub fn resume_plan(self: &Arc<Self>) {
        if self.plan_running() {
            self.spawn_runner(true);
        }
    }

    /// Asks the running plan to stop: moves not committed yet roll back, pending ones are
    /// dropped. Returns the plan id and the moves in flight and pending.
    pub fn cancel_plan(&self) -> Result<(String, u32, u32), CoordinatorError> {
        let guard = self.state.lock();
        let plan = guard
            .0
            .plan
            .as_ref()
            .filter(|p| p.state == PlanState::Running)
            .ok_or(CoordinatorError::NoPlanRunning)?;
        self.run.cancel.store(true, Ordering::Release);
        let count = |s| plan.moves.iter().filter(|m| m.state == s).count() as u32;
        tracing::info!(plan = %plan.id, "plan cancel requested");
        Ok((
            plan.id.clone(),
            count(MoveState::Running),
            count(MoveState::Pending),
        ))
    }

    /// The running or last plan with the live progress of its moves.
    pub fn plan_status(&self) -> Option<(PlanRecord, HashMap<String, LiveMove>)> {
        let plan = self.state.lock().0.plan.clone()?;
        let live = self
            .run
            .progress
            .lock()
            .iter()
            .map(|(id, (p, started))| {
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                let rate = p.bytes as f64 / secs;
                let left = p.bytes_total.saturating_sub(p.bytes) as f64;
                let eta = if rate > 0.0 { left / rate } else { 0.0 };
                (
                    id.clone(),
                    LiveMove {
                        progress: p.clone(),
                        bytes_per_s: rate,
                        eta_s: eta,
                    },
                )
            })
            .collect();
        Some((plan, live))
    }

    /// The last progress report of each running move, by move id.
    pub(crate) fn move_progress(&self) -> HashMap<String, MoveProgress> {
        self.run
            .progress
            .lock()
            .iter()
            .map(|(id, (p, _))| (id.clone(), p.clone()))
            .collect()
    }

    /// Whether the stored plan is running.
    fn plan_running(&self) -> bool {
        let guard = self.state.lock();
        guard
            .0
            .plan
            .as_ref()
            .is_some_and(|p| p.state == PlanState::Running)
    }

    /// Runs the stored plan in a task of its own, unless one runs it already.
    fn spawn_runner(self: &Arc<Self>, resume: bool) {
        if self.run.active.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut resume = resume;
            loop {
                this.clone().run_plan(resume).await;
                this.run.active.store(false, Ordering::Release);
                // A plan started while this one was ending found the runner busy: run it.
                if !this.plan_running() || this.run.active.swap(true, Ordering::AcqRel) {
                    break;
                }
                resume = false;
            }
        });
    }

    /// Runs the plan's moves, a few at a time, until done, failed or cancelled.
    async fn run_plan(self: Arc<Self>, resume: bool) {
        if resume {
            self.roll_back_in_flight().await;
        }
        let mut tasks = JoinSet::new();
        let mut failure: Option<String> = None;
        loop {
            if failure.is_none() && !self.run.cancel.load(Ordering::Acquire) {
                while let Some(index) = self.next_move(tasks.len()) {
                    tasks.spawn(self.clone().run_move(index));
                }
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let outcome = joined.unwrap_or_else(|e| Err(format!("move task failed: {e}")));
            if let Err(e) = outcome {
                failure.get_or_insert(e);
            }
        }
        let cancelled = self.run.cancel.load(Ordering::Acquire);
        if let Err(e) = self.finish_plan(cancelled, failure) {
            tracing::error!(error = %e, "cannot record the end of the plan");
        }
        self.run.progress.lock().clear();
        self.push_map().await;
    }

    /// Rolls back, on their nodes, the moves a previous coordinator left in flight.
    async fn roll_back_in_flight(&self) {
        let in_flight: Vec<(String, String, String)> = {
            let guard = self.state.lock();
            let Some(plan) = guard.0.plan.as_ref() else {
                return;
            };
            plan.moves
                .iter()
                .filter(|m| m.state == MoveState::Running)
                .map(|m| {
                    (
                        attempt_id(m),
                        address_of(&guard.0, &m.mv.from),
                        address_of(&guard.0, &m.mv.to),
                    )
                })
                .collect()
        };
        for (id, from, to) in &in_flight {
            tracing::info!(%id, "rolling back a move left in flight");
            self.abort_on(from, id).await;
            self.abort_on(to, id).await;
        }
        let result = self.update_plan(|plan| {
            for m in plan.moves.iter_mut() {
                if m.state == MoveState::Running {
                    m.state = MoveState::Pending;
                }
            }
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot record the roll-back");
        }
    }

    /// Marks the next pending move running (when fewer than the limit are) and returns it.
    fn next_move(&self, in_flight: usize) -> Option<usize> {
        let mut guard = self.state.lock();
        let plan = guard.0.plan.as_ref()?;
        if in_flight >= plan.max_parallel.max(1) as usize {
            return None;
        }
        let index = plan
            .moves
            .iter()
            .position(|m| m.state == MoveState::Pending)?;
        let mut next = guard.0.clone();
        if let Some(plan) = next.plan.as_mut() {
            plan.moves[index].state = MoveState::Running;
            plan.moves[index].attempts += 1;
            plan.moves[index].error.clear();
        }
        if let Err(e) = self.store.save_record(&next) {
            tracing::error!(error = %e, "cannot record a move's start");
            return None;
        }
        guard.0 = next;
        Some(index)
    }

    /// Runs move `index`: the source copies and hands off, then the move is committed, or
    /// rolled back on both nodes.
    async fn run_move(self: Arc<Self>, index: usize) -> Result<(), String> {
        let (record, from, to, max_bytes_per_s) = {
            let guard = self.state.lock();
            let Some(plan) = guard.0.plan.as_ref() else {
                return Err("the plan changed under a running move".into());
            };
            let Some(m) = plan.moves.get(index) else {
                return Err("the plan changed under a running move".into());
            };
            (
                m.clone(),
                address_of(&guard.0, &m.mv.from),
                address_of(&guard.0, &m.mv.to),
                plan.max_bytes_per_s,
            )
        };
        let request = MigrateOut {
            id: attempt_id(&record),
            slot_start: record.mv.slot_start,
            slot_end: record.mv.slot_end,
            destination: to.clone(),
            max_bytes_per_s,
        };
        tracing::info!(
            id = %request.id, from = %record.mv.from, to = %record.mv.to,
            slots = ?(request.slot_start, request.slot_end), "move started"
        );
        let started = Instant::now();
        let progress = |p: MoveProgress| {
            self.run
                .progress
                .lock()
                .insert(record.id.clone(), (p, started));
        };
        let result = self
            .nodes
            .migrate_out(&from, &request, &progress, &self.run.cancel)
            .await;
        // A destination that restarted after its answer lost the rows: never commit to it.
        let result = match result {
            Ok(()) => match self.nodes.import_complete(&to, &request.id).await {
                Ok(true) => Ok(()),
                Ok(false) => Err("the destination no longer holds the rows (restarted?)".into()),
                Err(e) => Err(format!(
                    "cannot confirm the destination holds the rows: {e}"
                )),
            },
            Err(e) => Err(e.to_string()),
        };
        let cancelled = self.run.cancel.load(Ordering::Acquire);
        let outcome: Result<(), String> = match result {
            Ok(()) => match self.commit_move(index) {
                Ok(true) => {
                    let map = self.cluster_map();
                    let calls = [&from, &to].map(|address| {
                        tokio::time::timeout(NODE_CALL_TIMEOUT, self.nodes.apply_map(address, &map))
                    });
                    futures::future::join_all(calls).await;
                    tracing::info!(
                        id = %request.id, secs = started.elapsed().as_secs_f64(), "move committed"
                    );
                    return Ok(());
                }
                Ok(false) => Err("cancelled before its commit".to_string()),
                Err(e) => {
                    // The write may have landed (an ambiguous store error): rolling back
                    // could unfence a source whose range is committed away. Leave the
                    // nodes as they are; the next leader, or the heartbeat reconciliation
                    // after this plan ends, settles them from the stored record.
                    tracing::error!(id = %request.id, error = %e, "commit not recorded");
                    return Err(format!("move {}: commit not recorded: {e}", record.id));
                }
            },
            Err(e) => Err(e),
        };
        let error = outcome.err().unwrap_or_default();
        tracing::warn!(id = %request.id, %error, "move rolled back");
        self.abort_on(&from, &request.id).await;
        self.abort_on(&to, &request.id).await;
        let state = if cancelled {
            MoveState::Cancelled
        } else {
            MoveState::Aborted
        };
        let e = error.clone();
        self.update_plan(move |plan| {
            plan.moves[index].state = state;
            plan.moves[index].error = e;
        })
        .map_err(|e| e.to_string())?;
        if cancelled {
            Ok(())
        } else {
            Err(format!("move {} failed: {error}", record.id))
        }
    }

    /// Gives the move's pieces to its destination in a new epoch (unless the plan was
    /// cancelled meanwhile); the move's state is saved in the same write.
    fn commit_move(&self, index: usize) -> Result<bool, CoordinatorError> {
        let mut guard = self.state.lock();
        if self.run.cancel.load(Ordering::Acquire) {
            return Ok(false);
        }
        let (record, live) = &mut *guard;
        let mut next = record.clone();
        let Some(plan) = next.plan.as_mut() else {
            return Ok(false);
        };
        let mv = plan.moves[index].mv.clone();
        plan.moves[index].state = MoveState::Done;
        for shard in next.shards.iter_mut() {
            if shard.slot_start >= mv.slot_start && shard.slot_end <= mv.slot_end {
                shard.primary = mv.to.clone();
            }
        }
        next.epoch += 1;
        self.store.save_record(&next)?;
        *record = next;
        self.map_tx.send_replace(map_of(record, live));
        Ok(true)
    }

    /// Ends the plan: the target layout when every move is done, otherwise the pieces
    /// merged back as far as their nodes allow.
    fn finish_plan(
        &self,
        cancelled: bool,
        failure: Option<String>,
    ) -> Result<(), CoordinatorError> {
        let mut guard = self.state.lock();
        let (record, live) = &mut *guard;
        let mut next = record.clone();
        let Some(plan) = next.plan.as_mut() else {
            return Ok(());
        };
        let all_done = plan.moves.iter().all(|m| m.state == MoveState::Done);
        plan.state = if all_done {
            PlanState::Done
        } else if cancelled {
            PlanState::Cancelled
        } else {
            PlanState::Failed
        };
        plan.error = failure.unwrap_or_default();
        plan.finished_unix_ms = unix_ms();
        for m in plan.moves.iter_mut() {
            if m.state == MoveState::Pending || m.state == MoveState::Running {
                m.state = MoveState::Cancelled;
            }
        }
        let (id, state) = (plan.id.clone(), plan.state);
        next.shards = if all_done {
            merge_within(&next.shards, &plan.plan.target)
        } else {
            // Back to the old shards wherever their pieces are still on one node.
            merge_within(&merge_within(&next.shards, &plan.base), &plan.plan.target)
        };
        next.epoch += 1;
        self.store.save_record(&next)?;
        *record = next;
        self.map_tx.send_replace(map_of(record, live));
        tracing::info!(plan = %id, state = state.as_str(), epoch = record.epoch, "plan ended");
        Ok(())
    }

    /// Changes the stored plan with `change` and saves it.
    fn update_plan(&self, change: impl FnOnce(&mut PlanRecord)) -> Result<(), CoordinatorError> {
        let mut guard = self.state.lock();
        let mut next = guard.0.clone();
        if let Some(plan) = next.plan.as_mut() {
            change(plan);
        }
        self.store.save_record(&next)?;
        guard.0 = next;
        Ok(())
    }

    /// Rolls move `id` back on the node at `address`, trying a few times.
    async fn abort_on(&self, address: &str, id: &str) {
        for attempt in 0..ABORT_TRIES {
            let call = self.nodes.abort_migration(address, id);
            match tokio::time::timeout(NODE_CALL_TIMEOUT, call).await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => {
                    tracing::warn!(%address, %id, error = %e, attempt, "roll-back failed")
                }
                Err(_) => tracing::warn!(%address, %id, attempt, "roll-back timed out"),
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        tracing::error!(
            %address, %id,
            "could not roll the move back on this node; it keeps the range fenced until it restarts"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testkit::{map_layout, open, table, three_nodes, wait_end};
    use super::*;

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
}
