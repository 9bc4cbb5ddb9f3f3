//! The `Coordinator` service of the embedded (dev) coordinator.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use strata_proto::v1 as pb;
use strata_proto::v1::coordinator_server::Coordinator;
use tonic::{Request, Response, Status};

pub use super::convert::map_to_pb;
use super::convert::{
    checkpoint_to_pb, dense_spec_from_pb, dense_spec_to_pb, table_infos, table_spec_from_pb,
    table_spec_to_pb,
};
use super::status::{from_convert, from_coordinator};
use crate::coordinator::{ClusterMap, LocalCoordinator};

/// Serves the control plane of a one-node cluster.
pub struct CoordinatorService {
    coordinator: Arc<LocalCoordinator>,
}

impl CoordinatorService {
    /// A service over `coordinator`.
    pub fn new(coordinator: Arc<LocalCoordinator>) -> Self {
        Self { coordinator }
    }
}

fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} needs a multi-node cluster (strata-server coordinator + shard); this is a dev all-in-one node"
    ))
}

/// A server stream of cluster maps.
pub type MapStream = Pin<Box<dyn Stream<Item = Result<pb::ClusterMap, Status>> + Send>>;

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn get_cluster_map(
        &self,
        _: Request<pb::GetClusterMapRequest>,
    ) -> Result<Response<pb::ClusterMap>, Status> {
        Ok(Response::new(map_to_pb(&self.coordinator.cluster_map())))
    }

    type WatchClusterMapStream = MapStream;

    async fn watch_cluster_map(
        &self,
        request: Request<pb::WatchClusterMapRequest>,
    ) -> Result<Response<MapStream>, Status> {
        let after = request.into_inner().after_epoch;
        let mut rx = self.coordinator.watch_map();
        let map = rx.borrow_and_update().clone();
        Ok(Response::new(map_stream(after, map, rx)))
    }

    async fn create_table(
        &self,
        request: Request<pb::CreateTableRequest>,
    ) -> Result<Response<pb::CreateTableResponse>, Status> {
        let spec = table_spec_from_pb(request.into_inner().spec.as_ref()).map_err(from_convert)?;
        let spec = self
            .coordinator
            .create_table(spec)
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::CreateTableResponse {
            spec: Some(table_spec_to_pb(&spec)),
        }))
    }

    async fn drop_table(
        &self,
        request: Request<pb::DropTableRequest>,
    ) -> Result<Response<pb::DropTableResponse>, Status> {
        self.coordinator
            .drop_table(&request.into_inner().name)
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::DropTableResponse {}))
    }

    async fn list_tables(
        &self,
        _: Request<pb::ListTablesRequest>,
    ) -> Result<Response<pb::ListTablesResponse>, Status> {
        let engine = self.coordinator.engine();
        Ok(Response::new(pb::ListTablesResponse {
            tables: table_infos(engine),
            dense: dense_infos(engine),
        }))
    }

    async fn create_dense(
        &self,
        request: Request<pb::CreateDenseRequest>,
    ) -> Result<Response<pb::CreateDenseResponse>, Status> {
        let spec = dense_spec_from_pb(request.into_inner().spec.as_ref()).map_err(from_convert)?;
        let spec = self
            .coordinator
            .create_dense(spec)
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::CreateDenseResponse {
            spec: Some(dense_spec_to_pb(&spec)),
        }))
    }

    async fn drop_dense(
        &self,
        request: Request<pb::DropDenseRequest>,
    ) -> Result<Response<pb::DropDenseResponse>, Status> {
        self.coordinator
            .drop_dense(&request.into_inner().name)
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::DropDenseResponse {}))
    }

    async fn register_node(
        &self,
        _: Request<pb::RegisterNodeRequest>,
    ) -> Result<Response<pb::RegisterNodeResponse>, Status> {
        Err(unsupported("RegisterNode"))
    }

    async fn heartbeat(
        &self,
        _: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        Err(unsupported("Heartbeat"))
    }

    async fn resize_shards(
        &self,
        request: Request<pb::ResizeShardsRequest>,
    ) -> Result<Response<pb::ResizeShardsResponse>, Status> {
        let req = request.into_inner();
        let current = self.coordinator.cluster_map();
        let text = format!(
            "resize {} -> {} shards on one node: no data moves\n",
            current.shards.len(),
            req.count
        );
        let map = if req.dry_run {
            current
        } else {
            self.coordinator
                .resize(req.count)
                .map_err(from_coordinator)?
        };
        Ok(Response::new(pb::ResizeShardsResponse {
            map: Some(map_to_pb(&map)),
            plan_json: String::new(),
            plan_text: text,
            plan_id: String::new(),
        }))
    }

    async fn plan_rebalance(
        &self,
        _: Request<pb::PlanRebalanceRequest>,
    ) -> Result<Response<pb::PlanRebalanceResponse>, Status> {
        Err(unsupported("PlanRebalance"))
    }

    async fn apply_plan(
        &self,
        _: Request<pb::ApplyPlanRequest>,
    ) -> Result<Response<pb::ApplyPlanResponse>, Status> {
        Err(unsupported("ApplyPlan"))
    }

    async fn cancel_plan(
        &self,
        _: Request<pb::CancelPlanRequest>,
    ) -> Result<Response<pb::CancelPlanResponse>, Status> {
        Err(unsupported("CancelPlan"))
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let map = self.coordinator.cluster_map();
        let engine = self.coordinator.engine();
        let tables = table_infos(engine);
        let rows = tables.iter().map(|t| t.rows).sum();
        let bytes = tables.iter().map(|t| t.bytes).sum();
        let pb_map = map_to_pb(&map);
        let nodes = pb_map
            .nodes
            .iter()
            .map(|n| pb::NodeStatus {
                node: Some(n.clone()),
                shards: map.shards.iter().filter(|s| s.primary == n.id).count() as u32,
                rows,
                bytes,
                memory_budget: engine.budget().limit(),
                pull_rows_per_s: 0.0,
                push_rows_per_s: 0.0,
                applied_epoch: map.epoch,
                last_checkpoint: None,
                last_heartbeat_ms_ago: 0,
                draining: false,
            })
            .collect();
        let last_checkpoint = self
            .coordinator
            .list_checkpoints()
            .await
            .ok()
            .and_then(|c| c.into_iter().next())
            .map(|c| c.id)
            .unwrap_or_default();
        Ok(Response::new(pb::StatusResponse {
            epoch: map.epoch,
            leader: map
                .nodes
                .first()
                .map(|n| n.address.clone())
                .unwrap_or_default(),
            nodes,
            tables,
            shards: with_shard_usage(engine, pb_map.shards),
            dense: dense_infos(engine),
            last_checkpoint,
            plan: None,
            migrations: Vec::new(),
        }))
    }

    async fn checkpoint(
        &self,
        _: Request<pb::CheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let info = self
            .coordinator
            .checkpoint()
            .await
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::CheckpointResponse {
            checkpoint: Some(checkpoint_to_pb(&info)),
        }))
    }

    async fn list_checkpoints(
        &self,
        _: Request<pb::ListCheckpointsRequest>,
    ) -> Result<Response<pb::ListCheckpointsResponse>, Status> {
        let list = self
            .coordinator
            .list_checkpoints()
            .await
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::ListCheckpointsResponse {
            checkpoints: list.iter().map(checkpoint_to_pb).collect(),
        }))
    }

    async fn restore(
        &self,
        request: Request<pb::RestoreRequest>,
    ) -> Result<Response<pb::RestoreResponse>, Status> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(Status::invalid_argument("checkpoint id must not be empty"));
        }
        let info = self
            .coordinator
            .restore(id)
            .await
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::RestoreResponse {
            checkpoint: Some(checkpoint_to_pb(&info)),
        }))
    }
}

/// Shards with the rows and bytes the engine holds in their slot ranges.
fn with_shard_usage(
    engine: &crate::engine::Engine,
    mut shards: Vec<pb::ShardInfo>,
) -> Vec<pb::ShardInfo> {
    let ranges: Vec<(u32, u32)> = shards.iter().map(|s| (s.slot_start, s.slot_end)).collect();
    for (shard, usage) in shards.iter_mut().zip(engine.range_usage(&ranges)) {
        shard.rows = usage.rows;
        shard.bytes = usage.bytes;
    }
    shards
}

fn dense_infos(engine: &crate::engine::Engine) -> Vec<pb::DenseInfo> {
    engine
        .dense_tensors()
        .iter()
        .map(|d| pb::DenseInfo {
            spec: Some(dense_spec_to_pb(d.spec())),
        })
        .collect()
}

/// A stream of maps newer than `after`, starting with the current one.
pub fn map_stream(
    after: u64,
    map: ClusterMap,
    rx: tokio::sync::watch::Receiver<ClusterMap>,
) -> MapStream {
    let initial = (map.epoch > after).then(|| Ok(map_to_pb(&map)));
    let updates = futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let map = rx.borrow_and_update().clone();
        Some((Ok(map_to_pb(&map)), rx))
    });
    Box::pin(futures::StreamExt::chain(
        futures::stream::iter(initial),
        updates,
    ))
}
