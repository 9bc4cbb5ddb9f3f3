//! Fan-out of one batch of distinct ids to the nodes that own them, in parallel, with
//! bounded re-routing when the cluster map is stale and a node moved.

use std::future::Future;
use std::time::Duration;

use futures::future::join_all;
use tonic::Status;

use crate::batch::Split;
use crate::retry::{classify, Call, Retry};
use crate::routing::NodeConn;
use crate::{Client, ClientError};

/// Attempts of one call while routing is stale (a hand-off of a migration fences its range
/// for a moment; with the backoff below the client keeps trying for about 9 s).
const MAX_ATTEMPTS: u32 = 48;
/// Longest pause between two attempts.
const MAX_BACKOFF_MS: u64 = 200;

/// What becomes of one node's part after its call failed.
enum Part {
    /// Send it again after a map refresh, wherever the fresh map routes it.
    Reroute,
    /// Nothing reached the node (or a read lost it): send again only if a fresh map moved
    /// the node; the reason says why it could not be reached.
    Unreachable(String),
    /// The call fails with this error.
    Fail(ClientError),
}

/// The fate of a part of `rpc` whose call to `node` failed with `status`.
fn part_after(rpc: &'static str, call: Call, node: &NodeConn, status: Status) -> Part {
    match classify(&status, call) {
        Retry::RefreshMap => Part::Reroute,
        Retry::NeverSent => Part::Unreachable(format!("cannot connect: {}", status.message())),
        Retry::Resend => Part::Unreachable(format!("connection failed: {}", status.message())),
        Retry::Ambiguous => Part::Fail(ClientError::Ambiguous {
            node: node.id.clone(),
            address: node.address.clone(),
            message: format!("{:?}: {}", status.code(), status.message()),
        }),
        Retry::Reroute | Retry::Fatal => {
            Part::Fail(ClientError::rpc(rpc, &node.id, &node.address, &status))
        }
    }
}

impl Client {
    /// Sends `unique` split by node, in parallel; parts refused for stale routing are
    /// re-split with a fresh map and sent again (bounded); a part for a node that is down
    /// or unreachable is sent again only if a fresh map moved the node (new address, back
    /// up); anything else fails the call.
    pub(crate) async fn route<R, F, Fut>(
        &self,
        unique: &[u64],
        rpc: &'static str,
        call: Call,
        send: F,
        mut on_ok: impl FnMut(&[u32], R) -> Result<(), ClientError>,
    ) -> Result<(), ClientError>
    where
        F: Fn(&NodeConn, &[u32]) -> Fut,
        Fut: Future<Output = Result<R, Status>>,
    {
        let mut pending: Vec<u32> = (0..unique.len() as u32).collect();
        for attempt in 0..MAX_ATTEMPTS {
            let routing = self.routing();
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
            let mut unavailable: Vec<(NodeConn, String)> = Vec::new();
            for (node, part) in &down {
                let reason = "marked down by the coordinator".to_string();
                unavailable.push((routing.nodes[*node].clone(), reason));
                retry.extend_from_slice(part);
            }
            for ((node, part), result) in live.iter().zip(results) {
                let status = match result {
                    Ok(resp) => {
                        on_ok(part, resp)?;
                        continue;
                    }
                    Err(status) => status,
                };
                let conn = &routing.nodes[*node];
                match part_after(rpc, call, conn, status) {
                    Part::Reroute => retry.extend_from_slice(part),
                    Part::Unreachable(reason) => {
                        unavailable.push((conn.clone(), reason));
                        retry.extend_from_slice(part);
                    }
                    Part::Fail(e) => return Err(e),
                }
            }
            if retry.is_empty() {
                return Ok(());
            }
            pending = retry;
            self.backoff_and_refresh(attempt).await?;
            let fresh = self.routing();
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

    /// Waits (exponential, capped) before attempt `attempt + 1`, then refreshes the map.
    async fn backoff_and_refresh(&self, attempt: u32) -> Result<(), ClientError> {
        tokio::time::sleep(Duration::from_millis(
            (5u64 << attempt.min(6)).min(MAX_BACKOFF_MS),
        ))
        .await;
        self.refresh_map().await
    }
}
