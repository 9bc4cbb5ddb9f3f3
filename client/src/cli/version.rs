//! `strata version`: the CLI's build, then what the cluster runs (the coordinator's and each
//! node's build); without a coordinator, the CLI's and the connection error.

use strata_client::{v1 as pb, Client, ClientError};

use super::identity::{
    build_text, cli_json, identity_fields, mixed_versions, mixed_warning, CLI_BUILD,
};
use super::output::{print_json, OutputArgs};

/// Prints the CLI's version and the cluster's; fails (exit status: unavailable) after
/// printing the CLI's when no coordinator answers.
pub async fn version(
    connect: impl std::future::Future<Output = Result<Client, ClientError>>,
    out: OutputArgs,
) -> anyhow::Result<()> {
    let status = match connect.await {
        Ok(client) => client.status().await,
        Err(e) => Err(e),
    };
    match status {
        Ok(s) if out.json() => print_json(&cluster_json(&s)),
        Ok(s) => print_cluster(&s),
        Err(e) if out.json() => {
            print_json(&serde_json::json!({
                "cli": cli_json(), "coordinator": null, "nodes": [],
                "mixed_versions": null, "error": e.to_string(),
            }));
            return Err(e.into());
        }
        Err(e) => {
            println!("strata       {CLI_BUILD}");
            return Err(e.into());
        }
    }
    Ok(())
}

/// `strata version -o json`: `cli`, `coordinator` (with its `address`), `nodes` (each with
/// `id` and `address`), `mixed_versions`.
fn cluster_json(s: &pb::StatusResponse) -> serde_json::Value {
    let coordinator = s.coordinator.as_ref().map(|c| {
        let mut fields = identity_fields(Some(c));
        fields.insert("address".into(), s.leader.clone().into());
        fields
    });
    let nodes: Vec<_> = s
        .nodes
        .iter()
        .map(|n| {
            let node = n.node.clone().unwrap_or_default();
            let mut fields = identity_fields(n.identity.as_ref());
            fields.insert("id".into(), node.id.into());
            fields.insert("address".into(), node.address.into());
            fields
        })
        .collect();
    serde_json::json!({
        "cli": cli_json(), "coordinator": coordinator, "nodes": nodes,
        "mixed_versions": !mixed_versions(s).is_empty(),
    })
}

/// The CLI's build, the coordinator's and each node's, one line each.
fn print_cluster(s: &pb::StatusResponse) {
    println!("strata       {CLI_BUILD}");
    println!(
        "coordinator  {}  {}",
        build_text(s.coordinator.as_ref()),
        s.leader
    );
    let mut nodes: Vec<&pb::NodeStatus> = s.nodes.iter().collect();
    nodes.sort_by_key(|n| n.node.as_ref().map(|x| x.id.clone()));
    for n in nodes {
        let node = n.node.clone().unwrap_or_default();
        println!(
            "{:<12} {}  {}",
            node.id,
            build_text(n.identity.as_ref()),
            node.address
        );
    }
    if let Some(warning) = mixed_warning(s) {
        println!("{warning}");
    }
}
