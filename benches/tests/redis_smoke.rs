//! The Redis target against a real redis-server: Adagrad math on the trainer, then a short W1 run.

mod common;

use strata_bench::target::{self, TableParams, Target, TargetSpec};
use strata_bench::workload::{initial_row, GradRows};

fn params() -> TableParams {
    TableParams {
        name: "t".into(),
        dim: 4,
        lr: 0.05,
        init_acc: 0.1,
        init_scale: 0.01,
        seed: 1,
    }
}

#[tokio::test]
async fn redis_rows_and_adagrad_match_workload() {
    let Some(redis) = common::Redis::start() else {
        return;
    };
    let spec = TargetSpec::parse(&format!("redis://{}", redis.addr), "").expect("parse");
    let p = params();
    let mut ts = target::setup(&spec, &p, 2, Default::default())
        .await
        .expect("setup");
    let mut b = ts.pop().expect("two targets");
    let mut a = ts.pop().expect("two targets");
    let ids = [3u64, 7, 1 << 40];
    let mut vals = vec![0f32; 12];
    let bytes = a.pull(&ids, &mut vals).await.expect("pull");
    assert_eq!(bytes, 3 * 16);
    let mut want = vec![0f32; 12];
    for (i, &id) in ids.iter().enumerate() {
        initial_row(id, 0.01, &mut want[i * 4..(i + 1) * 4]);
    }
    assert_eq!(vals, want, "new rows are W1's initial rows");

    let grads: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) * 0.003).collect();
    a.push(&ids, &GradRows::from_values(&grads))
        .await
        .expect("push");
    let mut acc = [0.1f32; 12];
    for ((w, a), g) in want.iter_mut().zip(acc.iter_mut()).zip(&grads) {
        *a += g * g;
        *w -= 0.05 * g / a.sqrt();
    }
    // Another trainer sees the update; a push of other ids fetches values itself.
    let mut seen = vec![0f32; 12];
    b.pull(&ids, &mut seen).await.expect("pull");
    assert_eq!(seen, want);
    b.push(&ids[..1], &GradRows::from_values(&grads[..4]))
        .await
        .expect("push");
    a.push(&ids[..1], &GradRows::from_values(&grads[..4]))
        .await
        .expect("push of ids the trainer did not just pull");
    for _ in 0..2 {
        for ((w, a), g) in want[..4]
            .iter_mut()
            .zip(acc[..4].iter_mut())
            .zip(&grads[..4])
        {
            *a += g * g;
            *w -= 0.05 * g / a.sqrt();
        }
    }
    b.pull(&ids, &mut seen).await.expect("pull");
    assert_eq!(seen, want, "accumulators persisted between pushes");
}

#[test]
fn redis_w1_smoke_run() {
    let Some(redis) = common::Redis::start() else {
        return;
    };
    let target = format!("redis://{}", redis.addr);
    let v = common::run_json(&[
        "--target",
        &target,
        "--duration",
        "1",
        "--warmup",
        "0",
        "--keys",
        "100000",
    ]);
    common::check_contract(&v, "redis");
    // Redis ships the accumulator both ways: 4 row payloads per unique id and step.
    let per_row =
        v["bytes_per_s"].as_f64().unwrap_or(0.0) / v["pull_rows_per_s"].as_f64().unwrap_or(1.0);
    assert!(
        (per_row - 4.0 * 256.0).abs() < 1.0,
        "bytes per row {per_row}"
    );
}
