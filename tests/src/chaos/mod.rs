//! Chaos harness: seeded, bounded schedules of faults (kill -9, SIGSTOP/SIGCONT, a full
//! disk, truncated checkpoint files) against a dev server or a cluster of processes under
//! concurrent pushes, with an oracle that says what every row may hold after each schedule.
//!
//! - [`schedule`]: the seeded generator of fault schedules, bounded in steps and time.
//! - [`faults`]: the faults themselves (signals, a tmpfs data dir, ballast, truncation) and
//!   the panic scan of server logs.
//! - [`pushers`]: trainer tasks that push known SGD gradients and log every outcome.
//! - [`oracle`]: what the durability promise allows a row to hold after a fault.
//! - [`statuses`]: the statuses README documents for each situation, and the check.
//! - [`deployment`]: the dev server or cluster under test, its data dirs, mounts and logs.
//! - [`run`]: the driver that runs schedules against a deployment and checks each.

pub mod deployment;
pub mod faults;
pub mod oracle;
pub mod pushers;
pub mod run;
pub mod schedule;
pub mod statuses;

use std::time::Duration;

/// Default seconds of schedules per deployment (small enough for CI on two cores).
const DEFAULT_SECONDS: u64 = 20;
/// Most schedules per deployment, whatever the time budget.
const MAX_SCHEDULES: usize = 10_000;

/// How long and with which seed a chaos run goes: `STRATA_CHAOS_SECONDS` (after the
/// schedules that cover each fault kind once, random ones start until this many seconds
/// have passed) and `STRATA_CHAOS_SEED` (default: from the clock).
#[derive(Debug, Clone, Copy)]
pub struct ChaosConfig {
    /// Seed of every random choice of the run.
    pub seed: u64,
    /// No schedule starts after this much time.
    pub budget: Duration,
    /// No more schedules than this.
    pub max_schedules: usize,
}

impl ChaosConfig {
    /// Reads the environment; panics on a value that does not parse.
    pub fn from_env() -> Self {
        let seed = match std::env::var("STRATA_CHAOS_SEED") {
            Ok(s) => s
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("STRATA_CHAOS_SEED={s:?} is not a u64")),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1),
        };
        let seconds = match std::env::var("STRATA_CHAOS_SECONDS") {
            Ok(s) => s
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("STRATA_CHAOS_SECONDS={s:?} is not a number")),
            Err(_) => DEFAULT_SECONDS,
        };
        Self {
            seed,
            budget: Duration::from_secs(seconds),
            max_schedules: MAX_SCHEDULES,
        }
    }
}

/// A small seeded generator (splitmix64): the same seed gives the same choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        strata_client::routing::splitmix64(self.0)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}
