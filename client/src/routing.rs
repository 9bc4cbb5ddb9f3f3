//! Slot → shard → node routing from the cluster map, with one channel per node.

use std::time::Duration;

use strata_proto::tls::ClientTls;
use strata_proto::transport;
use strata_proto::v1 as pb;
use strata_proto::v1::parameter_client::ParameterClient;
use tonic::transport::Channel;

use crate::ClientError;

pub use strata_proto::transport::MAX_MESSAGE_BYTES;

/// One node the client talks to.
#[derive(Clone)]
pub struct NodeConn {
    /// Node id.
    pub id: String,
    /// Node address.
    pub address: String,
    /// Parameter client over this node's channel.
    pub client: ParameterClient<Channel>,
    /// The node's channel itself (hand-framed Pull and Push).
    pub channel: Channel,
    /// Whether the map says the node is up.
    pub up: bool,
    /// Shards the node is primary of.
    pub shards: Vec<u32>,
}

/// A routing table built from one cluster map.
pub struct Routing {
    /// Epoch of the map.
    pub epoch: u64,
    /// Slots of the cluster.
    pub num_slots: u32,
    /// Node index (into `nodes`) per slot.
    pub slot_node: Vec<u16>,
    /// Nodes that own at least one slot.
    pub nodes: Vec<NodeConn>,
    /// A shard that has no (known) primary node, if any: requests cannot be routed.
    pub unassigned: Option<u32>,
}

/// Marks a slot no node serves.
const NO_NODE: u16 = u16::MAX;

/// A plaintext channel to `address` with strata's HTTP/2 settings (connects lazily).
pub fn channel(address: &str) -> Result<Channel, ClientError> {
    channel_with(address, None, None)
}

/// As [`channel`], through TLS with `tls`; with `connect_timeout`, opening a connection
/// gives up after it.
pub fn channel_with(
    address: &str,
    tls: Option<&ClientTls>,
    connect_timeout: Option<Duration>,
) -> Result<Channel, ClientError> {
    let mut endpoint =
        transport::endpoint_with(address, tls).map_err(|e| ClientError::BadAddress {
            address: address.into(),
            reason: e.to_string(),
        })?;
    if let Some(timeout) = connect_timeout {
        endpoint = endpoint.connect_timeout(timeout);
    }
    Ok(transport::connect_lazy(&endpoint, tls))
}

impl Routing {
    /// Builds the table; reuses channels of `previous` for nodes at the same address, and
    /// opens new ones through TLS with `tls`.
    pub fn from_map(
        map: &pb::ClusterMap,
        previous: Option<&Routing>,
        tls: Option<&ClientTls>,
    ) -> Result<Self, ClientError> {
        let num_slots = map.num_slots;
        if num_slots == 0 {
            return Err(ClientError::BadMap("num_slots is 0".into()));
        }
        let mut nodes: Vec<NodeConn> = Vec::new();
        let mut slot_node = vec![NO_NODE; num_slots as usize];
        let mut unassigned = None;
        for shard in &map.shards {
            let Some(node) = map.nodes.iter().find(|n| n.id == shard.primary) else {
                unassigned.get_or_insert(shard.id);
                continue;
            };
            let idx = match nodes.iter().position(|n| n.id == node.id) {
                Some(i) => i,
                None => {
                    let reused = previous.and_then(|p| {
                        p.nodes
                            .iter()
                            .find(|c| c.id == node.id && c.address == node.address)
                    });
                    let (client, channel) = match reused {
                        Some(c) => (c.client.clone(), c.channel.clone()),
                        None => {
                            let channel = channel_with(&node.address, tls, None)?;
                            let client = ParameterClient::new(channel.clone())
                                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                                .max_encoding_message_size(MAX_MESSAGE_BYTES);
                            (client, channel)
                        }
                    };
                    nodes.push(NodeConn {
                        id: node.id.clone(),
                        address: node.address.clone(),
                        client,
                        channel,
                        up: node.state != "down",
                        shards: Vec::new(),
                    });
                    nodes.len() - 1
                }
            };
            nodes[idx].shards.push(shard.id);
            let end = shard.slot_end.min(num_slots) as usize;
            let start = (shard.slot_start as usize).min(end);
            for s in &mut slot_node[start..end] {
                *s = idx as u16;
            }
        }
        if unassigned.is_none() && slot_node.contains(&NO_NODE) {
            return Err(ClientError::BadMap(
                "the shards do not cover every slot".into(),
            ));
        }
        Ok(Self {
            epoch: map.epoch,
            num_slots,
            slot_node,
            nodes,
            unassigned,
        })
    }

    /// The node index serving `id` (only valid when `unassigned` is `None`).
    #[inline]
    pub fn node_of(&self, id: u64) -> usize {
        self.slot_node[slot_of(id, self.num_slots) as usize] as usize
    }
}

pub use strata_proto::routing::{slot_of, splitmix64};
