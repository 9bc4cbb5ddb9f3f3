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

mod admin;
pub mod batch;
mod control;
mod data;
mod error;
mod fanout;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod numbers;
mod retry;
pub mod routing;
pub mod spec;

use std::sync::Arc;

use parking_lot::RwLock;
use strata_proto::v1::coordinator_client::CoordinatorClient;
use tonic::transport::Channel;

use self::control::Control;
pub use self::error::ClientError;
use self::routing::Routing;
pub use strata_proto::v1;

/// A handle to a strata cluster. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    control: Control,
    routing: RwLock<Arc<Routing>>,
    refresh: tokio::sync::Mutex<()>,
}

impl Client {
    /// Connects to the comma-separated coordinator `addresses`, finds the leader among
    /// them (following a standby's `strata-leader` hint) and fetches the cluster map.
    /// Each `connect` opens its own connections.
    pub async fn connect(addresses: &str) -> Result<Self, ClientError> {
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
        let control = Control::new(candidates)?;
        let map = admin::send(&control, v1::GetClusterMapRequest {}).await?;
        let routing = Routing::from_map(&map, None)?;
        Ok(Self {
            inner: Arc::new(Inner {
                control,
                routing: RwLock::new(Arc::new(routing)),
                refresh: tokio::sync::Mutex::new(()),
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

    /// Epoch of the cluster map the client routes with.
    pub fn epoch(&self) -> u64 {
        self.inner.routing.read().epoch
    }

    /// The routing table of the current map.
    pub(crate) fn routing(&self) -> Arc<Routing> {
        self.inner.routing.read().clone()
    }

    /// Fetches the cluster map again (once, if several callers ask at the same time).
    pub async fn refresh_map(&self) -> Result<(), ClientError> {
        let seen = self.epoch();
        let _one = self.inner.refresh.lock().await;
        if self.epoch() != seen {
            return Ok(());
        }
        let map = self.cluster_map().await?;
        let next = Routing::from_map(&map, Some(&self.routing()))?;
        *self.inner.routing.write() = Arc::new(next);
        Ok(())
    }
}
