//! 1 coordinator + 3 shard-server processes give exactly what one dev node gives for the
//! same sequence of pulls and pushes (values compared bit for bit).

use strata_proto::v1 as pb;
use strata_tests::cluster::Cluster;
use strata_tests::{table_spec, DevServer};

fn spec(name: &str, optimizer: &str) -> pb::TableSpec {
    let mut spec = table_spec(name, 8, optimizer, 0.05);
    spec.initializer = Some(pb::InitializerSpec {
        kind: "uniform".into(),
        scale: 0.1,
    });
    spec.seed = 11;
    spec
}

/// A deterministic batch with duplicates, drawn from a small LCG.
fn batch(step: u64, len: usize) -> Vec<u64> {
    let mut x = step.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % 3000
        })
        .collect()
}

/// Runs the sequence on `client` and returns every pulled value's bits.
async fn run(client: &strata_client::Client, table: &str) -> Vec<u32> {
    let mut seen = Vec::new();
    for step in 0..20u64 {
        let ids = batch(step, 257);
        let rows = client.pull(table, &ids).await.expect("pull");
        seen.extend(rows.iter().map(|v| v.to_bits()));
        let grads: Vec<f32> = rows
            .iter()
            .enumerate()
            .map(|(i, v)| v * 0.5 + (i % 7) as f32 * 0.01 - 0.03)
            .collect();
        client.push(table, &ids, &grads).await.expect("push");
    }
    let all: Vec<u64> = (0..3000).collect();
    let rows = client.pull(table, &all).await.expect("final pull");
    seen.extend(rows.iter().map(|v| v.to_bits()));
    seen
}

#[tokio::test]
async fn three_shard_servers_match_one_dev_node_bit_for_bit() {
    let root = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(root.path(), 3, &["--shards", "8"])
        .await
        .expect("cluster");
    let dev = DevServer::start(&root.path().join("dev"), &[]).expect("dev");
    let (c, d) = (
        cluster.client().await.expect("cluster client"),
        dev.client().await.expect("dev client"),
    );
    for optimizer in ["sgd", "adagrad"] {
        c.create_table(spec(optimizer, optimizer))
            .await
            .expect("create on cluster");
        d.create_table(spec(optimizer, optimizer))
            .await
            .expect("create on dev");
        let on_cluster = run(&c, optimizer).await;
        let on_dev = run(&d, optimizer).await;
        assert_eq!(on_cluster.len(), on_dev.len());
        assert!(
            on_cluster == on_dev,
            "{optimizer}: cluster differs from dev"
        );
    }
    let status = c.status().await.expect("status");
    let per_node: Vec<u64> = status.nodes.iter().map(|n| n.rows).collect();
    assert_eq!(status.nodes.len(), 3);
    assert!(
        status.nodes.iter().all(|n| n.shards > 0),
        "every node holds shards: {per_node:?}"
    );
}
