//! Zeroed row memory in 2 MiB chunks, mapped straight from the OS rather than the heap.
//!
//! Rows live as long as their table or until their slot range moves away; request buffers
//! live for one request. From the heap, row chunks were interleaved with request buffers,
//! so memory freed by a migration's erase or a dropped table stayed in the process (the
//! heap keeps holes). Anonymous mappings go back to the OS when a chunk is dropped (or into
//! the [`ChunkPool`] it came from, the node's row memory reserve, while it has room), and an erase that
//! truncates an arena hands the freed whole pages of its last chunk back too
//! ([`Chunk::zero_words`]). Fresh chunks are zero-filled lazily (a stripe with a few rows
//! holds a few pages) and opt out of transparent huge pages: with THP a first write faults
//! in 2 MiB (64 stripes would hold 128 MiB for a small table), and on the VMs we measure on
//! faulting huge pages on demand made imports 3-4× slower and W1's p99 3× worse. Chunks from
//! the reserve are resident whole and in huge pages where the kernel had them: they were
//! faulted in off the request path ([`super::mapping`]). Consecutive mappings are usually
//! adjacent and merged by the kernel into one (a W1 server with 2.5 M rows had 48).

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;

use super::mapping::{self, PageAdvice};

/// Bytes of one chunk.
pub const CHUNK_BYTES: usize = 2 << 20;

/// Words in a 4 KiB page: the unit pages are released and populated in.
#[cfg(any(target_os = "linux", target_os = "android"))]
const PAGE_WORDS: usize = 4096 / 4;

/// Where chunks come from ahead of need and go back to when freed (a node's row memory
/// reserve, [`super::reserve::ChunkReserve`]). Taking and returning happen once per 2 MiB.
pub trait ChunkPool: Send + Sync {
    /// A zeroed, faulted-in chunk mapping ([`CHUNK_BYTES`]), if the pool holds one.
    fn take(&self) -> Option<NonNull<f32>>;

    /// Keeps `words` (a chunk mapping its owner is done with), zeroed; false hands it back
    /// to the caller to unmap.
    fn offer(&self, words: NonNull<f32>) -> bool;
}

/// One chunk of zeroed `f32` words, [`CHUNK_BYTES`] long.
pub struct Chunk {
    words: NonNull<f32>,
    /// Every page is faulted in already (a chunk from the pool).
    resident: bool,
    /// Where the chunk goes back to when dropped.
    pool: Arc<dyn ChunkPool>,
}

// SAFETY: a chunk owns its memory exclusively; `&Chunk` only hands out shared slices.
unsafe impl Send for Chunk {}
// SAFETY: as above; mutation needs `&mut Chunk`.
unsafe impl Sync for Chunk {}

impl Chunk {
    /// Words in a chunk.
    pub const WORDS: usize = CHUNK_BYTES / 4;

    /// A zeroed chunk: from `pool` when it holds one (faulted in already), else fresh from
    /// the OS; it goes back to `pool` when dropped. Out of address space, it aborts like any
    /// failed allocation.
    pub fn zeroed(pool: &Arc<dyn ChunkPool>) -> Self {
        let (words, resident) = match pool.take() {
            Some(words) => (words, true),
            None => (map(), false),
        };
        Self {
            words,
            resident,
            pool: Arc::clone(pool),
        }
    }

    /// Whether every page is faulted in already, so [`Chunk::populate`] has nothing to do.
    pub fn is_resident(&self) -> bool {
        self.resident
    }

    /// Zeroes `words` (a range of this chunk's words), handing whole pages back to the OS.
    pub fn zero_words(&mut self, words: std::ops::Range<usize>) {
        let released = release_pages(self, words.clone());
        self.resident &= released.is_empty();
        self[words.start..released.start].fill(0.0);
        let rest = released.end.max(words.start);
        self[rest..words.end].fill(0.0);
    }

    /// Bytes faulted in at once by [`Chunk::populate`]: 16 pages per call instead of one
    /// page fault per page.
    pub const POPULATE_BYTES: usize = 64 << 10;

    /// Faults in the pages under `words` (a range of this chunk's words, widened to whole
    /// pages) with one call, ahead of writes to them. Each first write to a fresh page
    /// otherwise traps once; in one call the kernel fills them without the traps (about 2×
    /// cheaper on the VMs we measure on). Returns false where the kernel has no such call
    /// (before Linux 5.14), and the pages are then faulted in by the writes as before.
    pub fn populate(&mut self, words: std::ops::Range<usize>) -> bool {
        populate_pages(self.words, words)
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
        // Back into the pool while it has room (zeroed there), else back to the OS.
        if !self.pool.offer(self.words) {
            unmap(self.words);
        }
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk").field("at", &self.words).finish()
    }
}

/// A fresh, zero-filled chunk mapping in 4 KiB pages (pages faulted in on first write).
pub(super) fn map() -> NonNull<f32> {
    map_advised(PageAdvice::Small)
}

/// A fresh, zero-filled chunk mapping with the page size `advice` asks for.
pub(super) fn map_advised(advice: PageAdvice) -> NonNull<f32> {
    mapping::map_zeroed(CHUNK_BYTES, advice).cast()
}

/// Returns a chunk mapping made by [`map`] or [`map_advised`] to the OS.
pub(super) fn unmap(words: NonNull<f32>) {
    mapping::unmap(words.cast(), CHUNK_BYTES);
}

/// Gives the whole 4 KiB pages inside `words` (a range of the chunk's words) back to the OS;
/// they read as zeros afterwards. Returns the words released (an empty range at
/// `words.start` when none: the caller zero-fills the rest).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn release_pages(chunk: &mut Chunk, words: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let first = words.start.next_multiple_of(PAGE_WORDS).min(words.end);
    let last = words.end - words.end % PAGE_WORDS;
    if last <= first {
        return words.start..words.start;
    }
    // SAFETY: [first, last) lies inside the chunk's mapping, page-aligned (mappings are);
    // `&mut Chunk` guarantees no reference into it is alive. MADV_DONTNEED on a private
    // anonymous mapping makes the pages read as zeros on the next access.
    let done = unsafe {
        libc::madvise(
            chunk.words.as_ptr().add(first).cast(),
            (last - first) * 4,
            libc::MADV_DONTNEED,
        )
    } == 0;
    if done {
        first..last
    } else {
        words.start..words.start
    }
}

/// Faults in the pages under `words` (a range of the words of `mapping`, a chunk mapping
/// made by [`map`]): see [`Chunk::populate`].
#[cfg(any(target_os = "linux", target_os = "android"))]
fn populate_pages(mapping: NonNull<f32>, words: std::ops::Range<usize>) -> bool {
    let first = words.start - words.start % PAGE_WORDS;
    let last = words.end.next_multiple_of(PAGE_WORDS).min(Chunk::WORDS);
    if last <= first {
        return true;
    }
    // SAFETY: [first, last) lies inside the chunk's mapping, page-aligned. Populating only
    // faults pages in (as a write would, keeping their contents); no memory is changed.
    unsafe {
        libc::madvise(
            mapping.as_ptr().add(first).cast(),
            (last - first) * 4,
            libc::MADV_POPULATE_WRITE,
        ) == 0
    }
}

/// Faults in every page of a fresh mapping made by [`map`] (its contents stay zero): in one
/// call where the kernel has one, else by writing a zero to each page.
pub(super) fn fault_in_mapping(words: NonNull<f32>) {
    // SAFETY: a fresh (zeroed) CHUNK_BYTES mapping the caller owns exclusively.
    unsafe { super::mapping::fault_in_zeroed(words.cast(), CHUNK_BYTES) };
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn populate_pages(_mapping: NonNull<f32>, _words: std::ops::Range<usize>) -> bool {
    false
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn release_pages(_chunk: &mut Chunk, words: std::ops::Range<usize>) -> std::ops::Range<usize> {
    words.start..words.start
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool that holds nothing: chunks come fresh from the OS and go back to it.
    struct NoPool;

    impl ChunkPool for NoPool {
        fn take(&self) -> Option<NonNull<f32>> {
            None
        }

        fn offer(&self, _words: NonNull<f32>) -> bool {
            false
        }
    }

    fn zeroed() -> Chunk {
        let pool: Arc<dyn ChunkPool> = Arc::new(NoPool);
        Chunk::zeroed(&pool)
    }

    #[test]
    fn chunks_are_zeroed_writable_and_independent() {
        let mut a = zeroed();
        let b = zeroed();
        assert_eq!(a.len(), Chunk::WORDS);
        assert!(a.iter().all(|&w| w == 0.0));
        a[0] = 1.0;
        a[Chunk::WORDS - 1] = 7.0;
        assert_eq!((a[0], a[Chunk::WORDS - 1]), (1.0, 7.0));
        assert!(b.iter().all(|&w| w == 0.0));
    }

    #[test]
    fn zeroing_a_range_keeps_the_words_around_it() {
        let mut chunk = zeroed();
        chunk.fill(3.0);
        // Starts and ends inside pages, spans several whole pages.
        let range = 1000..(1024 * 7 + 5);
        chunk.zero_words(range.clone());
        assert!(chunk[..range.start].iter().all(|&w| w == 3.0));
        assert!(chunk[range.clone()].iter().all(|&w| w == 0.0));
        assert!(chunk[range.end..].iter().all(|&w| w == 3.0));
        // Within one page, and empty.
        chunk.zero_words(10..20);
        chunk.zero_words(30..30);
        assert!(chunk[10..20].iter().all(|&w| w == 0.0));
        assert_eq!((chunk[9], chunk[20], chunk[30]), (3.0, 3.0, 3.0));
        // Up to the chunk's end.
        chunk.zero_words(Chunk::WORDS - 5000..Chunk::WORDS);
        assert!(chunk[Chunk::WORDS - 5000..].iter().all(|&w| w == 0.0));
        assert_eq!(chunk[Chunk::WORDS - 5001], 3.0);
    }

    #[test]
    fn populating_keeps_contents_and_zeroes() {
        let mut chunk = zeroed();
        chunk[5000] = 2.0;
        // Unaligned ends, a range inside one page, an empty range, the chunk's tail.
        let supported = chunk.populate(4000..(1024 * 20 + 3));
        chunk.populate(10..20);
        chunk.populate(7..7);
        chunk.populate(Chunk::WORDS - 10..Chunk::WORDS);
        assert_eq!(chunk[5000], 2.0);
        assert_eq!(chunk.iter().filter(|&&w| w != 0.0).count(), 1);
        chunk[1024 * 20] = 1.0;
        assert_eq!(chunk[1024 * 20], 1.0);
        if !supported {
            eprintln!("MADV_POPULATE_WRITE refused (a kernel before 5.14?): writes fault pages in");
        }
    }
}
