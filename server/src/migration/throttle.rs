//! A byte-rate limit for migration streams.

use std::time::{Duration, Instant};

/// Paces a sender to at most `bytes_per_s` on average since it started (0: no limit):
/// before sending `n` bytes, wait until `sent + n` bytes are due.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_s: u64,
    start: Instant,
    sent: u64,
}

impl Throttle {
    /// A throttle starting now.
    pub fn new(bytes_per_s: u64) -> Self {
        Self {
            bytes_per_s,
            start: Instant::now(),
            sent: 0,
        }
    }

    /// How long to wait after sending `bytes` more so the average stays under the limit.
    pub fn after(&mut self, bytes: u64) -> Duration {
        self.sent += bytes;
        if self.bytes_per_s == 0 {
            return Duration::ZERO;
        }
        let due = Duration::from_secs_f64(self.sent as f64 / self.bytes_per_s as f64);
        due.saturating_sub(self.start.elapsed())
    }

    /// Waits as long as [`Throttle::after`] says.
    pub async fn pace(&mut self, bytes: u64) {
        let wait = self.after(bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits_and_limited_waits_for_the_average() {
        assert_eq!(Throttle::new(0).after(1 << 30), Duration::ZERO);
        let mut t = Throttle::new(1000);
        let wait = t.after(2000);
        assert!(wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2));
    }
}
