//! The internal `ShardControl` service of a shard server: the coordinator's calls, and the
//! import stream of migrations from other shard servers.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use strata_proto::v1 as pb;
use strata_proto::v1::shard_control_server::ShardControl;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{catalog_from_pb, checkpoint_to_pb, map_from_pb};
use super::status::{from_convert, from_engine, from_migration, from_shard_node};
use crate::migration::{destination, source};
use crate::shard_node::ShardNode;

/// Serves the coordinator's calls on one shard server.
pub struct ShardControlService {
    node: Arc<ShardNode>,
}

impl ShardControlService {
    /// A service over `node`.
    pub fn new(node: Arc<ShardNode>) -> Self {
        Self { node }
    }
}

impl ShardControlService {
    /// The migration runtime, or UNAVAILABLE while the node shuts down.
    fn background(&self) -> Result<tokio::runtime::Handle, Status> {
        self.node
            .background()
            .ok_or_else(|| Status::unavailable("the node is shutting down"))
    }
}

/// The progress stream of a source.
type ProgressStream = Pin<Box<dyn Stream<Item = Result<pb::MigrationProgress, Status>> + Send>>;

#[tonic::async_trait]
impl ShardControl for ShardControlService {
    async fn apply_catalog(
        &self,
        request: Request<pb::Catalog>,
    ) -> Result<Response<pb::ApplyCatalogResponse>, Status> {
        let catalog = catalog_from_pb(&request.into_inner()).map_err(from_convert)?;
        self.node.apply_catalog(&catalog).map_err(from_engine)?;
        Ok(Response::new(pb::ApplyCatalogResponse {}))
    }

    async fn apply_map(
        &self,
        request: Request<pb::ClusterMap>,
    ) -> Result<Response<pb::ApplyMapResponse>, Status> {
        let (node, map) = (self.node.clone(), map_from_pb(&request.into_inner()));
        // Dropping handed-off rows walks stripes: off the async workers.
        tokio::task::spawn_blocking(move || node.apply_map(&map))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(from_shard_node)?;
        Ok(Response::new(pb::ApplyMapResponse {}))
    }

    async fn checkpoint_node(
        &self,
        request: Request<pb::CheckpointNodeRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let info = self
            .node
            .checkpoint(request.into_inner().epoch)
            .await
            .map_err(from_shard_node)?;
        Ok(Response::new(pb::CheckpointResponse {
            checkpoint: Some(checkpoint_to_pb(&info)),
        }))
    }

    type MigrateOutStream = ProgressStream;

    async fn migrate_out(
        &self,
        request: Request<pb::MigrateOutRequest>,
    ) -> Result<Response<Self::MigrateOutStream>, Status> {
        let r = request.into_inner();
        let num_slots = self.node.engine().ownership().num_slots();
        if r.migration_id.is_empty()
            || r.destination.is_empty()
            || r.slot_start >= r.slot_end
            || r.slot_end > num_slots
        {
            return Err(Status::invalid_argument(format!(
                "a move needs an id, a destination and a non-empty slot range within 0..{num_slots}"
            )));
        }
        let req = source::SourceRequest {
            id: r.migration_id,
            start: r.slot_start,
            end: r.slot_end,
            destination: r.destination,
            max_bytes_per_s: r.max_bytes_per_s,
        };
        // Refuse at once what cannot start (range not served, overlapping move).
        if !self
            .node
            .engine()
            .ownership()
            .serves_all(req.start, req.end)
        {
            return Err(Status::failed_precondition(format!(
                "this node does not serve every slot of {}..{}",
                req.start, req.end
            )));
        }
        let (progress_tx, progress_rx) = mpsc::channel(16);
        let (result_tx, result_rx) = mpsc::channel::<Result<pb::MigrationProgress, Status>>(1);
        let engine = self.node.engine().clone();
        let counters = self.node.migration_counters().clone();
        let background = self.background()?;
        background.spawn(async move {
            if let Err(e) = source::migrate_out(engine, req, counters, progress_tx).await {
                let _ = result_tx.send(Err(from_migration(e))).await;
            }
        });
        let stream = ReceiverStream::new(progress_rx)
            .map(Ok)
            .chain(ReceiverStream::new(result_rx));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn import_rows(
        &self,
        request: Request<Streaming<pb::ImportChunk>>,
    ) -> Result<Response<pb::ImportRowsResponse>, Status> {
        // In its own task: when the source goes away tonic drops this handler, and the
        // import must still see its stream fail and drop what it received.
        let rows = self
            .background()?
            .spawn(destination::import(
                self.node.engine().clone(),
                self.node.incoming().clone(),
                self.node.migration_counters().clone(),
                request.into_inner(),
            ))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(from_migration)?;
        Ok(Response::new(pb::ImportRowsResponse { rows }))
    }

    async fn import_status(
        &self,
        request: Request<pb::ImportStatusRequest>,
    ) -> Result<Response<pb::ImportStatusResponse>, Status> {
        let complete = self
            .node
            .incoming()
            .is_complete(&request.into_inner().migration_id);
        Ok(Response::new(pb::ImportStatusResponse { complete }))
    }

    async fn abort_migration(
        &self,
        request: Request<pb::AbortMigrationRequest>,
    ) -> Result<Response<pb::AbortMigrationResponse>, Status> {
        self.node
            .abort_migration(&request.into_inner().migration_id)
            .map_err(from_shard_node)?;
        Ok(Response::new(pb::AbortMigrationResponse {}))
    }
}
