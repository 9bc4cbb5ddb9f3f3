//! The tokio runtime the clients of one process share: like `strata-bench`'s W1 client, one
//! multi-thread runtime with a few workers serves every connection, so several `Client`s in
//! one trainer (one per thread, say) do not each add threads to the cores they share.

use std::sync::{Arc, Mutex};

use tokio::runtime::{Builder, Runtime};

/// Worker threads of the shared runtime unless `STRATA_CLIENT_THREADS` says otherwise.
const DEFAULT_WORKERS: usize = 2;

/// The runtime and the process that built it.
static SHARED: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

/// The runtime of this process, built on first use. After a `fork` (DataLoader workers,
/// multiprocessing) the child gets a runtime of its own: the parent's worker threads do not
/// exist in the child, so its runtime is leaked rather than shut down.
pub fn shared() -> std::io::Result<Arc<Runtime>> {
    let pid = std::process::id();
    let mut slot = SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((owner, runtime)) = slot.as_ref() {
        if *owner == pid {
            return Ok(runtime.clone());
        }
    }
    if let Some((_, inherited)) = slot.take() {
        std::mem::forget(inherited);
    }
    let workers = std::env::var("STRATA_CLIENT_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_WORKERS);
    let runtime = Arc::new(
        Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("strata-client")
            .enable_all()
            .build()?,
    );
    *slot = Some((pid, runtime.clone()));
    Ok(runtime)
}
