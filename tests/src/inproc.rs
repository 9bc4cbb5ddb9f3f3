//! In-process cluster harness: one cluster coordinator and N shard nodes in the test's own
//! process. Each node has its own engine and its own row memory (reserve, refill and
//! prefault threads) and serves Parameter and ShardControl on its own 127.0.0.1:0 listener,
//! so migrations stream rows node to node over ShardControl and clients pull and push over
//! Parameter; the coordinator reaches the nodes by direct calls ([`LocalNodes`]) and serves
//! the Coordinator service on a listener of its own. It starts in milliseconds and stops
//! when dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use strata_proto::v1 as pb;
use tokio::net::TcpListener;
use tokio::sync::watch;

use strata_cluster::cluster::{ClusterConfig, ClusterCoordinator};
use strata_engine::EngineConfig;
use strata_server::local_nodes::LocalNodes;
use strata_server::roles::local::{serve_coordinator, LocalShard, LocalShardConfig};
use strata_server::roles::{leading, serve};
use strata_server::transport::DEFAULT_MAX_MESSAGE_BYTES;
use strata_storage::host::{RowMemory, RowMemoryConfig};

use crate::cluster::{settled, wait_status, SETTLE_DEADLINE};

/// Time between the in-process nodes' heartbeats: short, so range sizes reach the
/// coordinator (and rebalances see them) quickly.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// A node silent this long is marked down.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);
/// Checkpoints each node and the cluster record keep.
const KEEP_CHECKPOINTS: usize = 3;

/// A coordinator and its shard nodes, all in this process; stopped when dropped.
pub struct InProcessCluster {
    /// Address of the Coordinator service (what clients connect to).
    pub address: String,
    /// The cluster coordinator.
    pub coordinator: Arc<ClusterCoordinator>,
    /// The shard nodes, in start order.
    pub nodes: Vec<LocalShard>,
    local: Arc<LocalNodes>,
    root: PathBuf,
    stop: watch::Sender<bool>,
    _dir: Option<tempfile::TempDir>,
}

impl InProcessCluster {
    /// `n_nodes` nodes (no memory reserve) and a cluster of `shards` shards, under a
    /// temporary directory; returns once every node is up and serves its shards.
    pub async fn start(n_nodes: usize, shards: u32) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("tempdir")?;
        let mut cluster =
            Self::start_in(dir.path(), n_nodes, shards, |_| RowMemoryConfig::default()).await?;
        cluster._dir = Some(dir);
        Ok(cluster)
    }

    /// As [`InProcessCluster::start`] under `root` (`coordinator/`, `node-<i>/`), node `i`
    /// with the row memory `memory(i)` describes.
    pub async fn start_in(
        root: &Path,
        n_nodes: usize,
        shards: u32,
        memory: impl Fn(usize) -> RowMemoryConfig,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let local = Arc::new(LocalNodes::new());
        let config = ClusterConfig {
            data_dir: root.join("coordinator"),
            shards,
            num_slots: EngineConfig::default().num_slots,
            heartbeat_timeout: HEARTBEAT_TIMEOUT,
            advertise_address: address.clone(),
            keep_checkpoints: KEEP_CHECKPOINTS,
            topology: strata_cluster::topology::Topology::default(),
        };
        let nodes = local.clone();
        let coordinator =
            tokio::task::spawn_blocking(move || ClusterCoordinator::open(config, nodes)).await??;
        let coordinator = Arc::new(coordinator);
        let (stop, stop_rx) = watch::channel(false);
        leading::start(&coordinator, HEARTBEAT_TIMEOUT, None, &stop_rx);
        tokio::spawn(serve_coordinator(
            coordinator.clone(),
            listener,
            DEFAULT_MAX_MESSAGE_BYTES,
            serve::stopped(&stop_rx),
        ));
        let mut cluster = Self {
            address,
            coordinator,
            nodes: Vec::new(),
            local,
            root: root.to_path_buf(),
            stop,
            _dir: None,
        };
        for i in 0..n_nodes {
            cluster.add_node(memory(i)).await?;
        }
        cluster.wait_settled().await?;
        Ok(cluster)
    }

    /// Starts one more node with its own row memory; it registers at once (shards come
    /// with a plan).
    pub async fn add_node(&mut self, memory: RowMemoryConfig) -> anyhow::Result<&LocalShard> {
        let i = self.nodes.len();
        let config = LocalShardConfig {
            data_dir: self.root.join(format!("node-{i}")),
            engine: EngineConfig {
                node_name: format!("node-{i}"),
                row_memory: Arc::new(RowMemory::new(memory)),
                ..EngineConfig::default()
            },
            labels: BTreeMap::from([("host".to_string(), format!("h{i}"))]),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            keep_checkpoints: KEEP_CHECKPOINTS,
            migration_nice: 0,
            heartbeat_interval: HEARTBEAT_INTERVAL,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let node = LocalShard::start(config, listener, &self.coordinator, &self.local)
            .await
            .with_context(|| format!("starting node {i}"))?;
        self.nodes.push(node);
        Ok(&self.nodes[i])
    }

    /// Waits (bounded) until every node is up and serves shards at the current epoch.
    pub async fn wait_settled(&self) -> anyhow::Result<pb::StatusResponse> {
        let n = self.nodes.len();
        wait_status(&self.address, SETTLE_DEADLINE, "settled", |s| settled(s, n)).await
    }

    /// A client of the cluster.
    pub async fn client(&self) -> anyhow::Result<strata_client::Client> {
        Ok(strata_client::Client::connect(&self.address).await?)
    }

    /// The node serving at `address`, if it is one of this cluster's.
    pub fn node_at(&self, address: &str) -> Option<&LocalShard> {
        self.nodes.iter().find(|n| n.address() == address)
    }
}

impl Drop for InProcessCluster {
    fn drop(&mut self) {
        // The coordinator's loops and server stop; each node stops as it drops.
        let _ = self.stop.send(true);
    }
}
