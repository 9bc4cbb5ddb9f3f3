//! A node's row memory machinery: its reserve of faulted-in chunks and the thread that
//! refills it, its huge page choice, and its prefault threads.
//!
//! Every table of a node takes these from one [`RowMemory`] its creator hands it (an
//! `Arc`), never from process globals, so several nodes can share a process (an in-process
//! test cluster), each with its own reserve and threads. Dropping the last reference stops
//! and joins the node's threads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::chunk::{ChunkPool, CHUNK_BYTES};
use super::mapping::PageAdvice;
use super::prefault::Prefault;
use super::reserve::{ChunkReserve, Refiller};

/// How a node's row memory is set up (`--memory-reserve`, `--huge-pages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowMemoryConfig {
    /// Row memory faulted in ahead of need and kept filled, in bytes (0 keeps none).
    pub reserve_bytes: u64,
    /// Whether the reserve and large id index tables are advised into huge pages.
    pub huge_pages: bool,
}

impl Default for RowMemoryConfig {
    /// No reserve, huge pages advised: what a node without `--memory-reserve` would have
    /// were the reserve off (tests and tools that build engines in-process).
    fn default() -> Self {
        Self {
            reserve_bytes: 0,
            huge_pages: true,
        }
    }
}

/// One node's row memory: reserve, refill thread, huge page choice, prefault threads.
pub struct RowMemory {
    /// Stops the refill thread first when dropped.
    refiller: Option<Refiller>,
    reserve: Arc<ChunkReserve>,
    huge_pages: bool,
    prefault: Prefault,
}

impl RowMemory {
    /// Sets up a node's row memory: sizes the reserve and fills it on a background thread
    /// that keeps it filled ([`ChunkReserve::keep_filled`]) and logs when the first fill is
    /// done (how long it took tells how fast this machine hands out fresh memory). A zero
    /// reserve starts no thread: freed chunks go back to the OS and new rows fault their
    /// pages in themselves. Prefault threads start with their first job.
    pub fn new(config: RowMemoryConfig) -> Self {
        let reserve = Arc::new(ChunkReserve::new(config.huge_pages));
        reserve.set_capacity_bytes(config.reserve_bytes);
        let refiller = if config.reserve_bytes == 0 {
            None
        } else {
            let logged = Arc::clone(&reserve);
            let kept = reserve.keep_filled(move |added, took| {
                let secs = took.as_secs_f64();
                let filled = (added * CHUNK_BYTES) as f64;
                tracing::info!(
                    bytes = logged.bytes(),
                    secs,
                    gb_per_s = filled / secs.max(1e-9) / 1e9,
                    "row memory reserve faulted in"
                );
            });
            match kept {
                Ok(refiller) => Some(refiller),
                Err(e) => {
                    tracing::warn!(error = %e, "no thread to fault in the row memory reserve; it fills from freed chunks only");
                    None
                }
            }
        };
        Self {
            refiller,
            reserve,
            huge_pages: config.huge_pages,
            prefault: Prefault::default(),
        }
    }

    /// The node's reserve (its counters feed `/metrics`).
    pub fn reserve(&self) -> &ChunkReserve {
        &self.reserve
    }

    /// Whether the reserve and large id index tables are advised into huge pages.
    pub fn huge_pages(&self) -> bool {
        self.huge_pages
    }

    /// Waits up to `bound` until the reserve holds its capacity (true), e.g. before a
    /// measured run; false when it is still filling.
    pub fn wait_filled(&self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        loop {
            if self.reserve.chunks() >= self.reserve.capacity() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The page advice for memory faulted in ahead of need or rarely allocated.
    pub(super) fn advice(&self) -> PageAdvice {
        if self.huge_pages {
            PageAdvice::Huge
        } else {
            PageAdvice::Small
        }
    }

    /// Where the node's row chunks come from and go back to.
    pub(super) fn pool(&self) -> Arc<dyn ChunkPool> {
        Arc::clone(&self.reserve) as Arc<dyn ChunkPool>
    }

    /// Runs `job` on one of the node's prefault threads ([`Prefault::submit`]).
    pub(super) fn prefault(&self, job: impl FnOnce() + Send + 'static) -> bool {
        self.prefault.submit(job)
    }
}

impl Default for RowMemory {
    /// Row memory with [`RowMemoryConfig::default`]: no reserve, no thread until needed.
    fn default() -> Self {
        Self::new(RowMemoryConfig::default())
    }
}

impl std::fmt::Debug for RowMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowMemory")
            .field("reserve", &self.reserve)
            .field("huge_pages", &self.huge_pages)
            .field("refilled", &self.refiller.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(chunks: u64, huge_pages: bool) -> RowMemoryConfig {
        RowMemoryConfig {
            reserve_bytes: chunks * CHUNK_BYTES as u64,
            huge_pages,
        }
    }

    #[test]
    fn two_nodes_keep_two_reserves_and_a_dropped_one_stops_its_threads() {
        let a = RowMemory::new(config(2, true));
        let b = RowMemory::new(config(3, false));
        let bound = Duration::from_secs(20);
        assert!(a.wait_filled(bound) && b.wait_filled(bound));
        assert_eq!((a.reserve().chunks(), b.reserve().chunks()), (2, 3));
        assert_eq!(
            (a.advice(), b.advice()),
            (PageAdvice::Huge, PageAdvice::Small)
        );
        let taken = a.pool().take().expect("a chunk of a's reserve");
        assert_eq!((a.reserve().taken(), b.reserve().taken()), (1, 0));
        assert!(a.pool().offer(taken), "back into a's reserve");

        let (tx, rx) = std::sync::mpsc::channel();
        assert!(b.prefault(move || {
            let _ = tx.send(std::thread::current().name().map(str::to_string));
        }));
        let reserve = Arc::clone(&b.reserve);
        let started = Instant::now();
        drop(b);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "threads joined in time"
        );
        assert_eq!(
            rx.try_recv()
                .expect("the job ran before the drop returned")
                .as_deref(),
            Some("strata-prefault")
        );
        assert_eq!(
            Arc::strong_count(&reserve),
            1,
            "the refill thread let go of it"
        );
    }

    #[test]
    fn no_reserve_starts_no_refill_thread() {
        let memory = RowMemory::default();
        assert!(memory.refiller.is_none());
        assert_eq!(memory.reserve().capacity(), 0);
        assert!(memory.wait_filled(Duration::ZERO));
        assert!(memory.pool().take().is_none());
    }
}
