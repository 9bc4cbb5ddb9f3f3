//! How long a table's rows have gone without a push, estimated from an even sample of its
//! rows (the host tier keeps each row's last-update time in its metadata).

/// The idle times staleness is reported at, with their labels: 1 minute to 7 days.
pub const IDLE_THRESHOLDS: [(u64, &str); 7] = [
    (60, "1m"),
    (300, "5m"),
    (900, "15m"),
    (3_600, "1h"),
    (21_600, "6h"),
    (86_400, "1d"),
    (604_800, "7d"),
];

/// Rows sampled per table for an estimate (spread evenly over its stripes).
pub const STALENESS_SAMPLE_ROWS: usize = 4096;

/// A table's staleness, estimated from a sample of its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staleness {
    /// Rows the table holds.
    pub rows: u64,
    /// Rows the estimate was taken from.
    pub sampled: u64,
    /// Estimated rows never pushed (created by pulls and not updated since).
    pub never_pushed: u64,
    /// For each of [`IDLE_THRESHOLDS`]: estimated pushed rows whose last push is at least
    /// that long ago.
    pub idle_at_least: [u64; IDLE_THRESHOLDS.len()],
}

impl Staleness {
    /// The estimate for a table of `rows` rows from the last-update times `times` (Unix
    /// seconds, 0: never pushed) of a sample of them, at `now_secs`.
    pub fn from_sample(rows: u64, times: &[u32], now_secs: u64) -> Self {
        let sampled = times.len() as u64;
        let scale = |count: u64| {
            if sampled == 0 {
                0
            } else {
                // Rounded to the nearest row; the whole sample scales to exactly `rows`.
                ((u128::from(count) * u128::from(rows) + u128::from(sampled / 2))
                    / u128::from(sampled)) as u64
            }
        };
        let mut never = 0u64;
        let mut idle = [0u64; IDLE_THRESHOLDS.len()];
        for &t in times {
            if t == 0 {
                never += 1;
                continue;
            }
            let age = now_secs.saturating_sub(u64::from(t));
            for (count, &(threshold, _)) in idle.iter_mut().zip(&IDLE_THRESHOLDS) {
                *count += u64::from(age >= threshold);
            }
        }
        Self {
            rows,
            sampled,
            never_pushed: scale(never),
            idle_at_least: idle.map(scale),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_scales_to_the_table() {
        let now = 1_000_000;
        // 4 sampled rows of a 400-row table: one never pushed, one pushed now, one 10 min
        // ago, one 2 days ago.
        let times = [0, now as u32, (now - 600) as u32, (now - 172_800) as u32];
        let s = Staleness::from_sample(400, &times, now);
        assert_eq!(s.sampled, 4);
        assert_eq!(s.never_pushed, 100);
        // 1m, 5m: two rows; 15m, 1h, 6h, 1d: one; 7d: none.
        assert_eq!(s.idle_at_least, [200, 200, 100, 100, 100, 100, 0]);
    }

    #[test]
    fn an_empty_table_is_all_zeros() {
        let s = Staleness::from_sample(0, &[], 5);
        assert_eq!((s.sampled, s.never_pushed), (0, 0));
        assert_eq!(s.idle_at_least, [0; IDLE_THRESHOLDS.len()]);
    }

    #[test]
    fn a_clock_behind_a_row_counts_it_fresh() {
        let s = Staleness::from_sample(1, &[2_000], 1_000);
        assert_eq!(s.idle_at_least, [0; IDLE_THRESHOLDS.len()]);
    }
}
