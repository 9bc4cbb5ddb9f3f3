//! One background thread that faults in memory a stripe is about to use (the next, larger
//! id index table), so the insert that first touches each page does not pay the fault and
//! the zero-fill while its stripe is locked.
//!
//! Uniform hashing spreads a table's ids evenly over its stripes, so all of them cross the
//! growth threshold within a fraction of a second: faulting their new tables in on the
//! request path stalled a W1 server for ~0.5 s at each doubling (every request needs every
//! stripe). Each stripe now hands its next table to this thread well before it needs it.

use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

type Job = Box<dyn FnOnce() + Send>;

/// A prefault thread's queue; `None` if the thread could not be started.
type Queue = OnceLock<Option<Sender<Job>>>;

/// Jobs of threads at normal priority (requests).
static SERVING: Queue = OnceLock::new();
/// Jobs of lowered-priority threads (migrations): run at that lower priority, so the
/// faults an import causes give way to serving as the import itself does.
static BACKGROUND: Queue = OnceLock::new();

fn queue(cell: &'static Queue, name: &str, nice: i32) -> Option<&'static Sender<Job>> {
    cell.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                crate::thread_priority::lower_priority(nice);
                for job in rx {
                    job();
                }
            });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "no prefault thread; grown index tables fault in on first use");
                None
            }
        }
    })
    .as_ref()
}

/// Runs `job` on a prefault thread, after the jobs submitted before it, at the calling
/// thread's priority class (normal, or lowered as the first lowered caller's); false (the
/// job dropped unrun) when there is no such thread.
pub(super) fn submit(job: impl FnOnce() + Send + 'static) -> bool {
    let nice = crate::thread_priority::current_nice();
    let q = if nice > 0 {
        queue(&BACKGROUND, "strata-prefault-bg", nice)
    } else {
        queue(&SERVING, "strata-prefault", 0)
    };
    q.is_some_and(|q| q.send(Box::new(job)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_caller_s_jobs_run_at_its_priority() {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            crate::thread_priority::lower_priority(5);
            let caller_nice = crate::thread_priority::current_nice();
            submit(move || {
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
        let (tx, rx) = channel();
        let caller = std::thread::current().id();
        for i in 0..3 {
            let tx = tx.clone();
            assert!(submit(move || {
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
}
