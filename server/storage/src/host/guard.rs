//! The numerical guard of a push: a step that would leave a non-finite weight or optimizer
//! state refuses the whole push, and the rows the push had already stepped are put back.
//!
//! A push steps rows in place, one stripe at a time, saving each row's words before its
//! step in an [`UndoLog`]. When a step's result is not finite, the rows of the stripe still
//! held are restored at once; rows of stripes already released are restored after
//! re-locking them, but only where no other push has stepped the row since (its access
//! count is still the one this push wrote), so a concurrent acknowledged update is never
//! overwritten. Such rows are counted and named in the refusal.

use std::cell::RefCell;

use super::stripe::Stripe;
use crate::layout::{META_ACCESS, META_STEP, META_WORDS};
use crate::optimizer::OptimizerConfig;

/// Ids a refusal names at most.
pub(crate) const NAMED_IDS: usize = 16;

/// Floats an idle thread keeps in its undo buffer at most (64 MiB).
const KEPT_FLOATS: usize = 16 << 20;

thread_local! {
    /// Each thread's undo buffers, reused by its pushes (no allocation per push once warm).
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// The reusable storage of an [`UndoLog`].
#[derive(Default)]
struct Buffers {
    entries: Vec<Entry>,
    saved: Vec<f32>,
}

/// A row stepped by the push, with where its saved words are.
#[derive(Clone, Copy)]
struct Entry {
    stripe: u16,
    id: u64,
    idx: u32,
    /// The access count the step wrote; `None` when it had saturated (no change to detect).
    access_after: Option<u32>,
}

/// Whether every word of a row's weights and optimizer state is finite.
#[inline]
pub(crate) fn all_finite(words: &[f32]) -> bool {
    words.iter().fold(true, |ok, v| ok & v.is_finite())
}

/// Whether the step of `row` (weights, state, metadata) with `grad` would stay finite,
/// stepping a copy in `scratch` (weights and state) and leaving the row as it is. Kept out
/// of line, so the push loop has one call of the optimizer and it stays inlined there.
#[cold]
#[inline(never)]
pub(crate) fn step_copy_is_finite(
    optimizer: &OptimizerConfig,
    row: &[f32],
    dim: usize,
    scratch: &mut [f32],
    grad: &[f32],
) -> bool {
    let stepped = scratch.len();
    scratch.copy_from_slice(&row[..stepped]);
    let (values, state) = scratch.split_at_mut(dim);
    let mut step = row[stepped + META_STEP].to_bits();
    optimizer.apply(values, state, &mut step, grad);
    all_finite(scratch)
}

/// The ids whose step would not be finite, in the order found, and how many there were.
#[derive(Debug, Default)]
pub(crate) struct Offenders {
    /// The first [`NAMED_IDS`] of them.
    pub named: Vec<u64>,
    /// All of them.
    pub count: u64,
}

impl Offenders {
    /// Notes one more offending id.
    pub fn note(&mut self, id: u64) {
        if self.named.len() < NAMED_IDS {
            self.named.push(id);
        }
        self.count += 1;
    }

    /// Whether any step was refused.
    pub fn any(&self) -> bool {
        self.count > 0
    }
}

/// The rows one push has stepped, with their words before the step.
pub(crate) struct UndoLog {
    row_floats: usize,
    buffers: Buffers,
}

impl UndoLog {
    /// An empty log for rows of `row_floats` words, on this thread's reused buffers.
    pub fn checkout(row_floats: usize) -> Self {
        let mut buffers = BUFFERS.with(|b| std::mem::take(&mut *b.borrow_mut()));
        buffers.entries.clear();
        buffers.saved.clear();
        Self {
            row_floats,
            buffers,
        }
    }

    /// Saves row `idx` of stripe `stripe` (id `id`) before its step.
    #[inline]
    pub fn save(&mut self, stripe: usize, id: u64, idx: u32, row: &[f32]) {
        debug_assert_eq!(row.len(), self.row_floats);
        let access = row[self.row_floats - META_WORDS + META_ACCESS].to_bits();
        self.buffers.entries.push(Entry {
            stripe: stripe as u16,
            id,
            idx,
            access_after: access.checked_add(1),
        });
        self.buffers.saved.extend_from_slice(row);
    }

    /// Restores the rows of `stripe` saved since `mark` (its lock is held: nobody else has
    /// touched them) and forgets them.
    #[cold]
    #[inline(never)]
    pub fn undo_held(&mut self, mark: usize, stripe: &mut Stripe) {
        let rf = self.row_floats;
        for (k, e) in self.buffers.entries[mark..].iter().enumerate() {
            let words = &self.buffers.saved[(mark + k) * rf..(mark + k + 1) * rf];
            stripe.arena.row_mut(e.idx).copy_from_slice(words);
        }
        self.buffers.entries.truncate(mark);
        self.buffers.saved.truncate(mark * rf);
    }

    /// Rows saved so far (a mark for [`UndoLog::undo_held`]).
    pub fn len(&self) -> usize {
        self.buffers.entries.len()
    }

    /// Restores every saved row whose stripe `lock` gives, where no other push has stepped
    /// it since; returns the ids it could not restore (at most [`NAMED_IDS`]) and their count.
    pub fn undo_released<'a, G>(&self, mut lock: impl FnMut(usize) -> G) -> Offenders
    where
        G: std::ops::DerefMut<Target = Stripe> + 'a,
    {
        let rf = self.row_floats;
        let mut kept = Offenders::default();
        let entries = &self.buffers.entries;
        let mut start = 0;
        while start < entries.len() {
            let stripe_index = entries[start].stripe;
            let end = start
                + entries[start..]
                    .iter()
                    .take_while(|e| e.stripe == stripe_index)
                    .count();
            let mut stripe = lock(stripe_index as usize);
            for (k, e) in entries[start..end].iter().enumerate() {
                let at = start + k;
                let unchanged = stripe.find(e.id) == Some(e.idx)
                    && e.access_after.is_some_and(|after| {
                        let row = stripe.arena.row_mut(e.idx);
                        row[rf - META_WORDS + META_ACCESS].to_bits() == after
                    });
                if unchanged {
                    let words = &self.buffers.saved[at * rf..(at + 1) * rf];
                    stripe.arena.row_mut(e.idx).copy_from_slice(words);
                } else {
                    kept.note(e.id);
                }
            }
            start = end;
        }
        kept
    }
}

impl Drop for UndoLog {
    fn drop(&mut self) {
        let mut buffers = std::mem::take(&mut self.buffers);
        if buffers.saved.capacity() > KEPT_FLOATS {
            return;
        }
        buffers.entries.clear();
        buffers.saved.clear();
        // A thread being torn down has no buffers to return to.
        let _ = BUFFERS.try_with(|b| *b.borrow_mut() = buffers);
    }
}
