//! The `Coordinator` service of a cluster coordinator (`strata-server coordinator`).

use std::sync::Arc;

use strata_proto::v1 as pb;
use strata_proto::v1::coordinator_server::Coordinator;
use tonic::{Request, Response, Status};

use super::convert::{
    catalog_to_pb, checkpoint_from_pb, checkpoint_to_pb, dense_spec_from_pb, dense_spec_to_pb,
    map_to_pb, table_spec_from_pb, table_spec_to_pb,
};
use super::coordinator::{map_stream, MapStream};
use super::leader::LeaderSlot;
use super::status::{from_convert, from_coordinator};
use crate::coordinator::cluster::{
    shards_of, ClusterCheckpoint, ClusterCoordinator, ClusterRecord, HeartbeatReport, NodeLive,
    Registration, TableUsage,
};
use crate::coordinator::CoordinatorError;

/// Serves the control plane of a multi-node cluster.
pub struct ClusterCoordinatorService {
    slot: Arc<LeaderSlot>,
}

impl ClusterCoordinatorService {
    /// A service over `coordinator`, which always leads.
    pub fn new(coordinator: Arc<ClusterCoordinator>) -> Self {
        Self::with_slot(Arc::new(LeaderSlot::leading(coordinator)))
    }

    /// A service that serves once `slot` leads and refuses with the leader's address before.
    pub fn with_slot(slot: Arc<LeaderSlot>) -> Self {
        Self { slot }
    }

    fn coordinator(&self) -> Result<&Arc<ClusterCoordinator>, Status> {
        self.slot.get()
    }
}

fn not_supported(what: &'static str) -> Status {
    from_coordinator(CoordinatorError::NotSupported(what))
}

fn cluster_checkpoint_to_pb(c: &ClusterCheckpoint) -> pb::CheckpointInfo {
    pb::CheckpointInfo {
        id: c.id.clone(),
        created_unix_ms: c.created_unix_ms,
        bytes: c.bytes,
        tables: c.tables,
        rows: c.rows,
        state: "ok".into(),
    }
}

/// Catalog tables with rows and bytes summed over the nodes' last reports.
fn table_infos(
    record: &ClusterRecord,
    live: &std::collections::BTreeMap<String, NodeLive>,
) -> Vec<pb::TableInfo> {
    record
        .tables
        .iter()
        .map(|spec| {
            let usage = live
                .values()
                .flat_map(|l| l.tables.iter())
                .filter(|t| t.name == spec.name);
            let (rows, bytes) = usage.fold((0, 0), |(r, b), t| (r + t.rows, b + t.bytes));
            pb::TableInfo {
                spec: Some(table_spec_to_pb(spec)),
                rows,
                bytes,
            }
        })
        .collect()
}

fn dense_infos(record: &ClusterRecord) -> Vec<pb::DenseInfo> {
    record
        .dense
        .iter()
        .map(|d| pb::DenseInfo {
            spec: Some(dense_spec_to_pb(d)),
        })
        .collect()
}

#[tonic::async_trait]
impl Coordinator for ClusterCoordinatorService {
    async fn get_cluster_map(
        &self,
        _: Request<pb::GetClusterMapRequest>,
    ) -> Result<Response<pb::ClusterMap>, Status> {
        Ok(Response::new(map_to_pb(&self.coordinator()?.cluster_map())))
    }

    type WatchClusterMapStream = MapStream;

    async fn watch_cluster_map(
        &self,
        request: Request<pb::WatchClusterMapRequest>,
    ) -> Result<Response<MapStream>, Status> {
        let after = request.into_inner().after_epoch;
        let mut rx = self.coordinator()?.watch_map();
        let map = rx.borrow_and_update().clone();
        Ok(Response::new(map_stream(after, map, rx)))
    }

    async fn create_table(
        &self,
        request: Request<pb::CreateTableRequest>,
    ) -> Result<Response<pb::CreateTableResponse>, Status> {
        let spec = table_spec_from_pb(request.into_inner().spec.as_ref()).map_err(from_convert)?;
        let spec = self
            .coordinator()?
            .create_table(spec)
            .await
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::CreateTableResponse {
            spec: Some(table_spec_to_pb(&spec)),
        }))
    }

    async fn drop_table(
        &self,
        request: Request<pb::DropTableRequest>,
    ) -> Result<Response<pb::DropTableResponse>, Status> {
        self.coordinator()?
            .drop_table(&request.into_inner().name)
            .await
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::DropTableResponse {}))
    }

    async fn list_tables(
        &self,
        _: Request<pb::ListTablesRequest>,
    ) -> Result<Response<pb::ListTablesResponse>, Status> {
        let (record, live) = self.coordinator()?.snapshot();
        Ok(Response::new(pb::ListTablesResponse {
            tables: table_infos(&record, &live),
            dense: dense_infos(&record),
        }))
    }

    async fn create_dense(
        &self,
        request: Request<pb::CreateDenseRequest>,
    ) -> Result<Response<pb::CreateDenseResponse>, Status> {
        let spec = dense_spec_from_pb(request.into_inner().spec.as_ref()).map_err(from_convert)?;
        let spec = self
            .coordinator()?
            .create_dense(spec)
            .await
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::CreateDenseResponse {
            spec: Some(dense_spec_to_pb(&spec)),
        }))
    }

    async fn drop_dense(
        &self,
        request: Request<pb::DropDenseRequest>,
    ) -> Result<Response<pb::DropDenseResponse>, Status> {
        self.coordinator()?
            .drop_dense(&request.into_inner().name)
            .await
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::DropDenseResponse {}))
    }

    async fn register_node(
        &self,
        request: Request<pb::RegisterNodeRequest>,
    ) -> Result<Response<pb::RegisterNodeResponse>, Status> {
        let req = request.into_inner();
        if req.address.is_empty() {
            return Err(Status::invalid_argument("address must not be empty"));
        }
        let (node_id, map, catalog) = self
            .coordinator()?
            .register(Registration {
                node_id: req.node_id,
                address: req.address,
                labels: req.labels.into_iter().collect(),
                memory_budget: req.memory_budget,
            })
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::RegisterNodeResponse {
            node_id,
            map: Some(map_to_pb(&map)),
            catalog: Some(catalog_to_pb(&catalog)),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let req = request.into_inner();
        let reply = self
            .coordinator()?
            .heartbeat(HeartbeatReport {
                node_id: req.node_id,
                address: req.address,
                epoch: req.epoch,
                catalog_version: req.catalog_version,
                tables: req
                    .tables
                    .iter()
                    .map(|t| TableUsage {
                        name: t.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                        rows: t.rows,
                        bytes: t.bytes,
                    })
                    .collect(),
                last_checkpoint: req.last_checkpoint.as_ref().map(checkpoint_from_pb),
            })
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::HeartbeatResponse {
            epoch: reply.epoch,
            map: reply.map.as_ref().map(map_to_pb),
            catalog: reply.catalog.as_ref().map(catalog_to_pb),
        }))
    }

    async fn resize_shards(
        &self,
        _: Request<pb::ResizeShardsRequest>,
    ) -> Result<Response<pb::ResizeShardsResponse>, Status> {
        Err(not_supported("ResizeShards"))
    }

    async fn plan_rebalance(
        &self,
        _: Request<pb::PlanRebalanceRequest>,
    ) -> Result<Response<pb::PlanRebalanceResponse>, Status> {
        Err(not_supported("PlanRebalance"))
    }

    async fn apply_plan(
        &self,
        _: Request<pb::ApplyPlanRequest>,
    ) -> Result<Response<pb::ApplyPlanResponse>, Status> {
        Err(not_supported("ApplyPlan"))
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let (record, live) = self.coordinator()?.snapshot();
        let map = map_to_pb(&self.coordinator()?.cluster_map());
        let nodes = map
            .nodes
            .iter()
            .map(|n| {
                let l = live.get(&n.id);
                let budget = record
                    .nodes
                    .iter()
                    .find(|r| r.id == n.id)
                    .map_or(0, |r| r.memory_budget);
                pb::NodeStatus {
                    node: Some(n.clone()),
                    shards: shards_of(&record, &n.id).len() as u32,
                    rows: l.map_or(0, |l| l.rows),
                    bytes: l.map_or(0, |l| l.bytes),
                    memory_budget: budget,
                    pull_rows_per_s: 0.0,
                    push_rows_per_s: 0.0,
                    applied_epoch: l.map_or(0, |l| l.applied_epoch),
                    last_checkpoint: l
                        .and_then(|l| l.last_checkpoint.as_ref())
                        .map(checkpoint_to_pb),
                    last_heartbeat_ms_ago: l
                        .map_or(0, |l| l.last_seen.elapsed().as_millis() as u64),
                }
            })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            epoch: map.epoch,
            leader: self.coordinator()?.address().to_string(),
            nodes,
            tables: table_infos(&record, &live),
            shards: map.shards,
            dense: dense_infos(&record),
            last_checkpoint: record
                .checkpoints
                .last()
                .map(|c| c.id.clone())
                .unwrap_or_default(),
        }))
    }

    async fn checkpoint(
        &self,
        _: Request<pb::CheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let c = self
            .coordinator()?
            .checkpoint()
            .await
            .map_err(from_coordinator)?;
        Ok(Response::new(pb::CheckpointResponse {
            checkpoint: Some(cluster_checkpoint_to_pb(&c)),
        }))
    }

    async fn list_checkpoints(
        &self,
        _: Request<pb::ListCheckpointsRequest>,
    ) -> Result<Response<pb::ListCheckpointsResponse>, Status> {
        let (record, _) = self.coordinator()?.snapshot();
        Ok(Response::new(pb::ListCheckpointsResponse {
            checkpoints: record
                .checkpoints
                .iter()
                .rev()
                .map(cluster_checkpoint_to_pb)
                .collect(),
        }))
    }

    async fn restore(
        &self,
        _: Request<pb::RestoreRequest>,
    ) -> Result<Response<pb::RestoreResponse>, Status> {
        Err(not_supported("Restore of a cluster checkpoint"))
    }
}
