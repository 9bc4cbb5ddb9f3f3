//! A timeline of the run: every 100 ms, the wall-clock time, the steps and rows done so far
//! (warm-up included) and the slowest step finished since the previous line, written as
//! `unix_ms steps rows slowest_step_us` lines. Lets a script measure the throughput and the
//! worst latencies of any time window, e.g. while a migration runs next to the benchmark.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::runner::Live;

/// Time between two samples.
const EVERY: Duration = Duration::from_millis(100);

/// A running sampler; [`Timeline::finish`] stops it and flushes the file.
#[derive(Debug)]
pub struct Timeline {
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl Timeline {
    /// Starts sampling `live` into `path` (created or truncated).
    pub fn start(path: &Path, live: Arc<Live>) -> std::io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let handle = std::thread::spawn(move || {
            loop {
                let stop = flag.load(Ordering::Relaxed);
                let ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0);
                writeln!(
                    out,
                    "{ms} {} {} {}",
                    live.steps.load(Ordering::Relaxed),
                    live.rows.load(Ordering::Relaxed),
                    live.slowest_step_us.swap(0, Ordering::Relaxed)
                )?;
                if stop {
                    break;
                }
                std::thread::sleep(EVERY);
            }
            out.flush()
        });
        Ok(Self {
            done,
            handle: Some(handle),
        })
    }

    /// Takes a last sample, stops, and reports a write error if any.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.done.store(true, Ordering::Relaxed);
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("timeline thread panicked")),
            None => Ok(()),
        }
    }
}
