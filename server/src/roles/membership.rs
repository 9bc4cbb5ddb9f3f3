//! A shard server's membership: register with the coordinator, then heartbeat; follow the
//! map and catalog it answers with; re-register when the coordinator forgot the node.
//!
//! With several coordinator addresses, a failed call moves to the leader a standby names
//! (metadata `strata-leader`), else to the next address.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_proto::v1 as pb;
use strata_proto::v1::coordinator_client::CoordinatorClient;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::service::convert::{catalog_from_pb, checkpoint_to_pb, map_from_pb};
use crate::service::leader::LEADER_METADATA;
use crate::shard_node::{store_node_id, ShardNode};

/// How long one call to the coordinator may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait between registration attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Who this node is and where the coordinators are.
#[derive(Debug, Clone)]
pub struct Membership {
    /// Coordinator addresses, tried in turn.
    pub coordinators: Vec<String>,
    /// Address clients reach this node at.
    pub address: String,
    /// Topology labels.
    pub labels: BTreeMap<String, String>,
    /// Host memory budget in bytes.
    pub memory_budget: u64,
    /// Data dir (the node id is stored there).
    pub data_dir: PathBuf,
    /// Time between heartbeats.
    pub interval: Duration,
}

struct Coordinators {
    clients: Vec<(String, CoordinatorClient<Channel>)>,
    current: usize,
}

impl Coordinators {
    fn new(addresses: &[String]) -> Result<Self, String> {
        let clients = addresses
            .iter()
            .map(|a| Ok((a.clone(), lazy_client(a)?)))
            .collect::<Result<Vec<_>, String>>()?;
        if clients.is_empty() {
            return Err("no coordinator address".into());
        }
        Ok(Self {
            clients,
            current: 0,
        })
    }

    fn client(&self) -> CoordinatorClient<Channel> {
        self.clients[self.current].1.clone()
    }

    fn address(&self) -> &str {
        &self.clients[self.current].0
    }

    fn next(&mut self) {
        self.current = (self.current + 1) % self.clients.len();
    }

    /// After a failed call: go to the leader a standby named, else to the next address.
    fn follow(&mut self, status: &tonic::Status) {
        let hint = status
            .metadata()
            .get(LEADER_METADATA)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if hint.is_empty() || hint == self.address() {
            self.next();
            return;
        }
        if let Some(i) = self.clients.iter().position(|(a, _)| *a == hint) {
            self.current = i;
            return;
        }
        match lazy_client(&hint) {
            Ok(client) => {
                self.clients.push((hint, client));
                self.current = self.clients.len() - 1;
            }
            Err(_) => self.next(),
        }
    }
}

fn lazy_client(address: &str) -> Result<CoordinatorClient<Channel>, String> {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| format!("invalid coordinator address {address:?}: {e}"))?
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect_lazy();
    Ok(CoordinatorClient::new(channel))
}

/// Registers, then heartbeats until `stop` turns true.
pub async fn run(node: Arc<ShardNode>, me: Membership, stop: tokio::sync::watch::Receiver<bool>) {
    let mut coordinators = match Coordinators::new(&me.coordinators) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot reach any coordinator");
            return;
        }
    };
    let stopped = super::serve::stopped(&stop);
    tokio::pin!(stopped);
    let mut registered = false;
    let mut backoff = Duration::from_millis(100);
    let mut ticker = tokio::time::interval(me.interval);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = ticker.tick() => {}
        }
        if !registered {
            match register(&node, &me, &mut coordinators).await {
                Ok(()) => {
                    registered = true;
                    backoff = Duration::from_millis(100);
                }
                Err(status) => {
                    tracing::warn!(coordinator = %coordinators.address(), error = %status.message(), "registration failed; retrying");
                    coordinators.follow(&status);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            continue;
        }
        match heartbeat(&node, &me, &mut coordinators).await {
            Ok(()) => {}
            Err(status) if status.code() == Code::NotFound => {
                tracing::warn!("the coordinator does not know this node; registering again");
                registered = false;
            }
            Err(status) => {
                tracing::warn!(coordinator = %coordinators.address(), error = %status.message(), "heartbeat failed");
                coordinators.follow(&status);
            }
        }
    }
}

async fn register(
    node: &ShardNode,
    me: &Membership,
    coordinators: &mut Coordinators,
) -> Result<(), tonic::Status> {
    let resp = coordinators
        .client()
        .register_node(pb::RegisterNodeRequest {
            address: me.address.clone(),
            labels: me.labels.clone().into_iter().collect(),
            memory_budget: me.memory_budget,
            node_id: node.node_id(),
        })
        .await?
        .into_inner();
    if node.node_id() != resp.node_id {
        store_node_id(&me.data_dir, &resp.node_id)
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        node.set_node_id(&resp.node_id);
    }
    apply(node, resp.catalog.as_ref(), resp.map.as_ref());
    tracing::info!(node = %resp.node_id, coordinator = %coordinators.address(), "registered");
    Ok(())
}

async fn heartbeat(
    node: &Arc<ShardNode>,
    me: &Membership,
    coordinators: &mut Coordinators,
) -> Result<(), tonic::Status> {
    let tables = crate::service::convert::table_infos(node.engine());
    let req = pb::HeartbeatRequest {
        node_id: node.node_id(),
        rows: tables.iter().map(|t| t.rows).sum(),
        bytes: tables.iter().map(|t| t.bytes).sum(),
        epoch: node.epoch(),
        catalog_version: node.catalog_version(),
        tables,
        last_checkpoint: node.last_checkpoint().as_ref().map(checkpoint_to_pb),
        address: me.address.clone(),
        ranges: node
            .range_usage()
            .into_iter()
            .map(|u| pb::RangeUsage {
                slot_start: u.start,
                slot_end: u.end,
                rows: u.rows,
                bytes: u.bytes,
            })
            .collect(),
        migrations: node.migration_ids(),
    };
    let resp = coordinators.client().heartbeat(req).await?.into_inner();
    if resp.catalog.is_none() && resp.map.is_none() && resp.abort_migrations.is_empty() {
        return Ok(());
    }
    let node = node.clone();
    // Applying a map may drop handed-off rows: off the async workers.
    let _ = tokio::task::spawn_blocking(move || {
        apply(&node, resp.catalog.as_ref(), resp.map.as_ref());
        for id in &resp.abort_migrations {
            tracing::warn!(%id, "the coordinator knows no such migration: rolling it back");
            if let Err(e) = node.abort_migration(id) {
                tracing::error!(%id, error = %e, "cannot roll the migration back");
            }
        }
    })
    .await;
    Ok(())
}

/// Applies a catalog and a map from the coordinator (the catalog first: tables must exist
/// before their slots are served).
fn apply(node: &ShardNode, catalog: Option<&pb::Catalog>, map: Option<&pb::ClusterMap>) {
    if let Some(c) = catalog {
        match catalog_from_pb(c)
            .map_err(|e| e.to_string())
            .and_then(|c| node.apply_catalog(&c).map_err(|e| e.to_string()))
        {
            Ok(()) => {}
            Err(e) => tracing::error!(error = %e, "cannot apply the catalog"),
        }
    }
    if let Some(m) = map {
        if let Err(e) = node.apply_map(&map_from_pb(m)) {
            tracing::error!(error = %e, "cannot apply the map");
        }
    }
}
