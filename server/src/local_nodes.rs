//! [`NodeControl`] by direct calls: the shard nodes that share the coordinator's process
//! (the node of `strata-server dev`, the nodes of an in-process test cluster), by address.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use futures::StreamExt;
use parking_lot::RwLock;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::service::status::{from_migration, node_error, node_error_of};
use crate::shard_node::{node_checkpoint, ShardNode};
use strata_cluster::cluster::{
    follow_move, Catalog, HeartbeatReport, MigrateOut, MoveProgress, NodeCheckpoint, NodeControl,
    NodeError, NodeErrorKind, NodeResult, MOVE_IDLE_TIMEOUT,
};
use strata_cluster::ClusterMap;

/// The shard nodes of this process, by the address they serve at.
#[derive(Default)]
pub struct LocalNodes {
    nodes: RwLock<HashMap<String, Arc<ShardNode>>>,
}

impl LocalNodes {
    /// No nodes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `node`, reached at `address`.
    pub fn insert(&self, address: &str, node: Arc<ShardNode>) {
        self.nodes.write().insert(address.to_string(), node);
    }

    /// The node at `address`, or UNAVAILABLE as for a node that cannot be reached.
    fn node(&self, address: &str) -> Result<Arc<ShardNode>, NodeError> {
        self.nodes.read().get(address).cloned().ok_or_else(|| {
            NodeError::new(
                NodeErrorKind::Unavailable,
                format!("no node of this process serves at {address}"),
            )
        })
    }
}

impl NodeControl for LocalNodes {
    fn apply_catalog<'a>(&'a self, address: &'a str, catalog: &'a Catalog) -> NodeResult<'a, ()> {
        Box::pin(async move {
            let node = self.node(address)?;
            node.apply_catalog(catalog)
                .map_err(|e| node_error_of(e.into()))
        })
    }

    fn apply_map<'a>(&'a self, address: &'a str, map: &'a ClusterMap) -> NodeResult<'a, ()> {
        Box::pin(async move {
            let (node, map) = (self.node(address)?, map.clone());
            // Dropping handed-off rows walks stripes: off the async workers.
            tokio::task::spawn_blocking(move || node.apply_map(&map))
                .await
                .map_err(|e| NodeError::new(NodeErrorKind::Internal, e.to_string()))?
                .map_err(node_error_of)
        })
    }

    fn report<'a>(&'a self, address: &'a str) -> NodeResult<'a, HeartbeatReport> {
        Box::pin(async move { Ok(self.node(address)?.report("")) })
    }

    fn checkpoint<'a>(&'a self, address: &'a str, epoch: u64) -> NodeResult<'a, NodeCheckpoint> {
        Box::pin(async move {
            let node = self.node(address)?;
            node.checkpoint(epoch)
                .await
                .map(|c| node_checkpoint(&c))
                .map_err(node_error_of)
        })
    }

    fn checkpoints<'a>(&'a self, address: &'a str) -> NodeResult<'a, Vec<NodeCheckpoint>> {
        Box::pin(async move {
            let node = self.node(address)?;
            node.checkpoints()
                .await
                .map(|list| list.iter().map(node_checkpoint).collect())
                .map_err(node_error_of)
        })
    }

    fn verify_checkpoint<'a>(
        &'a self,
        address: &'a str,
        id: &'a str,
    ) -> NodeResult<'a, NodeCheckpoint> {
        Box::pin(async move {
            let node = self.node(address)?;
            node.verify_checkpoint(id)
                .await
                .map(|c| node_checkpoint(&c))
                .map_err(node_error_of)
        })
    }

    fn restore<'a>(&'a self, address: &'a str, id: &'a str) -> NodeResult<'a, NodeCheckpoint> {
        Box::pin(async move {
            let node = self.node(address)?;
            node.restore(id)
                .await
                .map(|c| node_checkpoint(&c))
                .map_err(node_error_of)
        })
    }

    fn migrate_out<'a>(
        &'a self,
        address: &'a str,
        request: &'a MigrateOut,
        progress: &'a (dyn Fn(MoveProgress) + Send + Sync),
        cancel: &'a AtomicBool,
    ) -> NodeResult<'a, ()> {
        Box::pin(async move {
            let node = self.node(address)?;
            let (progress_tx, progress_rx) = mpsc::channel(16);
            let task = node
                .migrate_out(request, progress_tx)
                .map_err(node_error_of)?;
            // The source's own failure ends its reports; it is told after them.
            let outcome = futures::stream::once(async move {
                match task.await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(Err(node_error(&from_migration(e)))),
                    Err(e) => Some(Err(NodeError::new(
                        NodeErrorKind::Internal,
                        format!("the move's task failed: {e}"),
                    ))),
                }
            })
            .filter_map(std::future::ready);
            let reports = ReceiverStream::new(progress_rx).map(Ok).chain(outcome);
            follow_move(Box::pin(reports), progress, cancel, MOVE_IDLE_TIMEOUT).await
        })
    }

    fn import_complete<'a>(&'a self, address: &'a str, id: &'a str) -> NodeResult<'a, bool> {
        Box::pin(async move { Ok(self.node(address)?.incoming().is_complete(id)) })
    }

    fn abort_migration<'a>(&'a self, address: &'a str, id: &'a str) -> NodeResult<'a, ()> {
        Box::pin(async move {
            let node = self.node(address)?;
            node.abort_migration(id).map_err(node_error_of)
        })
    }
}
