//! The `Parameter` service: decodes packed payloads and delegates to the engine.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use strata_proto::routing::dense_key;
use strata_proto::v1 as pb;
use strata_proto::v1::parameter_server::Parameter;
use tonic::{Request, Response, Status};

use super::status::{from_engine, from_request, RequestError};
use crate::metrics::Metrics;
use strata_engine::traffic::{Direction, MAX_LOCATION_BYTES};
use strata_engine::wal::{Origin, WalSync};
use strata_engine::{Engine, EngineError, Pushed};
use strata_proto::transport::CLIENT_LABELS_METADATA;
use strata_proto::wire::payload::{f32s_from_bytes, f32s_into_bytes, ids_from_bytes, PayloadError};

/// Serves rows and dense tensors of one node's engine.
pub struct ParameterService {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
}

impl ParameterService {
    /// A service over `engine`.
    pub fn new(engine: Arc<Engine>, metrics: Arc<Metrics>) -> Self {
        Self { engine, metrics }
    }

    /// The interned index of the client location a call's `strata-client-labels` names
    /// (unlabelled: the empty location); a value that is not short printable text is refused.
    pub(crate) fn location(&self, labels: Option<&http::HeaderValue>) -> Result<usize, Status> {
        let text = match labels {
            None => "",
            Some(v) => v
                .to_str()
                .ok()
                .filter(|t| t.len() <= MAX_LOCATION_BYTES)
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "{CLIENT_LABELS_METADATA} must be printable ASCII of at most \
                         {MAX_LOCATION_BYTES} bytes (key=value pairs joined by commas)"
                    ))
                })?,
        };
        Ok(self.engine.traffic().locations.index(text))
    }

    fn pull_inner(
        &self,
        req: pb::PullRequest,
        location: usize,
    ) -> Result<pb::PullResponse, RequestError> {
        let ids = ids_from_bytes(&req.ids)?;
        let (values, dim) = self.pull_rows(&req.table, &ids, req.epoch, location)?;
        Ok(pb::PullResponse { values, dim })
    }

    fn push_inner(&self, req: pb::PushRequest, location: usize) -> Result<Pushed, RequestError> {
        let ids = ids_from_bytes(&req.ids)?;
        let origin = Origin {
            client: &req.client_id,
            seq: req.seq,
            acked_below: req.acked_below,
            resend_after_ms: req.resend_after_ms,
        };
        self.push_rows(&req.table, &ids, req.epoch, location, origin, |dim| {
            f32s_from_bytes("grads", &req.grads, 4 * dim)
        })
    }

    /// Waits until the write-ahead log holds record `lsn` as durably as its sync setting
    /// promises before an acknowledgement (at once without a log or a record).
    pub(crate) async fn logged(&self, lsn: Option<u64>) -> Result<(), Status> {
        let (Some(wal), Some(lsn)) = (self.engine.wal(), lsn) else {
            return Ok(());
        };
        if wal.config().sync != WalSync::Always {
            return Ok(());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        wal.on_durable(
            lsn,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Status::unavailable(format!(
                "the change was applied but the write-ahead log could not sync it ({reason}); \
                 it may not survive a crash"
            ))),
            Err(_) => Err(Status::unavailable(
                "the write-ahead log closed before the change was synced",
            )),
        }
    }

    /// The newest record of the write-ahead log (every change so far is at or below it).
    fn newest_lsn(&self) -> Option<u64> {
        self.engine.wal().map(|w| w.next_lsn().saturating_sub(1))
    }

    /// Rows of `ids` as packed f32 LE, and the table's dim; counted as traffic from
    /// client location index `location`.
    pub(crate) fn pull_rows(
        &self,
        table: &str,
        ids: &[u64],
        epoch: u64,
        location: usize,
    ) -> Result<(Bytes, u32), EngineError> {
        self.engine.check_batch(ids.len())?;
        let table = self.engine.table(table)?;
        let _admitted = self.engine.ownership().admit(epoch, ids)?;
        let dim = table.spec().dim as usize;
        let mut out = vec![0.0f32; ids.len() * dim];
        table.pull(ids, &mut out)?;
        table.record_traffic(location, Direction::Pull, ids);
        self.metrics.count_pulled(ids.len() as u64);
        Ok((f32s_into_bytes(out), dim as u32))
    }

    /// Applies the gradients `grads(dim)` decodes (checked against the table's dim) to `ids`;
    /// counted as traffic from client location index `location`.
    pub(crate) fn push_rows<'g>(
        &self,
        table_name: &str,
        ids: &[u64],
        epoch: u64,
        location: usize,
        origin: Origin<'_>,
        grads: impl FnOnce(usize) -> Result<Cow<'g, [f32]>, PayloadError>,
    ) -> Result<Pushed, RequestError> {
        self.engine.check_batch(ids.len())?;
        let table = self.engine.table(table_name)?;
        let grads = grads(table.spec().dim as usize)?;
        let admitted = self.engine.ownership().admit(epoch, ids)?;
        let pushed = table.push(ids, &grads, origin)?;
        admitted.record_push(table_name, ids);
        table.record_traffic(location, Direction::Push, ids);
        self.metrics.count_pushed(ids.len() as u64);
        Ok(pushed)
    }

    /// Where the service records its calls.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn pull_dense_inner(
        &self,
        req: &pb::PullDenseRequest,
    ) -> Result<pb::PullDenseResponse, EngineError> {
        let _admitted = self
            .engine
            .ownership()
            .admit(req.epoch, &[dense_key(&req.name)])?;
        let tensor = self.engine.dense(&req.name)?;
        Ok(pb::PullDenseResponse {
            values: f32s_into_bytes(tensor.values()),
            shape: tensor.spec().shape.clone(),
        })
    }

    fn push_dense_inner(
        &self,
        req: pb::PushDenseRequest,
    ) -> Result<pb::PushDenseResponse, RequestError> {
        let grads = f32s_from_bytes("grads", &req.grads, 4)?;
        let _admitted = self
            .engine
            .ownership()
            .admit(req.epoch, &[dense_key(&req.name)])?;
        let applied = self.engine.push_dense(&req.name, &grads)?;
        Ok(pb::PushDenseResponse { applied })
    }
}

#[tonic::async_trait]
impl Parameter for ParameterService {
    async fn pull(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<pb::PullResponse>, Status> {
        let start = Instant::now();
        let result = self
            .location(request.metadata().as_ref().get(CLIENT_LABELS_METADATA))
            .and_then(|loc| {
                self.pull_inner(request.into_inner(), loc)
                    .map_err(from_request)
            });
        self.metrics.record_rpc("Pull", start, &result);
        result.map(Response::new)
    }

    async fn push(
        &self,
        request: Request<pb::PushRequest>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        let start = Instant::now();
        let pushed = self
            .location(request.metadata().as_ref().get(CLIENT_LABELS_METADATA))
            .and_then(|loc| {
                self.push_inner(request.into_inner(), loc)
                    .map_err(from_request)
            });
        let result = match pushed {
            Ok(p) => self
                .logged(p.lsn)
                .await
                .map(|()| pb::PushResponse { applied: p.rows }),
            Err(e) => Err(e),
        };
        self.metrics.record_rpc("Push", start, &result);
        result.map(Response::new)
    }

    async fn pull_dense(
        &self,
        request: Request<pb::PullDenseRequest>,
    ) -> Result<Response<pb::PullDenseResponse>, Status> {
        let start = Instant::now();
        let req = request.into_inner();
        let result = self.pull_dense_inner(&req).map_err(from_engine);
        self.metrics.record_rpc("PullDense", start, &result);
        result.map(Response::new)
    }

    async fn push_dense(
        &self,
        request: Request<pb::PushDenseRequest>,
    ) -> Result<Response<pb::PushDenseResponse>, Status> {
        let start = Instant::now();
        let mut result = self
            .push_dense_inner(request.into_inner())
            .map_err(from_request);
        if result.is_ok() {
            if let Err(e) = self.logged(self.newest_lsn()).await {
                result = Err(e);
            }
        }
        self.metrics.record_rpc("PushDense", start, &result);
        result.map(Response::new)
    }
}
