//! Which slots this node serves, at which cluster-map epoch, and which of them are being
//! migrated away (their updates captured, or fenced during a hand-off).
//!
//! Every request holds an [`Admission`] (a shared lock) while it reads or writes rows, so
//! fencing a slot range (the exclusive lock) waits for the requests already admitted and
//! refuses every later one: after [`Ownership::fence`] returns no row of the range changes.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use super::EngineError;
use strata_storage::slot::slot_of;

/// Slot flag: the map gives this slot to the node.
const SERVED: u8 = 1;
/// Slot flag: a hand-off is under way; requests are refused.
const FENCED: u8 = 2;
/// Slot flag: updates are recorded for a migration.
const CAPTURED: u8 = 4;

/// Ids updated in a slot range since its migration started, per table.
pub struct Capture {
    id: String,
    range: (u32, u32),
    num_slots: u32,
    updated: Mutex<HashMap<String, IdSet>>,
    ended: AtomicBool,
}

/// Distinct ids (a push of a hot id during a long copy is kept once, not once per push).
pub type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

/// A hasher for ids: one multiply-xorshift (ids are spread already; SipHash is not needed
/// for a set the network cannot grow beyond the rows of a range).
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let h = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^ (h >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

impl Capture {
    /// Distinct ids recorded and not taken yet.
    pub fn pending(&self) -> usize {
        self.updated.lock().values().map(IdSet::len).sum()
    }

    /// Whether the migration was ended here (committed away or rolled back).
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// The migration's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The half-open slot range captured.
    pub fn range(&self) -> (u32, u32) {
        self.range
    }

    /// Takes the ids recorded so far (table → distinct ids), leaving none.
    pub fn take(&self) -> HashMap<String, IdSet> {
        std::mem::take(&mut *self.updated.lock())
    }

    /// Records the ids of `ids` whose slot lies in the range.
    fn record(&self, table: &str, ids: &[u64]) {
        let (start, end) = self.range;
        let mut updated = self.updated.lock();
        let list = match updated.get_mut(table) {
            Some(list) => list,
            None => updated.entry(table.to_string()).or_default(),
        };
        list.extend(ids.iter().copied().filter(|&id| {
            let slot = slot_of(id, self.num_slots);
            slot >= start && slot < end
        }));
    }
}

struct SlotTable {
    /// False on the dev all-in-one node: every slot served, no migrations.
    restricted: bool,
    flags: Vec<u8>,
    captures: Vec<Arc<Capture>>,
}

/// The slots this node serves; requests for other slots are refused with the current epoch.
pub struct Ownership {
    num_slots: u32,
    epoch: AtomicU64,
    slots: RwLock<SlotTable>,
}

/// A request admitted by [`Ownership::admit`]: holds fences off until it is dropped.
pub struct Admission<'a> {
    table: Option<RwLockReadGuard<'a, SlotTable>>,
    captured: bool,
}

impl Admission<'_> {
    /// Records a push's ids for the migrations capturing their slots (after applying it).
    pub fn record_push(&self, table: &str, ids: &[u64]) {
        if !self.captured {
            return;
        }
        if let Some(t) = &self.table {
            for capture in &t.captures {
                capture.record(table, ids);
            }
        }
    }
}

/// Why a slot range cannot start migrating out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnershipError {
    /// The node does not serve every slot of the range.
    #[error("this node does not serve every slot of {start}..{end}")]
    NotServed {
        /// First slot.
        start: u32,
        /// One past the last slot.
        end: u32,
    },
    /// Another migration already captures a slot of the range.
    #[error("slots {start}..{end} overlap migration {other}")]
    Busy {
        /// First slot.
        start: u32,
        /// One past the last slot.
        end: u32,
        /// The other migration.
        other: String,
    },
    /// No migration by that id on this node.
    #[error("no migration {id} on this node")]
    Unknown {
        /// The migration id.
        id: String,
    },
}

impl Ownership {
    /// A node that owns every slot (the dev all-in-one), at epoch 1.
    pub fn all(num_slots: u32) -> Self {
        Self {
            num_slots,
            epoch: AtomicU64::new(1),
            slots: RwLock::new(SlotTable {
                restricted: false,
                flags: vec![SERVED; num_slots as usize],
                captures: Vec::new(),
            }),
        }
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Slots of the cluster.
    pub fn num_slots(&self) -> u32 {
        self.num_slots
    }

    /// Sets the epoch and the served slot ranges (`None`: all slots); fences and captures
    /// stay as they are.
    pub fn update(&self, epoch: u64, ranges: Option<&[(u32, u32)]>) {
        let mut t = self.slots.write();
        self.set(&mut t, epoch, ranges);
    }

    /// Like [`Ownership::update`], but only from a map at least as new as the current one
    /// (checked under the lock, so concurrent maps never roll the node back). Returns
    /// whether it was applied.
    pub fn update_if_newer(&self, epoch: u64, ranges: &[(u32, u32)]) -> bool {
        let mut t = self.slots.write();
        if epoch < self.epoch() {
            return false;
        }
        self.set(&mut t, epoch, Some(ranges));
        true
    }

    fn set(&self, t: &mut SlotTable, epoch: u64, ranges: Option<&[(u32, u32)]>) {
        t.restricted = ranges.is_some();
        for f in t.flags.iter_mut() {
            *f = (*f & !SERVED) | if ranges.is_none() { SERVED } else { 0 };
        }
        for &(start, end) in ranges.unwrap_or(&[]) {
            let (start, end) = self.clamp(start, end);
            for f in &mut t.flags[start..end] {
                *f |= SERVED;
            }
        }
        self.epoch.store(epoch, Ordering::Release);
    }

    /// A slot range as indices into the flags, clipped to the cluster's slots.
    fn clamp(&self, start: u32, end: u32) -> (usize, usize) {
        let end = end.min(self.num_slots) as usize;
        ((start as usize).min(end), end)
    }

    /// Admits a request whose ids all lie in served, unfenced slots; refuses it otherwise.
    pub fn admit(&self, request_epoch: u64, ids: &[u64]) -> Result<Admission<'_>, EngineError> {
        let t = self.slots.read();
        if !t.restricted {
            return Ok(Admission {
                table: None,
                captured: false,
            });
        }
        let mut captured = false;
        for &id in ids {
            let slot = slot_of(id, self.num_slots);
            let f = t.flags[slot as usize];
            if f & (SERVED | FENCED) != SERVED {
                return Err(EngineError::WrongOwner {
                    slot,
                    request_epoch,
                    current_epoch: self.epoch(),
                });
            }
            captured |= f & CAPTURED != 0;
        }
        Ok(Admission {
            table: Some(t),
            captured,
        })
    }

    /// Whether every slot of `start..end` is served (and not fenced).
    pub fn serves_all(&self, start: u32, end: u32) -> bool {
        let t = self.slots.read();
        let (start, end) = self.clamp(start, end);
        t.flags[start..end]
            .iter()
            .all(|&f| f & (SERVED | FENCED) == SERVED)
    }

    /// Whether any slot of `start..end` is served.
    pub fn serves_any(&self, start: u32, end: u32) -> bool {
        let t = self.slots.read();
        let (start, end) = self.clamp(start, end);
        t.flags[start..end].iter().any(|&f| f & SERVED != 0)
    }

    /// Starts recording the updates of `start..end` for migration `id`.
    pub fn start_capture(
        &self,
        id: &str,
        start: u32,
        end: u32,
    ) -> Result<Arc<Capture>, OwnershipError> {
        let mut t = self.slots.write();
        if start >= end || end > self.num_slots {
            return Err(OwnershipError::NotServed { start, end });
        }
        let range = start as usize..end as usize;
        if !t.flags[range.clone()].iter().all(|&f| f & SERVED != 0) {
            return Err(OwnershipError::NotServed { start, end });
        }
        if let Some(other) = t
            .captures
            .iter()
            .find(|c| c.range.0 < end && start < c.range.1)
        {
            return Err(OwnershipError::Busy {
                start,
                end,
                other: other.id.clone(),
            });
        }
        let capture = Arc::new(Capture {
            id: id.to_string(),
            range: (start, end),
            num_slots: self.num_slots,
            updated: Mutex::new(HashMap::new()),
            ended: AtomicBool::new(false),
        });
        for f in &mut t.flags[range] {
            *f |= CAPTURED;
        }
        t.captures.push(capture.clone());
        Ok(capture)
    }

    /// Fences migration `id`'s range: waits for admitted requests, refuses later ones.
    pub fn fence(&self, id: &str) -> Result<(), OwnershipError> {
        let mut t = self.slots.write();
        let (start, end) = find(&t, id)?.range;
        for f in &mut t.flags[start as usize..end as usize] {
            *f |= FENCED;
        }
        Ok(())
    }

    /// Ends migration `id` here: its range is unfenced and no longer captured. Returns the
    /// range, or `None` when no such migration is registered.
    pub fn end_capture(&self, id: &str) -> Option<(u32, u32)> {
        let mut t = self.slots.write();
        let pos = t.captures.iter().position(|c| c.id == id)?;
        let capture = t.captures.remove(pos);
        capture.ended.store(true, Ordering::Release);
        let (start, end) = capture.range;
        for f in &mut t.flags[start as usize..end as usize] {
            *f &= !(FENCED | CAPTURED);
        }
        Some(capture.range)
    }

    /// Migrations whose whole range the map no longer gives this node (handed off).
    pub fn captures_moved_away(&self) -> Vec<String> {
        let t = self.slots.read();
        t.captures
            .iter()
            .filter(|c| {
                t.flags[c.range.0 as usize..c.range.1 as usize]
                    .iter()
                    .all(|&f| f & SERVED == 0)
            })
            .map(|c| c.id.clone())
            .collect()
    }

    /// Ids of the migrations capturing (or fenced) here.
    pub fn capture_ids(&self) -> Vec<String> {
        self.slots
            .read()
            .captures
            .iter()
            .map(|c| c.id.clone())
            .collect()
    }

    /// Slot ranges of the migrations capturing (or fenced) here.
    pub fn capture_ranges(&self) -> Vec<(u32, u32)> {
        self.slots.read().captures.iter().map(|c| c.range).collect()
    }

    /// The served slot ranges, merged and in slot order (empty on the dev node: all).
    pub fn served_ranges(&self) -> Vec<(u32, u32)> {
        let t = self.slots.read();
        let mut out: Vec<(u32, u32)> = Vec::new();
        for (slot, &f) in t.flags.iter().enumerate() {
            if f & SERVED == 0 {
                continue;
            }
            let slot = slot as u32;
            match out.last_mut() {
                Some(last) if last.1 == slot => last.1 = slot + 1,
                _ => out.push((slot, slot + 1)),
            }
        }
        out
    }
}

fn find<'a>(t: &'a SlotTable, id: &str) -> Result<&'a Arc<Capture>, OwnershipError> {
    t.captures
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(|| OwnershipError::Unknown { id: id.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_in_slot(slot: u32, num_slots: u32) -> u64 {
        (0u64..)
            .find(|&id| slot_of(id, num_slots) == slot)
            .unwrap_or(0)
    }

    #[test]
    fn unserved_and_fenced_slots_are_refused_with_the_epoch() {
        let o = Ownership::all(16);
        o.update(7, Some(&[(0, 8)]));
        let inside = id_in_slot(3, 16);
        let outside = id_in_slot(9, 16);
        assert!(o.admit(7, &[inside]).is_ok());
        assert!(matches!(
            o.admit(6, &[inside, outside]),
            Err(EngineError::WrongOwner {
                slot: 9,
                current_epoch: 7,
                ..
            })
        ));
        o.start_capture("m", 2, 5).expect("capture");
        assert!(o.admit(7, &[inside]).is_ok(), "capture does not refuse");
        o.fence("m").expect("fence");
        assert!(o.admit(7, &[inside]).is_err(), "fenced");
        assert_eq!(o.end_capture("m"), Some((2, 5)));
        assert!(o.admit(7, &[inside]).is_ok(), "unfenced");
    }

    #[test]
    fn pushes_in_captured_slots_are_recorded_per_table() {
        let o = Ownership::all(16);
        o.update(2, Some(&[(0, 16)]));
        let c = o.start_capture("m", 0, 4).expect("capture");
        let a = id_in_slot(1, 16);
        let b = id_in_slot(10, 16);
        o.admit(2, &[a, b])
            .expect("admit")
            .record_push("t", &[a, b]);
        assert_eq!(c.take().get("t").map(|s| s.len()), Some(1));
        assert!(c.take().is_empty());
        assert!(matches!(
            o.start_capture("n", 3, 6),
            Err(OwnershipError::Busy { .. })
        ));
        assert!(matches!(
            o.start_capture("n", 0, 20),
            Err(OwnershipError::NotServed { .. }) | Err(OwnershipError::Busy { .. })
        ));
    }

    #[test]
    fn a_capture_whose_range_moved_away_is_reported() {
        let o = Ownership::all(16);
        o.update(2, Some(&[(0, 16)]));
        o.start_capture("m", 4, 8).expect("capture");
        assert!(o.captures_moved_away().is_empty());
        o.update(3, Some(&[(0, 4), (8, 16)]));
        assert_eq!(o.captures_moved_away(), vec!["m".to_string()]);
        assert_eq!(o.served_ranges(), vec![(0, 4), (8, 16)]);
    }
}
