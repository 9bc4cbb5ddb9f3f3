//! The failures README documents for the situations a chaos schedule creates, and the check
//! that a client saw nothing else.
//!
//! - Pushes and pulls while a node is stopped, killed or restarting: `UNAVAILABLE` naming
//!   the node (nothing was sent, or the coordinator marked it down), or a push "returned as
//!   ambiguous, never retried" (sent, then the connection broke).
//! - A checkpoint while a node it needs is down or not answering: `UNAVAILABLE` (marked
//!   down), `DEADLINE_EXCEEDED` (no answer in time) or `ABORTED` (the map changed under it).
//! - A checkpoint into a full disk: `RESOURCE_EXHAUSTED`.

use strata_client::ClientError;
use tonic::Code;

/// A failure a client saw, reduced to what README documents it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A status code: answered, or made by the client for a node it could not reach.
    Code(Code),
    /// A push sent, then the connection failed: its outcome is unknown.
    Ambiguous,
    /// A failure README does not document (with its text).
    Undocumented(String),
}

/// What `err` is, as README documents it.
pub fn seen(err: &ClientError) -> Seen {
    match err {
        ClientError::NodeUnavailable { .. }
        | ClientError::Connect { .. }
        | ClientError::ConnectionRefused { .. }
        | ClientError::ConnectTimeout { .. }
        | ClientError::Unreachable { .. } => Seen::Code(Code::Unavailable),
        ClientError::Ambiguous { .. } => Seen::Ambiguous,
        ClientError::Rpc { code, .. } => Seen::Code(*code),
        other => Seen::Undocumented(other.to_string()),
    }
}

/// Data-path failures documented while a node is stopped, killed or restarting.
pub const DATA_PATH_UNDER_FAULTS: &[Seen] = &[Seen::Code(Code::Unavailable), Seen::Ambiguous];

/// Checkpoint failures documented while a node it needs is down or not answering.
pub const CHECKPOINT_NODE_DOWN: &[Seen] = &[
    Seen::Code(Code::Unavailable),
    Seen::Code(Code::DeadlineExceeded),
    Seen::Code(Code::Aborted),
];

/// Checkpoint failures documented while a node's disk is full.
pub const CHECKPOINT_DISK_FULL: &[Seen] = &[Seen::Code(Code::ResourceExhausted)];

/// Fails unless every failure in `seen` (with the call and error text) is in `allowed`.
pub fn check(situation: &str, seen: &[(String, Seen)], allowed: &[Seen]) -> Result<(), String> {
    let bad: Vec<&(String, Seen)> = seen.iter().filter(|(_, s)| !allowed.contains(s)).collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{situation}: {} failure(s) outside the documented {allowed:?}, e.g. {:#?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    ))
}
