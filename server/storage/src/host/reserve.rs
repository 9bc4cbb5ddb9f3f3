//! A reserve of row memory faulted in ahead of need, refilled in the background as new rows
//! take it and from freed chunks.
//!
//! A fresh page costs a page fault and a zero-fill in the kernel. On virtual machines whose
//! host backs guest memory lazily, or takes freed guest memory back, it also costs a fault in
//! the hypervisor: on the VMs we measure on, fresh memory arrives at ~0.4 GB/s once the
//! guest's recently used pages run out, against ~3 GB/s for recycled ones, and a shard that
//! moves to a node is written no faster than that. A node that joins to receive shards needs
//! hundreds of MiB at once; with `--memory-reserve` it faults them in while it waits (as a
//! JVM's `AlwaysPreTouch` does), and chunks freed later by erases and dropped tables go back
//! into the reserve, up to its size, instead of back to the OS. A background thread
//! ([`ChunkReserve::keep_filled`]) replaces each chunk new rows take, so a growing table finds
//! its chunks faulted in (in huge pages where advised) and pays neither the page faults nor,
//! afterwards, a TLB miss per 4 KiB on its request path. After its first fill that thread
//! runs under `SCHED_IDLE`: refills use only idle cores, so a shard moving in (a burst of
//! takes) does not compete with its own replacement chunks for the CPU.
//! The reserve holds whole zeroed [`CHUNK_BYTES`] chunks; taking and returning one is a lock
//! per 2 MiB, never per row. Each stripe of a table that holds a row takes a whole chunk, so
//! even a small table takes up to 64 chunks (128 MiB) of the reserve: size it for the tables
//! and moves it should serve at once.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::chunk::{fault_in_mapping, map_advised, unmap, ChunkPool, CHUNK_BYTES};
use super::mapping::PageAdvice;
use super::worker::{join_within, JOIN_BOUND};

/// The reserve a node keeps unless told otherwise (`--memory-reserve`): enough for the
/// first chunk of every stripe of two tables, or ~1.5 s of W1's row growth at 1,500 steps/s
/// (~170 MiB/s of new rows) while the refill thread catches up.
pub const DEFAULT_MEMORY_RESERVE_BYTES: u64 = 256 << 20;

/// A mapping of [`CHUNK_BYTES`] owned by the reserve.
struct Mapping(NonNull<f32>);

// SAFETY: the reserve owns each mapping exclusively until it hands it out.
unsafe impl Send for Mapping {}

/// Zeroed, faulted-in chunk mappings kept for reuse, up to a capacity: one node's reserve
/// (its [`super::RowMemory`] owns it and the thread that refills it).
pub struct ChunkReserve {
    free: Mutex<Vec<Mapping>>,
    /// Chunks kept at most.
    capacity: AtomicUsize,
    /// The page size the reserve's own chunks are faulted in with.
    advice: PageAdvice,
    /// Signalled when a take leaves the reserve below its capacity, and on stop.
    drained: Condvar,
    /// Whether a [`ChunkReserve::keep_filled`] thread listens to `drained`.
    refilled: AtomicBool,
    /// Set (under the `free` lock) when the refill thread is to stop.
    stopping: AtomicBool,
    /// Chunks handed out.
    taken: AtomicU64,
    /// Chunks asked for while the reserve, given a capacity, was empty.
    missed: AtomicU64,
}

impl ChunkReserve {
    /// An empty reserve that keeps nothing until given a capacity; its chunks are faulted
    /// in huge pages when `huge_pages` is set ([`super::mapping`]).
    pub fn new(huge_pages: bool) -> Self {
        Self {
            free: Mutex::new(Vec::new()),
            capacity: AtomicUsize::new(0),
            advice: if huge_pages {
                PageAdvice::Huge
            } else {
                PageAdvice::Small
            },
            drained: Condvar::new(),
            refilled: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            taken: AtomicU64::new(0),
            missed: AtomicU64::new(0),
        }
    }

    /// Chunks handed out since start.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Chunks asked for since start while the reserve (with a capacity) was empty: each was
    /// mapped on demand, its pages faulted on a request's path.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    /// Chunks held now.
    pub fn chunks(&self) -> usize {
        self.free.lock().len()
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        (self.chunks() * CHUNK_BYTES) as u64
    }

    /// Chunks kept at most.
    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Keeps up to `bytes` (rounded up to whole chunks); chunks held beyond it are unmapped.
    pub fn set_capacity_bytes(&self, bytes: u64) {
        let chunks = usize::try_from(bytes.div_ceil(CHUNK_BYTES as u64)).unwrap_or(usize::MAX);
        self.capacity.store(chunks, Ordering::Relaxed);
        let surplus: Vec<Mapping> = {
            let mut free = self.free.lock();
            let keep = free.len().min(chunks);
            free.drain(keep..).collect()
        };
        for m in surplus {
            unmap(m.0);
        }
        self.drained.notify_one();
    }

    /// A zeroed, faulted-in chunk mapping, if the reserve holds one.
    fn take_chunk(&self) -> Option<NonNull<f32>> {
        let (taken, left) = {
            let mut free = self.free.lock();
            (free.pop(), free.len())
        };
        match taken {
            Some(_) => self.taken.fetch_add(1, Ordering::Relaxed),
            None if self.capacity() > 0 => self.missed.fetch_add(1, Ordering::Relaxed),
            None => 0,
        };
        if left < self.capacity() && self.refilled.load(Ordering::Relaxed) {
            self.drained.notify_one();
        }
        taken.map(|m| m.0)
    }

    /// Keeps `words` (a chunk mapping whose owner is done with it), zeroed, if the reserve
    /// has room; false hands it back to the caller to unmap.
    fn offer_chunk(&self, words: NonNull<f32>) -> bool {
        if self.free.lock().len() >= self.capacity() {
            return false;
        }
        // SAFETY: `words` starts a CHUNK_BYTES mapping that the caller owns and no longer uses.
        unsafe { std::ptr::write_bytes(words.as_ptr().cast::<u8>(), 0, CHUNK_BYTES) };
        self.push(words)
    }

    /// Adds a zeroed mapping if there is room; false hands it back to the caller.
    fn push(&self, words: NonNull<f32>) -> bool {
        let mut free = self.free.lock();
        if free.len() >= self.capacity() {
            return false;
        }
        free.push(Mapping(words));
        true
    }

    /// Maps and faults in the chunks the reserve lacks now, in huge pages where advised
    /// ([`super::mapping`]); returns the chunks added. Chunks taken while it runs are not
    /// replaced (the next refill replaces them).
    pub fn fill(&self) -> usize {
        self.fill_unless_stopped(&AtomicBool::new(false))
    }

    /// [`ChunkReserve::fill`] that ends early, after the chunk being faulted in, once
    /// `stop` is set.
    fn fill_unless_stopped(&self, stop: &AtomicBool) -> usize {
        let missing = self.capacity().saturating_sub(self.chunks());
        let mut added = 0;
        while added < missing && !stop.load(Ordering::Relaxed) && self.add_one() {
            added += 1;
        }
        added
    }

    /// Maps and faults in one chunk and keeps it; false (the chunk unmapped) when the
    /// reserve filled up meanwhile.
    fn add_one(&self) -> bool {
        // Faulted in here, off any request's path: the place for huge pages.
        let words = map_advised(self.advice);
        fault_in_mapping(words);
        let kept = self.push(words);
        if !kept {
            unmap(words);
        }
        kept
    }

    /// Waits until the reserve is below its capacity (true) or told to stop (false).
    fn wait_for_room(&self) -> bool {
        let mut free = self.free.lock();
        loop {
            if self.stopping.load(Ordering::Relaxed) {
                return false;
            }
            if free.len() < self.capacity() {
                return true;
            }
            self.drained.wait(&mut free);
        }
    }

    /// Tells the refill thread to stop (it finishes the chunk it is faulting in).
    fn stop(&self) {
        {
            // Under the lock: the thread either sees the flag or is already waiting.
            let _free = self.free.lock();
            self.stopping.store(true, Ordering::Relaxed);
            self.refilled.store(false, Ordering::Relaxed);
        }
        self.drained.notify_all();
    }
}

impl ChunkPool for ChunkReserve {
    fn take(&self) -> Option<NonNull<f32>> {
        self.take_chunk()
    }

    fn offer(&self, words: NonNull<f32>) -> bool {
        self.offer_chunk(words)
    }
}

/// The thread that keeps a reserve filled; dropping it stops the thread and joins it
/// (within a bound: it finishes the chunk it is faulting in).
#[derive(Debug)]
pub struct Refiller {
    reserve: Arc<ChunkReserve>,
    thread: Option<JoinHandle<()>>,
}

impl ChunkReserve {
    /// Fills the reserve on a background thread, then keeps it topped up: whenever takes
    /// leave it below its capacity, the thread faults in what it lacks, a chunk at a time.
    /// `ready` is called once, after the first fill, with the chunks it added and how long
    /// that took. The thread runs until the returned [`Refiller`] drops, asleep while the
    /// reserve is full.
    pub fn keep_filled(
        self: &Arc<Self>,
        ready: impl FnOnce(usize, std::time::Duration) + Send + 'static,
    ) -> std::io::Result<Refiller> {
        self.stopping.store(false, Ordering::Relaxed);
        self.refilled.store(true, Ordering::Relaxed);
        let reserve = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("strata-reserve".into())
            .spawn(move || {
                let start = Instant::now();
                ready(
                    reserve.fill_unless_stopped(&reserve.stopping),
                    start.elapsed(),
                );
                // Refills are background work: they take only CPU nobody else wants, so a
                // burst of takes (a shard moving in) is not slowed by its own replacements.
                crate::thread_priority::run_only_when_idle();
                // One chunk per wake-up: the faulting runs in short slices beside the
                // request threads rather than in one long burst.
                while reserve.wait_for_room() {
                    reserve.add_one();
                }
            });
        match spawned {
            Ok(thread) => Ok(Refiller {
                reserve: Arc::clone(self),
                thread: Some(thread),
            }),
            Err(e) => {
                self.refilled.store(false, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

impl Drop for Refiller {
    fn drop(&mut self) {
        self.reserve.stop();
        if let Some(thread) = self.thread.take() {
            join_within(thread, JOIN_BOUND);
        }
    }
}

impl std::fmt::Debug for ChunkReserve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkReserve")
            .field("chunks", &self.chunks())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl Drop for ChunkReserve {
    fn drop(&mut self) {
        for m in self.free.get_mut().drain(..) {
            unmap(m.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_of(p: NonNull<f32>) -> &'static mut [f32] {
        // SAFETY: test-only view of a CHUNK_BYTES mapping the test owns exclusively.
        unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), CHUNK_BYTES / 4) }
    }

    #[test]
    fn a_reserve_fills_to_its_capacity_and_hands_out_zeroed_chunks() {
        let reserve = ChunkReserve::new(true);
        assert_eq!(reserve.fill(), 0, "no capacity, nothing kept");
        reserve.set_capacity_bytes(CHUNK_BYTES as u64 * 2 + 1);
        assert_eq!(reserve.capacity(), 3, "rounded up to whole chunks");
        assert_eq!(reserve.fill(), 3);
        assert_eq!(reserve.bytes(), 3 * CHUNK_BYTES as u64);
        let a = reserve.take().expect("a chunk");
        assert!(words_of(a).iter().all(|&w| w == 0.0));
        assert_eq!(reserve.chunks(), 2);
        super::super::chunk::unmap(a);
    }

    #[test]
    fn returned_chunks_are_zeroed_and_kept_only_while_there_is_room() {
        let reserve = ChunkReserve::new(true);
        reserve.set_capacity_bytes(CHUNK_BYTES as u64);
        let (a, b) = (super::super::chunk::map(), super::super::chunk::map());
        words_of(a).fill(7.0);
        words_of(b).fill(5.0);
        assert!(reserve.offer(a), "room for one");
        assert!(!reserve.offer(b), "full: the caller unmaps it");
        super::super::chunk::unmap(b);
        let again = reserve.take().expect("the returned chunk");
        assert_eq!(again, a);
        assert!(
            words_of(again).iter().all(|&w| w == 0.0),
            "zeroed on return"
        );
        super::super::chunk::unmap(again);
    }

    /// Waits (bounded) until `reserve` holds `chunks`.
    fn wait_for_chunks(reserve: &ChunkReserve, chunks: usize) {
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        while reserve.chunks() != chunks {
            assert!(
                Instant::now() < deadline,
                "reserve holds {} chunks, not {chunks}",
                reserve.chunks()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn a_kept_reserve_replaces_the_chunks_taken() {
        let reserve = Arc::new(ChunkReserve::new(true));
        reserve.set_capacity_bytes(4 * CHUNK_BYTES as u64);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let refiller = reserve
            .keep_filled(move |added, _| {
                // Called on the refill thread itself.
                let _ = ready_tx.send((added, refill_thread_id()));
            })
            .expect("thread");
        let (added, refill_tid) = ready_rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("first fill");
        assert_eq!(added, 4);
        wait_for_chunks(&reserve, 4);
        assert_refills_run_only_when_idle(refill_tid);

        // Each take is replaced.
        let a = reserve.take().expect("a chunk");
        let b = reserve.take().expect("a chunk");
        wait_for_chunks(&reserve, 4);
        assert_eq!((reserve.taken(), reserve.missed()), (2, 0));
        for words in [a, b] {
            assert!(words_of(words).iter().all(|&w| w == 0.0));
            super::super::chunk::unmap(words);
        }

        // Emptied, the reserve counts the takes it could not serve.
        reserve.set_capacity_bytes(0);
        assert!(reserve.take().is_none());
        assert_eq!(reserve.missed(), 0, "no capacity: nothing was missed");
        reserve.set_capacity_bytes(CHUNK_BYTES as u64);
        wait_for_chunks(&reserve, 1);
        let c = reserve.take().expect("the refilled chunk");
        let missed_or_taken = reserve.take().map(super::super::chunk::unmap);
        assert!(
            missed_or_taken.is_some() || reserve.missed() == 1,
            "an empty reserve with a capacity counts a miss"
        );
        super::super::chunk::unmap(c);

        // Dropping the refiller stops its thread: takes are no longer replaced.
        let started = Instant::now();
        drop(refiller);
        assert!(
            started.elapsed() < JOIN_BOUND,
            "the thread stopped and was joined"
        );
        assert_eq!(
            Arc::strong_count(&reserve),
            1,
            "the thread let go of the reserve"
        );
        reserve.fill();
        let d = reserve.take().expect("a chunk");
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(reserve.chunks(), 0, "no thread refills a stopped reserve");
        super::super::chunk::unmap(d);
    }

    /// The calling thread's kernel id (0 off Linux).
    fn refill_thread_id() -> i64 {
        #[cfg(target_os = "linux")]
        // SAFETY: gettid has no arguments and no memory effects.
        return unsafe { libc::syscall(libc::SYS_gettid) };
        #[cfg(not(target_os = "linux"))]
        0
    }

    /// After its first fill the refill thread is under SCHED_IDLE (Linux only).
    fn assert_refills_run_only_when_idle(tid: i64) {
        #[cfg(target_os = "linux")]
        {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                // SAFETY: sched_getscheduler reads the policy of a thread of this process.
                let policy = unsafe { libc::sched_getscheduler(tid as libc::pid_t) };
                if policy == libc::SCHED_IDLE {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "refill thread {tid} has policy {policy}, not SCHED_IDLE"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = tid;
    }

    #[test]
    fn shrinking_the_capacity_unmaps_the_surplus() {
        let reserve = ChunkReserve::new(true);
        reserve.set_capacity_bytes(4 * CHUNK_BYTES as u64);
        reserve.fill();
        reserve.set_capacity_bytes(CHUNK_BYTES as u64);
        assert_eq!(reserve.chunks(), 1);
        reserve.set_capacity_bytes(0);
        assert_eq!(reserve.chunks(), 0);
        assert!(reserve.take().is_none());
    }
}
