//! The coordinator's calls to shard servers over gRPC (`ShardControl`), one cached
//! channel per address.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use strata_proto::tls::ClientTls;
use strata_proto::transport::{connect_lazy, endpoint_with};
use strata_proto::v1::shard_control_client::ShardControlClient;
use tonic::transport::Channel;

use strata_proto::v1 as pb;

use super::convert::{
    catalog_to_pb, checkpoint_from_pb, map_to_pb, progress_from_pb, report_from_pb,
};
use super::status::node_error;
use strata_cluster::cluster::{
    follow_move, Catalog, HeartbeatReport, MigrateOut, MoveProgress, NodeCheckpoint, NodeControl,
    NodeError, NodeErrorKind, NodeResult, MOVE_IDLE_TIMEOUT,
};
use strata_cluster::ClusterMap;

/// How long connecting to a shard server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 keepalive towards shard servers: a silent node is noticed in seconds.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// [`NodeControl`] over gRPC.
#[derive(Default)]
pub struct GrpcNodeControl {
    channels: Mutex<HashMap<String, Channel>>,
    tls: Option<ClientTls>,
}

impl GrpcNodeControl {
    /// No connections yet; they open lazily per address.
    pub fn new() -> Self {
        Self::default()
    }

    /// As [`GrpcNodeControl::new`], through TLS with `tls`.
    pub fn with_tls(tls: Option<ClientTls>) -> Self {
        Self {
            channels: Mutex::default(),
            tls,
        }
    }

    fn client(&self, address: &str) -> Result<ShardControlClient<Channel>, NodeError> {
        let mut channels = self.channels.lock();
        if let Some(c) = channels.get(address) {
            return Ok(ShardControlClient::new(c.clone()));
        }
        let endpoint = endpoint_with(address, self.tls.as_ref())
            .map_err(|e| {
                NodeError::new(
                    NodeErrorKind::InvalidArgument,
                    format!("invalid address {address:?}: {e}"),
                )
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE)
            .keep_alive_timeout(KEEPALIVE)
            .keep_alive_while_idle(true);
        let channel = connect_lazy(&endpoint, self.tls.as_ref());
        channels.insert(address.to_string(), channel.clone());
        Ok(ShardControlClient::new(channel))
    }
}

/// The checkpoint a node answered with, or an internal error when it sent none.
fn checkpoint_in(c: Option<pb::CheckpointInfo>) -> Result<NodeCheckpoint, NodeError> {
    c.as_ref()
        .map(checkpoint_from_pb)
        .ok_or_else(|| NodeError::new(NodeErrorKind::Internal, "answered without a checkpoint"))
}

impl NodeControl for GrpcNodeControl {
    fn apply_catalog<'a>(&'a self, address: &'a str, catalog: &'a Catalog) -> NodeResult<'a, ()> {
        Box::pin(async move {
            let request = catalog_to_pb(catalog);
            self.client(address)?
                .apply_catalog(request)
                .await
                .map_err(|s| node_error(&s))?;
            Ok(())
        })
    }

    fn apply_map<'a>(&'a self, address: &'a str, map: &'a ClusterMap) -> NodeResult<'a, ()> {
        Box::pin(async move {
            self.client(address)?
                .apply_map(map_to_pb(map))
                .await
                .map_err(|s| node_error(&s))?;
            Ok(())
        })
    }

    fn report<'a>(&'a self, address: &'a str) -> NodeResult<'a, HeartbeatReport> {
        Box::pin(async move {
            let resp = self
                .client(address)?
                .report(pb::ReportRequest {})
                .await
                .map_err(|s| node_error(&s))?;
            Ok(report_from_pb(resp.into_inner()))
        })
    }

    fn checkpoint<'a>(&'a self, address: &'a str, epoch: u64) -> NodeResult<'a, NodeCheckpoint> {
        Box::pin(async move {
            let resp = self
                .client(address)?
                .checkpoint_node(pb::CheckpointNodeRequest { epoch })
                .await
                .map_err(|s| node_error(&s))?;
            checkpoint_in(resp.into_inner().checkpoint)
        })
    }

    fn checkpoints<'a>(&'a self, address: &'a str) -> NodeResult<'a, Vec<NodeCheckpoint>> {
        Box::pin(async move {
            let resp = self
                .client(address)?
                .list_node_checkpoints(pb::ListCheckpointsRequest {})
                .await
                .map_err(|s| node_error(&s))?;
            Ok(resp
                .into_inner()
                .checkpoints
                .iter()
                .map(checkpoint_from_pb)
                .collect())
        })
    }

    fn verify_checkpoint<'a>(
        &'a self,
        address: &'a str,
        id: &'a str,
    ) -> NodeResult<'a, NodeCheckpoint> {
        Box::pin(async move {
            let resp = self
                .client(address)?
                .verify_checkpoint(pb::RestoreRequest { id: id.to_string() })
                .await
                .map_err(|s| node_error(&s))?;
            checkpoint_in(resp.into_inner().checkpoint)
        })
    }

    fn restore<'a>(&'a self, address: &'a str, id: &'a str) -> NodeResult<'a, NodeCheckpoint> {
        Box::pin(async move {
            let resp = self
                .client(address)?
                .restore_node(pb::RestoreRequest { id: id.to_string() })
                .await
                .map_err(|s| node_error(&s))?;
            checkpoint_in(resp.into_inner().checkpoint)
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
            let req = pb::MigrateOutRequest {
                migration_id: request.id.clone(),
                slot_start: request.slot_start,
                slot_end: request.slot_end,
                destination: request.destination.clone(),
                max_bytes_per_s: request.max_bytes_per_s,
            };
            let stream = self
                .client(address)?
                .migrate_out(req)
                .await
                .map_err(|s| node_error(&s))?
                .into_inner();
            let reports = stream.map(|m| {
                let p = m.map_err(|s| node_error(&s))?;
                progress_from_pb(&p)
                    .map_err(|e| NodeError::new(NodeErrorKind::Internal, e.to_string()))
            });
            follow_move(reports, progress, cancel, MOVE_IDLE_TIMEOUT).await
        })
    }

    fn import_complete<'a>(&'a self, address: &'a str, id: &'a str) -> NodeResult<'a, bool> {
        Box::pin(async move {
            let resp = self
                .client(address)?
                .import_status(pb::ImportStatusRequest {
                    migration_id: id.to_string(),
                })
                .await
                .map_err(|s| node_error(&s))?;
            Ok(resp.into_inner().complete)
        })
    }

    fn abort_migration<'a>(&'a self, address: &'a str, id: &'a str) -> NodeResult<'a, ()> {
        Box::pin(async move {
            self.client(address)?
                .abort_migration(pb::AbortMigrationRequest {
                    migration_id: id.to_string(),
                })
                .await
                .map_err(|s| node_error(&s))?;
            Ok(())
        })
    }
}
