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

/// The prefault thread's queue; `None` if the thread could not be started.
static QUEUE: OnceLock<Option<Sender<Job>>> = OnceLock::new();

fn queue() -> Option<&'static Sender<Job>> {
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name("strata-prefault".into())
                .spawn(move || {
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

/// Runs `job` on the prefault thread, after the jobs submitted before it; false (the job
/// dropped unrun) when there is no such thread.
pub(super) fn submit(job: impl FnOnce() + Send + 'static) -> bool {
    queue().is_some_and(|q| q.send(Box::new(job)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

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
