//! strata async client: routing by slot, batching by node, retries on stale routing.
//!
//! Modules, one concern each:
//! - [`Client`] (here): the handle, its connections and its cluster map.
//! - `data`: the data path — pull and push of rows and dense tensors.
//! - `fanout`: a batch split by owning node and sent in parallel, re-routed when the map
//!   is stale or a node moved.
//! - `retry`: what a failed call tells the caller to do next, from typed facts only.
//! - `admin`: control-plane calls through one generic helper.
//! - `control`: the leader-following connection to the coordinators.
//! - `location`: where the client runs and how long it waits to connect
//!   ([`ClientOptions`], `STRATA_LABELS`, `STRATA_TLS_*`).
//! - [`address`]: addresses checked before anything is dialed.
//! - [`certs`]: development certificates (`strata certs`): a CA, and certificates carrying
//!   identity and role.
//! - [`tls_args`]: the client TLS flags (`--tls-ca`, `--tls-cert`, `--tls-key`).
//! - `error`: [`ClientError`].
//! - [`routing`], [`batch`]: the slot → node table, dedup and split of a
//!   batch (packed payloads are `strata_proto::wire::payload`).
//! - [`spec`], [`numbers`]: what users write as text (initializers; sizes and lists).
//! - `fuzz_entry` (hidden): the body of the `cli_numbers` fuzz target, shared with its tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), strata_client::ClientError> {
//! let client = strata_client::Client::connect("127.0.0.1:7070").await?;
//! let rows = client.pull("emb", &[1, 2, 3]).await?;
//! client.push("emb", &[1, 2, 3], &vec![0.1; rows.len()]).await?;
//! # Ok(()) }
//! ```

pub mod address;
mod admin;
pub mod batch;
pub mod certs;
mod control;
mod data;
mod error;
mod fanout;
#[doc(hidden)]
pub mod fuzz_entry;
mod location;
pub mod numbers;
mod once;
mod retry;
pub mod routing;
pub mod spec;
pub mod tls_args;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::HeaderValue;
use parking_lot::RwLock;
use strata_proto::v1::coordinator_client::CoordinatorClient;
use tonic::transport::Channel;

use self::control::Control;
pub use self::error::ClientError;
pub use self::location::{location_header, ClientOptions, DEFAULT_CONNECT_TIMEOUT, LABELS_ENV};
use self::routing::Routing;
use strata_proto::tls::ClientTls;
pub use strata_proto::tls::TlsFiles;
pub use strata_proto::v1;

/// A handle to a strata cluster. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    control: Control,
    /// TLS of every connection (`None`: plaintext).
    tls: Option<ClientTls>,
    /// Where this client runs, sent with every data-path call (`strata-client-labels`).
    labels: Option<HeaderValue>,
    routing: RwLock<Arc<Routing>>,
    /// Held by the one caller fetching the map; others wait and share its outcome.
    refresh: tokio::sync::Mutex<RefreshOutcome>,
    /// Map fetches finished, successful or not.
    refreshes: AtomicU64,
    /// The numbering of this client's pushes (exactly-once delivery).
    pushes: once::PushSequence,
}

/// How the last map fetch ended, for callers that waited on it.
#[derive(Default)]
struct RefreshOutcome {
    /// The coordinator's failure (address, code, message), if the fetch failed with one.
    failed: Option<(String, tonic::Code, String)>,
}

impl Client {
    /// Connects to the comma-separated coordinator `addresses`, finds the leader among
    /// them (following a standby's `strata-leader` hint) and fetches the cluster map.
    /// Addresses are checked first ([`address::validate_address`]); the connect fails after
    /// the options' connect timeout (3 s by default) with an error that says what was found
    /// at the address.
    /// Each `connect` opens its own connections. The client's location comes from the
    /// `STRATA_LABELS` environment variable when set ([`ClientOptions::from_env`]).
    pub async fn connect(addresses: &str) -> Result<Self, ClientError> {
        Self::connect_with(addresses, ClientOptions::from_env()).await
    }

    /// [`Client::connect`] with explicit options.
    pub async fn connect_with(
        addresses: &str,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let labels = match options.labels.as_deref() {
            Some(text) => location_header(text)?,
            None => None,
        };
        let candidates: Vec<String> = addresses
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        if candidates.is_empty() {
            return Err(ClientError::BadAddress {
                address: addresses.into(),
                reason: "empty".into(),
            });
        }
        for candidate in &candidates {
            address::validate_address(candidate)?;
        }
        strata_proto::tls::install_default_provider();
        let tls = ClientTls::load(&options.tls)?;
        let control = Control::new(candidates, options.connect_timeout, tls.clone())?;
        let map = admin::send_first(&control, v1::GetClusterMapRequest {}).await?;
        let routing = Routing::from_map(&map, None, tls.as_ref())?;
        Ok(Self {
            inner: Arc::new(Inner {
                control,
                tls,
                labels,
                routing: RwLock::new(Arc::new(routing)),
                refresh: tokio::sync::Mutex::new(RefreshOutcome::default()),
                refreshes: AtomicU64::new(0),
                pushes: once::PushSequence::new(),
            }),
        })
    }

    /// The gRPC client of the coordinator calls go to now, for control-plane calls.
    pub fn coordinator(&self) -> CoordinatorClient<Channel> {
        self.inner.control.client()
    }

    /// The address of the coordinator calls go to now (the leader, once found).
    pub fn coordinator_address(&self) -> String {
        self.inner.control.address()
    }

    /// The location this client sends with data-path calls (`key=value,...`, keys sorted).
    pub fn location(&self) -> Option<&str> {
        self.inner.labels.as_ref().and_then(|v| v.to_str().ok())
    }

    /// The id this client numbers its pushes under (exactly-once delivery).
    pub fn client_id(&self) -> &str {
        self.inner.pushes.client_id()
    }

    /// The numbering of this client's pushes.
    pub(crate) fn pushes(&self) -> &once::PushSequence {
        &self.inner.pushes
    }

    /// The location header of data-path calls.
    pub(crate) fn labels(&self) -> Option<&HeaderValue> {
        self.inner.labels.as_ref()
    }

    /// Epoch of the cluster map the client routes with.
    pub fn epoch(&self) -> u64 {
        self.inner.routing.read().epoch
    }

    /// The routing table of the current map.
    pub(crate) fn routing(&self) -> Arc<Routing> {
        self.inner.routing.read().clone()
    }

    /// Fetches the cluster map again (once, if several callers ask at the same time: they
    /// share its outcome, so a coordinator that cannot be reached is searched for once, not
    /// once per waiting caller).
    pub async fn refresh_map(&self) -> Result<(), ClientError> {
        let seen = self.epoch();
        let finished = self.inner.refreshes.load(Ordering::Acquire);
        let mut outcome = self.inner.refresh.lock().await;
        if self.epoch() != seen {
            return Ok(());
        }
        if self.inner.refreshes.load(Ordering::Acquire) != finished {
            if let Some((address, code, message)) = &outcome.failed {
                return Err(ClientError::Rpc {
                    rpc: "GetClusterMap",
                    node: "coordinator".into(),
                    address: address.clone(),
                    code: *code,
                    message: message.clone(),
                });
            }
        }
        let fetched = self.cluster_map().await;
        self.inner.refreshes.fetch_add(1, Ordering::Release);
        outcome.failed = match &fetched {
            Err(ClientError::Rpc {
                address,
                code,
                message,
                ..
            }) => Some((address.clone(), *code, message.clone())),
            _ => None,
        };
        let next = Routing::from_map(&fetched?, Some(&self.routing()), self.inner.tls.as_ref())?;
        *self.inner.routing.write() = Arc::new(next);
        Ok(())
    }
}
