//! The internal `ShardControl` service of a shard server: the coordinator's calls, and the
//! import stream of migrations from other shard servers.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use prost::Message;
use strata_proto::v1 as pb;
use strata_proto::v1::shard_control_server::{ShardControl, ShardControlServer};
use strata_proto::wire::{self, MessageReader, MessageWriter};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::body::Body;
use tonic::{Request, Response, Status, Streaming};
use tower::Service;

use super::convert::{
    catalog_from_pb, checkpoint_to_pb, map_from_pb, progress_to_pb, report_to_pb,
};
use super::hand_framed::{read_status, respond, HandFramed, Respond};
use super::status::{from_convert, from_engine, from_migration, from_shard_node, internal};
use crate::metrics::Metrics;
use crate::migration::destination;
use crate::shard_node::{node_checkpoint, ShardNode};
use strata_cluster::cluster::MigrateOut;

/// Serves the coordinator's calls on one shard server.
pub struct ShardControlService {
    node: Arc<ShardNode>,
    metrics: Arc<Metrics>,
}

impl ShardControlService {
    /// A service over `node` that records its calls in `metrics`.
    pub fn new(node: Arc<ShardNode>, metrics: Arc<Metrics>) -> Self {
        Self { node, metrics }
    }
}

impl ShardControlService {
    /// Receives a migration's stream of rows (hand-framed or through tonic's codec).
    pub(crate) async fn import<S>(&self, stream: S) -> Result<u64, Status>
    where
        S: Stream<Item = Result<pb::ImportChunk, Status>> + Unpin + Send + 'static,
    {
        // In its own task: when the source goes away the handler is dropped, and the
        // import must still see its stream fail and drop what it received.
        self.background()?
            .spawn(destination::import(
                self.node.engine().clone(),
                self.node.incoming().clone(),
                self.node.migration_counters().clone(),
                stream,
            ))
            .await
            .map_err(|e| internal(&e))?
            .map_err(from_migration)
    }

    /// The migration runtime, or UNAVAILABLE while the node shuts down.
    fn background(&self) -> Result<tokio::runtime::Handle, Status> {
        self.node
            .background()
            .ok_or_else(|| Status::unavailable("the node is shutting down"))
    }
}

/// The ShardControl service with a hand-framed `ImportRows` (a migration's rows are
/// imported from the frames they arrived in), refusing messages over `max_message_bytes`.
pub fn shard_control_routes(
    service: ShardControlService,
    max_message_bytes: usize,
) -> HandFramed<
    ShardControlServer<ShardControlService>,
    impl Fn(http::Request<Body>, &mut ShardControlServer<ShardControlService>) -> Respond + Clone,
> {
    let service = Arc::new(service);
    let generated = ShardControlServer::from_arc(service.clone())
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let max = max_message_bytes;
    HandFramed::new(
        generated,
        move |req: http::Request<Body>,
              generated: &mut ShardControlServer<ShardControlService>|
              -> Respond {
            if req.uri().path() != wire::IMPORT_ROWS_PATH {
                return generated.call(req);
            }
            let service = service.clone();
            Box::pin(async move {
                let chunks = import_chunks(req.into_body(), max);
                let result = service
                    .metrics
                    .timed("ImportRows", service.import(chunks))
                    .await
                    .map(|rows| {
                        let mut response = MessageWriter::new();
                        response.uint(1, rows);
                        response
                    });
                Ok(respond(result, max))
            })
        },
    )
}

/// The `ImportChunk`s of a request body as they arrive (rows that came in one frame are
/// shared with it, not copied).
fn import_chunks(
    body: Body,
    max: usize,
) -> Pin<Box<dyn Stream<Item = Result<pb::ImportChunk, Status>> + Send>> {
    let reader = Some(MessageReader::new(body, max));
    Box::pin(futures::stream::unfold(reader, |reader| async move {
        let mut reader = reader?;
        match reader.next_message().await {
            Ok(Some(message)) => {
                let chunk = pb::ImportChunk::decode(message)
                    .map_err(|e| Status::invalid_argument(format!("malformed ImportChunk: {e}")));
                Some((chunk, Some(reader)))
            }
            Ok(None) => None,
            Err(e) => Some((Err(read_status(e)), None)),
        }
    }))
}

/// The progress stream of a source.
type ProgressStream = Pin<Box<dyn Stream<Item = Result<pb::MigrationProgress, Status>> + Send>>;

#[tonic::async_trait]
impl ShardControl for ShardControlService {
    async fn apply_catalog(
        &self,
        request: Request<pb::Catalog>,
    ) -> Result<Response<pb::ApplyCatalogResponse>, Status> {
        self.metrics
            .timed("ApplyCatalog", async {
                let catalog = catalog_from_pb(&request.into_inner()).map_err(from_convert)?;
                self.node.apply_catalog(&catalog).map_err(from_engine)?;
                Ok(Response::new(pb::ApplyCatalogResponse {}))
            })
            .await
    }

    async fn apply_map(
        &self,
        request: Request<pb::ClusterMap>,
    ) -> Result<Response<pb::ApplyMapResponse>, Status> {
        self.metrics
            .timed("ApplyMap", async {
                let (node, map) = (self.node.clone(), map_from_pb(&request.into_inner()));
                // Dropping handed-off rows walks stripes: off the async workers.
                tokio::task::spawn_blocking(move || node.apply_map(&map))
                    .await
                    .map_err(|e| internal(&e))?
                    .map_err(from_shard_node)?;
                Ok(Response::new(pb::ApplyMapResponse {}))
            })
            .await
    }

    async fn checkpoint_node(
        &self,
        request: Request<pb::CheckpointNodeRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        self.metrics
            .timed("CheckpointNode", async {
                let info = self
                    .node
                    .checkpoint(request.into_inner().epoch)
                    .await
                    .map_err(from_shard_node)?;
                Ok(Response::new(pb::CheckpointResponse {
                    checkpoint: Some(checkpoint_to_pb(&node_checkpoint(&info))),
                }))
            })
            .await
    }

    type MigrateOutStream = ProgressStream;

    async fn migrate_out(
        &self,
        request: Request<pb::MigrateOutRequest>,
    ) -> Result<Response<Self::MigrateOutStream>, Status> {
        self.metrics
            .timed("MigrateOut", async {
                let r = request.into_inner();
                let request = MigrateOut {
                    id: r.migration_id,
                    slot_start: r.slot_start,
                    slot_end: r.slot_end,
                    destination: r.destination,
                    max_bytes_per_s: r.max_bytes_per_s,
                };
                let (progress_tx, progress_rx) = mpsc::channel(16);
                let (result_tx, result_rx) =
                    mpsc::channel::<Result<pb::MigrationProgress, Status>>(1);
                let task = self
                    .node
                    .migrate_out(&request, progress_tx)
                    .map_err(from_shard_node)?;
                tokio::spawn(async move {
                    let failure = match task.await {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => from_migration(e),
                        Err(e) => internal(&format!("the move's task failed: {e}")),
                    };
                    let _ = result_tx.send(Err(failure)).await;
                });
                let stream = ReceiverStream::new(progress_rx)
                    .map(|p| Ok(progress_to_pb(&p)))
                    .chain(ReceiverStream::new(result_rx));
                Ok(Response::new(Box::pin(stream) as ProgressStream))
            })
            .await
    }

    async fn import_rows(
        &self,
        request: Request<Streaming<pb::ImportChunk>>,
    ) -> Result<Response<pb::ImportRowsResponse>, Status> {
        self.metrics
            .timed("ImportRows", async {
                let rows = self.import(request.into_inner()).await?;
                Ok(Response::new(pb::ImportRowsResponse { rows }))
            })
            .await
    }

    async fn import_status(
        &self,
        request: Request<pb::ImportStatusRequest>,
    ) -> Result<Response<pb::ImportStatusResponse>, Status> {
        self.metrics
            .timed("ImportStatus", async {
                let complete = self
                    .node
                    .incoming()
                    .is_complete(&request.into_inner().migration_id);
                Ok(Response::new(pb::ImportStatusResponse { complete }))
            })
            .await
    }

    async fn report(
        &self,
        _: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::HeartbeatRequest>, Status> {
        self.metrics
            .timed("Report", async {
                Ok(Response::new(report_to_pb(&self.node.report(""))))
            })
            .await
    }

    async fn list_node_checkpoints(
        &self,
        _: Request<pb::ListCheckpointsRequest>,
    ) -> Result<Response<pb::ListCheckpointsResponse>, Status> {
        self.metrics
            .timed("ListNodeCheckpoints", async {
                let list = self.node.checkpoints().await.map_err(from_shard_node)?;
                Ok(Response::new(pb::ListCheckpointsResponse {
                    checkpoints: list
                        .iter()
                        .map(|c| checkpoint_to_pb(&node_checkpoint(c)))
                        .collect(),
                }))
            })
            .await
    }

    async fn verify_checkpoint(
        &self,
        request: Request<pb::RestoreRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        self.metrics
            .timed("VerifyCheckpoint", async {
                let info = self
                    .node
                    .verify_checkpoint(&request.into_inner().id)
                    .await
                    .map_err(from_shard_node)?;
                Ok(Response::new(pb::CheckpointResponse {
                    checkpoint: Some(checkpoint_to_pb(&node_checkpoint(&info))),
                }))
            })
            .await
    }

    async fn restore_node(
        &self,
        request: Request<pb::RestoreRequest>,
    ) -> Result<Response<pb::RestoreResponse>, Status> {
        self.metrics
            .timed("RestoreNode", async {
                let info = self
                    .node
                    .restore(&request.into_inner().id)
                    .await
                    .map_err(from_shard_node)?;
                Ok(Response::new(pb::RestoreResponse {
                    checkpoint: Some(checkpoint_to_pb(&node_checkpoint(&info))),
                }))
            })
            .await
    }

    async fn abort_migration(
        &self,
        request: Request<pb::AbortMigrationRequest>,
    ) -> Result<Response<pb::AbortMigrationResponse>, Status> {
        self.metrics
            .timed("AbortMigration", async {
                self.node
                    .abort_migration(&request.into_inner().migration_id)
                    .map_err(from_shard_node)?;
                Ok(Response::new(pb::AbortMigrationResponse {}))
            })
            .await
    }
}
