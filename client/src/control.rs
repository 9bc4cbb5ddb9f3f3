//! The control-plane connection: finds the leader among several coordinator addresses and
//! follows it when it changes.
//!
//! A standby refuses with `UNAVAILABLE` and the leader's address in metadata
//! `strata-leader`; the call goes there, else to the next known address. A call is sent
//! again only when it is known not to have been applied (a standby's refusal, a connection
//! that failed before sending) or when it is read-only; retries are bounded in time.

use std::future::Future;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use strata_proto::transport::LEADER_METADATA;
use strata_proto::v1::coordinator_client::CoordinatorClient;
use tonic::transport::Channel;
use tonic::Status;

use crate::retry::{
    answered as answered_by_server, classify, connect_failure, Call, ConnectFailure, Retry,
};
use crate::routing::{channel_with, MAX_MESSAGE_BYTES};
use crate::ClientError;
use strata_proto::tls::{ClientTls, TlsFailure};

/// How long a control-plane call keeps looking for a leader (covers a lease expiry).
pub const LEADER_SEARCH: Duration = Duration::from_secs(20);

/// Known coordinators and the one calls go to.
pub(crate) struct Control {
    state: RwLock<State>,
    /// How long opening a connection, and the first contact, may take.
    connect_timeout: Duration,
    /// TLS of the connections (`None`: plaintext).
    tls: Option<ClientTls>,
}

struct State {
    addresses: Vec<String>,
    current: usize,
    client: CoordinatorClient<Channel>,
}

fn client(
    address: &str,
    timeout: Duration,
    tls: Option<&ClientTls>,
) -> Result<CoordinatorClient<Channel>, ClientError> {
    Ok(
        CoordinatorClient::new(channel_with(address, tls, Some(timeout))?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
}

impl Control {
    /// Coordinators at `addresses` (at least one); calls start with the first. Opening a
    /// connection gives up after `connect_timeout`; with `tls`, connections use TLS.
    pub(crate) fn new(
        addresses: Vec<String>,
        connect_timeout: Duration,
        tls: Option<ClientTls>,
    ) -> Result<Self, ClientError> {
        let first = addresses.first().ok_or_else(|| ClientError::BadAddress {
            address: String::new(),
            reason: "no coordinator address".into(),
        })?;
        let client = client(first, connect_timeout, tls.as_ref())?;
        Ok(Self {
            state: RwLock::new(State {
                addresses,
                current: 0,
                client,
            }),
            connect_timeout,
            tls,
        })
    }

    /// The coordinator calls go to now.
    pub(crate) fn client(&self) -> CoordinatorClient<Channel> {
        self.state.read().client.clone()
    }

    /// Its address.
    pub(crate) fn address(&self) -> String {
        let s = self.state.read();
        s.addresses[s.current].clone()
    }

    /// Moves to the leader named by `status`, else to the next address (unless another
    /// caller already moved away from `from`).
    fn follow(&self, from: &str, status: &Status) {
        let hint = leader_hint(status);
        let mut s = self.state.write();
        if s.addresses[s.current] != from {
            return;
        }
        let target = match hint {
            Some(h) if h != from => match s.addresses.iter().position(|a| *a == h) {
                Some(i) => i,
                None => {
                    s.addresses.push(h);
                    s.addresses.len() - 1
                }
            },
            _ => (s.current + 1) % s.addresses.len(),
        };
        let Ok(next) = client(
            &s.addresses[target],
            self.connect_timeout,
            self.tls.as_ref(),
        ) else {
            return;
        };
        s.current = target;
        s.client = next;
    }

    /// Runs `send` against the leader, following it across standbys and failovers.
    /// A [`Call::Read`] is also sent again after a connection lost mid-call.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        rpc: &'static str,
        call: Call,
        send: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(CoordinatorClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        match self.search(call, None, send).await {
            Ok(answer) => Ok(answer),
            Err(Failed::Status(address, status)) => {
                Err(ClientError::rpc(rpc, "coordinator", &address, &status))
            }
            Err(Failed::NoAnswer(address)) => Err(ClientError::ConnectTimeout {
                address,
                timeout: LEADER_SEARCH,
            }),
        }
    }

    /// The first call of a client: as [`Control::call`], but until some coordinator answers
    /// (even a standby), the search ends after the connect timeout, and a failure says what
    /// was found at the address (nothing listening, no answer, not gRPC).
    pub(crate) async fn first_call<T, F, Fut>(
        &self,
        rpc: &'static str,
        call: Call,
        send: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(CoordinatorClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let timeout = self.connect_timeout;
        let (address, status) = match self.search(call, Some(timeout), send).await {
            Ok(answer) => return Ok(answer),
            Err(Failed::Status(address, status)) => (address, status),
            Err(Failed::NoAnswer(address)) => {
                return Err(ClientError::ConnectTimeout { address, timeout })
            }
        };
        if let Some(failure) = TlsFailure::find(&status) {
            return Err(ClientError::Tls {
                address,
                failure: failure.clone(),
            });
        }
        if let Some(failure) = connect_failure(&status) {
            return Err(match failure {
                ConnectFailure::Refused => ClientError::ConnectionRefused { address },
                ConnectFailure::TimedOut => ClientError::ConnectTimeout { address, timeout },
                ConnectFailure::Other(reason) => ClientError::Unreachable { address, reason },
            });
        }
        if let Some(detail) = not_grpc(&status) {
            return Err(ClientError::NotGrpc { address, detail });
        }
        if !answered_by_server(&status) && status.code() == tonic::Code::Internal {
            // The transport's own protocol error on a connection that opened: whatever
            // listens there does not speak HTTP/2.
            return Err(ClientError::NotGrpc {
                address,
                detail: status.message().to_string(),
            });
        }
        Err(ClientError::rpc(rpc, "coordinator", &address, &status))
    }

    /// Sends until an answer, a failure that sending again would not fix, or the search
    /// time has passed: [`LEADER_SEARCH`], or with `connect` the connect timeout until a
    /// coordinator first answers (each attempt bounded by it too, for a port that accepts
    /// connections and never answers), then [`LEADER_SEARCH`] from the start.
    async fn search<T, F, Fut>(
        &self,
        call: Call,
        connect: Option<Duration>,
        send: F,
    ) -> Result<T, Failed>
    where
        F: Fn(CoordinatorClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let began = Instant::now();
        let mut deadline = began + connect.unwrap_or(LEADER_SEARCH);
        let mut answered = connect.is_none();
        let mut pause = Duration::from_millis(50);
        loop {
            let address = self.address();
            let attempt = send(self.client());
            let result = if answered {
                attempt.await
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, attempt).await {
                    Ok(result) => result,
                    Err(_) => return Err(Failed::NoAnswer(address)),
                }
            };
            let status = match result {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) => status,
            };
            if !answered && answered_by_server(&status) {
                // A coordinator answered: from now on, the usual search for the leader.
                answered = true;
                deadline = began + LEADER_SEARCH;
            }
            // A refused TLS handshake is refused again: the files are wrong, not the moment.
            let retry = match classify(&status, call) {
                Retry::Reroute | Retry::NeverSent | Retry::Resend => {
                    TlsFailure::find(&status).is_none()
                }
                Retry::RefreshMap | Retry::Ambiguous | Retry::Fatal => false,
            };
            if !retry || Instant::now() + pause > deadline {
                return Err(Failed::Status(address, status));
            }
            tracing::debug!(%address, message = %status.message(), "coordinator not leading; trying another");
            self.follow(&address, &status);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

/// How a search for the leader ended without an answer.
enum Failed {
    /// The last failure, and the address that gave it.
    Status(String, Status),
    /// Nothing answered at the address within the connect timeout.
    NoAnswer(String),
}

/// What a non-gRPC server answered, if `status` is tonic's account of an HTTP response
/// without a gRPC status (an HTTP server such as a metrics port). Only used to word an
/// error: tonic gives no typed mark of this case, so its fixed message is matched here and
/// nowhere else, and no retry decision depends on it.
fn not_grpc(status: &Status) -> Option<String> {
    let message = status.message();
    message
        .starts_with("grpc-status header missing")
        .then(|| message.replace("grpc-status header missing, mapped from ", "answered with "))
}

/// The leader a standby named, if any.
fn leader_hint(status: &Status) -> Option<String> {
    status
        .metadata()
        .get(LEADER_METADATA)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::net::TcpListener;

    use crate::{Client, ClientError, ClientOptions};

    fn options(timeout: Duration) -> ClientOptions {
        ClientOptions {
            labels: None,
            connect_timeout: timeout,
            ..ClientOptions::default()
        }
    }

    #[tokio::test]
    async fn a_refused_first_contact_is_named_within_the_connect_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        drop(listener);
        let began = Instant::now();
        let err = Client::connect_with(&address, options(Duration::from_millis(300)))
            .await
            .err()
            .expect("nothing listens");
        assert!(
            matches!(&err, ClientError::ConnectionRefused { address: a } if *a == address),
            "{err:?}"
        );
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "{:?}",
            began.elapsed()
        );
    }

    #[tokio::test]
    async fn a_port_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let began = Instant::now();
        let err = Client::connect_with(&address, options(Duration::from_millis(300)))
            .await
            .err()
            .expect("nothing answers");
        assert!(
            matches!(&err, ClientError::ConnectTimeout { timeout, .. } if *timeout == Duration::from_millis(300)),
            "{err:?}"
        );
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "{:?}",
            began.elapsed()
        );
        drop(listener);
    }

    #[tokio::test]
    async fn an_address_without_a_port_is_refused_before_dialing() {
        let err = Client::connect_with("127.0.0.1", options(Duration::from_secs(1)))
            .await
            .err()
            .expect("no port");
        assert!(matches!(err, ClientError::BadAddress { .. }), "{err:?}");
    }
}
