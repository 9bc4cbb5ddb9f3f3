//! The run summary: derived rates and percentiles, as human text and as one JSON object.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cpu::CpuPerStep;
use crate::runner::RunResult;

/// Everything a run reports; serialized as the `--json` line.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `strata`, `inproc` or `redis`.
    pub target: String,
    /// Where the target was reached (coordinator or Redis address; empty in process).
    pub address: String,
    /// Concurrent trainers.
    pub trainers: usize,
    /// Measured window, seconds.
    pub duration_s: f64,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// Row width.
    pub dim: usize,
    /// Draws per step.
    pub batch: usize,
    /// Zipf exponent.
    pub zipf: f64,
    /// Key space.
    pub keys: u64,
    /// Run seed.
    pub seed: u64,
    /// Optimizer name.
    pub optimizer: String,
    /// Tokio worker threads of the load generator.
    pub client_threads: usize,
    /// Steps that started inside the window.
    pub steps: u64,
    /// Steps per second.
    pub steps_per_s: f64,
    /// Rows pulled per second.
    pub pull_rows_per_s: f64,
    /// Rows pushed per second.
    pub push_rows_per_s: f64,
    /// Mean unique ids per step.
    pub unique_ids_per_step: f64,
    /// Row payload bytes per second, both directions.
    pub bytes_per_s: f64,
    /// Step latency percentiles and extremes, ms.
    pub p50_ms: f64,
    /// 90th percentile step latency, ms.
    pub p90_ms: f64,
    /// 99th percentile step latency, ms.
    pub p99_ms: f64,
    /// 99.9th percentile step latency, ms.
    pub p999_ms: f64,
    /// Highest step latency, ms.
    pub max_ms: f64,
    /// Mean step latency, ms.
    pub mean_ms: f64,
    /// Median pull latency, ms.
    pub pull_p50_ms: f64,
    /// 99th percentile pull latency, ms.
    pub pull_p99_ms: f64,
    /// Median push latency, ms.
    pub push_p50_ms: f64,
    /// 99th percentile push latency, ms.
    pub push_p99_ms: f64,
    /// Machine-wide user CPU per step over the window, ms (server and bench when co-located).
    pub cpu_user_ms_per_step: Option<f64>,
    /// Machine-wide kernel CPU (system and interrupts) per step over the window, ms.
    pub cpu_kernel_ms_per_step: Option<f64>,
    /// Mean busy cores of the machine over the window.
    pub cpu_busy_cores: Option<f64>,
}

/// The run's context, copied into the summary.
#[derive(Debug, Clone)]
pub struct Context {
    /// `strata`, `inproc` or `redis`.
    pub target: String,
    /// Where the target was reached.
    pub address: String,
    /// Concurrent trainers.
    pub trainers: usize,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// Row width.
    pub dim: usize,
    /// Draws per step.
    pub batch: usize,
    /// Zipf exponent.
    pub zipf: f64,
    /// Key space.
    pub keys: u64,
    /// Run seed.
    pub seed: u64,
    /// Optimizer name.
    pub optimizer: String,
    /// Tokio worker threads.
    pub client_threads: usize,
}

fn q_ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

impl Summary {
    /// Derive rates and percentiles from a run.
    pub fn new(ctx: Context, r: &RunResult) -> Self {
        let d = r.duration.as_secs_f64().max(f64::MIN_POSITIVE);
        let rows_per_s = r.rows as f64 / d;
        let h = &r.hists;
        let cpu = r
            .cpu
            .and_then(|used| CpuPerStep::new(used, r.steps, r.duration));
        Self {
            target: ctx.target,
            address: ctx.address,
            trainers: ctx.trainers,
            duration_s: r.duration.as_secs_f64(),
            warmup_s: ctx.warmup_s,
            dim: ctx.dim,
            batch: ctx.batch,
            zipf: ctx.zipf,
            keys: ctx.keys,
            seed: ctx.seed,
            optimizer: ctx.optimizer,
            client_threads: ctx.client_threads,
            steps: r.steps,
            steps_per_s: r.steps as f64 / d,
            pull_rows_per_s: rows_per_s,
            push_rows_per_s: rows_per_s,
            unique_ids_per_step: if r.steps == 0 {
                0.0
            } else {
                r.rows as f64 / r.steps as f64
            },
            bytes_per_s: r.bytes as f64 / d,
            p50_ms: q_ms(&h.step, 0.5),
            p90_ms: q_ms(&h.step, 0.9),
            p99_ms: q_ms(&h.step, 0.99),
            p999_ms: q_ms(&h.step, 0.999),
            max_ms: h.step.max() as f64 / 1000.0,
            mean_ms: h.step.mean() / 1000.0,
            pull_p50_ms: q_ms(&h.pull, 0.5),
            pull_p99_ms: q_ms(&h.pull, 0.99),
            push_p50_ms: q_ms(&h.push, 0.5),
            push_p99_ms: q_ms(&h.push, 0.99),
            cpu_user_ms_per_step: cpu.map(|c| c.user_ms),
            cpu_kernel_ms_per_step: cpu.map(|c| c.kernel_ms),
            cpu_busy_cores: cpu.map(|c| c.busy_cores),
        }
    }

    /// A few lines for people.
    pub fn human(&self) -> String {
        format!(
            "W1 against {target}{addr}: {trainers} trainers, {dur:.0} s measured after {warm:.0} s warm-up\n\
             dim {dim}, batch {batch}, zipf {zipf}, keys {keys}, seed {seed}, {opt}, {threads} client threads\n\
             steps        {steps} ({sps:.1}/s), {uniq:.1} unique ids per step\n\
             rows/s       pull {pull:.0}, push {push:.0}\n\
             payload      {mbs:.1} MB/s (both directions)\n\
             step ms      p50 {p50:.3}  p90 {p90:.3}  p99 {p99:.3}  p99.9 {p999:.3}  max {max:.3}  mean {mean:.3}\n\
             pull ms      p50 {pl50:.3}  p99 {pl99:.3}\n\
             push ms      p50 {ps50:.3}  p99 {ps99:.3}\n\
             machine cpu  {cpu}",
            target = self.target,
            addr = if self.address.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.address)
            },
            trainers = self.trainers,
            dur = self.duration_s,
            warm = self.warmup_s,
            dim = self.dim,
            batch = self.batch,
            zipf = self.zipf,
            keys = self.keys,
            seed = self.seed,
            opt = self.optimizer,
            threads = self.client_threads,
            steps = self.steps,
            sps = self.steps_per_s,
            uniq = self.unique_ids_per_step,
            pull = self.pull_rows_per_s,
            push = self.push_rows_per_s,
            mbs = self.bytes_per_s / 1e6,
            p50 = self.p50_ms,
            p90 = self.p90_ms,
            p99 = self.p99_ms,
            p999 = self.p999_ms,
            max = self.max_ms,
            mean = self.mean_ms,
            pl50 = self.pull_p50_ms,
            pl99 = self.pull_p99_ms,
            ps50 = self.push_p50_ms,
            ps99 = self.push_p99_ms,
            cpu = match (self.cpu_user_ms_per_step, self.cpu_kernel_ms_per_step, self.cpu_busy_cores) {
                (Some(u), Some(k), Some(c)) => format!(
                    "{u:.3} ms user + {k:.3} ms kernel per step, {c:.2} busy cores"
                ),
                _ => "not measured (no /proc/stat)".to_string(),
            },
        )
    }
}
