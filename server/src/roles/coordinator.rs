//! `strata-server coordinator`: the control plane of a cluster of shard servers.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_proto::v1::coordinator_server::CoordinatorServer;
use tokio::net::TcpListener;

use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use super::leading::AutoRebalanceLoop;
use super::{durability, leading, serve, RoleError};
use crate::advertise::{advertised_address, Advertise};
use crate::connections::{bounded_incoming, ConnectionLimits};
use crate::etcd::election::{Election, ElectionConfig, ElectionError};
use crate::etcd::store::EtcdMetaStore;
use crate::metrics::Metrics;
use crate::service::leader::LeaderSlot;
use crate::service::{CoordinatorService, GrpcNodeControl};
use crate::tls::NodeTls;
use crate::transport::server_builder;
use strata_cluster::cluster::{ClusterConfig, ClusterCoordinator, ProcessIdentity};
use strata_cluster::topology::Topology;

/// The gRPC service name whose health tells whether this coordinator leads.
const COORDINATOR_SERVICE: &str = "strata.v1.Coordinator";
/// How often a standby refreshes the leader's address.
const HINT_PERIOD: Duration = Duration::from_millis(300);

/// Settings of a coordinator process.
#[derive(Debug, Clone)]
pub struct CoordinatorRoleConfig {
    /// Where the cluster record lives.
    pub data_dir: PathBuf,
    /// Shards of a new cluster.
    pub shards: u32,
    /// Slots of a new cluster.
    pub num_slots: u32,
    /// A node silent this long is marked down.
    pub heartbeat_timeout: Duration,
    /// Largest gRPC message in bytes.
    pub max_message_bytes: usize,
    /// Address shard servers and clients reach this coordinator at (default: the bound one).
    pub advertise_address: Option<Advertise>,
    /// Keep the record in etcd and elect a leader there (default: a file in the data dir).
    pub etcd: Option<EtcdSettings>,
    /// Cluster checkpoints to keep in the record.
    pub keep_checkpoints: usize,
    /// Connections open at once and the HTTP/2 handshake deadline.
    pub connections: ConnectionLimits,
    /// The datacenter's levels and their costs (`--topology FILE`, else the defaults).
    pub topology: Topology,
    /// Automatic topology rebalancing (`--auto-rebalance`; off: `None`).
    pub auto_rebalance: Option<AutoRebalanceLoop>,
    /// Checkpoint the cluster this often when a node reported changes (`None`: only on
    /// request).
    pub checkpoint_interval: Option<Duration>,
    /// What runs in this process, for `Status`.
    pub identity: Option<ProcessIdentity>,
    /// TLS of the listener and of calls to shard servers.
    pub tls: NodeTls,
}

/// Where in etcd the cluster lives.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    /// etcd endpoints (`http://host:port`).
    pub endpoints: Vec<String>,
    /// Key prefix of this cluster (e.g. `/strata/default`).
    pub prefix: String,
    /// TTL of the coordinator's lease: how soon a standby takes over a dead leader.
    pub lease_ttl: Duration,
}

/// Runs a coordinator on already-bound listeners (gRPC, and `/metrics` and the status page
/// when given) until `shutdown` resolves.
///
/// With etcd it serves at once as a standby (refusing with the leader's address),
/// campaigns, and leads once elected; it stops with an error when its lease is lost.
pub async fn run_coordinator(
    config: CoordinatorRoleConfig,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    status_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let address = advertised_address(listener.local_addr()?, config.advertise_address.as_ref())?;
    let cluster_config = ClusterConfig {
        data_dir: config.data_dir.clone(),
        shards: config.shards,
        num_slots: config.num_slots,
        heartbeat_timeout: config.heartbeat_timeout,
        advertise_address: address.clone(),
        keep_checkpoints: config.keep_checkpoints,
        topology: config.topology.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (health_reporter, health) = serve::health(&[COORDINATOR_SERVICE]).await;
    let slot = Arc::new(LeaderSlot::standby());
    let election = match &config.etcd {
        None => {
            let coordinator =
                ClusterCoordinator::open(cluster_config.clone(), node_control(&config.tls))?;
            start_leading(&slot, Arc::new(coordinator), &config, &stop_rx);
            None
        }
        Some(etcd) => {
            health_reporter
                .set_service_status(COORDINATOR_SERVICE, ServingStatus::NotServing)
                .await;
            let election = Election::join(&ElectionConfig {
                endpoints: etcd.endpoints.clone(),
                prefix: etcd.prefix.clone(),
                address: address.clone(),
                ttl: etcd.lease_ttl,
            })
            .await?;
            Some(election)
        }
    };

    let max = config.max_message_bytes;
    let metrics = Arc::new(Metrics::new().with_cluster(slot.clone()));
    let service = CoordinatorServer::new(
        CoordinatorService::with_slot(slot.clone())
            .with_metrics(metrics.clone())
            .identified(config.identity.clone()),
    )
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    let connections = metrics.connections.clone();
    let metrics_task = serve::metrics(metrics_listener, metrics, &stop_rx);
    let page =
        Arc::new(CoordinatorService::with_slot(slot.clone()).identified(config.identity.clone()));
    let page_task = serve::status_page(status_listener, page, &stop_rx);

    tracing::info!(%address, etcd = config.etcd.is_some(), "strata-server coordinator serving");
    let serve = server_builder()
        .add_service(health)
        .add_service(serve::reflection_v1()?)
        .add_service(serve::reflection_v1alpha()?)
        .add_service(service)
        .serve_with_incoming_shutdown(
            bounded_incoming(
                listener,
                config.connections,
                connections,
                config.tls.server.clone(),
            ),
            serve::stopped(&stop_rx),
        );
    tokio::pin!(serve);
    let leadership = async {
        match (&election, &config.etcd) {
            (Some(election), Some(etcd)) => {
                let ctx = LeadContext {
                    election,
                    etcd,
                    slot: &slot,
                    cluster_config: &cluster_config,
                    config: &config,
                    stop: &stop_rx,
                    health: &health_reporter,
                };
                lead(ctx).await
            }
            _ => std::future::pending().await,
        }
    };
    let mut served = None;
    let outcome = tokio::select! {
        r = &mut serve => {
            served = Some(r);
            Ok(())
        }
        () = shutdown => Ok(()),
        e = leadership => Err(e),
    };
    let _ = stop_tx.send(true);
    let served = match served {
        Some(r) => r,
        None => serve.await,
    };
    if let Some(election) = election {
        election.resign().await;
    }
    serve::finish_metrics(metrics_task).await;
    serve::finish_http("status page", page_task).await;
    outcome?;
    served?;
    Ok(())
}

/// What a candidate needs to take over.
struct LeadContext<'a> {
    election: &'a Election,
    etcd: &'a EtcdSettings,
    slot: &'a Arc<LeaderSlot>,
    cluster_config: &'a ClusterConfig,
    config: &'a CoordinatorRoleConfig,
    stop: &'a tokio::sync::watch::Receiver<bool>,
    health: &'a HealthReporter,
}

/// Publishes the leader's address while campaigning; once elected loads the record from
/// etcd and serves. Returns only when leadership cannot be won or kept.
async fn lead(ctx: LeadContext<'_>) -> RoleError {
    let hints = async {
        loop {
            match ctx.election.leader().await {
                Ok(leader) => ctx.slot.set_hint(leader.as_deref().unwrap_or("")),
                Err(e) => tracing::warn!(error = %e, "cannot read the current leader"),
            }
            tokio::time::sleep(HINT_PERIOD).await;
        }
    };
    let fence = tokio::select! {
        r = ctx.election.campaign() => match r {
            Ok(fence) => fence,
            Err(e) => return e.into(),
        },
        () = hints => unreachable_hint(),
    };
    tracing::info!(key = %String::from_utf8_lossy(&fence.key), "elected leader; loading the cluster record from etcd");
    let endpoints = ctx.etcd.endpoints.clone();
    let prefix = ctx.etcd.prefix.clone();
    let cluster_config = ctx.cluster_config.clone();
    let tls = ctx.config.tls.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let store = EtcdMetaStore::connect(&endpoints, &prefix, fence)
            .map_err(strata_cluster::CoordinatorError::from)?;
        ClusterCoordinator::open_with(cluster_config, Box::new(store), node_control(&tls))
    })
    .await;
    let coordinator = match opened {
        Ok(Ok(c)) => Arc::new(c),
        Ok(Err(e)) => return e.into(),
        Err(e) => return RoleError::Setup(format!("opening the record failed: {e}")),
    };
    start_leading(ctx.slot, coordinator, ctx.config, ctx.stop);
    ctx.health
        .set_service_status(COORDINATOR_SERVICE, ServingStatus::Serving)
        .await;
    tracing::info!("leading");
    let mut lost = ctx.election.lost();
    let _ = lost.wait_for(|l| *l).await;
    RoleError::Election(ElectionError::LeaseLost {
        lease: ctx.election.lease(),
    })
}

/// The hint loop never ends.
fn unreachable_hint() -> crate::etcd::store::LeaderFence {
    unreachable!("the leader-hint loop never returns")
}

fn node_control(tls: &NodeTls) -> Arc<GrpcNodeControl> {
    Arc::new(GrpcNodeControl::with_tls(tls.client.clone()))
}

/// Serves with `coordinator` and starts its background loops.
fn start_leading(
    slot: &LeaderSlot,
    coordinator: Arc<ClusterCoordinator>,
    config: &CoordinatorRoleConfig,
    stop: &tokio::sync::watch::Receiver<bool>,
) {
    leading::start(
        &coordinator,
        config.heartbeat_timeout,
        config.auto_rebalance.clone(),
        stop,
    );
    if let Some(interval) = config.checkpoint_interval {
        durability::start_periodic(&coordinator, interval, stop);
    }
    slot.lead(coordinator);
}
