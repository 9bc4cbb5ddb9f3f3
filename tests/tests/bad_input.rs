//! Every bad input gets the status DESIGN.md names and leaves the table untouched.

use strata_proto::v1 as pb;
use strata_proto::v1::coordinator_client::CoordinatorClient;
use strata_proto::v1::parameter_client::ParameterClient;
use strata_tests::{f32_bytes, f32s, ids_bytes, table_spec, DevServer};
use tonic::transport::Channel;
use tonic::Code;

struct Fixture {
    _dir: tempfile::TempDir,
    _server: DevServer,
    param: ParameterClient<Channel>,
    coord: CoordinatorClient<Channel>,
}

const IDS: [u64; 3] = [10, 20, 30];

async fn fixture(extra: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), extra).expect("start");
    let channel = server.channel().await.expect("channel");
    let param = ParameterClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut coord = CoordinatorClient::new(channel);
    coord
        .create_table(pb::CreateTableRequest {
            spec: Some(table_spec("t", 4, "sgd", 1.0)),
        })
        .await
        .expect("create");
    let mut f = Fixture {
        _dir: dir,
        _server: server,
        param,
        coord,
    };
    // Give the rows known values: -1 everywhere.
    f.push("t", &IDS, &[1.0; 12]).await.expect("seed push");
    f
}

impl Fixture {
    async fn push(
        &mut self,
        table: &str,
        ids: &[u64],
        grads: &[f32],
    ) -> Result<u64, tonic::Status> {
        self.push_raw(table, ids_bytes(ids), f32_bytes(grads)).await
    }

    async fn push_raw(
        &mut self,
        table: &str,
        ids: bytes::Bytes,
        grads: bytes::Bytes,
    ) -> Result<u64, tonic::Status> {
        self.param
            .push(pb::PushRequest {
                table: table.into(),
                ids,
                grads,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().applied)
    }

    async fn values(&mut self) -> Vec<f32> {
        let resp = self
            .param
            .pull(pb::PullRequest {
                table: "t".into(),
                ids: ids_bytes(&IDS),
                epoch: 0,
            })
            .await
            .expect("pull")
            .into_inner();
        f32s(&resp.values)
    }

    async fn rows(&mut self) -> u64 {
        let list = self
            .coord
            .list_tables(pb::ListTablesRequest {})
            .await
            .expect("list")
            .into_inner();
        list.tables
            .iter()
            .find(|t| t.spec.as_ref().map(|s| s.name.as_str()) == Some("t"))
            .map(|t| t.rows)
            .unwrap_or(0)
    }

    /// Asserts the code and that the rows are unchanged (values -1, three rows).
    async fn assert_refused(
        &mut self,
        result: Result<u64, tonic::Status>,
        code: Code,
        needle: &str,
    ) {
        let status = result.expect_err("must be refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(
            status.message().contains(needle),
            "message {:?} lacks {needle:?}",
            status.message()
        );
        assert_eq!(self.values().await, vec![-1.0; 12], "state must not change");
        assert_eq!(self.rows().await, 3, "no row may be created");
    }
}

#[tokio::test]
async fn ids_not_a_multiple_of_8_bytes() {
    let mut f = fixture(&[]).await;
    let r = f
        .push_raw("t", vec![0u8; 12].into(), f32_bytes(&[1.0; 4]))
        .await;
    f.assert_refused(r, Code::InvalidArgument, "multiple of 8")
        .await;
    let status = f
        .param
        .pull(pb::PullRequest {
            table: "t".into(),
            ids: vec![1u8; 7].into(),
            epoch: 0,
        })
        .await
        .expect_err("pull with 7 bytes");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn grads_not_a_multiple_of_row_bytes() {
    let mut f = fixture(&[]).await;
    let r = f
        .push_raw("t", ids_bytes(&[40, 50]), vec![0u8; 30].into())
        .await;
    f.assert_refused(r, Code::InvalidArgument, "multiple of 16")
        .await;
}

#[tokio::test]
async fn dim_mismatch() {
    let mut f = fixture(&[]).await;
    // Rows of dim 2 for a dim-4 table: 2 ids × 2 = 4 floats = one dim-4 row.
    let r = f.push("t", &[40, 50], &[1.0, 1.0, 1.0, 1.0]).await;
    f.assert_refused(r, Code::InvalidArgument, "dim 4").await;
}

#[tokio::test]
async fn nan_and_inf_gradients() {
    let mut f = fixture(&[]).await;
    let mut grads = vec![1.0f32; 12];
    grads[7] = f32::NAN;
    let r = f.push("t", &IDS, &grads).await;
    f.assert_refused(r, Code::InvalidArgument, "index 7").await;
    grads[7] = f32::NEG_INFINITY;
    let r = f.push("t", &IDS, &grads).await;
    f.assert_refused(r, Code::InvalidArgument, "not finite")
        .await;
}

#[tokio::test]
async fn unknown_table_and_empty_names() {
    let mut f = fixture(&[]).await;
    let r = f.push("ghost", &IDS, &[1.0; 12]).await;
    f.assert_refused(r, Code::NotFound, "ghost").await;
    let r = f.push("", &IDS, &[1.0; 12]).await;
    f.assert_refused(r, Code::InvalidArgument, "empty").await;
    let status = f
        .coord
        .create_table(pb::CreateTableRequest {
            spec: Some(table_spec("", 4, "sgd", 1.0)),
        })
        .await
        .expect_err("empty table name");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = f
        .coord
        .create_table(pb::CreateTableRequest {
            spec: Some(table_spec("wide", 5000, "sgd", 1.0)),
        })
        .await
        .expect_err("dim over 4096");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = f
        .coord
        .create_table(pb::CreateTableRequest {
            spec: Some(table_spec("t", 4, "sgd", 1.0)),
        })
        .await
        .expect_err("duplicate");
    assert_eq!(status.code(), Code::AlreadyExists);
    let status = f
        .coord
        .create_table(pb::CreateTableRequest {
            spec: Some(table_spec("neg", 4, "adam", -1.0)),
        })
        .await
        .expect_err("negative lr");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = f
        .coord
        .create_table(pb::CreateTableRequest {
            spec: Some(table_spec("g", 4, "sgd", 1.0)).map(|mut s| {
                s.tier = "gpu".into();
                s
            }),
        })
        .await
        .expect_err("no gpu here");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("no CUDA device on node"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn oversized_batch() {
    let mut f = fixture(&["--max-batch-rows", "100"]).await;
    let ids: Vec<u64> = (1000..1101).collect();
    let r = f.push("t", &ids, &vec![1.0; ids.len() * 4]).await;
    f.assert_refused(r, Code::ResourceExhausted, "limit of 100")
        .await;
    let status = f
        .param
        .pull(pb::PullRequest {
            table: "t".into(),
            ids: ids_bytes(&ids),
            epoch: 0,
        })
        .await
        .expect_err("pull over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(f.rows().await, 3);
}

#[tokio::test]
async fn message_over_the_size_limit() {
    let mut f = fixture(&["--max-message-size", "64KiB"]).await;
    let ids: Vec<u64> = (1000..6000).collect();
    let r = f.push("t", &ids, &vec![1.0; ids.len() * 4]).await;
    let status = r.expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(f.values().await, vec![-1.0; 12]);
    assert_eq!(f.rows().await, 3);
}

#[tokio::test]
async fn memory_budget_exhausted_is_a_clear_error() {
    // 3 rows of dim 4 fit in 4 KiB; 200 more do not.
    let mut f = fixture(&["--memory-budget", "4KiB"]).await;
    let ids: Vec<u64> = (1000..1200).collect();
    let r = f.push("t", &ids, &vec![1.0; ids.len() * 4]).await;
    f.assert_refused(r, Code::ResourceExhausted, "memory budget")
        .await;
}

#[tokio::test]
async fn huge_names_are_refused_or_not_found_with_short_messages() {
    let mut f = fixture(&[]).await;
    let huge = "n".repeat(100_000);
    // A lookup of a 100 KB name: NOT_FOUND, and the message repeats only its start.
    let status = f
        .param
        .pull(pb::PullRequest {
            table: huge.clone(),
            ids: ids_bytes(&IDS),
            epoch: 0,
        })
        .await
        .expect_err("no such table");
    assert_eq!(status.code(), Code::NotFound, "{}", status.message().len());
    assert!(
        status.message().len() < 300 && status.message().contains("100000 bytes"),
        "{}",
        status.message()
    );
    // Creating one: INVALID_ARGUMENT naming the limit.
    let status = f
        .coord
        .create_table(pb::CreateTableRequest {
            spec: Some(table_spec(&"n".repeat(257), 4, "sgd", 1.0)),
        })
        .await
        .expect_err("name over 256 bytes");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("256"), "{status:?}");
    assert_eq!(f.rows().await, 3);
}

#[tokio::test]
async fn a_dense_tensor_over_the_memory_budget_is_refused_whole() {
    let mut f = fixture(&["--memory-budget", "64KiB"]).await;
    let status = f
        .coord
        .create_dense(pb::CreateDenseRequest {
            spec: Some(pb::DenseSpec {
                name: "w".into(),
                shape: vec![100, 100],
                optimizer: table_spec("x", 1, "adam", 0.1).optimizer,
                initializer: None,
                seed: 1,
            }),
        })
        .await
        .expect_err("120 KB of values and Adam state in a 64 KiB budget");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("memory budget"), "{status:?}");
    let listed = f
        .coord
        .list_tables(pb::ListTablesRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(listed.dense.is_empty(), "nothing was created: {listed:?}");
    assert_eq!(f.rows().await, 3);
}

#[tokio::test]
async fn finite_gradients_that_would_drive_a_row_to_infinity_are_refused() {
    let mut f = fixture(&[]).await;
    // SGD at lr 1: the rows go from -1 to about -3e38, still finite.
    f.push("t", &IDS, &[3.0e38; 12])
        .await
        .expect("finite result");
    let edge = f.values().await;
    assert!(edge.iter().all(|v| v.is_finite() && *v < -1e38), "{edge:?}");
    // A second step would reach -inf: refused whole, for the row of 30 only.
    let mut grads = vec![0.5f32; 12];
    grads[8..].fill(3.0e38);
    let status = f.push("t", &IDS, &grads).await.expect_err("non-finite");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("non-finite") && status.message().contains("[30]"),
        "{status:?}"
    );
    assert_eq!(f.values().await, edge, "nothing was applied");
    f.push("t", &IDS, &[-3.0e38; 12])
        .await
        .expect("a finite step back");
    assert_ne!(f.values().await, edge, "the rows still take steps");
}

#[tokio::test]
async fn a_dense_step_that_would_overflow_is_refused_and_changes_nothing() {
    let mut f = fixture(&[]).await;
    f.coord
        .create_dense(pb::CreateDenseRequest {
            spec: Some(pb::DenseSpec {
                name: "w".into(),
                shape: vec![8],
                optimizer: table_spec("x", 1, "adam", 0.1).optimizer,
                initializer: None,
                seed: 1,
            }),
        })
        .await
        .expect("create dense");
    let pull = |param: &mut ParameterClient<Channel>| {
        let mut param = param.clone();
        async move {
            let resp = param
                .pull_dense(pb::PullDenseRequest {
                    name: "w".into(),
                    ..Default::default()
                })
                .await
                .expect("pull dense")
                .into_inner();
            f32s(&resp.values)
        }
    };
    let push = |param: &mut ParameterClient<Channel>, g: f32| {
        let mut param = param.clone();
        async move {
            param
                .push_dense(pb::PushDenseRequest {
                    name: "w".into(),
                    grads: f32_bytes(&[g; 8]),
                    ..Default::default()
                })
                .await
        }
    };
    push(&mut f.param, 0.5).await.expect("a finite step");
    let before = pull(&mut f.param).await;
    // Adam's second moment squares the gradient: 3e38² overflows.
    let status = push(&mut f.param, 3.0e38).await.expect_err("overflow");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("non-finite"), "{status:?}");
    assert_eq!(pull(&mut f.param).await, before, "nothing was applied");
}

#[tokio::test]
async fn a_client_location_that_is_not_short_printable_text_is_refused() {
    let mut f = fixture(&[]).await;
    let mut request = tonic::Request::new(pb::PushRequest {
        table: "t".into(),
        ids: ids_bytes(&IDS),
        grads: f32_bytes(&[1.0; 12]),
        ..Default::default()
    });
    let long = format!("rack={}", "x".repeat(300));
    request.metadata_mut().insert(
        strata_proto::transport::CLIENT_LABELS_METADATA,
        long.parse().expect("ascii"),
    );
    let r = f.param.push(request).await.map(|r| r.into_inner().applied);
    f.assert_refused(r, Code::InvalidArgument, "strata-client-labels")
        .await;
}
