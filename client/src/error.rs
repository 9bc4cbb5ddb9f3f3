//! Errors of the client, with the node and shard they concern.

use std::time::Duration;

use thiserror::Error;
use tonic::{Code, Status};

/// Why a client call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The coordinator could not be reached.
    #[error("cannot reach coordinator {address}: {source}")]
    Connect {
        /// Address tried.
        address: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// An address is not a valid URI.
    #[error("invalid address {address:?}: {reason}")]
    BadAddress {
        /// The address.
        address: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Nothing listens at a coordinator's address (the connection was refused).
    #[error(
        "connection refused at {address} — is a strata coordinator running there? \
         (`strata-server dev` starts one)"
    )]
    ConnectionRefused {
        /// Address tried.
        address: String,
    },
    /// No coordinator answered within the connect timeout.
    #[error(
        "no answer from {address} within {timeout:?} (the connect timeout): is the host \
         reachable, the port open and a strata coordinator running there?"
    )]
    ConnectTimeout {
        /// Address tried.
        address: String,
        /// The connect timeout.
        timeout: Duration,
    },
    /// The connection to a coordinator failed for another reason (no route, bad host name).
    #[error("cannot connect to {address}: {reason}")]
    Unreachable {
        /// Address tried.
        address: String,
        /// The transport's reason.
        reason: String,
    },
    /// The TLS handshake with a server was refused, by it or by this client.
    #[error("cannot connect to {address}: {failure}")]
    Tls {
        /// Address tried.
        address: String,
        /// What failed, in words that name the fix.
        failure: strata_proto::tls::TlsFailure,
    },
    /// The client's TLS files cannot be used.
    #[error("TLS settings: {0}")]
    TlsSettings(strata_proto::tls::TlsError),
    /// Something answered at the address, but not in gRPC (an HTTP server such as a
    /// `--metrics-listen` port, or another protocol altogether).
    #[error(
        "{address} does not speak gRPC ({detail}): give a strata coordinator's --listen \
         address (a --metrics-listen port looks like this: it answers HTTP only; so does a \
         server started with --tls-cert to a client without --tls-ca)"
    )]
    NotGrpc {
        /// Address tried.
        address: String,
        /// What was answered.
        detail: String,
    },
    /// A caller-side argument is wrong (lengths, buffer sizes).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The server refused or failed the request.
    #[error("{rpc} on node {node} ({address}) failed: {code:?}: {message}")]
    Rpc {
        /// The rpc.
        rpc: &'static str,
        /// Node id ("coordinator" for control-plane calls).
        node: String,
        /// Node address.
        address: String,
        /// Status code.
        code: Code,
        /// Server's message.
        message: String,
    },
    /// A push whose outcome is unknown (sent, then the connection or deadline failed):
    /// it may or may not have been applied, so it is not retried.
    #[error("push to node {node} ({address}) has an unknown outcome: {message}")]
    Ambiguous {
        /// Node id.
        node: String,
        /// Node address.
        address: String,
        /// What happened.
        message: String,
    },
    /// A node the request needs is down or cannot be reached; nothing was sent to it.
    #[error(
        "{rpc}: node {node} ({address}), primary of shards {shards:?}, is unavailable: {reason}"
    )]
    NodeUnavailable {
        /// The rpc.
        rpc: &'static str,
        /// Node id.
        node: String,
        /// Node address.
        address: String,
        /// Shards the node is primary of.
        shards: Vec<u32>,
        /// Why: marked down by the coordinator, or the connection failed.
        reason: String,
    },
    /// A shard has no node assigned yet (no shard server registered).
    #[error("shard {shard} has no shard server assigned yet")]
    Unassigned {
        /// The shard.
        shard: u32,
    },
    /// The cluster map kept changing under the request.
    #[error("routing did not settle after {attempts} attempts (last epoch {epoch})")]
    RoutingUnsettled {
        /// Attempts made.
        attempts: u32,
        /// Last epoch seen.
        epoch: u64,
    },
    /// The cluster map is unusable (no shard covers a slot, unknown node).
    #[error("cluster map is invalid: {0}")]
    BadMap(String),
}

impl From<strata_proto::tls::TlsError> for ClientError {
    fn from(e: strata_proto::tls::TlsError) -> Self {
        ClientError::TlsSettings(e)
    }
}

impl ClientError {
    /// The failure of `rpc` on `node` at `address`, with the status the call ended with.
    pub(crate) fn rpc(rpc: &'static str, node: &str, address: &str, status: &Status) -> Self {
        ClientError::Rpc {
            rpc,
            node: node.into(),
            address: address.into(),
            code: status.code(),
            message: status.message().into(),
        }
    }

    /// The gRPC status code behind this error, if the server answered.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The gRPC code this failure stands for, answered or not: the server's code; for a
    /// request refused before it was sent, `INVALID_ARGUMENT`; for a refused TLS
    /// handshake, `UNAUTHENTICATED`; for a node or coordinator
    /// that could not be reached or routing that did not settle, `UNAVAILABLE`; for a push
    /// of unknown outcome, `UNKNOWN`; for an unusable map, `INTERNAL`.
    pub fn status_code(&self) -> Code {
        match self {
            ClientError::Rpc { code, .. } => *code,
            ClientError::InvalidArgument(_)
            | ClientError::BadAddress { .. }
            | ClientError::TlsSettings(_) => Code::InvalidArgument,
            ClientError::Ambiguous { .. } => Code::Unknown,
            ClientError::Tls { .. } => Code::Unauthenticated,
            ClientError::Connect { .. }
            | ClientError::ConnectionRefused { .. }
            | ClientError::ConnectTimeout { .. }
            | ClientError::Unreachable { .. }
            | ClientError::NotGrpc { .. }
            | ClientError::NodeUnavailable { .. }
            | ClientError::Unassigned { .. }
            | ClientError::RoutingUnsettled { .. } => Code::Unavailable,
            ClientError::BadMap(_) => Code::Internal,
        }
    }
}
