//! Seeded fault schedules: a few steps under pushes, at most one crash and only as the last
//! step; the first schedules of a run cover every fault kind once, in a seeded order.

use std::time::Duration;

use super::Rng;

/// One step of a schedule. `node` is an index into the deployment's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Let the pushers run.
    Pause(Duration),
    /// Take a checkpoint (it may fail only with a documented status).
    Checkpoint,
    /// SIGSTOP the node, wait, SIGCONT it.
    Stop {
        /// The node.
        node: usize,
        /// How long it stays stopped.
        for_: Duration,
    },
    /// Fill the node's disk, checkpoint (must fail cleanly) while pushes go on, free the
    /// space, checkpoint (must succeed).
    DiskFull {
        /// The node (its data dir must be a tmpfs, or the step is skipped).
        node: usize,
    },
    /// SIGKILL the node, optionally truncate its newest checkpoint file, restart it.
    Kill {
        /// The node.
        node: usize,
        /// Truncate a file of its newest checkpoint while it is down.
        truncate: bool,
    },
}

/// Most steps before the last of a schedule.
const MAX_STEPS: u64 = 4;
/// Longest SIGSTOP (below the client's 20 s HTTP/2 keep-alive, above the 2 s heartbeat
/// timeout the cluster runs with, so a stopped node is sometimes marked down).
const MAX_STOP_MS: u64 = 3_500;

/// What the deployment offers the generator.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Nodes that can be stopped or killed.
    pub nodes: usize,
    /// Nodes whose data dir is a tmpfs (the first `disk_nodes` nodes).
    pub disk_nodes: usize,
}

/// The fault kinds the first schedules of a run each cover once.
fn coverage(shape: Shape, rng: &mut Rng) -> Vec<Step> {
    let node = |rng: &mut Rng| rng.below(shape.nodes as u64) as usize;
    let mut kinds = vec![
        Step::Stop {
            node: node(rng),
            for_: Duration::from_millis(rng.range(300, MAX_STOP_MS)),
        },
        Step::Kill {
            node: node(rng),
            truncate: false,
        },
        Step::Kill {
            node: node(rng),
            truncate: true,
        },
    ];
    if shape.disk_nodes > 0 {
        kinds.push(Step::DiskFull {
            node: rng.below(shape.disk_nodes as u64) as usize,
        });
    }
    // Fisher–Yates with the run's generator.
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i as u64 + 1) as usize);
    }
    kinds
}

/// A random step that is not a crash.
fn random_step(shape: Shape, rng: &mut Rng) -> Step {
    let node = rng.below(shape.nodes as u64) as usize;
    match rng.below(10) {
        0..=2 => Step::Checkpoint,
        3..=5 => Step::Pause(Duration::from_millis(rng.range(100, 800))),
        6..=8 => Step::Stop {
            node,
            for_: Duration::from_millis(rng.range(200, MAX_STOP_MS)),
        },
        _ if shape.disk_nodes > 0 => Step::DiskFull {
            node: rng.below(shape.disk_nodes as u64) as usize,
        },
        _ => Step::Checkpoint,
    }
}

/// Schedule number `index` of a run: schedule `i` of the first few features coverage kind
/// `i`; every schedule has a checkpoint before any crash (so a truncation has a checkpoint
/// of the schedule to hit), and a crash, if any, comes last.
pub fn schedule(index: usize, shape: Shape, rng: &mut Rng, first: &[Step]) -> Vec<Step> {
    let mut steps = Vec::new();
    let featured = first.get(index).copied();
    let n = rng.range(1, MAX_STEPS);
    for _ in 0..n {
        steps.push(random_step(shape, rng));
    }
    let crash = match featured {
        Some(k @ Step::Kill { .. }) => Some(k),
        Some(other) => {
            let at = rng.below(steps.len() as u64 + 1) as usize;
            steps.insert(at, other);
            None
        }
        None if rng.chance(1, 2) => Some(Step::Kill {
            node: rng.below(shape.nodes as u64) as usize,
            truncate: rng.chance(1, 3),
        }),
        None => None,
    };
    if let Some(kill) = crash {
        if !steps.contains(&Step::Checkpoint) {
            steps.push(Step::Checkpoint);
        }
        steps.push(Step::Pause(Duration::from_millis(rng.range(50, 400))));
        steps.push(kill);
    }
    steps
}

/// The coverage steps of a run with this shape (pass to every [`schedule`] call).
pub fn first_steps(shape: Shape, rng: &mut Rng) -> Vec<Step> {
    coverage(shape, rng)
}
