//! Control-plane calls to the leading coordinator through one generic helper,
//! [`Client::admin`]: each rpc is one line of the table below (request, answer, method,
//! whether it only reads), and each public method is a thin wrapper over it.

use std::future::Future;

use strata_proto::v1 as pb;
use strata_proto::v1::coordinator_client::CoordinatorClient;
use tonic::transport::Channel;
use tonic::Status;

use crate::control::Control;
use crate::retry::Call;
use crate::{Client, ClientError};

/// A coordinator rpc: its name, whether it only reads, and how it is sent.
pub(crate) trait AdminRpc: Clone + Send + 'static {
    /// What the coordinator answers.
    type Response;
    /// The rpc's name, for errors.
    const NAME: &'static str;
    /// Whether sending this request twice changes nothing.
    fn call(&self) -> Call;
    /// Sends the request to `coordinator`.
    fn send(
        self,
        coordinator: CoordinatorClient<Channel>,
    ) -> impl Future<Output = Result<tonic::Response<Self::Response>, Status>> + Send;
}

/// Implements [`AdminRpc`] for each `request => response, "Name", method, kind;` line.
macro_rules! admin_rpcs {
    ($($req:ty => $resp:ty, $name:literal, $method:ident, $kind:expr;)*) => {$(
        impl AdminRpc for $req {
            type Response = $resp;
            const NAME: &'static str = $name;
            fn call(&self) -> Call {
                let kind: fn(&Self) -> Call = $kind;
                kind(self)
            }
            fn send(
                self,
                mut coordinator: CoordinatorClient<Channel>,
            ) -> impl Future<Output = Result<tonic::Response<$resp>, Status>> + Send {
                async move { coordinator.$method(self).await }
            }
        }
    )*};
}

admin_rpcs! {
    pb::GetClusterMapRequest => pb::ClusterMap, "GetClusterMap", get_cluster_map, |_| Call::Read;
    pb::CreateTableRequest => pb::CreateTableResponse, "CreateTable", create_table, |_| Call::Write;
    pb::DropTableRequest => pb::DropTableResponse, "DropTable", drop_table, |_| Call::Write;
    pb::ListTablesRequest => pb::ListTablesResponse, "ListTables", list_tables, |_| Call::Read;
    pb::CreateDenseRequest => pb::CreateDenseResponse, "CreateDense", create_dense, |_| Call::Write;
    pb::DropDenseRequest => pb::DropDenseResponse, "DropDense", drop_dense, |_| Call::Write;
    pb::StatusRequest => pb::StatusResponse, "Status", status, |_| Call::Read;
    pb::ResizeShardsRequest => pb::ResizeShardsResponse, "ResizeShards", resize_shards,
        |r| if r.dry_run { Call::Read } else { Call::Write };
    pb::PlanRebalanceRequest => pb::PlanRebalanceResponse, "PlanRebalance", plan_rebalance,
        |_| Call::Read;
    pb::ApplyPlanRequest => pb::ApplyPlanResponse, "ApplyPlan", apply_plan, |_| Call::Write;
    // Cancelling twice cancels once: safe to send again after a lost connection.
    pb::CancelPlanRequest => pb::CancelPlanResponse, "CancelPlan", cancel_plan, |_| Call::Read;
    pb::CheckpointRequest => pb::CheckpointResponse, "Checkpoint", checkpoint, |_| Call::Write;
    pb::ListCheckpointsRequest => pb::ListCheckpointsResponse, "ListCheckpoints",
        list_checkpoints, |_| Call::Read;
    pb::RestoreRequest => pb::RestoreResponse, "Restore", restore, |_| Call::Write;
}

/// `what`, or an error naming the rpc whose answer lacked it.
fn required<T>(what: Option<T>, rpc: &str, field: &str) -> Result<T, ClientError> {
    what.ok_or_else(|| ClientError::BadMap(format!("{rpc} answered without a {field}")))
}

/// Sends `request` to the leading coordinator through `control`, following it across
/// standbys and failovers.
pub(crate) async fn send<R: AdminRpc>(
    control: &Control,
    request: R,
) -> Result<R::Response, ClientError> {
    control
        .call(R::NAME, request.call(), |c| request.clone().send(c))
        .await
}

/// As [`send`], for a client's first call: bounded by the connect timeout, with errors that
/// say what was found at the address.
pub(crate) async fn send_first<R: AdminRpc>(
    control: &Control,
    request: R,
) -> Result<R::Response, ClientError> {
    control
        .first_call(R::NAME, request.call(), |c| request.clone().send(c))
        .await
}

impl Client {
    /// Sends `request` to the leading coordinator (see [`send`]).
    pub(crate) async fn admin<R: AdminRpc>(&self, request: R) -> Result<R::Response, ClientError> {
        send(&self.inner.control, request).await
    }

    /// The current cluster map.
    pub(crate) async fn cluster_map(&self) -> Result<pb::ClusterMap, ClientError> {
        self.admin(pb::GetClusterMapRequest {}).await
    }

    /// Creates a table.
    pub async fn create_table(&self, spec: pb::TableSpec) -> Result<pb::TableSpec, ClientError> {
        let resp = self
            .admin(pb::CreateTableRequest { spec: Some(spec) })
            .await?;
        required(resp.spec, "CreateTable", "spec")
    }

    /// Drops a table.
    pub async fn drop_table(&self, name: &str) -> Result<(), ClientError> {
        self.admin(pb::DropTableRequest { name: name.into() })
            .await?;
        Ok(())
    }

    /// Tables and dense tensors.
    pub async fn list_tables(&self) -> Result<pb::ListTablesResponse, ClientError> {
        self.admin(pb::ListTablesRequest {}).await
    }

    /// Creates a dense tensor.
    pub async fn create_dense(&self, spec: pb::DenseSpec) -> Result<(), ClientError> {
        self.admin(pb::CreateDenseRequest { spec: Some(spec) })
            .await?;
        Ok(())
    }

    /// Drops a dense tensor.
    pub async fn drop_dense(&self, name: &str) -> Result<(), ClientError> {
        self.admin(pb::DropDenseRequest { name: name.into() })
            .await?;
        Ok(())
    }

    /// The cluster at a glance (from the leader).
    pub async fn status(&self) -> Result<pb::StatusResponse, ClientError> {
        self.admin(pb::StatusRequest {}).await
    }

    /// Plans (`dry_run`) or starts a resize to `count` shards.
    pub async fn resize_shards(
        &self,
        req: pb::ResizeShardsRequest,
    ) -> Result<pb::ResizeShardsResponse, ClientError> {
        self.admin(req).await
    }

    /// Plans a rebalance, or a drain of `drain_node` when not empty.
    pub async fn plan_rebalance(
        &self,
        drain_node: &str,
    ) -> Result<pb::PlanRebalanceResponse, ClientError> {
        let drain_node = drain_node.to_string();
        self.admin(pb::PlanRebalanceRequest {
            drain_node,
            ..Default::default()
        })
        .await
    }

    /// Plans a rebalance with the objective and bounds `req` gives.
    pub async fn plan_rebalance_with(
        &self,
        req: pb::PlanRebalanceRequest,
    ) -> Result<pb::PlanRebalanceResponse, ClientError> {
        self.admin(req).await
    }

    /// Starts a plan made by [`Client::plan_rebalance`] or a dry-run resize.
    pub async fn apply_plan(
        &self,
        req: pb::ApplyPlanRequest,
    ) -> Result<pb::ApplyPlanResponse, ClientError> {
        self.admin(req).await
    }

    /// Stops the running plan: moves in flight roll back, pending ones are dropped.
    pub async fn cancel_plan(&self) -> Result<pb::CancelPlanResponse, ClientError> {
        self.admin(pb::CancelPlanRequest {}).await
    }

    /// Takes a checkpoint of every table and dense tensor.
    pub async fn checkpoint(&self) -> Result<pb::CheckpointInfo, ClientError> {
        let resp = self.admin(pb::CheckpointRequest {}).await?;
        required(resp.checkpoint, "Checkpoint", "checkpoint")
    }

    /// Checkpoints on disk, newest first.
    pub async fn list_checkpoints(&self) -> Result<Vec<pb::CheckpointInfo>, ClientError> {
        Ok(self.admin(pb::ListCheckpointsRequest {}).await?.checkpoints)
    }

    /// Restores checkpoint `id`.
    pub async fn restore(&self, id: &str) -> Result<pb::CheckpointInfo, ClientError> {
        let resp = self.admin(pb::RestoreRequest { id: id.into() }).await?;
        required(resp.checkpoint, "Restore", "checkpoint")
    }
}
