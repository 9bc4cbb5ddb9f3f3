//! A node's prefault threads: they fault in memory a stripe is about to use (the next,
//! larger id index table), so the insert that first touches each page does not pay the fault
//! and the zero-fill while its stripe is locked.
//!
//! Uniform hashing spreads a table's ids evenly over its stripes, so all of them cross the
//! growth threshold within a fraction of a second: faulting their new tables in on the
//! request path stalled a W1 server for ~0.5 s at each doubling (every request needs every
//! stripe). Each stripe now hands its next table to this thread well before it needs it.
//! The threads start with their first job and stop when their [`Prefault`] drops.

use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;
use std::thread::JoinHandle;

use super::worker::{join_within, JOIN_BOUND};

type Job = Box<dyn FnOnce() + Send>;

/// One prefault thread and its queue.
struct Queue {
    jobs: Sender<Job>,
    thread: JoinHandle<()>,
}

/// A prefault thread's queue, started on first use; `None` if it could not be started.
type Lazy = OnceLock<Option<Queue>>;

/// The prefault threads of one node.
#[derive(Default)]
pub(super) struct Prefault {
    /// Jobs of threads at normal priority (requests).
    serving: Lazy,
    /// Jobs of lowered-priority threads (migrations): run at that lower priority, so the
    /// faults an import causes give way to serving as the import itself does.
    background: Lazy,
}

fn start(name: &str, nice: i32) -> Option<Queue> {
    let (jobs, rx) = channel::<Job>();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            crate::thread_priority::lower_priority(nice);
            for job in rx {
                job();
            }
        });
    match spawned {
        Ok(thread) => Some(Queue { jobs, thread }),
        Err(e) => {
            tracing::warn!(error = %e, "no prefault thread; grown index tables fault in on first use");
            None
        }
    }
}

impl Prefault {
    /// Runs `job` on a prefault thread, after the jobs submitted before it, at the calling
    /// thread's priority class (normal, or lowered as the first lowered caller's); false (the
    /// job dropped unrun) when there is no such thread.
    pub(super) fn submit(&self, job: impl FnOnce() + Send + 'static) -> bool {
        let nice = crate::thread_priority::current_nice();
        let queue = if nice > 0 {
            self.background
                .get_or_init(|| start("strata-prefault-bg", nice))
        } else {
            self.serving.get_or_init(|| start("strata-prefault", 0))
        };
        queue
            .as_ref()
            .is_some_and(|q| q.jobs.send(Box::new(job)).is_ok())
    }
}

impl Drop for Prefault {
    fn drop(&mut self) {
        // Closing a queue ends its thread once the jobs already queued have run.
        for queue in [self.serving.take(), self.background.take()]
            .into_iter()
            .flatten()
            .flatten()
        {
            drop(queue.jobs);
            join_within(queue.thread, JOIN_BOUND);
        }
    }
}

impl std::fmt::Debug for Prefault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefault")
            .field("serving", &self.serving.get().is_some())
            .field("background", &self.background.get().is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_caller_s_jobs_run_at_its_priority() {
        let prefault = std::sync::Arc::new(Prefault::default());
        let (tx, rx) = channel();
        let submitter = prefault.clone();
        std::thread::spawn(move || {
            crate::thread_priority::lower_priority(5);
            let caller_nice = crate::thread_priority::current_nice();
            submitter.submit(move || {
                let _ = tx.send((caller_nice, crate::thread_priority::current_nice()));
            })
        })
        .join()
        .expect("thread");
        let (caller, job) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the job ran");
        assert!(caller > 0 || !cfg!(target_os = "linux"));
        assert_eq!(job, caller, "the job ran at the lowered caller's priority");
    }

    #[test]
    fn jobs_run_in_order_off_the_calling_thread() {
        let prefault = Prefault::default();
        let (tx, rx) = channel();
        let caller = std::thread::current().id();
        for i in 0..3 {
            let tx = tx.clone();
            assert!(prefault.submit(move || {
                let _ = tx.send((i, std::thread::current().id()));
            }));
        }
        let timeout = std::time::Duration::from_secs(10);
        for i in 0..3 {
            let (got, thread) = rx.recv_timeout(timeout).expect("the job ran");
            assert_eq!(got, i);
            assert_ne!(thread, caller);
        }
    }

    #[test]
    fn dropping_the_prefault_runs_the_queued_jobs_and_stops_its_thread() {
        let prefault = Prefault::default();
        let (tx, rx) = channel();
        assert!(prefault.submit(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let _ = tx.send(());
        }));
        assert!(
            prefault.serving.get().is_some_and(Option::is_some),
            "a thread"
        );
        drop(prefault);
        rx.try_recv()
            .expect("the queued job ran and its thread was joined before the drop returned");
    }
}
