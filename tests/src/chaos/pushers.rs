//! Pusher tasks: each owns a pool of rows, pulls then pushes small integer gradients for a
//! batch of them, one call at a time, and logs every push with its outcome and every
//! failure with what README documents it by. Rows of a push with an unknown outcome are
//! retired for the rest of the schedule (see [`super::oracle`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_client::{Client, ClientError};

use super::oracle::{Attempt, Outcome};
use super::statuses::{seen, Seen};
use super::Rng;

/// Settings shared by the pushers of a deployment.
#[derive(Debug, Clone)]
pub struct PusherSpec {
    /// The table (SGD, lr 1, zeros).
    pub table: String,
    /// Row width.
    pub dim: usize,
    /// Distinct ids per push.
    pub batch: usize,
    /// Pause between steps.
    pub pause: Duration,
    /// A call that takes longer than this is a failure of its own (a hang).
    pub call_timeout: Duration,
    /// Most time a pusher runs in one schedule.
    pub max_time: Duration,
    /// Most steps a pusher makes in one schedule.
    pub max_steps: usize,
}

/// What one pusher did in a schedule; shared with the driver while it runs.
#[derive(Debug, Default)]
pub struct PushLog {
    /// Its pushes in order, each recorded once its outcome is known.
    pub attempts: Mutex<Vec<Attempt>>,
    /// Its failed calls: the call and error text, and what the failure is.
    pub failures: Mutex<Vec<(String, Seen)>>,
}

/// Running pushers.
pub struct Pushers {
    handles: Vec<tokio::task::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// One log per pusher, in pool order.
    pub logs: Vec<Arc<PushLog>>,
}

impl Pushers {
    /// Starts one pusher per pool with generators seeded from `seed`.
    pub fn start(client: &Client, spec: &PusherSpec, pools: &[Vec<u64>], seed: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut logs = Vec::new();
        let mut handles = Vec::new();
        for (t, pool) in pools.iter().enumerate() {
            let log = Arc::new(PushLog::default());
            logs.push(log.clone());
            handles.push(tokio::spawn(push_loop(
                client.clone(),
                spec.clone(),
                pool.clone(),
                Rng::new(seed ^ (t as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F)),
                log,
                stop.clone(),
            )));
        }
        Self {
            handles,
            stop,
            logs,
        }
    }

    /// Pushes each pusher has finished so far (a checkpoint started now covers at least
    /// the acknowledged ones among them).
    pub fn completed(&self) -> Vec<usize> {
        self.logs.iter().map(|l| l.attempts.lock().len()).collect()
    }

    /// Acknowledged pushes so far, over all pushers in `which`.
    pub fn acked(&self, which: &[usize]) -> usize {
        which
            .iter()
            .map(|&t| {
                self.logs[t]
                    .attempts
                    .lock()
                    .iter()
                    .filter(|a| a.outcome == Outcome::Acked)
                    .count()
            })
            .sum()
    }

    /// Stops the pushers and waits for them (each ends within its call timeout).
    pub async fn stop(self) -> Vec<Arc<PushLog>> {
        self.halt();
        self.join().await
    }

    /// Tells the pushers to start no new push; [`Pushers::join`] waits for the calls
    /// already made.
    pub fn halt(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Waits for halted pushers to end (each within its call timeout).
    pub async fn join(self) -> Vec<Arc<PushLog>> {
        for h in self.handles {
            if let Err(e) = h.await {
                panic!("a pusher task failed: {e}");
            }
        }
        self.logs
    }
}

/// `count` distinct ids of `live`, chosen by `rng`.
fn pick(live: &mut [u64], count: usize, rng: &mut Rng) -> Vec<u64> {
    let count = count.min(live.len());
    for i in 0..count {
        let j = i + rng.below((live.len() - i) as u64) as usize;
        live.swap(i, j);
    }
    live[..count].to_vec()
}

/// What became of a push that failed with `err`.
fn outcome_of(err: &ClientError) -> Outcome {
    match err {
        ClientError::NodeUnavailable { .. } | ClientError::Rpc { .. } => Outcome::NotApplied,
        _ => Outcome::Maybe,
    }
}

async fn push_loop(
    client: Client,
    spec: PusherSpec,
    pool: Vec<u64>,
    mut rng: Rng,
    log: Arc<PushLog>,
    stop: Arc<AtomicBool>,
) {
    let began = Instant::now();
    let mut retired: HashSet<u64> = HashSet::new();
    for _ in 0..spec.max_steps {
        if stop.load(Ordering::Acquire) || began.elapsed() > spec.max_time {
            break;
        }
        let mut live: Vec<u64> = pool
            .iter()
            .copied()
            .filter(|id| !retired.contains(id))
            .collect();
        if live.len() < spec.batch {
            tokio::time::sleep(spec.pause).await;
            continue;
        }
        let ids = pick(&mut live, spec.batch, &mut rng);
        let grads: Vec<f32> = (0..ids.len() * spec.dim)
            .map(|_| rng.below(5) as f32 - 2.0)
            .collect();
        let mut failed = false;
        match tokio::time::timeout(spec.call_timeout, client.pull(&spec.table, &ids)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                failed = true;
                log.failures.lock().push((format!("pull: {e}"), seen(&e)));
            }
            Err(_) => {
                failed = true;
                let what = format!("pull hung for {:?}", spec.call_timeout);
                log.failures
                    .lock()
                    .push((what.clone(), Seen::Undocumented(what)));
            }
        }
        if stop.load(Ordering::Acquire) {
            // Halted while pulling: a push now could land after a restart the oracle
            // does not model.
            break;
        }
        let outcome =
            match tokio::time::timeout(spec.call_timeout, client.push(&spec.table, &ids, &grads))
                .await
            {
                Ok(Ok(_)) => Outcome::Acked,
                Ok(Err(e)) => {
                    failed = true;
                    log.failures.lock().push((format!("push: {e}"), seen(&e)));
                    outcome_of(&e)
                }
                Err(_) => {
                    failed = true;
                    let what = format!("push hung for {:?}", spec.call_timeout);
                    log.failures
                        .lock()
                        .push((what.clone(), Seen::Undocumented(what)));
                    Outcome::Maybe
                }
            };
        if outcome == Outcome::Maybe {
            retired.extend(ids.iter().copied());
        }
        log.attempts.lock().push(Attempt {
            ids,
            grads,
            outcome,
        });
        let pause = if failed { spec.pause * 4 } else { spec.pause };
        tokio::time::sleep(pause).await;
    }
}
