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

use crate::retry::{classify, Call, Retry};
use crate::routing::{channel, MAX_MESSAGE_BYTES};
use crate::ClientError;

/// How long a control-plane call keeps looking for a leader (covers a lease expiry).
pub const LEADER_SEARCH: Duration = Duration::from_secs(20);

/// Known coordinators and the one calls go to.
pub(crate) struct Control {
    state: RwLock<State>,
}

struct State {
    addresses: Vec<String>,
    current: usize,
    client: CoordinatorClient<Channel>,
}

fn client(address: &str) -> Result<CoordinatorClient<Channel>, ClientError> {
    Ok(CoordinatorClient::new(channel(address)?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

impl Control {
    /// Coordinators at `addresses` (at least one); calls start with the first.
    pub(crate) fn new(addresses: Vec<String>) -> Result<Self, ClientError> {
        let first = addresses.first().ok_or_else(|| ClientError::BadAddress {
            address: String::new(),
            reason: "no coordinator address".into(),
        })?;
        let client = client(first)?;
        Ok(Self {
            state: RwLock::new(State {
                addresses,
                current: 0,
                client,
            }),
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
        let Ok(next) = client(&s.addresses[target]) else {
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
        let deadline = Instant::now() + LEADER_SEARCH;
        let mut pause = Duration::from_millis(50);
        loop {
            let address = self.address();
            let status = match send(self.client()).await {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) => status,
            };
            let retry = match classify(&status, call) {
                Retry::Reroute | Retry::NeverSent | Retry::Resend => true,
                Retry::RefreshMap | Retry::Ambiguous | Retry::Fatal => false,
            };
            if !retry || Instant::now() + pause > deadline {
                return Err(ClientError::rpc(rpc, "coordinator", &address, &status));
            }
            tracing::debug!(%address, rpc, message = %status.message(), "coordinator not leading; trying another");
            self.follow(&address, &status);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
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
