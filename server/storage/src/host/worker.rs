//! Joining a node's background threads when their owner goes away, within a bound.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an owner waits for one of its background threads to finish when it drops.
pub(super) const JOIN_BOUND: Duration = Duration::from_secs(5);

/// Waits up to `bound` for the thread of `handle` (already told to stop) to finish and joins
/// it; a thread still busy after that (faulting in a large table) is left to finish on its
/// own, with a warning. A thread that drops its own owner is not waited for.
pub(super) fn join_within(handle: JoinHandle<()>, bound: Duration) {
    if handle.thread().id() == std::thread::current().id() {
        return;
    }
    let deadline = Instant::now() + bound;
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            tracing::warn!(
                thread = handle.thread().name().unwrap_or("?"),
                "a background thread is still busy; it stops when its work is done"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if handle.join().is_err() {
        tracing::warn!("a background thread of the host tier panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_thread_is_joined_and_a_busy_one_left_after_the_bound() {
        let quick = std::thread::spawn(|| {});
        join_within(quick, Duration::from_secs(5));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let busy = std::thread::spawn(move || {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        });
        let start = Instant::now();
        join_within(busy, Duration::from_millis(20));
        assert!(start.elapsed() < Duration::from_secs(5), "bounded");
        drop(tx);
    }
}
