//! Which slots this node serves, and at which cluster-map epoch.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use super::EngineError;
use crate::slot::slot_of;

/// The slots this node owns; requests for other slots are refused with the current epoch.
pub struct Ownership {
    num_slots: u32,
    epoch: AtomicU64,
    owned: RwLock<Option<Vec<bool>>>,
}

impl Ownership {
    /// A node that owns every slot (the dev all-in-one), at epoch 1.
    pub fn all(num_slots: u32) -> Self {
        Self {
            num_slots,
            epoch: AtomicU64::new(1),
            owned: RwLock::new(None),
        }
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Sets the epoch and the owned slot ranges (`None`: all slots).
    pub fn update(&self, epoch: u64, ranges: Option<&[(u32, u32)]>) {
        let owned = ranges.map(|ranges| {
            let mut owned = vec![false; self.num_slots as usize];
            for &(start, end) in ranges {
                let end = end.min(self.num_slots);
                for o in &mut owned[start.min(end) as usize..end as usize] {
                    *o = true;
                }
            }
            owned
        });
        *self.owned.write() = owned;
        self.epoch.store(epoch, Ordering::Release);
    }

    /// Refuses a request that holds an id of a slot this node does not own.
    pub fn check(&self, request_epoch: u64, ids: &[u64]) -> Result<(), EngineError> {
        let owned = self.owned.read();
        let Some(owned) = owned.as_ref() else {
            return Ok(());
        };
        for &id in ids {
            let slot = slot_of(id, self.num_slots);
            if !owned[slot as usize] {
                return Err(EngineError::WrongOwner {
                    slot,
                    request_epoch,
                    current_epoch: self.epoch(),
                });
            }
        }
        Ok(())
    }
}
