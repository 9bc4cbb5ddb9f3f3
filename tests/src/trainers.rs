//! Trainers that push known gradients while a test reshapes the cluster, and the ledger
//! that says what every row must hold afterwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_client::Client;

/// What one trainer did: its acknowledged pushes in order, and its failed calls.
#[derive(Debug, Default)]
pub struct TrainerLog {
    /// Acknowledged pushes (ids, grads row-major), in acknowledgement order.
    pub acked: Vec<(Vec<u64>, Vec<f32>)>,
    /// Calls that failed, with the error.
    pub errors: Vec<String>,
}

/// Settings of a group of trainers.
#[derive(Debug, Clone, Copy)]
pub struct TrainerSpec {
    /// Trainers; trainer `t` uses only ids `≡ t (mod trainers)`, so each row is pushed by
    /// one trainer and its updates have one order.
    pub trainers: u64,
    /// Ids are below this.
    pub keys: u64,
    /// Row width.
    pub dim: usize,
    /// Ids per push.
    pub batch: usize,
    /// Most pushes per trainer.
    pub max_steps: u32,
    /// Most time per trainer.
    pub max_time: Duration,
    /// Pause between steps.
    pub pause: Duration,
}

/// Runs trainer `t` until `stop`, its step limit or its time limit: pull then push small
/// integer gradients (-2..=2) for a batch of its ids.
pub async fn train(
    client: Client,
    table: String,
    spec: TrainerSpec,
    t: u64,
    stop: Arc<AtomicBool>,
) -> TrainerLog {
    let mut log = TrainerLog::default();
    let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x >> 33
    };
    let began = Instant::now();
    for _ in 0..spec.max_steps {
        if stop.load(Ordering::Acquire) || began.elapsed() > spec.max_time {
            break;
        }
        let ids: Vec<u64> = (0..spec.batch)
            .map(|_| t + spec.trainers * (next() % (spec.keys / spec.trainers)))
            .collect();
        let grads: Vec<f32> = (0..ids.len() * spec.dim)
            .map(|_| (next() % 5) as f32 - 2.0)
            .collect();
        if let Err(e) = client.pull(&table, &ids).await {
            log.errors.push(format!("pull: {e}"));
        }
        match client.push(&table, &ids, &grads).await {
            Ok(_) => log.acked.push((ids, grads)),
            Err(e) => log.errors.push(format!("push: {e}")),
        }
        tokio::time::sleep(spec.pause).await;
    }
    log
}

/// Starts `spec.trainers` trainers on `table`; returns their handles and the stop flag.
pub fn start_trainers(
    client: &Client,
    table: &str,
    spec: TrainerSpec,
) -> (Vec<tokio::task::JoinHandle<TrainerLog>>, Arc<AtomicBool>) {
    let stop = Arc::new(AtomicBool::new(false));
    let handles = (0..spec.trainers)
        .map(|t| {
            tokio::spawn(train(
                client.clone(),
                table.to_string(),
                spec,
                t,
                stop.clone(),
            ))
        })
        .collect();
    (handles, stop)
}

/// Stops the trainers and collects their logs.
pub async fn stop_trainers(
    handles: Vec<tokio::task::JoinHandle<TrainerLog>>,
    stop: &AtomicBool,
) -> Vec<TrainerLog> {
    stop.store(true, Ordering::Release);
    let mut logs = Vec::new();
    for h in handles {
        logs.push(h.await.unwrap_or_default());
    }
    logs
}

/// Fails the test when any trainer call failed, listing the errors.
pub fn assert_no_errors(logs: &[TrainerLog]) {
    let errors: Vec<&String> = logs.iter().flat_map(|l| &l.errors).collect();
    assert!(errors.is_empty(), "trainers saw errors: {errors:#?}");
}

/// Per id, the gradient of each acknowledged push in order (duplicates within a push summed
/// in request order, as the client does).
pub fn per_row_updates(logs: &[TrainerLog], dim: usize) -> HashMap<u64, Vec<Vec<f32>>> {
    let mut rows: HashMap<u64, Vec<Vec<f32>>> = HashMap::new();
    for log in logs {
        for (ids, grads) in &log.acked {
            let mut summed: Vec<(u64, Vec<f32>)> = Vec::new();
            for (i, &id) in ids.iter().enumerate() {
                let g = &grads[i * dim..(i + 1) * dim];
                match summed.iter_mut().find(|(x, _)| *x == id) {
                    Some((_, s)) => s.iter_mut().zip(g).for_each(|(a, b)| *a += b),
                    None => summed.push((id, g.to_vec())),
                }
            }
            for (id, g) in summed {
                rows.entry(id).or_default().push(g);
            }
        }
    }
    rows
}

/// SGD (lr 1, zeros) expectation: minus the sum of the acknowledged gradients.
pub fn sgd_expected(updates: &[Vec<f32>], dim: usize) -> Vec<f32> {
    let mut w = vec![0.0f32; dim];
    for g in updates {
        for (a, b) in w.iter_mut().zip(g) {
            *a -= b;
        }
    }
    w
}

/// Adagrad (zeros, accumulator 0.1, epsilon 0) replayed in acknowledgement order.
pub fn adagrad_expected(updates: &[Vec<f32>], dim: usize, lr: f32) -> Vec<f32> {
    let mut w = vec![0.0f32; dim];
    let mut acc = vec![0.1f32; dim];
    for g in updates {
        for ((w, a), &g) in w.iter_mut().zip(acc.iter_mut()).zip(g) {
            *a += g * g;
            *w -= lr * g / a.sqrt();
        }
    }
    w
}

/// Every row the trainers touched, pulled, compared with `expected` within `rel` relative
/// error (0: exact). Returns the rows checked.
pub async fn check_rows(
    client: &Client,
    table: &str,
    updates: &HashMap<u64, Vec<Vec<f32>>>,
    dim: usize,
    rel: f32,
    expected: impl Fn(&[Vec<f32>]) -> Vec<f32>,
) -> anyhow::Result<usize> {
    let mut ids: Vec<u64> = updates.keys().copied().collect();
    ids.sort_unstable();
    let values = client.pull(table, &ids).await?;
    let mut bad = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let want = expected(&updates[id]);
        let got = &values[i * dim..(i + 1) * dim];
        let ok = want.iter().zip(got).all(|(w, g)| {
            if rel == 0.0 {
                w == g
            } else {
                (w - g).abs() <= rel * w.abs().max(1e-3)
            }
        });
        if !ok && bad.len() < 5 {
            bad.push(format!(
                "id {id}: want {want:?} got {got:?} ({} pushes)",
                updates[id].len()
            ));
        }
    }
    anyhow::ensure!(
        bad.is_empty(),
        "rows differ from their acknowledged updates: {bad:#?}"
    );
    Ok(ids.len())
}
