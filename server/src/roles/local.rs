//! Shard nodes that share their process with the cluster coordinator (the node of
//! `strata-server dev`, the nodes of an in-process test cluster): opened from their data
//! dir, registered through an [`InProcessLink`], reached by the coordinator through
//! [`LocalNodes`], and, as [`LocalShard`]s, serving Parameter and ShardControl on their own
//! listener like a `strata-server shard` process.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use strata_proto::v1::coordinator_server::CoordinatorServer;

use super::membership::{self, InProcessLink, LinkError, Membership};
use super::{serve, RoleError};
use crate::connections::ConnectionLimits;
use crate::incarnation::incarnation;
use crate::local_nodes::LocalNodes;
use crate::service::CoordinatorService;
use crate::shard_node::{stored_node_id, ShardNode};
use crate::transport::{incoming, server_builder};
use strata_cluster::cluster::ClusterCoordinator;
use strata_engine::{Engine, EngineConfig};

/// Opens a node's data dir with its engine, off the async workers (it restores the newest
/// good checkpoint; one whose checkpoints all fail is refused unless `accept_data_loss`),
/// and sets the node id stored there, else `fallback_id`.
pub async fn open_node(
    data_dir: &Path,
    engine: Arc<Engine>,
    keep_checkpoints: usize,
    migration_nice: i32,
    accept_data_loss: bool,
    fallback_id: Option<String>,
) -> Result<Arc<ShardNode>, RoleError> {
    let data_dir = data_dir.to_path_buf();
    let (node, stored_id) = tokio::task::spawn_blocking(move || {
        let node = ShardNode::open(
            &data_dir,
            engine,
            keep_checkpoints,
            migration_nice,
            accept_data_loss,
        )?;
        Ok::<_, RoleError>((node, stored_node_id(&data_dir)?))
    })
    .await
    .map_err(|e| RoleError::Setup(e.to_string()))??;
    if let Some(id) = stored_id.or(fallback_id) {
        node.set_node_id(&id);
    }
    Ok(Arc::new(node))
}

/// Registers `node` with the `coordinator` of this process, then heartbeats it on a task
/// until `stop` turns true.
pub async fn join(
    node: &Arc<ShardNode>,
    me: Membership,
    coordinator: &Arc<ClusterCoordinator>,
    stop: &watch::Receiver<bool>,
) -> Result<(), LinkError> {
    let mut link = InProcessLink(coordinator.clone());
    membership::join(node, &me, &mut link).await?;
    tokio::spawn(membership::run(
        node.clone(),
        me,
        Box::new(link),
        true,
        stop.clone(),
    ));
    Ok(())
}

/// Serves the Coordinator service of `coordinator` (with health and reflection) on
/// `listener` until `shutdown` resolves.
pub async fn serve_coordinator(
    coordinator: Arc<ClusterCoordinator>,
    listener: TcpListener,
    max_message_bytes: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let (_health_reporter, health) = serve::health(&["strata.v1.Coordinator"]).await;
    let service = CoordinatorServer::new(CoordinatorService::new(coordinator))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    server_builder()
        .add_service(health)
        .add_service(serve::reflection_v1()?)
        .add_service(serve::reflection_v1alpha()?)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await?;
    Ok(())
}

/// Settings of a shard node in the coordinator's process.
#[derive(Debug, Clone)]
pub struct LocalShardConfig {
    /// Data dir: node id and checkpoints.
    pub data_dir: PathBuf,
    /// Engine settings, with the node's own row memory.
    pub engine: EngineConfig,
    /// Topology labels.
    pub labels: BTreeMap<String, String>,
    /// Largest gRPC message in bytes.
    pub max_message_bytes: usize,
    /// Checkpoints to keep.
    pub keep_checkpoints: usize,
    /// Nice value of the migration threads.
    pub migration_nice: i32,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
}

/// A shard node serving Parameter and ShardControl on its own listener in the coordinator's
/// process; it stops serving and heartbeating when dropped.
pub struct LocalShard {
    address: String,
    node: Arc<ShardNode>,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<Result<(), RoleError>>>,
}

impl LocalShard {
    /// Opens the node, adds it to `nodes` (the coordinator's [`LocalNodes`]), registers it
    /// with `coordinator`, and serves it on `listener`; returns once it is registered.
    pub async fn start(
        config: LocalShardConfig,
        listener: TcpListener,
        coordinator: &Arc<ClusterCoordinator>,
        nodes: &LocalNodes,
    ) -> Result<Self, RoleError> {
        let address = listener.local_addr()?.to_string();
        let engine = Arc::new(Engine::new(config.engine.clone()));
        let node = open_node(
            &config.data_dir,
            engine,
            config.keep_checkpoints,
            config.migration_nice,
            false,
            None,
        )
        .await?;
        nodes.insert(&address, node.clone());
        let (stop, stop_rx) = watch::channel(false);
        let me = Membership {
            address: address.clone(),
            labels: config.labels.clone(),
            memory_budget: config.engine.memory_budget,
            data_dir: config.data_dir.clone(),
            interval: config.heartbeat_interval,
            incarnation: incarnation(&config.data_dir)?,
            accept_data_loss: false,
        };
        join(&node, me, coordinator, &stop_rx)
            .await
            .map_err(|e| RoleError::Setup(format!("registering {address}: {e}")))?;
        let server = tokio::spawn(super::shard::serve_node(
            node.clone(),
            listener,
            None,
            config.max_message_bytes,
            ConnectionLimits::default(),
            None,
            serve::stopped(&stop_rx),
        ));
        Ok(Self {
            address,
            node,
            stop,
            server: Some(server),
        })
    }

    /// The address the node serves at (and is known by to the coordinator).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The node's state.
    pub fn node(&self) -> &Arc<ShardNode> {
        &self.node
    }

    /// The node's engine.
    pub fn engine(&self) -> &Arc<Engine> {
        self.node.engine()
    }

    /// Stops heartbeats and serving, and waits for in-flight requests to drain.
    pub async fn stop(mut self) -> Result<(), RoleError> {
        let _ = self.stop.send(true);
        match self.server.take() {
            Some(server) => server
                .await
                .map_err(|e| RoleError::Setup(format!("the node's server task: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for LocalShard {
    fn drop(&mut self) {
        // The server drains on its own task; heartbeats end at once.
        let _ = self.stop.send(true);
    }
}
