//! The closed-loop W1 driver: one tokio task per trainer, warm-up then the measured window.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::{timeout_at, Instant};

use crate::cpu::CpuTimes;
use crate::target::{Target, TargetError};
use crate::workload::{GradPool, IdStream, WorkloadSpec};
use crate::zipf::ZipfError;

/// Highest latency the histograms hold: 600 s, in microseconds.
pub const HIST_MAX_US: u64 = 600_000_000;

/// How long a step that started in the window may run past its end before the run fails.
pub const GRACE: Duration = Duration::from_secs(30);

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A target call failed.
    #[error("trainer {trainer}: {source}")]
    Target {
        /// Trainer index.
        trainer: usize,
        /// What failed.
        source: TargetError,
    },
    /// The workload parameters are invalid.
    #[error(transparent)]
    Zipf(#[from] ZipfError),
    /// A histogram could not be created or merged.
    #[error("histogram: {0}")]
    Histogram(String),
    /// A step did not finish within the grace period after the window.
    #[error("trainer {0}: a step did not finish {GRACE:?} after the end of the run")]
    Timeout(usize),
    /// A trainer task panicked or was cancelled.
    #[error("trainer task: {0}")]
    Join(String),
}

/// Run shape: trainers, warm-up and measured window, and the workload.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Concurrent trainers.
    pub trainers: usize,
    /// Warm-up before the measured window.
    pub warmup: Duration,
    /// Length of the measured window.
    pub duration: Duration,
    /// The workload every trainer runs.
    pub workload: WorkloadSpec,
}

/// Counters updated by every step (warm-up included), for a live progress line.
#[derive(Debug, Default)]
pub struct Live {
    /// Steps finished.
    pub steps: AtomicU64,
    /// Unique ids of finished steps.
    pub rows: AtomicU64,
    /// The slowest step (µs) since the timeline last took it (see `timeline`).
    pub slowest_step_us: AtomicU64,
    /// Set when a trainer failed: the others stop at their next step.
    pub stop: AtomicBool,
}

/// Latency histograms in microseconds.
#[derive(Debug, Clone)]
pub struct Hists {
    /// Step: start of pull to acknowledgement of push.
    pub step: Histogram<u64>,
    /// Pull alone.
    pub pull: Histogram<u64>,
    /// Push alone.
    pub push: Histogram<u64>,
}

impl Hists {
    fn new() -> Result<Self, RunError> {
        let h = || {
            Histogram::new_with_bounds(1, HIST_MAX_US, 3)
                .map_err(|e| RunError::Histogram(e.to_string()))
        };
        Ok(Self {
            step: h()?,
            pull: h()?,
            push: h()?,
        })
    }

    fn add(&mut self, o: &Hists) -> Result<(), RunError> {
        let e = |e: hdrhistogram::AdditionError| RunError::Histogram(e.to_string());
        self.step.add(&o.step).map_err(e)?;
        self.pull.add(&o.pull).map_err(e)?;
        self.push.add(&o.push).map_err(e)?;
        Ok(())
    }
}

/// What the measured window saw, summed over trainers.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Steps that started inside the window.
    pub steps: u64,
    /// Unique ids of those steps (rows pulled = rows pushed).
    pub rows: u64,
    /// Row payload bytes those steps moved, both directions.
    pub bytes: u64,
    /// Length of the window.
    pub duration: Duration,
    /// Merged latency histograms.
    pub hists: Hists,
    /// Machine-wide busy CPU time over the window (`None` without `/proc/stat`).
    pub cpu: Option<CpuTimes>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// One trainer's closed loop; returns its counted steps, rows, bytes and histograms.
async fn trainer<T: Target>(
    index: usize,
    mut target: T,
    spec: WorkloadSpec,
    window_start: Instant,
    end: Instant,
    live: Arc<Live>,
) -> Result<(u64, u64, u64, Hists), RunError> {
    let t = index as u64;
    let mut ids_stream = IdStream::new(&spec, t)?;
    let mut pool = GradPool::new(&spec, t);
    let mut ids = Vec::with_capacity(spec.batch);
    let mut out = vec![0f32; spec.batch * spec.dim];
    let mut hists = Hists::new()?;
    let (mut steps, mut rows, mut bytes) = (0u64, 0u64, 0u64);
    let deadline = end + GRACE;
    let err = |source| RunError::Target {
        trainer: index,
        source,
    };
    let result = async {
        loop {
            // Not timed: draw and deduplicate the batch, pick the gradient rows.
            ids_stream.next_batch(&mut ids);
            let n = ids.len();
            let grads = pool.step(n);
            let t0 = Instant::now();
            if t0 >= end || live.stop.load(Ordering::Relaxed) {
                break;
            }
            let pulled = timeout_at(deadline, target.pull(&ids, &mut out[..n * spec.dim]))
                .await
                .map_err(|_| RunError::Timeout(index))?
                .map_err(err)?;
            let t1 = Instant::now();
            let pushed = timeout_at(deadline, target.push(&ids, &grads))
                .await
                .map_err(|_| RunError::Timeout(index))?
                .map_err(err)?;
            let t2 = Instant::now();
            live.steps.fetch_add(1, Ordering::Relaxed);
            live.rows.fetch_add(n as u64, Ordering::Relaxed);
            live.slowest_step_us
                .fetch_max(micros(t2 - t0), Ordering::Relaxed);
            if t0 >= window_start {
                steps += 1;
                rows += n as u64;
                bytes += pulled + pushed;
                hists.step.saturating_record(micros(t2 - t0));
                hists.pull.saturating_record(micros(t1 - t0));
                hists.push.saturating_record(micros(t2 - t1));
            }
            // Let the other trainers on this worker run (the in-process target never yields).
            tokio::task::yield_now().await;
        }
        Ok::<(), RunError>(())
    }
    .await;
    if result.is_err() {
        live.stop.store(true, Ordering::Relaxed);
    }
    result.map(|()| (steps, rows, bytes, hists))
}

/// Run W1 with one already connected target per trainer; call inside a tokio runtime.
pub async fn run<T: Target + 'static>(
    targets: Vec<T>,
    cfg: &RunConfig,
    live: Arc<Live>,
) -> Result<RunResult, RunError> {
    // Validate the workload before any task starts.
    IdStream::new(&cfg.workload, 0)?;
    let start = Instant::now();
    let window_start = start + cfg.warmup;
    let end = window_start + cfg.duration;
    let cpu_sampler = tokio::spawn(async move {
        tokio::time::sleep_until(window_start).await;
        let first = CpuTimes::now();
        tokio::time::sleep_until(end).await;
        Some(CpuTimes::now()?.since(&first?))
    });
    let mut tasks = Vec::with_capacity(targets.len());
    for (i, target) in targets.into_iter().enumerate() {
        tasks.push(tokio::spawn(trainer(
            i,
            target,
            cfg.workload.clone(),
            window_start,
            end,
            live.clone(),
        )));
    }
    let mut hists = Hists::new()?;
    let (mut steps, mut rows, mut bytes) = (0, 0, 0);
    let mut first_err = None;
    for task in tasks {
        match task.await {
            Ok(Ok((s, r, b, h))) => {
                steps += s;
                rows += r;
                bytes += b;
                hists.add(&h)?;
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(RunError::Join(e.to_string()));
            }
        }
    }
    if let Some(e) = first_err {
        cpu_sampler.abort();
        return Err(e);
    }
    let cpu = cpu_sampler.await.ok().flatten();
    Ok(RunResult {
        steps,
        rows,
        bytes,
        duration: cfg.duration,
        hists,
        cpu,
    })
}
