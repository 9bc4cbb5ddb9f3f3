//! The coordinator's calls to shard servers over gRPC (`ShardControl`), one cached
//! channel per address.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use strata_proto::v1::shard_control_client::ShardControlClient;
use tonic::transport::{Channel, Endpoint};

use super::convert::{catalog_to_pb, checkpoint_from_pb, map_to_pb};
use crate::checkpoint::CheckpointInfo;
use crate::coordinator::cluster::{Catalog, NodeControl};
use crate::coordinator::ClusterMap;

/// How long connecting to a shard server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

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
}
