//! Bad input to the resharding operations gets a clear status and changes nothing: resize
//! counts, plans that are not JSON or do not fit the cluster, unknown nodes, cancel with no
//! plan, and the shard servers' internal migration calls. Also the CLI: plans are printed and
//! not started without confirmation; `shards resize` on a dev node is a live metadata change.

use strata_proto::v1 as pb;
use strata_tests::cluster::{apply, finished, Cluster};
use strata_tests::{cli, last_json, table_spec, DevServer};
use tonic::Code;

async fn coordinator(
    address: &str,
) -> pb::coordinator_client::CoordinatorClient<tonic::transport::Channel> {
    pb::coordinator_client::CoordinatorClient::connect(format!("http://{address}"))
        .await
        .expect("connect")
}

#[tokio::test]
async fn resharding_requests_that_cannot_be_served_are_refused_clearly() {
    let root = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(root.path(), 2, &["--shards", "4"])
        .await
        .expect("cluster");
    let address = cluster.coordinator.address().to_string();
    let client = cluster.client().await.expect("client");
    client
        .create_table(table_spec("t", 4, "sgd", 1.0))
        .await
        .expect("table");
    let mut c = coordinator(&address).await;
    let epoch = client.status().await.expect("status").epoch;

    for count in [0, 4097] {
        let e = c
            .resize_shards(pb::ResizeShardsRequest {
                count,
                dry_run: true,
                ..Default::default()
            })
            .await
            .expect_err("bad count");
        assert_eq!(e.code(), Code::InvalidArgument, "count {count}: {e:?}");
    }
    let e = c
        .apply_plan(pb::ApplyPlanRequest {
            plan_json: "{not json".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad json");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    // A plan made for this layout, then altered: refused as stale.
    let plan = c
        .resize_shards(pb::ResizeShardsRequest {
            count: 7,
            dry_run: true,
            ..Default::default()
        })
        .await
        .expect("dry run")
        .into_inner();
    assert!(
        plan.plan_text.contains("7 target shards"),
        "{}",
        plan.plan_text
    );
    let mut altered: serde_json::Value = serde_json::from_str(&plan.plan_json).expect("json");
    altered["moves"] = serde_json::json!([]);
    let e = c
        .apply_plan(pb::ApplyPlanRequest {
            plan_json: altered.to_string(),
            ..Default::default()
        })
        .await
        .expect_err("stale plan");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    let e = c
        .plan_rebalance(pb::PlanRebalanceRequest {
            drain_node: "no-such-node".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown node");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let bad_rebalances = [
        (
            "unknown objective",
            "speed",
            "",
            None,
            None,
            "unknown objective",
        ),
        (
            "drain with an objective",
            "topology",
            "n1",
            None,
            None,
            "drain",
        ),
        (
            "imbalance below 1",
            "topology",
            "",
            Some(0.5),
            None,
            "max_imbalance",
        ),
        (
            "negative payback",
            "topology",
            "",
            None,
            Some(-1.0),
            "payback",
        ),
        (
            "NaN imbalance",
            "topology",
            "",
            Some(f64::NAN),
            None,
            "max_imbalance",
        ),
    ];
    for (what, objective, drain, max_imbalance, payback_s, needle) in bad_rebalances {
        let e = c
            .plan_rebalance(pb::PlanRebalanceRequest {
                drain_node: drain.into(),
                objective: objective.into(),
                max_imbalance,
                payback_s,
            })
            .await
            .expect_err(what);
        assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
        assert!(e.message().contains(needle), "{what}: {e:?}");
    }
    let e = c
        .cancel_plan(pb::CancelPlanRequest {})
        .await
        .expect_err("nothing to cancel");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert_eq!(
        client.status().await.expect("status").epoch,
        epoch,
        "refused requests change nothing"
    );

    // The shard servers' internal calls check their input too.
    let status = client.status().await.expect("status");
    let node = status.nodes[0].node.clone().unwrap_or_default();
    let served = status
        .shards
        .iter()
        .find(|s| s.primary == node.id)
        .cloned()
        .unwrap_or_default();
    let other = status
        .shards
        .iter()
        .find(|s| s.primary != node.id)
        .cloned()
        .unwrap_or_default();
    let mut shard =
        pb::shard_control_client::ShardControlClient::connect(format!("http://{}", node.address))
            .await
            .expect("shard");
    let out = |start, end| pb::MigrateOutRequest {
        migration_id: "m".into(),
        slot_start: start,
        slot_end: end,
        destination: "127.0.0.1:1".into(),
        max_bytes_per_s: 0,
    };
    let e = shard
        .migrate_out(out(10, 5000))
        .await
        .expect_err("beyond the slots");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = shard
        .migrate_out(out(other.slot_start, other.slot_end))
        .await
        .expect_err("not served here");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let first = pb::ImportChunk {
        migration_id: "m".into(),
        slot_start: served.slot_start,
        slot_end: served.slot_end,
        ..Default::default()
    };
    let e = shard
        .import_rows(tokio_stream::iter(vec![first]))
        .await
        .expect_err("importing a served range");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let e = shard
        .import_rows(tokio_stream::iter(vec![pb::ImportChunk::default()]))
        .await
        .expect_err("no move named");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // A chunk whose rows do not match the table's width is refused and nothing is kept.
    let chunks = vec![
        pb::ImportChunk {
            migration_id: "m2".into(),
            slot_start: other.slot_start,
            slot_end: other.slot_end,
            ..Default::default()
        },
        pb::ImportChunk {
            table: "t".into(),
            row_floats: 3,
            ids: strata_tests::ids_bytes(&[1]),
            rows: strata_tests::f32_bytes(&[1.0, 2.0, 3.0]),
            ..Default::default()
        },
    ];
    let e = shard
        .import_rows(tokio_stream::iter(chunks))
        .await
        .expect_err("wrong row width");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let rows = client.status().await.expect("status").tables[0].rows;
    assert_eq!(rows, 0, "nothing imported");

    // The CLI prints a plan and does not start it without --yes when not on a terminal.
    let out = cli(&address, &["shards", "resize", "--count", "6"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("moves") || stdout.contains("no moves"),
        "{stdout}"
    );
    assert!(stderr.contains("--yes"), "{stderr}");
    // With --yes it runs to the end and `status --json` shows the plan and the layout.
    let out = cli(&address, &["shards", "resize", "--count", "6", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = last_json(&cli(&address, &["status", "--json"]));
    assert_eq!(status["shards"].as_array().map(Vec::len), Some(6));
    assert_eq!(status["plan"]["state"], "done");
    // And a rebalance of a balanced cluster has no moves.
    let plan = client.plan_rebalance("").await.expect("plan");
    let id = apply(&client, plan.plan_json, 0).await.expect("apply");
    finished(&address, &id)
        .await
        .expect("empty plan is done at once");
}

#[tokio::test]
async fn a_dev_node_resizes_in_place() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = DevServer::start(root.path(), &["--shards", "4"]).expect("dev");
    let client = dev.client().await.expect("client");
    client
        .create_table(table_spec("t", 4, "sgd", 1.0))
        .await
        .expect("table");
    let ids: Vec<u64> = (0..100).collect();
    client.push("t", &ids, &vec![1.0; 400]).await.expect("push");
    let epoch = client.epoch();
    let out = cli(
        &dev.address,
        &["shards", "resize", "--count", "16", "--yes"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = client.status().await.expect("status");
    assert_eq!(status.shards.len(), 16);
    assert!(status.epoch > epoch);
    let rows = client.pull("t", &ids).await.expect("pull after resize");
    assert!(
        rows.iter().all(|&v| v == -1.0),
        "rows untouched by the resize"
    );
    let mut c = coordinator(&dev.address).await;
    let e = c
        .resize_shards(pb::ResizeShardsRequest {
            count: 0,
            dry_run: false,
            ..Default::default()
        })
        .await
        .expect_err("zero shards");
    assert_eq!(e.code(), Code::InvalidArgument);
}
