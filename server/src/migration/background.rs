//! The runtime migrations run on: a few threads at a lower CPU priority (a higher nice
//! value), so moving rows uses what serving trainers leaves and gives way when cores are
//! busy; on an idle node it runs at full speed.

use std::io;

use tokio::runtime::{Builder, Handle, Runtime};

/// Threads of the migration runtime (workers; blocking work has its own pool, same priority).
const THREADS: usize = 2;

/// A tokio runtime for migration streams.
pub struct Background {
    runtime: Option<Runtime>,
}

impl Background {
    /// Starts the runtime; its threads run at `nice` (0: the process's priority).
    pub fn start(nice: i32) -> io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(THREADS)
            .thread_name("strata-migration")
            .on_thread_start(move || strata_storage::thread_priority::lower_priority(nice))
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Where to spawn migration tasks.
    pub fn handle(&self) -> Option<Handle> {
        self.runtime.as_ref().map(|r| r.handle().clone())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Dropped from async code at shutdown: do not block on the tasks.
        if let Some(r) = self.runtime.take() {
            r.shutdown_background();
        }
    }
}
