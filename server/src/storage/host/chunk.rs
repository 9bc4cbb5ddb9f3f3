//! Zeroed row memory in 2 MiB chunks, mapped straight from the OS rather than the heap.
//!
//! Rows live as long as their table or until their slot range moves away; request buffers
//! live for one request. From the heap, row chunks were interleaved with request buffers,
//! so memory freed by a migration's erase or a dropped table stayed in the process (the
//! heap keeps holes). Anonymous mappings go back to the OS when a chunk is dropped (an
//! erase compacts a stripe and truncates its arena), are zero-filled lazily (a stripe with
//! a few rows holds a few pages), and consecutive ones are adjacent and merge into one
//! kernel mapping, so a large table does not use up the process's mapping count.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Bytes of one chunk.
pub const CHUNK_BYTES: usize = 2 << 20;

/// One chunk of zeroed `f32` words, [`CHUNK_BYTES`] long.
pub struct Chunk {
    words: NonNull<f32>,
}

// SAFETY: a chunk owns its memory exclusively; `&Chunk` only hands out shared slices.
unsafe impl Send for Chunk {}
// SAFETY: as above; mutation needs `&mut Chunk`.
unsafe impl Sync for Chunk {}

impl Chunk {
    /// Words in a chunk.
    pub const WORDS: usize = CHUNK_BYTES / 4;

    /// A zeroed chunk. Out of address space, it aborts like any failed allocation.
    pub fn zeroed() -> Self {
        Self { words: map() }
    }
}

impl Deref for Chunk {
    type Target = [f32];

    #[inline]
    fn deref(&self) -> &[f32] {
        // SAFETY: `words` points to `WORDS` initialised (zero-filled) f32s owned by `self`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr(), Self::WORDS) }
    }
}

impl DerefMut for Chunk {
    #[inline]
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_ptr(), Self::WORDS) }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        unmap(self.words);
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk").field("at", &self.words).finish()
    }
}

fn layout() -> std::alloc::Layout {
    std::alloc::Layout::from_size_align(CHUNK_BYTES, std::mem::align_of::<f32>())
        .unwrap_or_else(|_| unreachable!("a constant, valid layout"))
}

#[cfg(unix)]
fn map() -> NonNull<f32> {
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            CHUNK_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        std::alloc::handle_alloc_error(layout());
    }
    NonNull::new(raw.cast::<f32>()).unwrap_or_else(|| std::alloc::handle_alloc_error(layout()))
}

#[cfg(unix)]
fn unmap(words: NonNull<f32>) {
    // SAFETY: `words` starts a CHUNK_BYTES mapping made by `map`, unmapped once, when its
    // only owner drops.
    unsafe { libc::munmap(words.as_ptr().cast(), CHUNK_BYTES) };
}

#[cfg(not(unix))]
fn map() -> NonNull<f32> {
    // SAFETY: the layout has a non-zero size.
    let raw = unsafe { std::alloc::alloc_zeroed(layout()) };
    NonNull::new(raw.cast::<f32>()).unwrap_or_else(|| std::alloc::handle_alloc_error(layout()))
}

#[cfg(not(unix))]
fn unmap(words: NonNull<f32>) {
    // SAFETY: allocated by `map` with the same layout.
    unsafe { std::alloc::dealloc(words.as_ptr().cast(), layout()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_zeroed_writable_and_independent() {
        let mut a = Chunk::zeroed();
        let b = Chunk::zeroed();
        assert_eq!(a.len(), Chunk::WORDS);
        assert!(a.iter().all(|&w| w == 0.0));
        a[0] = 1.0;
        a[Chunk::WORDS - 1] = 7.0;
        assert_eq!((a[0], a[Chunk::WORDS - 1]), (1.0, 7.0));
        assert!(b.iter().all(|&w| w == 0.0));
    }
}
