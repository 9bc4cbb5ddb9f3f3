//! Exactly-once pushes: for each client that numbers its pushes, the sequence numbers
//! applied (with their answers) above the client's acknowledged floor, so that a push sent
//! again after an unknown outcome is answered as the first time, never applied twice.
//!
//! A client's window shrinks as the client reports its floor (`acked_below`: every push
//! below it has an outcome the client knows) and is bounded ([`MAX_WINDOW`]); an idle
//! client is forgotten after the expiry. The ledger is part of a node's snapshot and is
//! rebuilt by replaying the write-ahead log, so it survives restarts with the rows it
//! describes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::wal::Origin;

/// Most applied pushes remembered per client above its floor; past it the oldest are
/// forgotten (and the floor raised past them).
pub const MAX_WINDOW: usize = 1 << 16;

/// Default time after which a client that sent nothing is forgotten.
pub const DEFAULT_CLIENT_EXPIRY: Duration = Duration::from_secs(3600);

/// Longest client id accepted.
pub const MAX_CLIENT_ID_BYTES: usize = 128;

/// One client's remembered pushes, as a snapshot holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientPushes {
    /// The client's id.
    pub client: String,
    /// Every seq below it has a known outcome.
    pub acked_below: u64,
    /// Applied pushes above the floor: (seq, rows answered).
    pub applied: Vec<(u64, u64)>,
}

/// What to do with a numbered push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Apply it (it is now in flight).
    Apply,
    /// It was applied: answer `rows` again, once record `lsn` is durable.
    Repeat {
        /// Rows the first application answered.
        rows: u64,
        /// Its log record.
        lsn: Option<u64>,
    },
}

#[derive(Debug, Default)]
struct Window {
    acked_below: u64,
    applied: BTreeMap<u64, (u64, Option<u64>)>,
    in_flight: BTreeSet<u64>,
    last_seen: Option<Instant>,
}

impl Window {
    fn raise_floor(&mut self, floor: u64) {
        if floor > self.acked_below {
            self.acked_below = floor;
            self.applied = self.applied.split_off(&floor);
        }
    }
}

/// The numbered pushes of every client of a node.
pub struct PushLedger {
    clients: DashMap<Box<str>, Mutex<Window>>,
    expiry: Duration,
    /// When this process began remembering pushes.
    started: Instant,
    /// Whether what is remembered survives restarts (a write-ahead log keeps it).
    durable: AtomicBool,
}

impl PushLedger {
    /// No client yet; idle clients are forgotten after `expiry`.
    pub fn new(expiry: Duration) -> Self {
        Self {
            clients: DashMap::new(),
            expiry,
            started: Instant::now(),
            durable: AtomicBool::new(false),
        }
    }

    /// Says that what is remembered survives restarts (a write-ahead log was attached).
    pub fn set_durable(&self) {
        self.durable.store(true, Ordering::Release);
    }

    /// Clients remembered.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Decides a numbered push (`origin.client` not empty): apply it, or answer it again.
    /// One still being applied is refused (the sender tries again shortly).
    pub(crate) fn begin(&self, origin: Origin<'_>) -> Result<Admit, EngineError> {
        if origin.client.len() > MAX_CLIENT_ID_BYTES {
            return Err(EngineError::BadClientId {
                len: origin.client.len(),
                max: MAX_CLIENT_ID_BYTES,
            });
        }
        let entry = match self.clients.get(origin.client) {
            Some(entry) => entry,
            None => self
                .clients
                .entry(origin.client.into())
                .or_default()
                .downgrade(),
        };
        let mut w = entry.lock();
        w.last_seen = Some(Instant::now());
        w.raise_floor(origin.acked_below.min(origin.seq));
        if origin.seq < w.acked_below && !w.applied.contains_key(&origin.seq) {
            // The client said this number was settled: a copy arriving now is late (nobody
            // waits for its answer) and is refused, never applied nor acknowledged.
            return Err(EngineError::PushSettled {
                client: origin.client.to_string(),
                seq: origin.seq,
            });
        }
        if let Some(&(rows, lsn)) = w.applied.get(&origin.seq) {
            return Ok(Admit::Repeat { rows, lsn });
        }
        if origin.resend_after_ms > 0
            && !self.durable.load(Ordering::Acquire)
            && self.started.elapsed() < Duration::from_millis(origin.resend_after_ms)
        {
            // The first copy may have reached this node before it restarted, and been lost
            // with what it had not checkpointed: applying the copy could apply it twice.
            return Err(EngineError::PushOutcomeLost {
                client: origin.client.to_string(),
                seq: origin.seq,
            });
        }
        if !w.in_flight.insert(origin.seq) {
            return Err(EngineError::PushInFlight {
                client: origin.client.to_string(),
                seq: origin.seq,
            });
        }
        Ok(Admit::Apply)
    }

    /// Ends a push [`PushLedger::begin`] admitted: applied with `rows` (and log record
    /// `lsn`), or refused (`None`: a later copy may be applied).
    pub(crate) fn finish(&self, origin: Origin<'_>, applied: Option<(u64, Option<u64>)>) {
        let Some(entry) = self.clients.get(origin.client) else {
            return;
        };
        let mut w = entry.lock();
        w.in_flight.remove(&origin.seq);
        if let Some(answer) = applied {
            w.applied.insert(origin.seq, answer);
            while w.applied.len() > MAX_WINDOW {
                if let Some((oldest, _)) = w.applied.pop_first() {
                    w.acked_below = w.acked_below.max(oldest + 1);
                }
            }
        }
    }

    /// Forgets clients idle for longer than the expiry; returns how many.
    pub fn expire(&self, now: Instant) -> usize {
        let before = self.clients.len();
        self.clients.retain(|_, w| {
            let w = w.lock();
            !w.in_flight.is_empty()
                || w.last_seen
                    .is_none_or(|seen| now.saturating_duration_since(seen) <= self.expiry)
        });
        before - self.clients.len()
    }

    /// Every client's applied pushes, sorted by client (pushes in flight are not applied).
    pub fn snapshot(&self) -> Vec<ClientPushes> {
        let mut all: Vec<ClientPushes> = self
            .clients
            .iter()
            .map(|e| {
                let w = e.value().lock();
                ClientPushes {
                    client: e.key().to_string(),
                    acked_below: w.acked_below,
                    applied: w.applied.iter().map(|(&s, &(rows, _))| (s, rows)).collect(),
                }
            })
            .collect();
        all.sort_by(|a, b| a.client.cmp(&b.client));
        all
    }

    /// Replaces every client's window with the snapshot's.
    pub fn restore(&self, ledger: &[ClientPushes]) {
        self.clients.clear();
        let now = Instant::now();
        for s in ledger {
            let w = Window {
                acked_below: s.acked_below,
                applied: s
                    .applied
                    .iter()
                    .map(|&(seq, rows)| (seq, (rows, None)))
                    .collect(),
                in_flight: BTreeSet::new(),
                last_seen: Some(now),
            };
            self.clients.insert(s.client.as_str().into(), Mutex::new(w));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(seq: u64, acked_below: u64) -> Origin<'static> {
        Origin {
            client: "c",
            seq,
            acked_below,
            resend_after_ms: 0,
        }
    }

    #[test]
    fn a_push_is_applied_once_and_answered_again() {
        let s = PushLedger::new(DEFAULT_CLIENT_EXPIRY);
        assert_eq!(s.begin(origin(1, 1)), Ok(Admit::Apply));
        assert!(matches!(
            s.begin(origin(1, 1)),
            Err(EngineError::PushInFlight { seq: 1, .. })
        ));
        s.finish(origin(1, 1), Some((5, Some(9))));
        assert_eq!(
            s.begin(origin(1, 1)),
            Ok(Admit::Repeat {
                rows: 5,
                lsn: Some(9)
            })
        );
        // Out of order: 3 before 2, both applied once.
        assert_eq!(s.begin(origin(3, 1)), Ok(Admit::Apply));
        s.finish(origin(3, 1), Some((1, None)));
        assert_eq!(s.begin(origin(2, 1)), Ok(Admit::Apply));
        s.finish(origin(2, 1), Some((1, None)));
        assert!(matches!(
            s.begin(origin(3, 1)),
            Ok(Admit::Repeat { rows: 1, .. })
        ));
    }

    #[test]
    fn a_refused_push_may_be_applied_later() {
        let s = PushLedger::new(DEFAULT_CLIENT_EXPIRY);
        assert_eq!(s.begin(origin(1, 1)), Ok(Admit::Apply));
        s.finish(origin(1, 1), None);
        assert_eq!(s.begin(origin(1, 1)), Ok(Admit::Apply));
    }

    #[test]
    fn the_floor_forgets_settled_pushes_and_ignores_late_copies() {
        let s = PushLedger::new(DEFAULT_CLIENT_EXPIRY);
        for seq in 1..=4 {
            assert_eq!(s.begin(origin(seq, 1)), Ok(Admit::Apply));
            s.finish(origin(seq, 1), Some((1, None)));
        }
        assert_eq!(s.begin(origin(5, 4)), Ok(Admit::Apply));
        s.finish(origin(5, 4), Some((1, None)));
        let snap = s.snapshot();
        assert_eq!(snap[0].acked_below, 4);
        assert_eq!(snap[0].applied, vec![(4, 1), (5, 1)]);
        assert!(matches!(
            s.begin(origin(2, 1)),
            Err(EngineError::PushSettled { seq: 2, .. })
        ));
    }

    #[test]
    fn the_window_is_bounded() {
        let s = PushLedger::new(DEFAULT_CLIENT_EXPIRY);
        for seq in 1..=(MAX_WINDOW as u64 + 10) {
            assert_eq!(s.begin(origin(seq, 0)), Ok(Admit::Apply));
            s.finish(origin(seq, 0), Some((1, None)));
        }
        let snap = s.snapshot();
        assert_eq!(snap[0].applied.len(), MAX_WINDOW);
        assert_eq!(snap[0].acked_below, 11);
    }

    #[test]
    fn snapshots_restore_and_idle_clients_expire() {
        let s = PushLedger::new(Duration::from_millis(1));
        assert_eq!(s.begin(origin(1, 1)), Ok(Admit::Apply));
        s.finish(origin(1, 1), Some((3, None)));
        let snap = s.snapshot();
        let t = PushLedger::new(DEFAULT_CLIENT_EXPIRY);
        t.restore(&snap);
        assert_eq!(t.snapshot(), snap);
        assert!(matches!(
            t.begin(origin(1, 1)),
            Ok(Admit::Repeat { rows: 3, .. })
        ));
        assert_eq!(s.expire(Instant::now() + Duration::from_secs(1)), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn a_copy_older_than_a_node_without_a_log_is_refused() {
        let s = PushLedger::new(DEFAULT_CLIENT_EXPIRY);
        let copy = Origin {
            resend_after_ms: 3_600_000,
            ..origin(1, 1)
        };
        assert!(matches!(
            s.begin(copy),
            Err(EngineError::PushOutcomeLost { seq: 1, .. })
        ));
        // A copy sent after the node started is settled by its memory.
        std::thread::sleep(Duration::from_millis(5));
        let recent = Origin {
            resend_after_ms: 1,
            ..origin(1, 1)
        };
        assert_eq!(s.begin(recent), Ok(Admit::Apply));
        // With a log, nothing is lost in a restart.
        s.set_durable();
        s.finish(recent, None);
        assert_eq!(s.begin(copy), Ok(Admit::Apply));
    }

    #[test]
    fn overlong_client_ids_are_refused() {
        let s = PushLedger::new(DEFAULT_CLIENT_EXPIRY);
        let long = "x".repeat(MAX_CLIENT_ID_BYTES + 1);
        let o = Origin {
            client: &long,
            seq: 1,
            acked_below: 0,
            resend_after_ms: 0,
        };
        assert!(matches!(s.begin(o), Err(EngineError::BadClientId { .. })));
    }
}
