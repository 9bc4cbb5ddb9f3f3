//! Micro-benchmarks of the hot paths the W1 end-to-end figure depends on, one W1 step's
//! worth of rows each (2302 unique ids, dim 64): request decode and response encode (the
//! hand-framed path served today and tonic's codec path it replaced), the client's dedup
//! and split by node, host-tier gather and Adagrad apply through the engine, and the bench's
//! own W1 batch draw (it runs on the cores the server runs on).
//!
//! Run: `cargo bench -p strata-bench --bench hot_paths` (`-- --quick` for a short run).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;
use strata_bench::workload::{IdStream, WorkloadSpec};
use strata_client::batch::{Dedup, Split};
use strata_client::routing::Routing;
use strata_engine::{Engine, EngineConfig};
use strata_proto::v1 as pb;
use strata_proto::wire::payload::{
    f32s_from_bytes, f32s_from_chunks, f32s_into_bytes, ids_from_bytes, ids_from_chunks,
};
use strata_proto::wire::{self, Chunks, PushRequestView};
use strata_storage::init::SplitMix64;
use strata_storage::optimizer::{OptimizerConfig, OptimizerKind};
use strata_storage::spec::{InitializerConfig, TableSpec, TierKind};

const DIM: usize = 64;
const ROWS: usize = 2302;

fn step_ids(seed: u64, keys: u64) -> Vec<u64> {
    let mut rng = SplitMix64::new(seed);
    let mut ids: Vec<u64> = (0..ROWS + ROWS / 8)
        .map(|_| rng.next_u64() % keys)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(ROWS);
    ids
}

fn le_bytes<T: bytemuck::Pod>(v: &[T]) -> Bytes {
    Bytes::copy_from_slice(bytemuck::cast_slice(v))
}

fn decode_and_encode(c: &mut Criterion) {
    let ids = step_ids(1, 10_000_000);
    let grads: Vec<f32> = (0..ids.len() * DIM).map(|i| i as f32 * 1e-6).collect();
    let wire = pb::PushRequest {
        table: "w1".into(),
        ids: le_bytes(&ids),
        grads: le_bytes(&grads),
        ..Default::default()
    }
    .encode_to_vec();
    let wire = Bytes::from(wire);
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(ids.len() as u64));
    // As served: the message in the HTTP/2 frames it arrived in (here its first 4 KiB and
    // the rest), fields read in place; unaligned payloads are copied once.
    let mut frames = Chunks::new();
    frames.push(wire.slice(..4096));
    frames.push(wire.slice(4096..));
    g.bench_function("push request decode (hand-framed, 2 frames)", |b| {
        b.iter(|| {
            let view = PushRequestView::parse(&frames).expect("decode");
            let ids = ids_from_chunks(&frames, view.ids.clone()).expect("ids");
            let grads =
                f32s_from_chunks("grads", &frames, view.grads.clone(), 4 * DIM).expect("grads");
            black_box((ids.len(), grads.len()));
        })
    });
    // A step's gradients one byte off 4-byte alignment, as they usually lie in a frame.
    let mut shifted = vec![0u8; 1 + 4 * grads.len()];
    shifted[1..].copy_from_slice(bytemuck::cast_slice(&grads));
    g.bench_function(
        "push grads decode (unaligned in the frame: one copy)",
        |b| {
            b.iter(|| {
                let grads = f32s_from_bytes("grads", &shifted[1..], 4 * DIM).expect("grads");
                black_box(&*grads);
            })
        },
    );
    // What tonic's codec did: gather the frames into one buffer, then prost.
    g.bench_function("push request decode (tonic codec: gather + prost)", |b| {
        b.iter(|| {
            let mut buf = bytes::BytesMut::with_capacity(wire.len());
            buf.extend_from_slice(&wire[..4096]);
            buf.extend_from_slice(&wire[4096..]);
            let req = pb::PushRequest::decode(buf.freeze()).expect("decode");
            let ids = ids_from_bytes(&req.ids).expect("ids");
            let grads = f32s_from_bytes("grads", &req.grads, 4 * DIM).expect("grads");
            black_box((ids.len(), grads.len()));
        })
    });
    let values = f32s_into_bytes(grads.clone());
    g.bench_function("pull response encode (hand-framed chunks)", |b| {
        b.iter(|| {
            let w = wire::pull_response(values.clone(), DIM as u32);
            black_box(w.finish().expect("small").len());
        })
    });
    g.bench_function("pull response encode (tonic codec: into its buffer)", |b| {
        let mut buf = Vec::with_capacity(values.len() + 64);
        b.iter(|| {
            buf.clear();
            let resp = pb::PullResponse {
                values: values.clone(),
                dim: DIM as u32,
            };
            resp.encode(&mut buf).expect("encode");
            black_box(buf.len());
        })
    });
    g.finish();
}

fn client_split(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let map = pb::ClusterMap {
        epoch: 1,
        num_slots: 4096,
        nodes: (0..3)
            .map(|i| pb::NodeInfo {
                id: format!("n{i}"),
                address: format!("127.0.0.1:{}", 1000 + i),
                labels: Default::default(),
                state: "up".into(),
            })
            .collect(),
        shards: (0..8u32)
            .map(|s| pb::ShardInfo {
                id: s,
                slot_start: s * 512,
                slot_end: (s + 1) * 512,
                primary: format!("n{}", s % 3),
                ..Default::default()
            })
            .collect(),
    };
    let routing = Routing::from_map(&map, None, None).expect("routing");
    let mut draws = step_ids(2, 10_000_000);
    draws.extend_from_within(..ROWS / 4);
    let mut g = c.benchmark_group("client");
    g.throughput(Throughput::Elements(draws.len() as u64));
    g.bench_function("dedup + split by node (3 nodes, 25% duplicates)", |b| {
        b.iter(|| {
            let dedup = Dedup::new(&draws);
            let split = Split::new(&routing, &dedup.unique);
            black_box(split.parts.len());
        })
    });
    g.finish();
}

fn engine_paths(c: &mut Criterion) {
    let engine = Engine::new(EngineConfig::default());
    engine
        .create_table(TableSpec {
            name: "w1".into(),
            dim: DIM as u32,
            optimizer: OptimizerConfig::new(OptimizerKind::Adagrad {
                lr: 0.05,
                initial_accumulator: 0.1,
                epsilon: 0.0,
            }),
            initializer: InitializerConfig::Uniform { scale: 0.01 },
            seed: 1,
            tier: TierKind::Host,
        })
        .expect("table");
    let keys = 1_000_000u64;
    let all: Vec<u64> = (0..keys).collect();
    let mut out = vec![0.0f32; 65_536 * DIM];
    for chunk in all.chunks(65_536) {
        engine
            .pull("w1", chunk, &mut out[..chunk.len() * DIM])
            .expect("fill");
    }
    let steps: Vec<Vec<u64>> = (0..32).map(|s| step_ids(100 + s, keys)).collect();
    let grads: Vec<f32> = (0..ROWS * DIM)
        .map(|i| ((i % 7) as f32 - 3.0) * 1e-3)
        .collect();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(ROWS as u64));
    let mut k = 0;
    g.bench_function("host-tier gather (pull of existing rows)", |b| {
        b.iter(|| {
            let ids = &steps[k % steps.len()];
            k += 1;
            engine
                .pull("w1", ids, &mut out[..ids.len() * DIM])
                .expect("pull");
            black_box(out[0]);
        })
    });
    g.bench_function("adagrad apply (push of existing rows)", |b| {
        b.iter(|| {
            let ids = &steps[k % steps.len()];
            k += 1;
            black_box(
                engine
                    .push("w1", ids, &grads[..ids.len() * DIM])
                    .expect("push"),
            );
        })
    });
    g.finish();
}

fn batch_draw(c: &mut Criterion) {
    let spec = WorkloadSpec::w1();
    let mut stream = IdStream::new(&spec, 0).expect("W1 spec");
    let mut ids = Vec::new();
    let mut g = c.benchmark_group("bench");
    g.throughput(Throughput::Elements(spec.batch as u64));
    g.bench_function("W1 batch draw (4096 Zipf draws, sort, dedup)", |b| {
        b.iter(|| {
            stream.next_batch(&mut ids);
            black_box(ids.len());
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    decode_and_encode,
    client_split,
    engine_paths,
    batch_draw
);
criterion_main!(benches);
