//! What a failed call tells the caller to do next, decided from typed facts only: the
//! status code, strata's status metadata and the transport error behind a locally made
//! status, walked through `source()` with `downcast_ref`. Never from message text.

use std::error::Error as StdError;
use std::io;

use strata_proto::transport::{EPOCH_METADATA, LEADER_METADATA};
use tonic::{Code, ConnectError, Status};

/// Whether a call only reads (safe to send twice) or changes state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// Sending it twice changes nothing (pull, status, list, a dry-run plan).
    Read,
    /// Sending it twice may apply it twice (push, create, apply, restore).
    Write,
}

/// The next step after a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// The node no longer owns the slot at the client's epoch (`FAILED_PRECONDITION` with
    /// `strata-epoch`): refresh the cluster map, route again, send again.
    RefreshMap,
    /// A standby coordinator refused without acting (`UNAVAILABLE` with `strata-leader`):
    /// send again to the leader it names.
    Reroute,
    /// The connection failed before the request was written (refused, unreachable,
    /// connect timeout): nothing was applied, so it may be sent again.
    NeverSent,
    /// A read lost its connection mid-call: it may be sent again.
    Resend,
    /// A write may or may not have been applied: it is never sent again and its outcome
    /// is reported as unknown.
    Ambiguous,
    /// The server refused the request as it stands: sending it again would not help.
    Fatal,
}

/// Where a failed status comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// The transport could not open the connection: the request was never written.
    Connect,
    /// The transport failed after the connection was open (reset, closed, keep-alive).
    Transport,
    /// A status answered by the server, or made by this client's own checks.
    Answer,
}

impl Origin {
    /// Walks the error chain under `status`: tonic marks every failure of the connection
    /// process with [`ConnectError`]; a refused or unreachable socket shows as its
    /// [`io::ErrorKind`]. A status with no source was answered, not made by the transport.
    fn of(status: &Status) -> Self {
        let mut source = StdError::source(status);
        if source.is_none() {
            return Origin::Answer;
        }
        while let Some(e) = source {
            if e.is::<ConnectError>() {
                return Origin::Connect;
            }
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if is_connect_kind(io.kind()) {
                    return Origin::Connect;
                }
            }
            source = e.source();
        }
        Origin::Transport
    }
}

/// Why a connection could not be opened, for messages that name the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConnectFailure {
    /// Nothing listens at the address.
    Refused,
    /// The connect timeout expired.
    TimedOut,
    /// Another failure of the connection process, with the transport's words.
    Other(String),
}

/// Whether a server answered with `status` (rather than the transport failing to reach
/// one, or losing the connection).
pub(crate) fn answered(status: &Status) -> bool {
    Origin::of(status) == Origin::Answer
}

/// Why the connection behind `status` failed, when the transport could not open it
/// (`None` for a status answered by a server or failed after connecting).
pub(crate) fn connect_failure(status: &Status) -> Option<ConnectFailure> {
    if Origin::of(status) != Origin::Connect {
        return None;
    }
    let mut source = StdError::source(status);
    let mut innermost = status.message().to_string();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return Some(ConnectFailure::Refused),
                io::ErrorKind::TimedOut => return Some(ConnectFailure::TimedOut),
                _ => {}
            }
        }
        innermost = e.to_string();
        source = e.source();
    }
    Some(ConnectFailure::Other(innermost))
}

/// I/O error kinds a socket reports only while connecting.
fn is_connect_kind(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

/// How a status code ended a call, before its origin and metadata are considered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// `UNAVAILABLE`, `UNKNOWN`, `CANCELLED`: the call stopped while it may have been running.
    Interrupted,
    /// `DEADLINE_EXCEEDED`: the call ran out of time and may have been applied.
    TimedOut,
    /// Every other code: the request was refused as it stands.
    Refused,
}

impl Ending {
    fn of(code: Code) -> Self {
        match code {
            Code::Unavailable | Code::Unknown | Code::Cancelled => Ending::Interrupted,
            Code::DeadlineExceeded => Ending::TimedOut,
            Code::Ok
            | Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::ResourceExhausted
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Internal
            | Code::DataLoss
            | Code::Unauthenticated => Ending::Refused,
        }
    }
}

/// The next step after `status` failed a call of kind `call`.
pub fn classify(status: &Status, call: Call) -> Retry {
    let code = status.code();
    let has = |key: &str| status.metadata().contains_key(key);
    match Origin::of(status) {
        Origin::Connect => Retry::NeverSent,
        Origin::Transport => match (Ending::of(code), call) {
            (Ending::Interrupted, Call::Read) => Retry::Resend,
            (Ending::Interrupted | Ending::TimedOut, Call::Write) => Retry::Ambiguous,
            (Ending::TimedOut, Call::Read) | (Ending::Refused, Call::Read | Call::Write) => {
                Retry::Fatal
            }
        },
        Origin::Answer if code == Code::FailedPrecondition && has(EPOCH_METADATA) => {
            Retry::RefreshMap
        }
        Origin::Answer if code == Code::Unavailable && has(LEADER_METADATA) => Retry::Reroute,
        Origin::Answer => match (Ending::of(code), call) {
            (Ending::Interrupted | Ending::TimedOut, Call::Write) => Retry::Ambiguous,
            (Ending::Interrupted | Ending::TimedOut, Call::Read)
            | (Ending::Refused, Call::Read | Call::Write) => Retry::Fatal,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use strata_proto::wire;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tonic::metadata::MetadataValue;

    use super::*;
    use crate::routing::{channel, MAX_MESSAGE_BYTES};

    /// A pull over the hand-framed path to `address`, returning its failure.
    async fn failed_pull(address: &str) -> Status {
        let channel = channel(address).expect("channel");
        let request = wire::pull_request("emb", Bytes::from_static(&[0u8; 8]), 0);
        tokio::time::timeout(
            Duration::from_secs(10),
            wire::unary_call(&channel, wire::PULL_PATH, request, MAX_MESSAGE_BYTES, None),
        )
        .await
        .expect("the call ends")
        .expect_err("nothing serves gRPC there")
    }

    #[tokio::test]
    async fn refused_connection_is_never_sent() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        drop(listener);
        let status = failed_pull(&address).await;
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(classify(&status, Call::Read), Retry::NeverSent);
        assert_eq!(classify(&status, Call::Write), Retry::NeverSent);
    }

    #[tokio::test]
    async fn connection_closed_mid_call_is_ambiguous_for_writes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            // Read the preface and the request's frames, then close without answering.
            let mut seen = 0usize;
            let mut buf = [0u8; 4096];
            while seen < 64 {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen += n,
                }
            }
            seen
        });
        let status = failed_pull(&address).await;
        let seen = server.await.expect("server task");
        assert!(seen >= 64, "the request reached the server ({seen} bytes)");
        assert!(
            matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::Cancelled
            ),
            "{status:?}"
        );
        assert_eq!(classify(&status, Call::Read), Retry::Resend, "{status:?}");
        assert_eq!(classify(&status, Call::Write), Retry::Ambiguous);
    }

    #[test]
    fn stale_epoch_refreshes_the_map() {
        let mut status = Status::failed_precondition("slot moved");
        status
            .metadata_mut()
            .insert(EPOCH_METADATA, MetadataValue::from(7u64));
        assert_eq!(classify(&status, Call::Read), Retry::RefreshMap);
        assert_eq!(classify(&status, Call::Write), Retry::RefreshMap);
        let plain = Status::failed_precondition("not a routing refusal");
        assert_eq!(classify(&plain, Call::Write), Retry::Fatal);
    }

    #[test]
    fn standby_refusal_reroutes_to_the_leader() {
        let mut status = Status::unavailable("not leading");
        status
            .metadata_mut()
            .insert(LEADER_METADATA, MetadataValue::from_static("10.0.0.1:7070"));
        assert_eq!(classify(&status, Call::Write), Retry::Reroute);
    }

    #[test]
    fn answered_interruptions_are_ambiguous_only_for_writes() {
        for status in [
            Status::unavailable("shutting down"),
            Status::unknown("panic"),
            Status::cancelled("cancelled"),
            Status::deadline_exceeded("late"),
        ] {
            assert_eq!(classify(&status, Call::Read), Retry::Fatal, "{status:?}");
            assert_eq!(
                classify(&status, Call::Write),
                Retry::Ambiguous,
                "{status:?}"
            );
        }
        let refused = Status::invalid_argument("dim mismatch");
        assert_eq!(classify(&refused, Call::Write), Retry::Fatal);
    }

    #[test]
    fn a_connect_error_anywhere_in_the_chain_is_never_sent() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let status = Status::from_error(Box::new(ConnectError(Box::new(refused))));
        assert_eq!(classify(&status, Call::Write), Retry::NeverSent);
        let timed_out = io::Error::from(io::ErrorKind::TimedOut);
        let status = Status::from_error(Box::new(ConnectError(Box::new(timed_out))));
        assert_eq!(classify(&status, Call::Write), Retry::NeverSent);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let status = Status::from_error(Box::new(reset));
        assert_eq!(classify(&status, Call::Read), Retry::Resend);
        assert_eq!(classify(&status, Call::Write), Retry::Ambiguous);
    }
}
