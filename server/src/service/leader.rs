//! Which coordinator serves: the leader answers, a standby refuses with the leader's
//! address in metadata `strata-leader` so callers can go there.

use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use tonic::metadata::MetadataValue;
use tonic::Status;

use strata_cluster::cluster::ClusterCoordinator;

pub use strata_proto::transport::LEADER_METADATA;

/// The coordinator once this process leads, and the leader's address while it does not.
#[derive(Default)]
pub struct LeaderSlot {
    coordinator: OnceLock<Arc<ClusterCoordinator>>,
    hint: RwLock<String>,
}

impl LeaderSlot {
    /// A standby slot: refuses until [`LeaderSlot::lead`] is called.
    pub fn standby() -> Self {
        Self::default()
    }

    /// A slot that leads at once (no election).
    pub fn leading(coordinator: Arc<ClusterCoordinator>) -> Self {
        let slot = Self::default();
        slot.lead(coordinator);
        slot
    }

    /// This process became the leader: serve with `coordinator`.
    pub fn lead(&self, coordinator: Arc<ClusterCoordinator>) {
        let _ = self.coordinator.set(coordinator);
    }

    /// Records the current leader's address (empty: none known).
    pub fn set_hint(&self, address: &str) {
        *self.hint.write() = address.to_string();
    }

    /// The coordinator if this process leads.
    pub fn current(&self) -> Option<&Arc<ClusterCoordinator>> {
        self.coordinator.get()
    }

    /// The coordinator if this process leads, else `UNAVAILABLE` naming the leader.
    pub fn get(&self) -> Result<&Arc<ClusterCoordinator>, Status> {
        if let Some(c) = self.coordinator.get() {
            return Ok(c);
        }
        let hint = self.hint.read().clone();
        let message = if hint.is_empty() {
            "this coordinator is a standby and no leader is elected yet; retry".to_string()
        } else {
            format!("this coordinator is a standby; the leader is {hint}")
        };
        Err(not_leader(message, &hint))
    }
}

/// `UNAVAILABLE` with `strata-leader: hint`: the request was not applied here.
pub fn not_leader(message: String, hint: &str) -> Status {
    let mut status = Status::unavailable(message);
    if let Ok(v) = MetadataValue::try_from(hint) {
        status.metadata_mut().insert(LEADER_METADATA, v);
    }
    status
}
