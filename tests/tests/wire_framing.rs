//! Pull and Push are read and written by hand on both sides (`strata_proto::wire`): the
//! same bytes as tonic's codec, payloads split over many HTTP/2 frames, and malformed or
//! unsupported framing refused with a clear status and nothing applied.

use bytes::Bytes;
use strata_proto::v1 as pb;
use strata_proto::v1::coordinator_client::CoordinatorClient;
use strata_proto::v1::parameter_client::ParameterClient;
use strata_proto::wire::{self, ChunkBody};
use strata_tests::{f32_bytes, f32s, ids_bytes, table_spec, DevServer};
use tonic::body::Body;
use tonic::transport::Channel;
use tonic::{Code, Status};

struct Fixture {
    _dir: tempfile::TempDir,
    server: DevServer,
    channel: Channel,
}

async fn fixture(dim: u32) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(dir.path(), &[]).expect("start");
    let channel = server.channel().await.expect("channel");
    CoordinatorClient::new(channel.clone())
        .create_table(pb::CreateTableRequest {
            spec: Some(table_spec("t", dim, "sgd", 1.0)),
        })
        .await
        .expect("create");
    Fixture {
        _dir: dir,
        server,
        channel,
    }
}

/// Sends `chunks` as the body of a unary call to `path`; the status the server answers.
async fn raw_status(channel: &Channel, path: &'static str, chunks: Vec<Bytes>) -> Status {
    match wire::call(channel, path, Body::new(ChunkBody::new(chunks)), 64 << 20).await {
        Ok(_) => Status::ok(""),
        Err(status) => status,
    }
}

fn framed(message: &[u8], compressed: bool, declared: Option<u32>) -> Bytes {
    let mut out = vec![u8::from(compressed)];
    out.extend_from_slice(&declared.unwrap_or(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    Bytes::from(out)
}

fn concat(chunks: Vec<Bytes>) -> Vec<u8> {
    chunks.iter().flat_map(|c| c.iter().copied()).collect()
}

async fn values(channel: &Channel, ids: &[u64]) -> Vec<f32> {
    let resp = ParameterClient::new(channel.clone())
        .max_decoding_message_size(64 << 20)
        .pull(pb::PullRequest {
            table: "t".into(),
            ids: ids_bytes(ids),
            epoch: 0,
        })
        .await
        .expect("pull")
        .into_inner();
    f32s(&resp.values)
}

#[tokio::test]
async fn payloads_over_many_frames_round_trip_between_both_encoders() {
    // 16k rows of dim 64: 4 MiB of gradients, several HTTP/2 frames of at most 1 MiB.
    let f = fixture(64).await;
    let ids: Vec<u64> = (0..16_384u64).map(|i| i * 7 + 3).collect();
    let grads: Vec<f32> = (0..ids.len() * 64).map(|i| (i % 97) as f32).collect();
    let client = f.server.client().await.expect("client");
    // Hand-framed push (the client's path), read back by tonic's generated client...
    assert_eq!(client.push("t", &ids, &grads).await.expect("push"), 16_384);
    let expected: Vec<f32> = grads.iter().map(|g| -g).collect();
    assert_eq!(values(&f.channel, &ids).await, expected);
    // ...and a tonic-encoded push read back by the hand-framed pull.
    ParameterClient::new(f.channel.clone())
        .max_encoding_message_size(64 << 20)
        .push(pb::PushRequest {
            table: "t".into(),
            ids: ids_bytes(&ids),
            grads: f32_bytes(&grads),
            ..Default::default()
        })
        .await
        .expect("tonic push");
    let twice: Vec<f32> = grads.iter().map(|g| -2.0 * g).collect();
    assert_eq!(client.pull("t", &ids).await.expect("pull"), twice);
}

#[tokio::test]
async fn malformed_framing_is_invalid_argument_and_applies_nothing() {
    let f = fixture(4).await;
    let ids = [1u64, 2];
    let good = wire::push_request("t", ids_bytes(&ids), Bytes::from(vec![0u8; 32]), 0);
    let good_bytes = concat(good.finish().expect("small"));
    let message = &good_bytes[wire::GRPC_PREFIX..];

    // ids as a varint: the wrong wire type for field 2.
    let wrong_type = [&[0x0a, 1, b't', 0x10, 5][..]].concat();
    let s = raw_status(
        &f.channel,
        wire::PUSH_PATH,
        vec![framed(&wrong_type, false, None)],
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("PushRequest"), "{s:?}");

    // Compressed flag without a negotiated encoding.
    let s = raw_status(
        &f.channel,
        wire::PUSH_PATH,
        vec![framed(message, true, None)],
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("compressed"), "{s:?}");

    // The prefix announces more bytes than the body carries.
    let declared = Some(message.len() as u32 + 10);
    let s = raw_status(
        &f.channel,
        wire::PUSH_PATH,
        vec![framed(message, false, declared)],
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("ended after"), "{s:?}");

    // Two messages in a unary call.
    let two = vec![framed(message, false, None), framed(message, false, None)];
    let s = raw_status(&f.channel, wire::PUSH_PATH, two).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");

    // No message at all.
    let s = raw_status(&f.channel, wire::PULL_PATH, Vec::new()).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");

    // A message larger than the server's limit is refused before it is read.
    let s = raw_status(
        &f.channel,
        wire::PUSH_PATH,
        vec![framed(message, false, Some(u32::MAX))],
    )
    .await;
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");

    // Nothing was applied; a well-formed message, sent in one-byte frames, is.
    assert_eq!(values(&f.channel, &ids).await, vec![0.0; 8]);
    let ones: Vec<u8> = [1.0f32; 8].iter().flat_map(|g| g.to_le_bytes()).collect();
    let push = wire::push_request("t", ids_bytes(&ids), Bytes::from(ones), 0);
    let pieces: Vec<Bytes> = concat(push.finish().expect("small"))
        .iter()
        .map(|b| Bytes::copy_from_slice(&[*b]))
        .collect();
    let s = raw_status(&f.channel, wire::PUSH_PATH, pieces).await;
    assert_eq!(s.code(), Code::Ok, "{s:?}");
    assert_eq!(values(&f.channel, &ids).await, vec![-1.0; 8]);
}

#[tokio::test]
async fn an_undecodable_message_to_a_generated_service_is_invalid_argument() {
    let f = fixture(4).await;
    // CreateTableRequest whose field 1 (spec, a message) holds a truncated submessage.
    let garbage = [0x0a, 0x05, 0x0a, 0x09, b'x'];
    let s = raw_status(
        &f.channel,
        "/strata.v1.Coordinator/CreateTable",
        vec![framed(&garbage, false, None)],
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("malformed"), "{s:?}");
    let tables = CoordinatorClient::new(f.channel.clone())
        .list_tables(pb::ListTablesRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(tables.tables.len(), 1, "nothing was created: {tables:?}");
}
