//! Where the engine records its changes: the node's write-ahead log once one is attached,
//! and the gate that makes a snapshot's cut of the log exact.
//!
//! Every change runs under the gate's shared side and is logged after it succeeded (a
//! refused change is never logged, so replay never applies what was refused). A snapshot
//! takes the exclusive side while it freezes the tables and cuts the log: a change is then
//! either applied and logged before the cut, or neither.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{RwLock, RwLockWriteGuard};

use crate::error::EngineError;
use crate::wal::{Record, Wal};

/// The log of one engine's changes (none until attached) and the cut gate.
#[derive(Default)]
pub(crate) struct Journal {
    wal: OnceLock<Arc<Wal>>,
    gate: RwLock<()>,
    /// Changes made so far (see [`Journal::changes`]).
    changes: AtomicU64,
}

impl Journal {
    /// A journal with no log yet.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The attached log.
    pub(crate) fn wal(&self) -> Option<&Arc<Wal>> {
        self.wal.get()
    }

    /// Attaches the log; later changes are recorded in it. A second log is refused.
    pub(crate) fn attach(&self, wal: Arc<Wal>) -> Result<(), EngineError> {
        self.wal.set(wal).map_err(|_| EngineError::WalWrite {
            reason: "a write-ahead log is already attached".into(),
        })
    }

    /// A counter of the changes made (bumped after each): read before a snapshot, it tells
    /// later whether anything changed since.
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Counts a change made outside [`Journal::change`] (a restore).
    pub(crate) fn changed(&self) {
        self.changes.fetch_add(1, Ordering::Release);
    }

    /// Holds every change off (a snapshot's cut).
    pub(crate) fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write()
    }

    /// Runs `change`; when it succeeds and a log is attached, logs `record` and returns
    /// its LSN with the change's result.
    pub(crate) fn change<'r, T>(
        &self,
        change: impl FnOnce() -> Result<T, EngineError>,
        record: impl FnOnce() -> Record<'r>,
    ) -> Result<(T, Option<u64>), EngineError> {
        self.change_with(change, |_| Some(record()), |_, _| ())
    }

    /// [`Journal::change`] for a change that may turn out to need no record (`record`
    /// answers `None`), with `logged` told the LSN (`None`: not logged) while the gate is
    /// still held, so that a snapshot sees both or neither.
    pub(crate) fn change_with<'r, T>(
        &self,
        change: impl FnOnce() -> Result<T, EngineError>,
        record: impl FnOnce(&T) -> Option<Record<'r>>,
        logged: impl FnOnce(&T, Option<u64>),
    ) -> Result<(T, Option<u64>), EngineError> {
        let _shared = self.gate.read();
        let out = change()?;
        self.changed();
        let lsn = match (self.wal.get(), record(&out)) {
            (Some(wal), Some(record)) => match wal.append(&record) {
                Ok(lsn) => Some(lsn),
                Err(e) => {
                    logged(&out, None);
                    return Err(EngineError::WalWrite {
                        reason: e.to_string(),
                    });
                }
            },
            _ => None,
        };
        logged(&out, lsn);
        Ok((out, lsn))
    }
}
