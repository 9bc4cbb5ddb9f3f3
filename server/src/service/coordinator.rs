//! The `Coordinator` service: the control plane of `strata-server coordinator` and of
//! `strata-server dev` (the same coordinator, with its node in the same process).

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use strata_proto::v1 as pb;
use strata_proto::v1::coordinator_server::Coordinator;
use tonic::{Request, Response, Status};

use super::convert::{
    catalog_to_pb, checkpoint_to_pb, dense_spec_from_pb, dense_spec_to_pb, identity_from_pb,
    identity_to_pb, map_to_pb, report_from_pb, shard_traffic_to_pb, table_info_to_pb,
    table_spec_from_pb, table_spec_to_pb,
};
use super::leader::LeaderSlot;
use super::status::{from_convert, from_coordinator, internal};
use crate::metrics::Metrics;
use strata_cluster::cluster::migrations::{shard_loads, LiveMove};
use strata_cluster::cluster::{
    shards_of, ClusterCheckpoint, ClusterCheckpointState, ClusterCoordinator, ClusterRecord,
    MoveState, NodeLive, PlanRecord, ProcessIdentity, Registration, TableUsage,
};
use strata_cluster::plan::{render, render_predicted, Plan, PlanKind, TopologyParams};
use strata_cluster::traffic::traffic_by_shard;
use strata_cluster::{ClusterMap, CoordinatorError};
use strata_storage::spec::shown_name;

/// Serves the control plane of a multi-node cluster.
pub struct CoordinatorService {
    slot: Arc<LeaderSlot>,
    /// Where calls are recorded.
    metrics: Arc<Metrics>,
    /// Whether shard servers of other processes may join (not on a dev server, whose
    /// coordinator reaches only the node in its own process).
    remote_nodes: bool,
    /// What runs in this process, for `Status` (`None`: not told).
    identity: Option<ProcessIdentity>,
}

impl CoordinatorService {
    /// A service over `coordinator`, which always leads.
    pub fn new(coordinator: Arc<ClusterCoordinator>) -> Self {
        Self::with_slot(Arc::new(LeaderSlot::leading(coordinator)))
    }

    /// A service that serves once `slot` leads and refuses with the leader's address before.
    pub fn with_slot(slot: Arc<LeaderSlot>) -> Self {
        Self {
            slot,
            metrics: Arc::new(Metrics::new()),
            remote_nodes: true,
            identity: None,
        }
    }

    /// Records calls in `metrics` (by default in a registry of the service's own, which no
    /// `/metrics` serves).
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Self { metrics, ..self }
    }

    /// The same service, answering `Status` with `identity` as the coordinator's.
    pub fn identified(self, identity: Option<ProcessIdentity>) -> Self {
        Self { identity, ..self }
    }

    /// The service of `strata-server dev`: as [`CoordinatorService::new`], but shard servers
    /// of other processes are refused (the dev coordinator reaches only its own node).
    pub fn in_process_only(coordinator: Arc<ClusterCoordinator>) -> Self {
        Self {
            remote_nodes: false,
            ..Self::new(coordinator)
        }
    }

    /// Refuses membership calls from other processes on a dev server.
    fn check_remote_nodes(&self) -> Result<(), Status> {
        if self.remote_nodes {
            return Ok(());
        }
        Err(Status::failed_precondition(
            "this is a strata-server dev, whose one shard node runs in its own process; \
             to run shard servers as processes, start strata-server coordinator",
        ))
    }

    fn coordinator(&self) -> Result<&Arc<ClusterCoordinator>, Status> {
        self.slot.get()
    }

    /// The `Status` reply: what the rpc answers and what the status page shows.
    pub async fn status_reply(&self) -> Result<pb::StatusResponse, Status> {
        self.coordinator()?.refresh_reports().await;
        // The plan first: a plan seen ended comes with the map it ended with (or newer).
        let plan = self.coordinator()?.plan_status();
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
                    pull_rows_per_s: l.map_or(0.0, |l| l.pull_rows_per_s),
                    push_rows_per_s: l.map_or(0.0, |l| l.push_rows_per_s),
                    applied_epoch: l.map_or(0, |l| l.applied_epoch),
                    last_checkpoint: l
                        .and_then(|l| l.last_checkpoint.as_ref())
                        .map(checkpoint_to_pb),
                    last_heartbeat_ms_ago: l
                        .map_or(0, |l| l.last_seen.elapsed().as_millis() as u64),
                    draining: record.nodes.iter().any(|r| r.id == n.id && r.draining),
                    identity: l.and_then(|l| l.identity.as_ref()).map(identity_to_pb),
                }
            })
            .collect();
        Ok(pb::StatusResponse {
            epoch: map.epoch,
            leader: self.coordinator()?.address().to_string(),
            nodes,
            tables: table_infos(&record, &live),
            shards: shard_infos(&record, &live, map.shards),
            dense: dense_infos(&record),
            last_checkpoint: record
                .checkpoints
                .last()
                .map(|c| c.id.clone())
                .unwrap_or_default(),
            plan: plan.as_ref().map(|(p, _)| plan_status_to_pb(p)),
            migrations: plan
                .as_ref()
                .map(|(p, live)| migrations_to_pb(p, live))
                .unwrap_or_default(),
            traffic: traffic_by_shard(&record.shards, &live)
                .iter()
                .map(shard_traffic_to_pb)
                .collect(),
            coordinator: self.identity.as_ref().map(identity_to_pb),
        })
    }

    /// `PlanRebalance` with the topology objective: the plan, its table with the predicted
    /// figures, and those figures as JSON.
    fn plan_by_topology(
        &self,
        req: &pb::PlanRebalanceRequest,
    ) -> Result<Response<pb::PlanRebalanceResponse>, Status> {
        let defaults = TopologyParams::default();
        let params = TopologyParams {
            max_imbalance: req.max_imbalance.unwrap_or(defaults.max_imbalance),
            payback_secs: req.payback_s.unwrap_or(defaults.payback_secs),
        };
        let planned = self
            .coordinator()?
            .plan_by_topology(&params)
            .map_err(from_coordinator)?;
        let (plan_json, table) = plan_texts(&planned.plan, 0)?;
        let predicted_json = serde_json::to_string(&planned.predicted).map_err(|e| internal(&e))?;
        Ok(Response::new(pb::PlanRebalanceResponse {
            plan_json,
            plan_text: format!("{table}{}", render_predicted(&planned.predicted)),
            predicted_json,
        }))
    }
}

/// A plan as JSON (for ApplyPlan) and as a table for people.
fn plan_texts(plan: &Plan, rate: u64) -> Result<(String, String), Status> {
    let json = serde_json::to_string(plan).map_err(|e| internal(&e))?;
    let rate = if rate == 0 { ASSUMED_RATE } else { rate };
    Ok((json, render(plan, rate)))
}

/// Rate used for time estimates of unthrottled plans (loopback-class networks).
const ASSUMED_RATE: u64 = 1 << 30;

/// Shards with their rows and bytes from the nodes' range reports.
fn shard_infos(
    record: &ClusterRecord,
    live: &BTreeMap<String, NodeLive>,
    mut shards: Vec<pb::ShardInfo>,
) -> Vec<pb::ShardInfo> {
    for (s, load) in shards.iter_mut().zip(shard_loads(record, live)) {
        s.rows = load.rows;
        s.bytes = load.bytes;
    }
    shards
}

fn plan_status_to_pb(p: &PlanRecord) -> pb::PlanStatus {
    let done: Vec<_> = p
        .moves
        .iter()
        .filter(|m| m.state == MoveState::Done)
        .collect();
    pb::PlanStatus {
        id: p.id.clone(),
        kind: match &p.plan.kind {
            PlanKind::Resize { count } => format!("resize to {count}"),
            PlanKind::Rebalance => "rebalance".into(),
            PlanKind::Drain { node } => format!("drain {node}"),
        },
        state: p.state.as_str().into(),
        moves_total: p.moves.len() as u32,
        moves_done: done.len() as u32,
        bytes_total: p.plan.bytes,
        bytes_done: done.iter().map(|m| m.mv.bytes).sum(),
        error: p.error.clone(),
        started_unix_ms: p.started_unix_ms,
        finished_unix_ms: p.finished_unix_ms,
    }
}

fn migrations_to_pb(p: &PlanRecord, live: &HashMap<String, LiveMove>) -> Vec<pb::MigrationStatus> {
    p.moves
        .iter()
        .map(|m| {
            let l = live.get(&m.id);
            let mut state = m.state.as_str().to_string();
            if let Some(l) = l.filter(|_| m.state == MoveState::Running) {
                if l.progress.phase.is_handing_off() {
                    state = "handoff".into();
                }
            }
            pb::MigrationStatus {
                id: m.id.clone(),
                slot_start: m.mv.slot_start,
                slot_end: m.mv.slot_end,
                from: m.mv.from.clone(),
                to: m.mv.to.clone(),
                state,
                rows_copied: match (m.state, l) {
                    (MoveState::Done, None) => m.mv.rows,
                    (_, l) => l.map_or(0, |l| l.progress.rows),
                },
                bytes_copied: match (m.state, l) {
                    (MoveState::Done, None) => m.mv.bytes,
                    (_, l) => l.map_or(0, |l| l.progress.bytes),
                },
                rows_total: l.map_or(m.mv.rows, |l| l.progress.rows_total),
                bytes_total: l.map_or(m.mv.bytes, |l| l.progress.bytes_total),
                bytes_per_s: l.map_or(0.0, |l| l.bytes_per_s),
                eta_s: l.map_or(0.0, |l| l.eta_s),
                error: m.error.clone(),
            }
        })
        .collect()
}

fn cluster_checkpoint_to_pb(
    c: &ClusterCheckpoint,
    state: &ClusterCheckpointState,
) -> pb::CheckpointInfo {
    pb::CheckpointInfo {
        id: c.id.clone(),
        created_unix_ms: c.created_unix_ms,
        bytes: c.bytes,
        tables: c.tables,
        rows: c.rows,
        state: state.to_string(),
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
            let mut total = TableUsage::default();
            live.values()
                .flat_map(|l| l.tables.iter())
                .filter(|t| t.name == spec.name)
                .for_each(|t| total.add(t));
            table_info_to_pb(Some(table_spec_to_pb(spec)), &total)
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
impl Coordinator for CoordinatorService {
    async fn get_cluster_map(
        &self,
        _: Request<pb::GetClusterMapRequest>,
    ) -> Result<Response<pb::ClusterMap>, Status> {
        self.metrics
            .timed("GetClusterMap", async {
                Ok(Response::new(map_to_pb(&self.coordinator()?.cluster_map())))
            })
            .await
    }

    type WatchClusterMapStream = MapStream;

    async fn watch_cluster_map(
        &self,
        request: Request<pb::WatchClusterMapRequest>,
    ) -> Result<Response<MapStream>, Status> {
        self.metrics
            .timed("WatchClusterMap", async {
                let after = request.into_inner().after_epoch;
                let mut rx = self.coordinator()?.watch_map();
                let map = rx.borrow_and_update().clone();
                Ok(Response::new(map_stream(after, map, rx)))
            })
            .await
    }

    async fn create_table(
        &self,
        request: Request<pb::CreateTableRequest>,
    ) -> Result<Response<pb::CreateTableResponse>, Status> {
        self.metrics
            .timed("CreateTable", async {
                let spec =
                    table_spec_from_pb(request.into_inner().spec.as_ref()).map_err(from_convert)?;
                let spec = self
                    .coordinator()?
                    .create_table(spec)
                    .await
                    .map_err(from_coordinator)?;
                Ok(Response::new(pb::CreateTableResponse {
                    spec: Some(table_spec_to_pb(&spec)),
                }))
            })
            .await
    }

    async fn drop_table(
        &self,
        request: Request<pb::DropTableRequest>,
    ) -> Result<Response<pb::DropTableResponse>, Status> {
        self.metrics
            .timed("DropTable", async {
                self.coordinator()?
                    .drop_table(&request.into_inner().name)
                    .await
                    .map_err(from_coordinator)?;
                Ok(Response::new(pb::DropTableResponse {}))
            })
            .await
    }

    async fn list_tables(
        &self,
        _: Request<pb::ListTablesRequest>,
    ) -> Result<Response<pb::ListTablesResponse>, Status> {
        self.metrics
            .timed("ListTables", async {
                self.coordinator()?.refresh_reports().await;
                let (record, live) = self.coordinator()?.snapshot();
                Ok(Response::new(pb::ListTablesResponse {
                    tables: table_infos(&record, &live),
                    dense: dense_infos(&record),
                }))
            })
            .await
    }

    async fn create_dense(
        &self,
        request: Request<pb::CreateDenseRequest>,
    ) -> Result<Response<pb::CreateDenseResponse>, Status> {
        self.metrics
            .timed("CreateDense", async {
                let spec =
                    dense_spec_from_pb(request.into_inner().spec.as_ref()).map_err(from_convert)?;
                let spec = self
                    .coordinator()?
                    .create_dense(spec)
                    .await
                    .map_err(from_coordinator)?;
                Ok(Response::new(pb::CreateDenseResponse {
                    spec: Some(dense_spec_to_pb(&spec)),
                }))
            })
            .await
    }

    async fn drop_dense(
        &self,
        request: Request<pb::DropDenseRequest>,
    ) -> Result<Response<pb::DropDenseResponse>, Status> {
        self.metrics
            .timed("DropDense", async {
                self.coordinator()?
                    .drop_dense(&request.into_inner().name)
                    .await
                    .map_err(from_coordinator)?;
                Ok(Response::new(pb::DropDenseResponse {}))
            })
            .await
    }

    async fn register_node(
        &self,
        request: Request<pb::RegisterNodeRequest>,
    ) -> Result<Response<pb::RegisterNodeResponse>, Status> {
        self.metrics
            .timed("RegisterNode", async {
                self.check_remote_nodes()?;
                let req = request.into_inner();
                let (node_id, map, catalog) = self
                    .coordinator()?
                    .register(Registration {
                        node_id: req.node_id,
                        address: req.address,
                        labels: req.labels.into_iter().collect(),
                        memory_budget: req.memory_budget,
                        incarnation: req.incarnation,
                        accept_data_loss: req.accept_data_loss,
                        identity: req.identity.map(identity_from_pb),
                    })
                    .map_err(from_coordinator)?;
                Ok(Response::new(pb::RegisterNodeResponse {
                    node_id,
                    map: Some(map_to_pb(&map)),
                    catalog: Some(catalog_to_pb(&catalog)),
                }))
            })
            .await
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        self.metrics
            .timed("Heartbeat", async {
                self.check_remote_nodes()?;
                let req = request.into_inner();
                let reply = self
                    .coordinator()?
                    .heartbeat(report_from_pb(req))
                    .map_err(from_coordinator)?;
                Ok(Response::new(pb::HeartbeatResponse {
                    epoch: reply.epoch,
                    map: reply.map.as_ref().map(map_to_pb),
                    catalog: reply.catalog.as_ref().map(catalog_to_pb),
                    abort_migrations: reply.abort,
                }))
            })
            .await
    }

    async fn resize_shards(
        &self,
        request: Request<pb::ResizeShardsRequest>,
    ) -> Result<Response<pb::ResizeShardsResponse>, Status> {
        self.metrics
            .timed("ResizeShards", async {
                let req = request.into_inner();
                let coordinator = self.coordinator()?;
                let plan = coordinator
                    .plan_resize(req.count)
                    .map_err(from_coordinator)?;
                let (plan_json, plan_text) = plan_texts(&plan, req.max_bytes_per_s)?;
                let mut plan_id = String::new();
                if !req.dry_run {
                    plan_id = coordinator
                        .start_plan(plan, req.max_bytes_per_s, req.max_parallel)
                        .map_err(from_coordinator)?
                        .0;
                }
                Ok(Response::new(pb::ResizeShardsResponse {
                    map: Some(map_to_pb(&coordinator.cluster_map())),
                    plan_json,
                    plan_text,
                    plan_id,
                }))
            })
            .await
    }

    async fn plan_rebalance(
        &self,
        request: Request<pb::PlanRebalanceRequest>,
    ) -> Result<Response<pb::PlanRebalanceResponse>, Status> {
        self.metrics
            .timed("PlanRebalance", async {
                let req = request.into_inner();
                let drain = Some(req.drain_node.as_str()).filter(|d| !d.is_empty());
                match (req.objective.as_str(), drain) {
                    ("" | "balance", _) => {}
                    ("topology", None) => return self.plan_by_topology(&req),
                    ("topology", Some(_)) => {
                        return Err(Status::invalid_argument(
                            "a drain moves every shard off its node: it takes no objective",
                        ))
                    }
                    (other, _) => {
                        return Err(Status::invalid_argument(format!(
                            "unknown objective {}: use balance or topology",
                            shown_name(other)
                        )))
                    }
                }
                let plan = self
                    .coordinator()?
                    .plan_rebalance(drain)
                    .map_err(from_coordinator)?;
                let (plan_json, plan_text) = plan_texts(&plan, 0)?;
                Ok(Response::new(pb::PlanRebalanceResponse {
                    plan_json,
                    plan_text,
                    predicted_json: String::new(),
                }))
            })
            .await
    }

    async fn apply_plan(
        &self,
        request: Request<pb::ApplyPlanRequest>,
    ) -> Result<Response<pb::ApplyPlanResponse>, Status> {
        self.metrics
            .timed("ApplyPlan", async {
                let req = request.into_inner();
                let plan: Plan = serde_json::from_str(&req.plan_json)
                    .map_err(|e| from_coordinator(CoordinatorError::BadPlan(e.to_string())))?;
                let (plan_id, epoch) = self
                    .coordinator()?
                    .start_plan(plan, req.max_bytes_per_s, req.max_parallel)
                    .map_err(from_coordinator)?;
                Ok(Response::new(pb::ApplyPlanResponse { epoch, plan_id }))
            })
            .await
    }

    async fn cancel_plan(
        &self,
        _: Request<pb::CancelPlanRequest>,
    ) -> Result<Response<pb::CancelPlanResponse>, Status> {
        self.metrics
            .timed("CancelPlan", async {
                let (plan_id, rolled_back, dropped) = self
                    .coordinator()?
                    .cancel_plan()
                    .map_err(from_coordinator)?;
                Ok(Response::new(pb::CancelPlanResponse {
                    plan_id,
                    rolled_back,
                    dropped,
                }))
            })
            .await
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.metrics
            .timed("Status", async {
                self.status_reply().await.map(Response::new)
            })
            .await
    }

    async fn checkpoint(
        &self,
        _: Request<pb::CheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        self.metrics
            .timed("Checkpoint", async {
                let c = self
                    .coordinator()?
                    .checkpoint()
                    .await
                    .map_err(from_coordinator)?;
                Ok(Response::new(pb::CheckpointResponse {
                    checkpoint: Some(cluster_checkpoint_to_pb(&c, &ClusterCheckpointState::Ok)),
                }))
            })
            .await
    }

    async fn list_checkpoints(
        &self,
        _: Request<pb::ListCheckpointsRequest>,
    ) -> Result<Response<pb::ListCheckpointsResponse>, Status> {
        self.metrics
            .timed("ListCheckpoints", async {
                let list = self
                    .coordinator()?
                    .list_checkpoints()
                    .await
                    .map_err(from_coordinator)?;
                Ok(Response::new(pb::ListCheckpointsResponse {
                    checkpoints: list
                        .iter()
                        .map(|(c, state)| cluster_checkpoint_to_pb(c, state))
                        .collect(),
                }))
            })
            .await
    }

    async fn restore(
        &self,
        request: Request<pb::RestoreRequest>,
    ) -> Result<Response<pb::RestoreResponse>, Status> {
        self.metrics
            .timed("Restore", async {
                let id = request.into_inner().id;
                if id.is_empty() {
                    return Err(Status::invalid_argument("checkpoint id must not be empty"));
                }
                let c = self
                    .coordinator()?
                    .restore(&id)
                    .await
                    .map_err(from_coordinator)?;
                Ok(Response::new(pb::RestoreResponse {
                    checkpoint: Some(cluster_checkpoint_to_pb(&c, &ClusterCheckpointState::Ok)),
                }))
            })
            .await
    }
}

/// A server stream of cluster maps.
pub type MapStream = Pin<Box<dyn Stream<Item = Result<pb::ClusterMap, Status>> + Send>>;

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
