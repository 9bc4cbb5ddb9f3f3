//! Exactly-once pushes through real processes: a dev server with a write-ahead log is
//! killed with SIGKILL while trainers push, and restarted on the same address; the pushes
//! in flight are sent again by the client with their numbers, and every push ends applied
//! exactly once (rows equal minus the sum of the gradients, SGD with lr 1), with no
//! outcome reported unknown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_client::ClientError;
use strata_tests::{table_spec, DevServer};

const DIM: usize = 4;
const TRAINERS: u64 = 4;
const PUSHES: u64 = 60;
const KEYS: u64 = 53;

/// Push `n` of trainer `t`: small integers, so sums are exact in f32.
fn push_of(t: u64, n: u64) -> (Vec<u64>, Vec<f32>) {
    let ids: Vec<u64> = (0..6).map(|i| (t * 13 + n * 5 + i * 7) % KEYS).collect();
    let grads = ids
        .iter()
        .flat_map(|&id| (0..DIM).map(move |j| ((id * 3 + j as u64 + n + t) % 7) as f32 - 3.0))
        .collect();
    (ids, grads)
}

/// Runs the trainers against `address`; the server is killed after `kill_after` pushes
/// were acknowledged and restarted on the same address by `restart`.
async fn run(sync: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = ["--wal", "--wal-sync", sync];
    let mut server = DevServer::start(dir.path(), &flags).expect("start");
    let address = server.address.clone();
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("emb", DIM as u32, "sgd", 1.0))
        .await
        .expect("create");

    let acked = Arc::new(AtomicU64::new(0));
    let mut trainers = Vec::new();
    for t in 0..TRAINERS {
        let client = server.client().await.expect("client");
        let acked = acked.clone();
        trainers.push(tokio::spawn(async move {
            let mut refused = 0u32;
            for n in 0..PUSHES {
                let (ids, grads) = push_of(t, n);
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    match client.push("emb", &ids, &grads).await {
                        Ok(_) => break,
                        Err(e @ ClientError::Ambiguous { .. }) => {
                            panic!("trainer {t} push {n}: outcome unknown: {e}")
                        }
                        // Not sent (the server was down when the push began): send it anew.
                        Err(e) => {
                            refused += 1;
                            assert!(Instant::now() < deadline, "trainer {t} push {n}: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                acked.fetch_add(1, Ordering::Relaxed);
            }
            refused
        }));
    }

    // Kill while pushes are in flight, then restart on the same address.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Relaxed) < TRAINERS * PUSHES / 3 {
        assert!(Instant::now() < deadline, "trainers stalled");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill();
    let at_kill = acked.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = DevServer::launch(&address, dir.path(), &flags, None).expect("restart");

    let mut refused = 0;
    for trainer in trainers {
        refused += tokio::time::timeout(Duration::from_secs(120), trainer)
            .await
            .expect("trainers finish")
            .expect("trainer");
    }
    assert!(
        at_kill < TRAINERS * PUSHES,
        "{sync}: the kill came before the end"
    );

    let mut expected = vec![0.0f32; KEYS as usize * DIM];
    for t in 0..TRAINERS {
        for n in 0..PUSHES {
            let (ids, grads) = push_of(t, n);
            for (k, id) in ids.iter().enumerate() {
                for j in 0..DIM {
                    expected[*id as usize * DIM + j] -= grads[k * DIM + j];
                }
            }
        }
    }
    let client = server.client().await.expect("client");
    let ids: Vec<u64> = (0..KEYS).collect();
    let rows = client.pull("emb", &ids).await.expect("pull");
    for id in 0..KEYS as usize {
        assert_eq!(
            &rows[id * DIM..(id + 1) * DIM],
            &expected[id * DIM..(id + 1) * DIM],
            "{sync}: row {id} (killed after {at_kill} acknowledged pushes; {refused} refused \
             while down and sent anew)"
        );
    }
}

#[tokio::test]
async fn pushes_in_flight_at_a_kill_are_applied_exactly_once_with_sync_always() {
    run("always").await;
}

#[tokio::test]
async fn pushes_in_flight_at_a_kill_are_applied_exactly_once_with_interval_sync() {
    run("interval:100ms").await;
}
