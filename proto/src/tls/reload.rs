//! A value built from files and rebuilt when they change: each file's modification time
//! and length are compared at most once per check interval (a few `stat` calls), and a
//! rebuild that fails (a file half-written, a key that is not the certificate's) keeps the
//! last good value and is logged. It is tried again when the files change again.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::TlsError;

/// What a file looked like at the last check: `None` when it could not be read.
type Stamp = Option<(SystemTime, u64)>;

/// Builds the value from the files.
type Build<T> = Box<dyn Fn() -> Result<T, TlsError> + Send + Sync>;

/// A value kept in step with the files it was built from.
pub struct Reloading<T> {
    what: &'static str,
    paths: Vec<PathBuf>,
    every: Duration,
    build: Build<T>,
    state: Mutex<State<T>>,
}

struct State<T> {
    current: Arc<T>,
    stamps: Vec<Stamp>,
    checked: Instant,
    reloads: u64,
}

fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    paths
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

impl<T> Reloading<T> {
    /// Builds the value from `paths` now (failing if it cannot), and again when they change,
    /// looked at no more often than `every`. `what` names it in logs.
    pub fn new(
        what: &'static str,
        paths: Vec<PathBuf>,
        every: Duration,
        build: impl Fn() -> Result<T, TlsError> + Send + Sync + 'static,
    ) -> Result<Self, TlsError> {
        let seen = stamps(&paths);
        let current = Arc::new(build()?);
        Ok(Self {
            what,
            paths,
            every,
            build: Box::new(build),
            state: Mutex::new(State {
                current,
                stamps: seen,
                checked: Instant::now(),
                reloads: 0,
            }),
        })
    }

    /// The value for a new connection: rebuilt first if the files changed since the last
    /// look and that look is older than the check interval.
    pub fn current(&self) -> Arc<T> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() < self.every {
            return state.current.clone();
        }
        state.checked = Instant::now();
        let now = stamps(&self.paths);
        if now == state.stamps {
            return state.current.clone();
        }
        state.stamps = now;
        match (self.build)() {
            Ok(value) => {
                state.current = Arc::new(value);
                state.reloads += 1;
                tracing::info!(what = self.what, files = ?self.paths, "TLS files changed: reloaded");
            }
            Err(e) => tracing::warn!(
                what = self.what, error = %e,
                "TLS files changed but cannot be used; keeping the previous ones"
            ),
        }
        state.current.clone()
    }

    /// How many times the value was rebuilt since it was made.
    pub fn reloads(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).reloads
    }
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("paths", &self.paths)
            .finish()
    }
}
