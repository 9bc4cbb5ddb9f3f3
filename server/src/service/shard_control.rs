//! The internal `ShardControl` service of a shard server: the coordinator's calls.

use std::sync::Arc;

use strata_proto::v1 as pb;
use strata_proto::v1::shard_control_server::ShardControl;
use tonic::{Request, Response, Status};

use super::convert::{catalog_from_pb, checkpoint_to_pb, map_from_pb};
use super::status::{from_convert, from_engine, from_shard_node};
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
        self.node.apply_map(&map_from_pb(&request.into_inner()));
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
}
