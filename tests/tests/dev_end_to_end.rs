//! End to end through a real `strata-server dev` process: client, CLI, metrics, health.

use strata_tests::{cli, last_json, table_spec, DevServer};

#[tokio::test]
async fn client_pull_push_round_trip_through_a_dev_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &[]).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("emb", 4, "sgd", 1.0))
        .await
        .expect("create");

    let ids = [3u64, 1, 3, 99];
    let rows = client.pull("emb", &ids).await.expect("pull");
    assert_eq!(
        rows,
        vec![0.0; 16],
        "zeros initializer, duplicates expanded"
    );

    let grads: Vec<f32> = (0..16).map(|i| i as f32).collect();
    let applied = client.push("emb", &ids, &grads).await.expect("push");
    assert_eq!(applied, 3, "three distinct rows");
    let rows = client.pull("emb", &[3, 1, 99]).await.expect("pull");
    // id 3 got rows 0 and 2 summed: [0+8, 1+9, 2+10, 3+11].
    assert_eq!(&rows[..4], &[-8.0, -10.0, -12.0, -14.0]);
    assert_eq!(&rows[4..8], &[-4.0, -5.0, -6.0, -7.0]);
    assert_eq!(&rows[8..], &[-12.0, -13.0, -14.0, -15.0]);

    let mut out = vec![0.0f32; 8];
    client
        .pull_into("emb", &[1, 99], &mut out)
        .await
        .expect("pull_into");
    assert_eq!(&out[..4], &rows[4..8]);
    let mut wrong = vec![0.0f32; 6];
    assert!(client.pull_into("emb", &[1, 99], &mut wrong).await.is_err());
}

#[tokio::test]
async fn cli_walkthrough_with_json_forms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &[]).expect("start");
    let addr = server.address.clone();
    let out = cli(
        &addr,
        &[
            "table",
            "create",
            "clicks",
            "--dim",
            "2",
            "--optimizer",
            "sgd",
            "--lr",
            "1",
            "--init",
            "zeros",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = cli(
        &addr,
        &[
            "push", "--table", "clicks", "--ids", "1,2", "--grads", "1,2,3,4",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = cli(
        &addr,
        &["pull", "--table", "clicks", "--ids", "1,2,3", "--json"],
    );
    assert!(out.status.success());
    let v = last_json(&out);
    assert_eq!(v["table"], "clicks");
    assert_eq!(v["dim"], 2);
    assert_eq!(v["ids"], serde_json::json!([1, 2, 3]));
    assert_eq!(
        v["values"],
        serde_json::json!([[-1.0, -2.0], [-3.0, -4.0], [0.0, 0.0]])
    );

    let out = cli(&addr, &["status", "--json"]);
    assert!(out.status.success());
    let v = last_json(&out);
    assert!(v["epoch"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(v["nodes"][0]["state"], "up");
    assert_eq!(v["shards"].as_array().map(|a| a.len()), Some(8));
    assert_eq!(v["tables"][0]["name"], "clicks");
    assert_eq!(v["tables"][0]["rows"], 3);
    let shard_rows: u64 = v["shards"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["rows"].as_u64()).sum())
        .unwrap_or(0);
    assert_eq!(shard_rows, 3, "every row is counted in its shard: {v}");

    let out = cli(&addr, &["table", "list", "--json"]);
    assert_eq!(last_json(&out)["tables"][0]["dim"], 2);

    // Errors a person understands, with a non-zero exit.
    let out = cli(&addr, &["pull", "--table", "nope", "--ids", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found") && err.contains("nope"), "{err}");
    let out = cli(
        &addr,
        &[
            "push", "--table", "clicks", "--ids", "1,2", "--grads", "1,2,3",
        ],
    );
    assert!(!out.status.success());
    let out = cli(
        &addr,
        &["table", "create", "bad", "--dim", "2", "--init", "gaussian"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("zeros, uniform:A or normal:STD"));

    let out = cli(&addr, &["table", "drop", "clicks", "--yes"]);
    assert!(out.status.success());
    let out = cli(&addr, &["table", "list", "--json"]);
    assert_eq!(last_json(&out)["tables"], serde_json::json!([]));
}

#[tokio::test]
async fn cli_reports_an_unreachable_cluster_clearly() {
    // Port 1 on loopback: nothing listens there.
    let out = cli("127.0.0.1:1", &["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn dense_tensors_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &[]).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_dense(strata_proto::v1::DenseSpec {
            name: "mlp.w".into(),
            shape: vec![2, 3],
            optimizer: table_spec("x", 1, "sgd", 0.5).optimizer,
            initializer: None,
            seed: 0,
        })
        .await
        .expect("create dense");
    let (values, shape) = client.pull_dense("mlp.w").await.expect("pull");
    assert_eq!(shape, vec![2, 3]);
    assert_eq!(values.len(), 6);
    client
        .push_dense("mlp.w", &[2.0; 6])
        .await
        .expect("push dense");
    let (after, _) = client.pull_dense("mlp.w").await.expect("pull");
    for (a, b) in after.iter().zip(&values) {
        assert_eq!(*a, b - 1.0);
    }
    let err = client
        .push_dense("mlp.w", &[1.0; 5])
        .await
        .expect_err("wrong length");
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument));
}

#[tokio::test]
async fn metrics_and_health_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &["--metrics-listen", "127.0.0.1:0"]).expect("start");
    let client = server.client().await.expect("client");
    client
        .create_table(table_spec("m", 2, "sgd", 1.0))
        .await
        .expect("create");
    client.pull("m", &[1, 2, 3]).await.expect("pull");
    let _ = client.pull("missing", &[1]).await;

    let metrics_addr = server.metrics_address.clone().expect("metrics address");
    let body = http_get(&metrics_addr, "/metrics").await;
    assert!(body.contains("strata_rows_pulled_total 3"), "{body}");
    assert!(body.contains("strata_rpc_duration_seconds"), "{body}");
    assert!(
        body.contains("strata_table_rows{table=\"m\",tier=\"host\"} 3"),
        "{body}"
    );
    assert!(body.contains("code=\"NotFound\""), "{body}");

    let channel = server.channel().await.expect("channel");
    let mut health = tonic_health_client(channel);
    let resp = health
        .check(HealthCheckRequest {
            service: "strata.v1.Parameter".into(),
        })
        .await
        .expect("health");
    assert_eq!(resp.into_inner().status, 1, "SERVING");
}

use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

fn tonic_health_client(
    channel: tonic::transport::Channel,
) -> HealthClient<tonic::transport::Channel> {
    HealthClient::new(channel)
}

async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect metrics");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("read");
    body
}

/// A test that lists the services through one version of gRPC server reflection.
macro_rules! reflection_test {
    ($name:ident, $version:ident) => {
        #[tokio::test]
        async fn $name() {
            use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
            use tonic_reflection::pb::$version::ServerReflectionRequest;

            let dir = tempfile::tempdir().expect("tempdir");
            let server = DevServer::start(dir.path(), &[]).expect("start");
            let channel = server.channel().await.expect("channel");
            let mut reflection = ServerReflectionClient::new(channel);
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut responses = reflection
                .server_reflection_info(tokio_stream::iter(vec![request]))
                .await
                .expect("reflection")
                .into_inner();
            let first = responses
                .message()
                .await
                .expect("message")
                .expect("one response");
            let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
                panic!("unexpected reflection answer: {first:?}");
            };
            let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            for service in ["strata.v1.Parameter", "strata.v1.Coordinator"] {
                assert!(names.contains(&service.to_string()), "{names:?}");
            }
        }
    };
}

reflection_test!(reflection_lists_the_strata_services, v1);
// Python's grpcio-reflection and older grpcurl speak only v1alpha.
reflection_test!(reflection_v1alpha_lists_the_strata_services, v1alpha);

/// Polls `/metrics` until `series` reads `value` (10 s at most); returns the last body.
async fn wait_metric(addr: &str, series: &str, value: u64) -> String {
    let want = format!("{series} {value}\n");
    let mut body = String::new();
    for _ in 0..200 {
        body = http_get(addr, "/metrics").await;
        if body.contains(&want) {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{series} never read {value}: {body}");
}

/// The value of a metric series without labels in a `/metrics` body.
fn metric_value(body: &str, series: &str) -> Option<u64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn memory_reserve_feeds_new_rows_and_refills_itself() {
    const RESERVE: u64 = 64 << 20;
    const CHUNK: u64 = 2 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(
        dir.path(),
        &[
            "--memory-reserve",
            "64MiB",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    )
    .expect("start");
    let metrics = server.metrics_address.clone().expect("metrics address");
    wait_metric(&metrics, "strata_memory_reserve_bytes", RESERVE).await;

    // Adam keeps a step count in each row's metadata words, which only the chunk's zeroing
    // resets: a recycled chunk with stale words would change the first step's bias correction.
    let client = server.client().await.expect("client");
    let ids: Vec<u64> = (0..20_000).collect();
    let grads: Vec<f32> = (0..ids.len() * 64).map(|i| (i % 7) as f32 - 3.5).collect();
    let first_step = |table: &'static str| {
        let client = client.clone();
        let (ids, grads) = (ids.clone(), grads.clone());
        async move {
            client
                .create_table(table_spec(table, 64, "adam", 0.01))
                .await
                .expect("create");
            client
                .pull(table, &ids)
                .await
                .expect("pull creates the rows");
            client.push(table, &ids, &grads).await.expect("push");
            client.pull(table, &ids).await.expect("pull")
        }
    };
    // Rows in every stripe take more chunks (one per stripe) than the reserve holds.
    let fresh = first_step("first").await;
    assert!(
        fresh.iter().all(|w| w.is_finite() && *w != 0.0),
        "one Adam step from zero"
    );
    // The refill thread replaces what the rows took: the reserve is full again, and every
    // chunk the table holds came from it or, when it ran dry, was mapped on demand.
    let body = wait_metric(&metrics, "strata_memory_reserve_bytes", RESERVE).await;
    let taken = metric_value(&body, "strata_memory_reserve_taken_chunks_total").expect("taken");
    let missed = metric_value(&body, "strata_memory_reserve_missed_chunks_total").expect("missed");
    assert!(
        taken >= RESERVE / CHUNK,
        "the rows took at least the whole first fill: {taken} chunks"
    );
    assert!(
        taken + missed >= 64,
        "one chunk per stripe at least: {taken} taken, {missed} missed"
    );

    // A dropped table's chunks go back to the OS or, where the reserve has room, into it,
    // zeroed: a new table's first step is bit for bit the first table's first step.
    client.drop_table("first").await.expect("drop");
    let recycled = first_step("second").await;
    assert_eq!(
        recycled, fresh,
        "rows in reserve chunks start from zeroed metadata"
    );
    let body = wait_metric(&metrics, "strata_memory_reserve_bytes", RESERVE).await;
    let taken_after =
        metric_value(&body, "strata_memory_reserve_taken_chunks_total").expect("taken");
    assert!(
        taken_after > taken,
        "the second table took reserve chunks too"
    );
}

/// Mappings of process `pid` that are advised into transparent huge pages ("hg" in smaps).
#[cfg(target_os = "linux")]
fn huge_page_advised_mappings(pid: u32) -> usize {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    smaps
        .lines()
        .filter_map(|l| l.strip_prefix("VmFlags:"))
        .filter(|flags| flags.split_whitespace().any(|f| f == "hg"))
        .count()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test]
async fn huge_pages_are_asked_for_by_default_and_not_with_the_flag_off() {
    // Without THP in the kernel, madvise refuses the advice and no mapping carries it.
    let kernel_has_thp = std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists();
    for (extra, wanted) in [(&[][..], true), (&["--huge-pages", "false"][..], false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = vec!["--memory-reserve", "8MiB"];
        args.extend_from_slice(extra);
        let server = DevServer::start(dir.path(), &args).expect("start");
        // The process re-executed itself (same pid) with glibc's heap in huge pages.
        let environ = std::fs::read(format!("/proc/{}/environ", server.pid())).expect("environ");
        let tunable = environ
            .split(|&b| b == 0)
            .any(|var| var == b"GLIBC_TUNABLES=glibc.malloc.hugetlb=1");
        assert_eq!(tunable, wanted, "huge-page heap tunable with {extra:?}");
        // It serves either way; rows go into the reserve's chunks.
        let client = server.client().await.expect("client");
        client
            .create_table(table_spec("t", 8, "sgd", 1.0))
            .await
            .expect("create");
        let rows = client.pull("t", &[1, 2, 3]).await.expect("pull");
        assert_eq!(rows.len(), 3 * 8);
        if kernel_has_thp {
            let advised = huge_page_advised_mappings(server.pid());
            assert_eq!(
                advised > 0,
                wanted,
                "{advised} huge-page mappings with {extra:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_dev_server_refuses_shard_servers_of_other_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &[]).expect("start");
    let channel = server.channel().await.expect("channel");
    let mut coordinator = strata_proto::v1::coordinator_client::CoordinatorClient::new(channel);
    let status = coordinator
        .register_node(strata_proto::v1::RegisterNodeRequest {
            address: "127.0.0.1:1".into(),
            ..Default::default()
        })
        .await
        .expect_err("a dev server has its node in process");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("strata-server coordinator"),
        "{status:?}"
    );
    let map = coordinator
        .get_cluster_map(strata_proto::v1::GetClusterMapRequest {})
        .await
        .expect("map")
        .into_inner();
    assert_eq!(map.nodes.len(), 1, "only the in-process node: {map:?}");
}

#[tokio::test]
async fn idle_sockets_that_never_start_http2_are_closed() {
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(
        dir.path(),
        &[
            "--handshake-timeout",
            "500ms",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    )
    .expect("start");
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(
            tokio::net::TcpStream::connect(&server.address)
                .await
                .expect("connect"),
        );
    }
    for socket in &mut idle {
        // The server's own SETTINGS come first; then the connection ends.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            socket.read_to_end(&mut rest),
        )
        .await
        .expect("closed within the deadline");
        assert!(rest.len() < 1024, "{read:?} after {} bytes", rest.len());
    }
    let metrics = server.metrics_address.clone().expect("metrics address");
    wait_metric(&metrics, "strata_connections_handshake_timeouts_total", 3).await;
    // Clients that speak HTTP/2 are served as before.
    let client = server.client().await.expect("client");
    client
        .create_table(strata_tests::table_spec("t", 2, "sgd", 1.0))
        .await
        .expect("create");
}
