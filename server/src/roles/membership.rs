//! A shard server's membership: register with the coordinator, then heartbeat; follow the
//! map and catalog it answers with; re-register when the coordinator forgot the node.
//!
//! The coordinator is reached through a [`CoordinatorLink`]: over gRPC for a shard process
//! ([`GrpcLink`]: with several coordinator addresses, a failed call moves to the leader a
//! standby names in metadata `strata-leader`, else to the next address), or by direct calls
//! for the node of `strata-server dev`, which shares its process with the coordinator.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use strata_proto::tls::ClientTls;
use strata_proto::transport::{connect_lazy, endpoint_with};
use strata_proto::v1 as pb;
use strata_proto::v1::coordinator_client::CoordinatorClient;
use tonic::transport::Channel;
use tonic::Code;

use crate::service::convert::{catalog_from_pb, identity_to_pb, map_from_pb, report_to_pb};
use crate::service::leader::LEADER_METADATA;
use crate::shard_node::{store_node_id, ShardNode};
use strata_cluster::cluster::{
    Catalog, ClusterCoordinator, HeartbeatReply, HeartbeatReport, Registration,
};
use strata_cluster::{ClusterMap, CoordinatorError};

/// How long one call to the coordinator may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait between registration attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Who this node is.
#[derive(Debug, Clone)]
pub struct Membership {
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
    /// Incarnation id of the data dir (see [`crate::incarnation`]).
    pub incarnation: String,
    /// Register even when the coordinator knows this node with another data dir.
    pub accept_data_loss: bool,
}

/// Why a call to the coordinator failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// The coordinator does not know this node: register again.
    UnknownNode,
    /// The call failed (unreachable, not leading, refused); retried later.
    Failed(String),
    /// The coordinator refused the registration for good (the node came back without the
    /// data of its shards): retrying cannot help.
    Refused(String),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownNode => write!(f, "the coordinator does not know this node"),
            Self::Failed(message) | Self::Refused(message) => f.write_str(message),
        }
    }
}

/// What a registration answers: the node id, the map and the catalog.
pub type Registered = (String, ClusterMap, Catalog);

/// How a node reaches the coordinator.
pub trait CoordinatorLink: Send {
    /// Registers (or re-registers) the node.
    fn register(&mut self, reg: Registration) -> BoxFuture<'_, Result<Registered, LinkError>>;
    /// Sends a heartbeat; the reply carries what the node lacks.
    fn heartbeat(
        &mut self,
        report: HeartbeatReport,
    ) -> BoxFuture<'_, Result<HeartbeatReply, LinkError>>;
    /// The coordinator currently talked to (for logs).
    fn describe(&self) -> String;
}

/// A coordinator in this process.
pub struct InProcessLink(pub Arc<ClusterCoordinator>);

fn link_error(e: CoordinatorError) -> LinkError {
    match e {
        CoordinatorError::UnknownNode { .. } => LinkError::UnknownNode,
        e @ CoordinatorError::ForeignDataDir { .. } => LinkError::Refused(e.to_string()),
        e => LinkError::Failed(e.to_string()),
    }
}

impl CoordinatorLink for InProcessLink {
    fn register(&mut self, reg: Registration) -> BoxFuture<'_, Result<Registered, LinkError>> {
        Box::pin(async move { self.0.register(reg).map_err(link_error) })
    }

    fn heartbeat(
        &mut self,
        report: HeartbeatReport,
    ) -> BoxFuture<'_, Result<HeartbeatReply, LinkError>> {
        Box::pin(async move { self.0.heartbeat(report).map_err(link_error) })
    }

    fn describe(&self) -> String {
        format!("{} (in process)", self.0.address())
    }
}

/// Coordinators reached over gRPC, following the leader.
pub struct GrpcLink {
    clients: Vec<(String, CoordinatorClient<Channel>)>,
    current: usize,
    tls: Option<ClientTls>,
}

impl GrpcLink {
    /// A link to the coordinators at `addresses` (connected lazily, through TLS with `tls`).
    pub fn new(addresses: &[String], tls: Option<ClientTls>) -> Result<Self, String> {
        let clients = addresses
            .iter()
            .map(|a| Ok((a.clone(), lazy_client(a, tls.as_ref())?)))
            .collect::<Result<Vec<_>, String>>()?;
        if clients.is_empty() {
            return Err("no coordinator address".into());
        }
        Ok(Self {
            clients,
            current: 0,
            tls,
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
        match lazy_client(&hint, self.tls.as_ref()) {
            Ok(client) => {
                self.clients.push((hint, client));
                self.current = self.clients.len() - 1;
            }
            Err(_) => self.next(),
        }
    }

    /// The error of a failed call; moves on to another coordinator unless this one only
    /// forgot the node.
    fn failed(&mut self, status: tonic::Status) -> LinkError {
        if status.code() == Code::NotFound {
            return LinkError::UnknownNode;
        }
        let error = LinkError::Failed(format!("{:?}: {}", status.code(), status.message()));
        self.follow(&status);
        error
    }
}

fn lazy_client(
    address: &str,
    tls: Option<&ClientTls>,
) -> Result<CoordinatorClient<Channel>, String> {
    let endpoint = endpoint_with(address, tls)
        .map_err(|e| format!("invalid coordinator address {address:?}: {e}"))?
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    let channel = connect_lazy(&endpoint, tls);
    Ok(CoordinatorClient::new(channel))
}

/// The catalog a coordinator sent, or the link error for a malformed one.
fn catalog_in(c: &pb::Catalog) -> Result<Catalog, LinkError> {
    catalog_from_pb(c).map_err(|e| LinkError::Failed(format!("malformed catalog: {e}")))
}

impl CoordinatorLink for GrpcLink {
    fn register(&mut self, reg: Registration) -> BoxFuture<'_, Result<Registered, LinkError>> {
        Box::pin(async move {
            let request = pb::RegisterNodeRequest {
                address: reg.address,
                labels: reg.labels.into_iter().collect(),
                memory_budget: reg.memory_budget,
                node_id: reg.node_id,
                incarnation: reg.incarnation,
                accept_data_loss: reg.accept_data_loss,
                identity: reg.identity.as_ref().map(identity_to_pb),
            };
            let resp = match self.client().register_node(request).await {
                Ok(r) => r.into_inner(),
                // The only refusal of a well-formed registration that no retry mends.
                Err(status) if status.code() == Code::FailedPrecondition => {
                    return Err(LinkError::Refused(status.message().to_string()))
                }
                Err(status) => return Err(self.failed(status)),
            };
            let (Some(map), Some(catalog)) = (resp.map.as_ref(), resp.catalog.as_ref()) else {
                return Err(LinkError::Failed(
                    "the coordinator answered without a map or catalog".into(),
                ));
            };
            Ok((resp.node_id, map_from_pb(map), catalog_in(catalog)?))
        })
    }

    fn heartbeat(
        &mut self,
        report: HeartbeatReport,
    ) -> BoxFuture<'_, Result<HeartbeatReply, LinkError>> {
        Box::pin(async move {
            let resp = match self.client().heartbeat(report_to_pb(&report)).await {
                Ok(r) => r.into_inner(),
                Err(status) => return Err(self.failed(status)),
            };
            Ok(HeartbeatReply {
                epoch: resp.epoch,
                map: resp.map.as_ref().map(map_from_pb),
                catalog: resp.catalog.as_ref().map(catalog_in).transpose()?,
                abort: resp.abort_migrations,
            })
        })
    }

    fn describe(&self) -> String {
        self.address().to_string()
    }
}

/// Registers once: stores the id the coordinator gave, applies its catalog and map.
pub async fn join(
    node: &Arc<ShardNode>,
    me: &Membership,
    link: &mut dyn CoordinatorLink,
) -> Result<(), LinkError> {
    let (id, map, catalog) = link
        .register(Registration {
            node_id: node.node_id(),
            address: me.address.clone(),
            labels: me.labels.clone(),
            memory_budget: me.memory_budget,
            incarnation: me.incarnation.clone(),
            accept_data_loss: me.accept_data_loss,
            identity: node.identity(),
        })
        .await?;
    if node.node_id() != id {
        store_node_id(&me.data_dir, &id).map_err(|e| LinkError::Failed(e.to_string()))?;
        node.set_node_id(&id);
    }
    let node = node.clone();
    // Applying a map may drop rows: off the async workers.
    let _ = tokio::task::spawn_blocking(move || apply(&node, Some(&catalog), Some(&map))).await;
    tracing::info!(node = %id, coordinator = %link.describe(), "registered");
    Ok(())
}

/// Heartbeats (registering first unless `registered`) until `stop` turns true; ends early
/// with the refusal when the coordinator refuses the node for good.
pub async fn run(
    node: Arc<ShardNode>,
    me: Membership,
    mut link: Box<dyn CoordinatorLink>,
    mut registered: bool,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), LinkError> {
    let stopped = super::serve::stopped(&stop);
    tokio::pin!(stopped);
    let mut backoff = Duration::from_millis(100);
    let mut ticker = tokio::time::interval(me.interval);
    loop {
        tokio::select! {
            _ = &mut stopped => return Ok(()),
            _ = ticker.tick() => {}
        }
        if !registered {
            match join(&node, &me, link.as_mut()).await {
                Ok(()) => {
                    registered = true;
                    backoff = Duration::from_millis(100);
                }
                Err(error @ LinkError::Refused(_)) => {
                    tracing::error!(coordinator = %link.describe(), %error, "registration refused");
                    return Err(error);
                }
                Err(error) => {
                    tracing::warn!(coordinator = %link.describe(), %error, "registration failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            continue;
        }
        match link.heartbeat(node.report(&me.address)).await {
            Ok(reply) => follow_reply(&node, reply).await,
            Err(LinkError::UnknownNode) => {
                tracing::warn!("the coordinator does not know this node; registering again");
                registered = false;
            }
            Err(error) => {
                tracing::warn!(coordinator = %link.describe(), %error, "heartbeat failed");
            }
        }
    }
}

/// Applies what a heartbeat answered: a newer catalog and map, migrations to roll back.
async fn follow_reply(node: &Arc<ShardNode>, reply: HeartbeatReply) {
    if reply.catalog.is_none() && reply.map.is_none() && reply.abort.is_empty() {
        return;
    }
    let node = node.clone();
    // Applying a map may drop handed-off rows: off the async workers.
    let _ = tokio::task::spawn_blocking(move || {
        apply(&node, reply.catalog.as_ref(), reply.map.as_ref());
        for id in &reply.abort {
            tracing::warn!(%id, "the coordinator knows no such migration: rolling it back");
            if let Err(e) = node.abort_migration(id) {
                tracing::error!(%id, error = %e, "cannot roll the migration back");
            }
        }
    })
    .await;
}

/// Applies a catalog and a map from the coordinator (the catalog first: tables must exist
/// before their slots are served).
fn apply(node: &ShardNode, catalog: Option<&Catalog>, map: Option<&ClusterMap>) {
    if let Some(c) = catalog {
        if let Err(e) = node.apply_catalog(c) {
            tracing::error!(error = %e, "cannot apply the catalog");
        }
    }
    if let Some(m) = map {
        if let Err(e) = node.apply_map(m) {
            tracing::error!(error = %e, "cannot apply the map");
        }
    }
}
