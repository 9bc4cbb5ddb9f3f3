//! Many tasks pushing integer SGD gradients to overlapping rows: nothing lost, nothing doubled.

use strata_tests::{table_spec, DevServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_integer_pushes_sum_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &[]).expect("start");
    let client = server.client().await.expect("client");
    client.create_table(table_spec("c", 3, "sgd", 1.0)).await.expect("create");

    const TASKS: u64 = 16;
    const ROUNDS: u64 = 40;
    const KEYS: u64 = 257;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let client = server.client().await.expect("client");
        handles.push(tokio::spawn(async move {
            let mut sums = vec![0f64; (KEYS * 3) as usize];
            for r in 0..ROUNDS {
                // Overlapping, unsorted ids with duplicates inside one push.
                let ids: Vec<u64> = (0..64).map(|k| (t * 7 + r * 13 + k * 5) % KEYS).collect();
                let grads: Vec<f32> = (0..ids.len() * 3).map(|i| ((i as u64 + t + r) % 7) as f32 - 3.0).collect();
                client.push("c", &ids, &grads).await.expect("push");
                for (k, &id) in ids.iter().enumerate() {
                    for j in 0..3 {
                        sums[(id * 3) as usize + j] += grads[k * 3 + j] as f64;
                    }
                }
            }
            sums
        }));
    }
    let mut expected = vec![0f64; (KEYS * 3) as usize];
    for h in handles {
        for (e, s) in expected.iter_mut().zip(h.await.expect("task")) {
            *e += s;
        }
    }
    let ids: Vec<u64> = (0..KEYS).collect();
    let values = client.pull("c", &ids).await.expect("pull");
    for (i, (&v, &e)) in values.iter().zip(&expected).enumerate() {
        assert_eq!(v as f64, -e, "row {} coord {}", i / 3, i % 3);
    }
}
