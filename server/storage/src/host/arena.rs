//! Rows in fixed-size chunks of f32 words: no per-row allocation and no copy on growth.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::chunk::{Chunk, ChunkPool};

/// A growable array of fixed-width rows stored in 2 MiB [`Chunk`]s.
pub struct Arena {
    /// Where chunks come from and go back to (the node's row memory reserve).
    pool: Arc<dyn ChunkPool>,
    row_floats: usize,
    chunk_rows: usize,
    chunks: Vec<Chunk>,
    len: usize,
    /// Words of the last chunk whose pages are faulted in ([`Chunk::populate`]).
    populated: usize,
}

/// Cleared once the kernel refuses [`Chunk::populate`]: rows are then faulted in by writes.
/// Process-wide on purpose: it caches what the kernel supports, the same for every node of
/// the process, not a node's state or setting.
static POPULATE_WORKS: AtomicBool = AtomicBool::new(true);

impl Arena {
    /// An empty arena of rows `row_floats` words wide (1 to a chunk's words: table specs
    /// bound rows far below 2 MiB), its chunks from `pool`.
    pub fn new(row_floats: usize, pool: Arc<dyn ChunkPool>) -> Self {
        assert!(
            (1..=Chunk::WORDS).contains(&row_floats),
            "rows of {row_floats} words do not fit a chunk"
        );
        Self {
            pool,
            row_floats,
            chunk_rows: Chunk::WORDS / row_floats,
            chunks: Vec::new(),
            len: 0,
            populated: 0,
        }
    }

    /// Appends a zeroed row and returns its index.
    pub fn push_zeroed(&mut self) -> u32 {
        if self.len == self.chunks.len() * self.chunk_rows {
            // Zero-filled by the OS, a few pages at a time as rows are appended, unless the
            // row memory reserve had it faulted in already.
            let chunk = Chunk::zeroed(&self.pool);
            self.populated = if chunk.is_resident() { Chunk::WORDS } else { 0 };
            self.chunks.push(chunk);
        }
        let idx = self.len;
        self.len += 1;
        let end = (idx % self.chunk_rows + 1) * self.row_floats;
        if end > self.populated {
            self.populate_through(end);
        }
        idx as u32
    }

    /// Faults in the last chunk's pages up to word `end` and a little beyond, in one call.
    #[cold]
    fn populate_through(&mut self, end: usize) {
        const STEP_WORDS: usize = Chunk::POPULATE_BYTES / 4;
        let target = end.next_multiple_of(STEP_WORDS).min(Chunk::WORDS);
        let from = self.populated;
        if let Some(chunk) = self.chunks.last_mut() {
            if POPULATE_WORKS.load(Ordering::Relaxed) && !chunk.populate(from..target) {
                POPULATE_WORKS.store(false, Ordering::Relaxed);
            }
        }
        self.populated = target;
    }

    /// The row at `idx`.
    #[inline]
    pub fn row(&self, idx: u32) -> &[f32] {
        let (c, o) = self.locate(idx);
        &self.chunks[c][o..o + self.row_floats]
    }

    /// The row at `idx`, mutable.
    #[inline]
    pub fn row_mut(&mut self, idx: u32) -> &mut [f32] {
        let (c, o) = self.locate(idx);
        &mut self.chunks[c][o..o + self.row_floats]
    }

    /// Hints the CPU to fetch the first `floats` words of row `idx` into cache.
    #[inline]
    pub fn prefetch(&self, idx: u32, floats: usize) {
        let (c, o) = self.locate(idx);
        if let Some(chunk) = self.chunks.get(c) {
            prefetch_span(&chunk[o..o + floats.min(self.row_floats)]);
        }
    }

    /// Copies row `from` over row `to` (`to < from`), for compaction.
    pub fn move_row(&mut self, from: u32, to: u32) {
        debug_assert!(to < from);
        let rf = self.row_floats;
        let ((fc, fo), (tc, to)) = (self.locate(from), self.locate(to));
        if fc == tc {
            self.chunks[fc].copy_within(fo..fo + rf, to);
        } else {
            let (low, high) = self.chunks.split_at_mut(fc);
            low[tc][to..to + rf].copy_from_slice(&high[0][fo..fo + rf]);
        }
    }

    /// Keeps the first `len` rows and returns the chunks no longer needed, for the caller to
    /// drop outside its locks (a dropped chunk is unmapped, or zeroed into the row memory
    /// reserve). Whole freed pages of the last chunk kept go back to the OS and its other
    /// freed words are zeroed, so [`Arena::push_zeroed`] still hands out zeroed rows.
    #[must_use = "dropping the freed chunks here may unmap or zero megabytes under a lock"]
    pub fn truncate(&mut self, len: usize) -> Vec<Chunk> {
        if len >= self.len {
            return Vec::new();
        }
        let kept = len.div_ceil(self.chunk_rows);
        let freed = self.chunks.split_off(kept);
        if let Some(last) = self.chunks.last_mut() {
            let base = (kept - 1) * self.chunk_rows;
            let (used, end) = (len - base, (self.len - base).min(self.chunk_rows));
            last.zero_words(used * self.row_floats..end * self.row_floats);
            // Whole pages past the rows kept went back to the OS.
            self.populated = used * self.row_floats;
        }
        self.len = len;
        freed
    }

    /// All rows, in index order, as one contiguous copy.
    pub fn copy_all(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.len * self.row_floats);
        let mut left = self.len;
        for chunk in &self.chunks {
            let rows = left.min(self.chunk_rows);
            out.extend_from_slice(&chunk[..rows * self.row_floats]);
            left -= rows;
        }
        out
    }

    #[inline]
    fn locate(&self, idx: u32) -> (usize, usize) {
        let idx = idx as usize;
        (
            idx / self.chunk_rows,
            (idx % self.chunk_rows) * self.row_floats,
        )
    }
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("row_floats", &self.row_floats)
            .field("rows", &self.len)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

/// Prefetches every cache line a span touches (up to 16 lines).
#[inline]
fn prefetch_span(span: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // A span that starts inside a line ends one line further than its length says.
        let skew = span.as_ptr() as usize % 64;
        let lines = (skew + span.len() * 4).div_ceil(64).min(16);
        let first = span.as_ptr().cast::<i8>().wrapping_sub(skew);
        for line in 0..lines {
            // SAFETY: prefetch is a hint that never faults; the address is only computed.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(line * 64)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = span;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::RowMemory;

    fn arena(row_floats: usize) -> Arena {
        Arena::new(row_floats, RowMemory::default().pool())
    }

    #[test]
    fn rows_survive_growth_across_chunks() {
        let mut arena = arena(3);
        let chunk_rows = arena.chunk_rows;
        for i in 0..(chunk_rows * 2 + 5) {
            let idx = arena.push_zeroed();
            arena.row_mut(idx).fill(i as f32);
        }
        assert_eq!(arena.row_mut(0), &[0.0; 3]);
        assert_eq!(
            arena.row_mut((chunk_rows + 1) as u32),
            &[(chunk_rows + 1) as f32; 3]
        );
        let all = arena.copy_all();
        assert_eq!(all.len(), (chunk_rows * 2 + 5) * 3);
        assert_eq!(all[all.len() - 1], (chunk_rows * 2 + 4) as f32);
    }

    #[test]
    fn compaction_moves_rows_across_chunks_and_truncation_rezeroes() {
        let mut arena = arena(2);
        let chunk_rows = arena.chunk_rows;
        for i in 0..(chunk_rows * 2 + 3) {
            let idx = arena.push_zeroed();
            arena.row_mut(idx).fill(i as f32 + 1.0);
        }
        arena.move_row(chunk_rows as u32 + 7, 3);
        arena.move_row(10, 4);
        assert_eq!(arena.row(3), &[(chunk_rows + 8) as f32; 2]);
        assert_eq!(arena.row(4), &[11.0; 2]);
        drop(arena.truncate(5));
        assert_eq!(arena.len, 5);
        assert_eq!(arena.chunks.len(), 1);
        let idx = arena.push_zeroed();
        assert_eq!(idx, 5);
        assert_eq!(arena.row(idx), &[0.0; 2], "a reused slot is zeroed");
        drop(arena.truncate(0));
        assert!(arena.chunks.is_empty());
    }
}
