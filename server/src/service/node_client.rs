//! The coordinator's calls to shard servers over gRPC (`ShardControl`), one cached
//! channel per address.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use strata_proto::v1::shard_control_client::ShardControlClient;
use tonic::transport::{Channel, Endpoint};

use super::convert::{catalog_to_pb, checkpoint_from_pb, map_to_pb};
use crate::checkpoint::CheckpointInfo;
use crate::coordinator::cluster::{Catalog, MigrateOut, MoveProgress, NodeControl};
use crate::coordinator::ClusterMap;

/// How long connecting to a shard server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 keepalive towards shard servers: a silent node is noticed in seconds.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// Longest silence of a source during a move (its hand-off is bounded well below this).
const MOVE_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often a waiting move looks at the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// [`NodeControl`] over gRPC.
#[derive(Default)]
pub struct GrpcNodeControl {
    channels: Mutex<HashMap<String, Channel>>,
}

impl GrpcNodeControl {
    /// No connections yet; they open lazily per address.
    pub fn new() -> Self {
        Self::default()
    }

    fn client(&self, address: &str) -> Result<ShardControlClient<Channel>, String> {
        let mut channels = self.channels.lock();
        if let Some(c) = channels.get(address) {
            return Ok(ShardControlClient::new(c.clone()));
        }
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("invalid address {address:?}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE)
            .keep_alive_timeout(KEEPALIVE)
            .keep_alive_while_idle(true)
            .connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(ShardControlClient::new(channel))
    }
}

fn describe(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

impl NodeControl for GrpcNodeControl {
    fn apply_catalog<'a>(
        &'a self,
        address: &'a str,
        catalog: &'a Catalog,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.client(address)?
                .apply_catalog(catalog_to_pb(catalog))
                .await
                .map_err(describe)?;
            Ok(())
        })
    }

    fn apply_map<'a>(
        &'a self,
        address: &'a str,
        map: &'a ClusterMap,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.client(address)?
                .apply_map(map_to_pb(map))
                .await
                .map_err(describe)?;
            Ok(())
        })
    }

    fn checkpoint<'a>(
        &'a self,
        address: &'a str,
        epoch: u64,
    ) -> BoxFuture<'a, Result<CheckpointInfo, String>> {
        Box::pin(async move {
            let resp = self
                .client(address)?
                .checkpoint_node(strata_proto::v1::CheckpointNodeRequest { epoch })
                .await
                .map_err(describe)?
                .into_inner();
            resp.checkpoint
                .as_ref()
                .map(checkpoint_from_pb)
                .ok_or_else(|| "answered without a checkpoint".to_string())
        })
    }

    fn migrate_out<'a>(
        &'a self,
        address: &'a str,
        request: &'a MigrateOut,
        progress: &'a (dyn Fn(MoveProgress) + Send + Sync),
        cancel: &'a AtomicBool,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let req = strata_proto::v1::MigrateOutRequest {
                migration_id: request.id.clone(),
                slot_start: request.slot_start,
                slot_end: request.slot_end,
                destination: request.destination.clone(),
                max_bytes_per_s: request.max_bytes_per_s,
            };
            let mut stream = self
                .client(address)?
                .migrate_out(req)
                .await
                .map_err(describe)?
                .into_inner();
            let mut last = std::time::Instant::now();
            loop {
                let next = tokio::select! {
                    m = stream.message() => m,
                    () = tokio::time::sleep(CANCEL_POLL) => {
                        if cancel.load(Ordering::Acquire) {
                            // Dropping the stream stops the source before its hand-off.
                            return Err("cancelled".into());
                        }
                        if last.elapsed() > MOVE_IDLE_TIMEOUT {
                            return Err(format!("no progress from the source for {MOVE_IDLE_TIMEOUT:?}"));
                        }
                        continue;
                    }
                };
                last = std::time::Instant::now();
                let Some(p) = next.map_err(describe)? else {
                    return Err("the source ended without handing the range off".into());
                };
                let handed_off = p.phase == "handed_off";
                progress(MoveProgress {
                    phase: p.phase,
                    rows: p.rows,
                    bytes: p.bytes,
                    rows_total: p.rows_total,
                    bytes_total: p.bytes_total,
                });
                if handed_off {
                    return Ok(());
                }
            }
        })
    }

    fn import_complete<'a>(
        &'a self,
        address: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let resp = self
                .client(address)?
                .import_status(strata_proto::v1::ImportStatusRequest {
                    migration_id: id.to_string(),
                })
                .await
                .map_err(describe)?;
            Ok(resp.into_inner().complete)
        })
    }

    fn abort_migration<'a>(
        &'a self,
        address: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.client(address)?
                .abort_migration(strata_proto::v1::AbortMigrationRequest {
                    migration_id: id.to_string(),
                })
                .await
                .map_err(describe)?;
            Ok(())
        })
    }
}
