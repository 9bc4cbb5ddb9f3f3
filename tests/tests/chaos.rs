//! Chaos: seeded, bounded schedules of kill -9, SIGSTOP/SIGCONT, a full disk (a tmpfs the
//! test mounts) and truncated checkpoint files, against a dev server and against a
//! coordinator with three shard servers, under concurrent pushes. After each schedule: no
//! acknowledged push lost beyond what checkpoints allow (a restarted node holds its newest
//! checkpoint that verifies, never less, never a push applied twice or in part), no panic,
//! every failure a client saw a status README documents for the situation.
//!
//! `STRATA_CHAOS_SECONDS` (default 20 per deployment) and `STRATA_CHAOS_SEED` (printed)
//! make a run longer or replay one.

use strata_tests::chaos::deployment::Deployment;
use strata_tests::chaos::run::run;
use strata_tests::chaos::schedule::{first_steps, schedule, Shape, Step};
use strata_tests::chaos::{ChaosConfig, Rng};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_dev_server() {
    let dep = Deployment::dev().expect("dev server");
    let summary = run("dev", dep, ChaosConfig::from_env())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(summary.schedules > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_cluster_of_three_shard_servers() {
    let dep = Deployment::cluster().await.expect("cluster");
    let summary = run("cluster", dep, ChaosConfig::from_env())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(summary.schedules > 0);
}

#[test]
fn schedules_are_seeded_bounded_and_crash_last() {
    let shape = Shape {
        nodes: 3,
        disk_nodes: 1,
    };
    let run = |seed| {
        let mut rng = Rng::new(seed);
        let first = first_steps(shape, &mut rng);
        (0..50)
            .map(|i| schedule(i, shape, &mut rng, &first))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
    for s in run(7) {
        assert!(s.len() <= 8, "{s:?}");
        let kills = s.iter().filter(|x| matches!(x, Step::Kill { .. })).count();
        assert!(kills <= 1);
        if kills == 1 {
            assert!(matches!(s.last(), Some(Step::Kill { .. })));
            assert!(s.contains(&Step::Checkpoint));
        }
    }
    // The first schedules cover every fault kind.
    let first: Vec<Step> = run(7).into_iter().take(4).flatten().collect();
    assert!(first.iter().any(|s| matches!(s, Step::DiskFull { .. })));
    assert!(first.iter().any(|s| matches!(s, Step::Stop { .. })));
    assert!(first
        .iter()
        .any(|s| matches!(s, Step::Kill { truncate: true, .. })));
    assert!(first.iter().any(|s| matches!(
        s,
        Step::Kill {
            truncate: false,
            ..
        }
    )));
}

mod oracle {
    use strata_tests::chaos::oracle::{check_pusher, Attempt, Outcome, Rows};

    const DIM: usize = 2;

    fn push(ids: &[u64], g: f32, outcome: Outcome) -> Attempt {
        Attempt {
            ids: ids.to_vec(),
            grads: vec![g; ids.len() * DIM],
            outcome,
        }
    }

    fn rows(values: &[(u64, f32)]) -> Rows {
        values.iter().map(|&(id, v)| (id, vec![v; DIM])).collect()
    }

    /// Pool 1..=3; pushes: {1,2} +1, {2,3} +2, {1,3} +4 (all acknowledged).
    fn history() -> (Vec<u64>, Rows, Vec<Attempt>) {
        let attempts = vec![
            push(&[1, 2], 1.0, Outcome::Acked),
            push(&[2, 3], 2.0, Outcome::Acked),
            push(&[1, 3], 4.0, Outcome::Acked),
        ];
        (
            vec![1, 2, 3],
            rows(&[(1, 0.0), (2, 0.0), (3, 0.0)]),
            attempts,
        )
    }

    #[test]
    fn every_prefix_at_or_above_the_floor_fits() {
        let (pool, base, attempts) = history();
        let all = rows(&[(1, -5.0), (2, -3.0), (3, -6.0)]);
        assert_eq!(
            check_pusher(&pool, &base, &attempts, 3, &all, DIM).map(|c| c.k),
            Ok(3)
        );
        let two = rows(&[(1, -1.0), (2, -3.0), (3, -2.0)]);
        assert_eq!(
            check_pusher(&pool, &base, &attempts, 1, &two, DIM).map(|c| c.k),
            Ok(2)
        );
        assert_eq!(
            check_pusher(&pool, &base, &attempts, 0, &base, DIM).map(|c| c.k),
            Ok(0)
        );
    }

    #[test]
    fn a_lost_acknowledged_push_below_the_floor_is_caught() {
        let (pool, base, attempts) = history();
        let two = rows(&[(1, -1.0), (2, -3.0), (3, -2.0)]);
        assert!(check_pusher(&pool, &base, &attempts, 3, &two, DIM).is_err());
    }

    #[test]
    fn a_half_applied_or_twice_applied_push_is_caught() {
        let (pool, base, attempts) = history();
        // Push 2 in on id 1 but not on id 3.
        let half = rows(&[(1, -5.0), (2, -3.0), (3, -2.0)]);
        assert!(check_pusher(&pool, &base, &attempts, 0, &half, DIM).is_err());
        let twice = rows(&[(1, -9.0), (2, -3.0), (3, -10.0)]);
        assert!(check_pusher(&pool, &base, &attempts, 0, &twice, DIM).is_err());
    }

    #[test]
    fn a_push_of_unknown_outcome_is_in_on_all_its_rows_or_none() {
        let pool = vec![1, 2, 3];
        let base = rows(&[(1, 0.0), (2, 0.0), (3, 0.0)]);
        let attempts = vec![
            push(&[1, 2], 1.0, Outcome::Maybe),
            push(&[3], 2.0, Outcome::NotApplied),
            push(&[3], 4.0, Outcome::Acked),
        ];
        let with = rows(&[(1, -1.0), (2, -1.0), (3, -4.0)]);
        let without = rows(&[(1, 0.0), (2, 0.0), (3, -4.0)]);
        let half = rows(&[(1, -1.0), (2, 0.0), (3, -4.0)]);
        assert!(check_pusher(&pool, &base, &attempts, 3, &with, DIM).is_ok());
        assert!(check_pusher(&pool, &base, &attempts, 3, &without, DIM).is_ok());
        assert!(check_pusher(&pool, &base, &attempts, 3, &half, DIM).is_err());
        // A refused push is never in.
        let refused_in = rows(&[(1, 0.0), (2, 0.0), (3, -6.0)]);
        assert!(check_pusher(&pool, &base, &attempts, 3, &refused_in, DIM).is_err());
    }
}

/// Concurrent calls to a dev server that died each waited for the previous caller's whole
/// coordinator search (20 s) before starting their own, so the n-th failed after n × 20 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_to_a_dead_dev_server_share_one_coordinator_search() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = strata_tests::DevServer::start(
        dir.path(),
        &["--memory-reserve", "0", "--huge-pages", "false"],
    )
    .expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(strata_tests::table_spec("e", 4, "sgd", 1.0))
        .await
        .expect("create");
    client.push("e", &[1, 2], &[1.0; 8]).await.expect("push");
    server.kill();
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..4u64)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { c.push("e", &[i], &[1.0; 4]).await })
        })
        .collect();
    for call in calls {
        let result = tokio::time::timeout(std::time::Duration::from_secs(40), call)
            .await
            .expect("a call to a dead server ends within one coordinator search")
            .expect("task");
        let err = result.expect_err("the server is dead");
        // A push sent on the connection before the client saw it close has an unknown
        // outcome; one sent after is UNAVAILABLE. Either is what README documents.
        let seen = strata_tests::chaos::statuses::seen(&err);
        assert!(
            matches!(
                seen,
                strata_tests::chaos::statuses::Seen::Code(tonic::Code::Unavailable)
                    | strata_tests::chaos::statuses::Seen::Ambiguous
            ),
            "{err}"
        );
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(35),
        "{:?}",
        started.elapsed()
    );
}

/// A checkpoint into a full disk answered `INTERNAL` (logged as strata's own fault); it is
/// `RESOURCE_EXHAUSTED`, the server keeps serving, and once there is room it succeeds.
#[tokio::test]
async fn checkpoint_into_a_full_disk_is_resource_exhausted_and_serving_goes_on() {
    use strata_tests::chaos::faults::{fill, Tmpfs};
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let Some(_mount) = Tmpfs::mount(&data, "8m") else {
        return;
    };
    let server =
        strata_tests::DevServer::start(&data, &["--memory-reserve", "0", "--huge-pages", "false"])
            .expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(strata_tests::table_spec("e", 4, "sgd", 1.0))
        .await
        .expect("create");
    client.push("e", &[1, 2], &[1.0; 8]).await.expect("push");
    let ballast = fill(&data).expect("fill");
    let err = client.checkpoint().await.expect_err("the disk is full");
    assert_eq!(err.code(), Some(tonic::Code::ResourceExhausted), "{err}");
    client.push("e", &[1, 2], &[1.0; 8]).await.expect("push");
    assert_eq!(client.pull("e", &[1]).await.expect("pull"), vec![-2.0; 4]);
    std::fs::remove_file(ballast).expect("free");
    assert_eq!(client.checkpoint().await.expect("room again").state, "ok");
}

/// A checkpoint that a node refused because the map had moved on while it ran (the node
/// was stopped past the heartbeat timeout, marked down, then back) answered
/// `FAILED_PRECONDITION`; it is `ABORTED`, as when the coordinator sees the change itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoint_across_a_map_change_is_aborted() {
    let root = tempfile::tempdir().expect("tempdir");
    let cluster = strata_tests::cluster::Cluster::start_with(
        root.path(),
        3,
        &["--heartbeat-timeout", "1s"],
        &["--memory-reserve", "0", "--huge-pages", "false"],
    )
    .await
    .expect("cluster");
    let client = cluster.client().await.expect("client");
    client
        .create_table(strata_tests::table_spec("e", 4, "sgd", 1.0))
        .await
        .expect("create");
    let stopped =
        strata_tests::chaos::faults::Stopped::stop(cluster.shards[1].0.pid()).expect("stop");
    let c = client.clone();
    let call = tokio::spawn(async move { c.checkpoint().await });
    // Marked down after 1 s (the epoch moves), back up once it runs again (it moves again).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    drop(stopped);
    let result = tokio::time::timeout(std::time::Duration::from_secs(30), call)
        .await
        .expect("the checkpoint ends")
        .expect("task");
    match result {
        Err(e) => assert_eq!(e.code(), Some(tonic::Code::Aborted), "{e}"),
        Ok(info) => panic!("a checkpoint across a map change succeeded: {info:?}"),
    }
}
