//! strata async client: routing by slot, batching by node, retries on stale routing.
//!
//! ```no_run
//! # async fn demo() -> Result<(), strata_client::ClientError> {
//! let client = strata_client::Client::connect("127.0.0.1:7070").await?;
//! let rows = client.pull("emb", &[1, 2, 3]).await?;
//! client.push("emb", &[1, 2, 3], &vec![0.1; rows.len()]).await?;
//! # Ok(()) }
//! ```

pub mod batch;
mod control;
mod error;
mod payload;
pub mod routing;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use parking_lot::RwLock;
use prost::Message;
use strata_proto::v1 as pb;
use strata_proto::v1::coordinator_client::CoordinatorClient;
use strata_proto::wire::{self, Chunks, PullResponseView};
use tonic::transport::Channel;
use tonic::{Code, Status};

use self::batch::{Dedup, Split};
use self::control::Control;
pub use self::error::ClientError;
use self::payload::{copy_f32s, f32s_to_bytes, ids_to_bytes};
use self::routing::{NodeConn, Routing, MAX_MESSAGE_BYTES};
pub use strata_proto::v1;

/// Attempts of one call while routing is stale (a hand-off of a migration fences its range
/// for a moment; with the backoff below the client keeps trying for about 9 s).
const MAX_ATTEMPTS: u32 = 48;
/// Longest pause between two attempts.
const MAX_BACKOFF_MS: u64 = 200;

/// A handle to a strata cluster. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    control: Control,
    routing: RwLock<Arc<Routing>>,
    refresh: tokio::sync::Mutex<()>,
}

/// Whether a failed part may be sent again.
enum Retry {
    /// Stale routing: refresh the map first.
    Reroute,
    /// The node could not be reached and nothing was sent: retry only if the map moved it.
    Unreachable(String),
    /// Not retryable.
    Fail(ClientError),
}

impl Client {
    /// Connects to the comma-separated coordinator `addresses`, finds the leader among
    /// them (following a standby's `strata-leader` hint) and fetches the cluster map.
    /// Each `connect` opens its own connections.
    pub async fn connect(addresses: &str) -> Result<Self, ClientError> {
        let candidates: Vec<String> = addresses
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        if candidates.is_empty() {
            return Err(ClientError::BadAddress {
                address: addresses.into(),
                reason: "empty".into(),
            });
        }
        let control = Control::new(candidates)?;
        let map = control
            .call("GetClusterMap", true, |mut c| async move {
                c.get_cluster_map(pb::GetClusterMapRequest {}).await
            })
            .await?;
        let routing = Routing::from_map(&map, None)?;
        Ok(Self {
            inner: Arc::new(Inner {
                control,
                routing: RwLock::new(Arc::new(routing)),
                refresh: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The gRPC client of the coordinator calls go to now, for control-plane calls.
    pub fn coordinator(&self) -> CoordinatorClient<Channel> {
        self.inner.control.client()
    }

    /// The address of the coordinator calls go to now (the leader, once found).
    pub fn coordinator_address(&self) -> String {
        self.inner.control.address()
    }

    /// Epoch of the cluster map the client routes with.
    pub fn epoch(&self) -> u64 {
        self.inner.routing.read().epoch
    }

    /// Fetches the cluster map again (once, if several callers ask at the same time).
    pub async fn refresh_map(&self) -> Result<(), ClientError> {
        let seen = self.epoch();
        let _one = self.inner.refresh.lock().await;
        if self.epoch() != seen {
            return Ok(());
        }
        let map = self
            .inner
            .control
            .call("GetClusterMap", true, |mut c| async move {
                c.get_cluster_map(pb::GetClusterMapRequest {}).await
            })
            .await?;
        let next = {
            let current = self.inner.routing.read().clone();
            Routing::from_map(&map, Some(&current))?
        };
        *self.inner.routing.write() = Arc::new(next);
        Ok(())
    }

    /// Rows of `ids` of `table`, row-major in the order of `ids` (missing rows are created).
    pub async fn pull(&self, table: &str, ids: &[u64]) -> Result<Vec<f32>, ClientError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let dedup = Dedup::new(ids);
        let (dim, values) = self.pull_unique(table, &dedup.unique, None).await?;
        if !dedup.had_duplicates() {
            return Ok(values);
        }
        let mut out = vec![0.0f32; ids.len() * dim];
        expand(&dedup, &values, dim, &mut out);
        Ok(out)
    }

    /// Rows of `ids` into `out`, which must hold `ids.len() * dim` values.
    pub async fn pull_into(
        &self,
        table: &str,
        ids: &[u64],
        out: &mut [f32],
    ) -> Result<(), ClientError> {
        if ids.is_empty() {
            return if out.is_empty() {
                Ok(())
            } else {
                Err(ClientError::InvalidArgument(
                    "out must be empty for no ids".into(),
                ))
            };
        }
        if !out.len().is_multiple_of(ids.len()) {
            return Err(ClientError::InvalidArgument(format!(
                "out holds {} values, not a multiple of {} ids",
                out.len(),
                ids.len()
            )));
        }
        let dedup = Dedup::new(ids);
        if !dedup.had_duplicates() {
            // Rows go straight from the responses into `out`.
            self.pull_unique(table, &dedup.unique, Some(out)).await?;
            return Ok(());
        }
        let (dim, values) = self.pull_unique(table, &dedup.unique, None).await?;
        if out.len() != ids.len() * dim {
            return Err(ClientError::InvalidArgument(format!(
                "out holds {} values but {} ids × dim {dim} need {}",
                out.len(),
                ids.len(),
                ids.len() * dim
            )));
        }
        expand(&dedup, &values, dim, out);
        Ok(())
    }

    /// Distinct ids' rows, in the order of `unique`, with the table's dim.
    async fn pull_unique(
        &self,
        table: &str,
        unique: &[u64],
        mut out: Option<&mut [f32]>,
    ) -> Result<(usize, Vec<f32>), ClientError> {
        let mut values: Vec<f32> = Vec::new();
        let mut dim = 0usize;
        self.route(
            unique,
            "Pull",
            |node, part| {
                let ids: Vec<u64> = part.iter().map(|&i| unique[i as usize]).collect();
                let request = wire::pull_request(table, ids_to_bytes(ids), 0);
                let channel = node.channel.clone();
                async move {
                    let message =
                        wire::unary_call(&channel, wire::PULL_PATH, request, MAX_MESSAGE_BYTES)
                            .await?;
                    let view = PullResponseView::parse(&message)
                        .map_err(|e| Status::internal(format!("malformed PullResponse: {e}")))?;
                    Ok((message, view))
                }
            },
            |part, (message, view): (Chunks, PullResponseView)| {
                let d = view.dim as usize;
                if d == 0 || view.values.len() != part.len() * d * 4 {
                    return Err(ClientError::InvalidArgument(format!(
                        "server answered {} bytes for {} rows of dim {d}",
                        view.values.len(),
                        part.len()
                    )));
                }
                dim = d;
                // Rows land in the caller's buffer when it has one, else in `values`.
                let target: &mut [f32] = match out.as_deref_mut() {
                    Some(o) if o.len() == unique.len() * d => o,
                    Some(o) => {
                        return Err(ClientError::InvalidArgument(format!(
                            "out holds {} values but {} ids × dim {d} need {}",
                            o.len(),
                            unique.len(),
                            unique.len() * d
                        )))
                    }
                    None => {
                        if values.is_empty() {
                            values = vec![0.0; unique.len() * d];
                        }
                        &mut values
                    }
                };
                let row_bytes = d * 4;
                let copied = if part.len() == unique.len() {
                    message.copy_to(view.values.start, bytemuck::cast_slice_mut(target))
                } else {
                    part.iter().enumerate().all(|(k, &i)| {
                        let i = i as usize;
                        message.copy_to(
                            view.values.start + k * row_bytes,
                            bytemuck::cast_slice_mut(&mut target[i * d..(i + 1) * d]),
                        )
                    })
                };
                if !copied {
                    return Err(ClientError::InvalidArgument(
                        "server answered rows outside its message".into(),
                    ));
                }
                Ok(())
            },
        )
        .await?;
        Ok((dim, values))
    }

    /// Applies `grads` (`ids.len() * dim`, row-major) to `ids` of `table`; duplicates are
    /// summed. Returns the number of distinct rows applied. A push is retried only when it
    /// is known not to have been applied.
    pub async fn push(&self, table: &str, ids: &[u64], grads: &[f32]) -> Result<u64, ClientError> {
        self.push_packed(
            table,
            ids,
            Bytes::copy_from_slice(bytemuck::cast_slice(grads)),
        )
        .await
    }

    /// [`Client::push`] with the gradients as packed f32 LE bytes the client may keep: with
    /// distinct ids served by one node they are sent without a copy.
    pub async fn push_packed(
        &self,
        table: &str,
        ids: &[u64],
        grads: Bytes,
    ) -> Result<u64, ClientError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let values = grads.len() / 4;
        if grads.is_empty() || !grads.len().is_multiple_of(4) || !values.is_multiple_of(ids.len()) {
            return Err(ClientError::InvalidArgument(format!(
                "grads hold {} bytes, not a positive multiple of 4 × {} ids",
                grads.len(),
                ids.len()
            )));
        }
        let dim = values / ids.len();
        let dedup = Dedup::new(ids);
        let grads = if dedup.had_duplicates() {
            sum_duplicates(&dedup, &grads, dim)
        } else {
            grads
        };
        let unique = &dedup.unique;
        let row_bytes = dim * 4;
        let mut applied = 0u64;
        self.route(
            unique,
            "Push",
            |node, part| {
                let ids: Vec<u64> = part.iter().map(|&i| unique[i as usize]).collect();
                let part_grads = if part.len() == unique.len() {
                    grads.clone()
                } else {
                    let mut g = Vec::with_capacity(part.len() * row_bytes);
                    for &i in part {
                        let i = i as usize;
                        g.extend_from_slice(&grads[i * row_bytes..(i + 1) * row_bytes]);
                    }
                    Bytes::from(g)
                };
                let request = wire::push_request(table, ids_to_bytes(ids), part_grads, 0);
                let channel = node.channel.clone();
                async move {
                    let message =
                        wire::unary_call(&channel, wire::PUSH_PATH, request, MAX_MESSAGE_BYTES)
                            .await?;
                    pb::PushResponse::decode(message)
                        .map_err(|e| Status::internal(format!("malformed PushResponse: {e}")))
                }
            },
            |_, resp: pb::PushResponse| {
                applied += resp.applied;
                Ok(())
            },
        )
        .await?;
        Ok(applied)
    }

    /// Sends `unique` split by node, in parallel; parts refused for stale routing are
    /// re-split with a fresh map and sent again (bounded); a part for a node that is down
    /// or unreachable is sent again only if a fresh map moved the node (new address, back
    /// up); anything else fails the call.
    async fn route<R, F, Fut>(
        &self,
        unique: &[u64],
        rpc: &'static str,
        send: F,
        mut on_ok: impl FnMut(&[u32], R) -> Result<(), ClientError>,
    ) -> Result<(), ClientError>
    where
        F: Fn(&NodeConn, &[u32]) -> Fut,
        Fut: Future<Output = Result<R, Status>>,
    {
        let mut pending: Vec<u32> = (0..unique.len() as u32).collect();
        for attempt in 0..MAX_ATTEMPTS {
            let routing = self.inner.routing.read().clone();
            if let Some(shard) = routing.unassigned {
                if attempt + 1 == MAX_ATTEMPTS {
                    return Err(ClientError::Unassigned { shard });
                }
                self.backoff_and_refresh(attempt).await?;
                continue;
            }
            let ids: Vec<u64> = pending.iter().map(|&i| unique[i as usize]).collect();
            let split = Split::new(&routing, &ids);
            let parts: Vec<(usize, Vec<u32>)> = split
                .parts
                .into_iter()
                .map(|(node, idx)| (node, idx.into_iter().map(|k| pending[k as usize]).collect()))
                .collect();
            let (live, down): (Vec<_>, Vec<_>) = parts
                .into_iter()
                .partition(|(node, _)| routing.nodes[*node].up);
            let results = join_all(
                live.iter()
                    .map(|(node, part)| send(&routing.nodes[*node], part)),
            )
            .await;
            let mut retry: Vec<u32> = Vec::new();
            let mut unavailable: Vec<(NodeConn, String)> = down
                .iter()
                .map(|(node, _)| {
                    (
                        routing.nodes[*node].clone(),
                        "marked down by the coordinator".to_string(),
                    )
                })
                .collect();
            for (_, part) in &down {
                retry.extend_from_slice(part);
            }
            for ((node, part), result) in live.iter().zip(results) {
                match result {
                    Ok(resp) => on_ok(part, resp)?,
                    Err(status) => match classify(rpc, &routing.nodes[*node], status) {
                        Retry::Reroute => retry.extend_from_slice(part),
                        Retry::Unreachable(reason) => {
                            unavailable.push((routing.nodes[*node].clone(), reason));
                            retry.extend_from_slice(part);
                        }
                        Retry::Fail(e) => return Err(e),
                    },
                }
            }
            if retry.is_empty() {
                return Ok(());
            }
            pending = retry;
            self.backoff_and_refresh(attempt).await?;
            let fresh = self.inner.routing.read().clone();
            for (node, reason) in unavailable {
                let moved = fresh
                    .nodes
                    .iter()
                    .find(|n| n.id == node.id)
                    .is_some_and(|n| n.up && (n.address != node.address || !node.up));
                if !moved {
                    return Err(ClientError::NodeUnavailable {
                        rpc,
                        node: node.id,
                        address: node.address,
                        shards: node.shards,
                        reason,
                    });
                }
            }
        }
        Err(ClientError::RoutingUnsettled {
            attempts: MAX_ATTEMPTS,
            epoch: self.epoch(),
        })
    }

    async fn backoff_and_refresh(&self, attempt: u32) -> Result<(), ClientError> {
        tokio::time::sleep(Duration::from_millis(
            (5u64 << attempt.min(6)).min(MAX_BACKOFF_MS),
        ))
        .await;
        self.refresh_map().await
    }

    /// A whole dense tensor: values and shape (served by the owner of its name's slot,
    /// followed across migrations like rows).
    pub async fn pull_dense(&self, name: &str) -> Result<(Vec<f32>, Vec<u32>), ClientError> {
        let key = [strata_proto::routing::dense_key(name)];
        let mut answer = None;
        self.route(
            &key,
            "PullDense",
            |node, _| {
                let mut client = node.client.clone();
                let req = pb::PullDenseRequest {
                    name: name.into(),
                    epoch: 0,
                };
                async move { client.pull_dense(req).await.map(|r| r.into_inner()) }
            },
            |_, resp: pb::PullDenseResponse| {
                answer = Some(resp);
                Ok(())
            },
        )
        .await?;
        let resp = answer.unwrap_or_default();
        let mut values = vec![0.0f32; resp.values.len() / 4];
        copy_f32s(&resp.values[..values.len() * 4], &mut values);
        Ok((values, resp.shape))
    }

    /// Applies a gradient to a whole dense tensor (retried only when known not applied).
    pub async fn push_dense(&self, name: &str, grads: &[f32]) -> Result<u64, ClientError> {
        let key = [strata_proto::routing::dense_key(name)];
        let grads = f32s_to_bytes(grads.to_vec());
        let mut applied = 0;
        self.route(
            &key,
            "PushDense",
            |node, _| {
                let mut client = node.client.clone();
                let req = pb::PushDenseRequest {
                    name: name.into(),
                    grads: grads.clone(),
                    epoch: 0,
                };
                async move { client.push_dense(req).await.map(|r| r.into_inner()) }
            },
            |_, resp: pb::PushDenseResponse| {
                applied = resp.applied;
                Ok(())
            },
        )
        .await?;
        Ok(applied)
    }

    /// Creates a table.
    pub async fn create_table(&self, spec: pb::TableSpec) -> Result<pb::TableSpec, ClientError> {
        let req = pb::CreateTableRequest { spec: Some(spec) };
        let resp = self
            .inner
            .control
            .call("CreateTable", false, |mut c| {
                let req = req.clone();
                async move { c.create_table(req).await }
            })
            .await?;
        resp.spec
            .ok_or_else(|| ClientError::BadMap("CreateTable answered without a spec".into()))
    }

    /// Drops a table.
    pub async fn drop_table(&self, name: &str) -> Result<(), ClientError> {
        let req = pb::DropTableRequest { name: name.into() };
        self.inner
            .control
            .call("DropTable", false, |mut c| {
                let req = req.clone();
                async move { c.drop_table(req).await }
            })
            .await?;
        Ok(())
    }

    /// Tables and dense tensors.
    pub async fn list_tables(&self) -> Result<pb::ListTablesResponse, ClientError> {
        self.inner
            .control
            .call("ListTables", true, |mut c| async move {
                c.list_tables(pb::ListTablesRequest {}).await
            })
            .await
    }

    /// Creates a dense tensor.
    pub async fn create_dense(&self, spec: pb::DenseSpec) -> Result<(), ClientError> {
        let req = pb::CreateDenseRequest { spec: Some(spec) };
        self.inner
            .control
            .call("CreateDense", false, |mut c| {
                let req = req.clone();
                async move { c.create_dense(req).await }
            })
            .await?;
        Ok(())
    }

    /// Drops a dense tensor.
    pub async fn drop_dense(&self, name: &str) -> Result<(), ClientError> {
        let req = pb::DropDenseRequest { name: name.into() };
        self.inner
            .control
            .call("DropDense", false, |mut c| {
                let req = req.clone();
                async move { c.drop_dense(req).await }
            })
            .await?;
        Ok(())
    }

    /// The cluster at a glance (from the leader).
    pub async fn status(&self) -> Result<pb::StatusResponse, ClientError> {
        self.inner
            .control
            .call("Status", true, |mut c| async move {
                c.status(pb::StatusRequest {}).await
            })
            .await
    }

    /// Plans (`dry_run`) or starts a resize to `count` shards.
    pub async fn resize_shards(
        &self,
        req: pb::ResizeShardsRequest,
    ) -> Result<pb::ResizeShardsResponse, ClientError> {
        let idempotent = req.dry_run;
        self.inner
            .control
            .call("ResizeShards", idempotent, |mut c| async move {
                c.resize_shards(req).await
            })
            .await
    }

    /// Plans a rebalance, or a drain of `drain_node` when not empty.
    pub async fn plan_rebalance(
        &self,
        drain_node: &str,
    ) -> Result<pb::PlanRebalanceResponse, ClientError> {
        let req = pb::PlanRebalanceRequest {
            drain_node: drain_node.to_string(),
        };
        self.inner
            .control
            .call("PlanRebalance", true, |mut c| {
                let req = req.clone();
                async move { c.plan_rebalance(req).await }
            })
            .await
    }

    /// Starts a plan made by [`Client::plan_rebalance`] or a dry-run resize.
    pub async fn apply_plan(
        &self,
        req: pb::ApplyPlanRequest,
    ) -> Result<pb::ApplyPlanResponse, ClientError> {
        self.inner
            .control
            .call("ApplyPlan", false, |mut c| {
                let req = req.clone();
                async move { c.apply_plan(req).await }
            })
            .await
    }

    /// Stops the running plan: moves in flight roll back, pending ones are dropped.
    pub async fn cancel_plan(&self) -> Result<pb::CancelPlanResponse, ClientError> {
        self.inner
            .control
            .call("CancelPlan", true, |mut c| async move {
                c.cancel_plan(pb::CancelPlanRequest {}).await
            })
            .await
    }

    /// Takes a checkpoint of every table and dense tensor.
    pub async fn checkpoint(&self) -> Result<pb::CheckpointInfo, ClientError> {
        self.inner
            .control
            .call("Checkpoint", false, |mut c| async move {
                c.checkpoint(pb::CheckpointRequest {}).await
            })
            .await?
            .checkpoint
            .ok_or_else(|| ClientError::BadMap("Checkpoint answered without a checkpoint".into()))
    }

    /// Checkpoints on disk, newest first.
    pub async fn list_checkpoints(&self) -> Result<Vec<pb::CheckpointInfo>, ClientError> {
        Ok(self
            .inner
            .control
            .call("ListCheckpoints", true, |mut c| async move {
                c.list_checkpoints(pb::ListCheckpointsRequest {}).await
            })
            .await?
            .checkpoints)
    }

    /// Restores checkpoint `id`.
    pub async fn restore(&self, id: &str) -> Result<pb::CheckpointInfo, ClientError> {
        let req = pb::RestoreRequest { id: id.into() };
        self.inner
            .control
            .call("Restore", false, |mut c| {
                let req = req.clone();
                async move { c.restore(req).await }
            })
            .await?
            .checkpoint
            .ok_or_else(|| ClientError::BadMap("Restore answered without a checkpoint".into()))
    }
}

/// Sums the gradient rows of duplicate ids into one row per distinct id.
fn sum_duplicates(dedup: &Dedup, grads: &[u8], dim: usize) -> Bytes {
    let mut sum = vec![0.0f32; dedup.unique.len() * dim];
    let row_bytes = dim * 4;
    for (pos, &u) in dedup.position.iter().enumerate() {
        let u = u as usize;
        let row = &grads[pos * row_bytes..(pos + 1) * row_bytes];
        for (a, b) in sum[u * dim..(u + 1) * dim]
            .iter_mut()
            .zip(row.chunks_exact(4))
        {
            *a += f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
    f32s_to_bytes(sum)
}

/// Copies distinct rows to every request position.
fn expand(dedup: &Dedup, values: &[f32], dim: usize, out: &mut [f32]) {
    for (pos, &u) in dedup.position.iter().enumerate() {
        let u = u as usize;
        out[pos * dim..(pos + 1) * dim].copy_from_slice(&values[u * dim..(u + 1) * dim]);
    }
}

pub(crate) fn rpc_error(
    rpc: &'static str,
    node: &str,
    address: &str,
    status: Status,
) -> ClientError {
    ClientError::Rpc {
        rpc,
        node: node.into(),
        address: address.into(),
        code: status.code(),
        message: status.message().into(),
    }
}

/// Decides whether a failed part can be sent again.
fn classify(rpc: &'static str, node: &NodeConn, status: Status) -> Retry {
    match status.code() {
        Code::FailedPrecondition if status.metadata().contains_key("strata-epoch") => {
            Retry::Reroute
        }
        Code::Unavailable | Code::Unknown if never_sent(&status) => {
            Retry::Unreachable(format!("cannot connect: {}", status.message()))
        }
        // A pull may be sent again safely; whether the node is back is judged on a fresh map.
        Code::Unavailable | Code::Unknown if !rpc.starts_with("Push") && is_transport(&status) => {
            Retry::Unreachable(format!("connection failed: {}", status.message()))
        }
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
            if rpc.starts_with("Push") =>
        {
            Retry::Fail(ClientError::Ambiguous {
                node: node.id.clone(),
                address: node.address.clone(),
                message: format!("{:?}: {}", status.code(), status.message()),
            })
        }
        _ => Retry::Fail(rpc_error(rpc, &node.id, &node.address, status)),
    }
}

/// Whether a status comes from the transport (connection lost), not from the server.
pub(crate) fn is_transport(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// Whether a failed call is known not to have reached the server: the connection failed
/// before the request was written (refused, no route, connect timeout).
pub(crate) fn never_sent(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            ) {
                return true;
            }
        }
        if e.to_string().contains("tcp connect error") {
            return true;
        }
        source = e.source();
    }
    status.message().contains("tcp connect error")
}
