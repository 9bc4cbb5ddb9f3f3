//! Exactly-once pushes from this client: its random id, the numbering of its pushes, the
//! floor of outcomes it still awaits, and the sending of one numbered push to one node
//! until its outcome is known.
//!
//! A push whose outcome is unknown (the connection broke after it was sent, the node
//! restarted, the node answered that a copy is being applied) is sent again with the same
//! number to the same node at the same epoch: the node applies each number once and
//! answers a copy with the first answer. If the node no longer serves the rows (the map
//! moved them) after an unknown outcome, the push's outcome stays unknown and is reported
//! as such: sending it elsewhere could apply it twice. Nor can a node that restarted without
//! a write-ahead log settle a copy whose first copy it may have lost: it answers ABORTED, and
//! the outcome is reported unknown. A node the coordinator marks down stops the copies.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message;
use strata_proto::v1 as pb;
use strata_proto::wire::{self, PushOnce};
use tonic::transport::Channel;
use tonic::Status;

use crate::retry::{classify, Call, Retry};
use crate::routing::MAX_MESSAGE_BYTES;
use crate::Client;

/// How long a push with an unknown outcome is sent again before it is reported unknown
/// (long enough for a node to restart and replay its log).
const RESEND_FOR: Duration = Duration::from_secs(20);
/// Longest pause between two copies.
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// The numbering of this client's pushes.
pub(crate) struct PushSequence {
    client_id: String,
    next: AtomicU64,
    outstanding: Mutex<BTreeSet<u64>>,
}

/// A push's number while its outcome is awaited; dropping it settles the number.
pub(crate) struct Ticket<'a> {
    sequence: &'a PushSequence,
    /// The push's number.
    pub seq: u64,
    /// Every number below it is settled.
    pub acked_below: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.sequence.outstanding.lock().remove(&self.seq);
    }
}

impl PushSequence {
    /// A new client id (128 random bits, hex) numbering from 1.
    pub(crate) fn new() -> Self {
        Self {
            client_id: random_id(),
            next: AtomicU64::new(1),
            outstanding: Mutex::new(BTreeSet::new()),
        }
    }

    /// The client's id.
    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Numbers the next push.
    pub(crate) fn ticket(&self) -> Ticket<'_> {
        // Numbered under the lock: a number handed out but not yet outstanding would let a
        // concurrent push report a floor above it, and the node would take it as settled.
        let mut outstanding = self.outstanding.lock();
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        outstanding.insert(seq);
        let acked_below = outstanding.first().copied().unwrap_or(seq);
        Ticket {
            sequence: self,
            seq,
            acked_below,
        }
    }
}

/// 128 bits from the process's randomly keyed hasher (the OS seeds it), the time and the
/// process id, as 32 hex digits.
fn random_id() -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(now);
        h.write_u32(std::process::id());
        h.write_u64(salt);
        h.finish()
    };
    format!("{:016x}{:016x}", word(1), word(2))
}

/// One numbered push to one node.
pub(crate) struct NumberedPush<'a> {
    /// The table.
    pub table: &'a str,
    /// Packed ids.
    pub ids: Bytes,
    /// Packed gradients.
    pub grads: Bytes,
    /// The map epoch the push is routed at.
    pub epoch: u64,
    /// The client's id.
    pub client_id: &'a str,
    /// Its number.
    pub ticket: Ticket<'a>,
}

impl NumberedPush<'_> {
    /// Sends the push until its outcome is known: the node's answer, a refusal that shows
    /// it was not applied (returned as it is, for the caller to route again or report), or
    /// — when a copy after an unknown outcome cannot settle it — an `UNAVAILABLE` status
    /// the caller's classification reports as an unknown outcome.
    pub(crate) async fn send(
        self,
        client: &Client,
        node_id: &str,
        channel: &Channel,
        labels: Option<&http::HeaderValue>,
    ) -> Result<pb::PushResponse, Status> {
        let started = Instant::now();
        let mut first_unknown: Option<Status> = None;
        let mut pause = Duration::from_millis(20);
        loop {
            let request = wire::push_request_once(
                self.table,
                self.ids.clone(),
                self.grads.clone(),
                self.epoch,
                PushOnce {
                    client_id: self.client_id,
                    seq: self.ticket.seq,
                    acked_below: self.ticket.acked_below,
                    resend_after_ms: match first_unknown {
                        None => 0,
                        Some(_) => (started.elapsed().as_millis() as u64).max(1),
                    },
                },
            );
            let status = match wire::unary_call(
                channel,
                wire::PUSH_PATH,
                request,
                MAX_MESSAGE_BYTES,
                labels,
            )
            .await
            {
                Ok(message) => {
                    return pb::PushResponse::decode(message)
                        .map_err(|e| Status::internal(format!("malformed PushResponse: {e}")))
                }
                Err(status) => status,
            };
            let retry = classify(&status, Call::Write);
            let resend = match retry {
                Retry::Ambiguous => true,
                // The node is away (restarting): a copy may still settle an unknown outcome,
                // unless the coordinator has marked the node down.
                Retry::NeverSent | Retry::Resend => {
                    first_unknown.is_some() && !marked_down(client, node_id).await
                }
                Retry::RefreshMap | Retry::Reroute | Retry::Fatal => false,
            };
            if retry == Retry::Ambiguous && first_unknown.is_none() {
                first_unknown = Some(status.clone());
            }
            match &first_unknown {
                None => return Err(status),
                Some(first) if !resend || started.elapsed() >= RESEND_FOR => {
                    return Err(Status::unavailable(format!(
                        "push {} may have been applied: {:?}: {}; sent again for {:.1}s, last \
                         answer {:?}: {}",
                        self.ticket.seq,
                        first.code(),
                        first.message(),
                        started.elapsed().as_secs_f64(),
                        status.code(),
                        status.message()
                    )))
                }
                Some(_) => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}

/// Whether a fresh map (when one can be had) says node `id` is down.
async fn marked_down(client: &Client, id: &str) -> bool {
    if client.refresh_map().await.is_err() {
        return false;
    }
    client
        .routing()
        .nodes
        .iter()
        .find(|n| n.id == id)
        .is_some_and(|n| !n.up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_rise_and_the_floor_is_the_oldest_awaited() {
        let s = PushSequence::new();
        assert_eq!(s.client_id().len(), 32);
        assert_ne!(s.client_id(), PushSequence::new().client_id());
        let a = s.ticket();
        let b = s.ticket();
        assert_eq!((a.seq, a.acked_below), (1, 1));
        assert_eq!((b.seq, b.acked_below), (2, 1));
        drop(a);
        let c = s.ticket();
        assert_eq!((c.seq, c.acked_below), (3, 2));
        drop(b);
        drop(c);
        let d = s.ticket();
        assert_eq!((d.seq, d.acked_below), (4, 4));
    }

    #[test]
    fn no_floor_passes_a_number_still_to_be_sent() {
        // Nothing is settled while the tickets are held, so every floor must be 1: a floor
        // above a number handed out to another thread but not yet outstanding would tell
        // the node to take that push as settled.
        let s = std::sync::Arc::new(PushSequence::new());
        let all_taken = std::sync::Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (s, all_taken) = (s.clone(), all_taken.clone());
                std::thread::spawn(move || {
                    let held: Vec<Ticket<'_>> = (0..2000).map(|_| s.ticket()).collect();
                    let highest = held.iter().map(|t| t.acked_below).max();
                    all_taken.wait();
                    highest
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("thread"), Some(1));
        }
    }
}
