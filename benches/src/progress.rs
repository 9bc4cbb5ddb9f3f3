//! A live progress line on stderr (elapsed, steps, current rows/s), redrawn a few times a second.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::runner::Live;

/// A running progress printer; [`Progress::finish`] stops it and clears the line.
#[derive(Debug)]
pub struct Progress {
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Progress {
    /// Start printing the counters of `live` on stderr; `total` is warm-up plus window.
    pub fn start(live: Arc<Live>, warmup: Duration, total: Duration) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let (mut last_t, mut last_rows) = (start, 0u64);
            let mut rate = 0.0;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                let now = Instant::now();
                let rows = live.rows.load(Ordering::Relaxed);
                let steps = live.steps.load(Ordering::Relaxed);
                let dt = (now - last_t).as_secs_f64();
                if dt >= 1.0 {
                    rate = (rows - last_rows) as f64 / dt;
                    (last_t, last_rows) = (now, rows);
                }
                let el = now - start;
                let phase = if el < warmup { "warm-up" } else { "measure" };
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r\x1b[2K{phase} {:>5.1}/{:.0} s  steps {steps:>8}  rows/s {rate:>12.0}",
                    el.as_secs_f64(),
                    total.as_secs_f64()
                );
                let _ = err.flush();
            }
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        });
        Self {
            done,
            handle: Some(handle),
        }
    }

    /// Stop printing and clear the line.
    pub fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
