//! Data-path traffic per table, slot bucket and client location, read as rates over a
//! sliding window.
//!
//! Counting is lock-free: a request's ids are tallied per slot bucket in a stack array
//! (the slot hash is the only work per id), then one relaxed atomic add per touched
//! bucket. Client locations are interned once into a fixed table scanned without a lock
//! (a node sees a handful); locations past [`MAX_LOCATIONS`] are counted as
//! [`OTHER_LOCATION`]. Rates come from cumulative counters sampled by the heartbeat
//! ([`TrafficWindow::rates`]): bytes now minus bytes at the oldest sample within the
//! window, over the time between.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_storage::slot::slot_of;

/// Slot buckets counted per table and location (a bucket is `num_slots / BUCKETS` slots).
pub const BUCKETS: usize = 64;

/// Distinct client locations a node counts apart.
pub const MAX_LOCATIONS: usize = 64;

/// The location traffic is counted under once [`MAX_LOCATIONS`] are in use.
pub const OTHER_LOCATION: &str = "other";

/// Longest location string kept (longer ones are refused by the service).
pub const MAX_LOCATION_BYTES: usize = 256;

/// Which way rows went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Rows read by a client.
    Pull,
    /// Gradients sent by a client.
    Push,
}

/// The client locations a node has seen, interned to small indexes.
pub struct Locations {
    names: [OnceLock<Box<str>>; MAX_LOCATIONS],
}

impl Default for Locations {
    fn default() -> Self {
        Self {
            names: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl Locations {
    /// The index of `location` (interned on first sight; the last index once full).
    pub fn index(&self, location: &str) -> usize {
        for (i, name) in self.names.iter().enumerate() {
            match name.get() {
                Some(n) if &**n == location => return i,
                Some(_) => continue,
                None => {
                    if i == MAX_LOCATIONS - 1 {
                        let _ = name.set(OTHER_LOCATION.into());
                        return i;
                    }
                    // Another request may take this entry first: then look at it again.
                    match name.set(location.into()) {
                        Ok(()) => return i,
                        Err(_) if name.get().is_some_and(|n| &**n == location) => return i,
                        Err(_) => continue,
                    }
                }
            }
        }
        MAX_LOCATIONS - 1
    }

    /// The name of index `i`, if interned.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i).and_then(|n| n.get()).map(|n| &**n)
    }
}

/// Cumulative counters of one table from one location.
struct Counters {
    bytes: [[AtomicU64; BUCKETS]; 2],
    rows: [AtomicU64; 2],
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            bytes: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            rows: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// One table's traffic counters, per client location.
pub struct TableTraffic {
    num_slots: u32,
    by_location: [OnceLock<Box<Counters>>; MAX_LOCATIONS],
}

impl TableTraffic {
    /// Counters for a table routed over `num_slots` slots.
    pub fn new(num_slots: u32) -> Self {
        Self {
            num_slots: num_slots.max(1),
            by_location: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Counts a request of `ids` from location index `location`, `row_bytes` payload bytes
    /// per id, per slot bucket.
    pub fn record(&self, location: usize, direction: Direction, ids: &[u64], row_bytes: u64) {
        let Some(entry) = self.by_location.get(location) else {
            return;
        };
        let counters = entry.get_or_init(Box::default);
        let mut tally = [0u32; BUCKETS];
        let n = u64::from(self.num_slots);
        for &id in ids {
            let bucket = u64::from(slot_of(id, self.num_slots)) * BUCKETS as u64 / n;
            tally[bucket as usize] += 1;
        }
        let d = direction as usize;
        for (bucket, &count) in tally.iter().enumerate() {
            if count != 0 {
                counters.bytes[d][bucket]
                    .fetch_add(u64::from(count) * row_bytes, Ordering::Relaxed);
            }
        }
        counters.rows[d].fetch_add(ids.len() as u64, Ordering::Relaxed);
    }

    /// Rows counted since the table was created, all locations together: `[pull, push]`.
    pub fn row_totals(&self) -> [u64; 2] {
        let mut totals = [0u64; 2];
        for counters in self.by_location.iter().filter_map(OnceLock::get) {
            for (d, total) in totals.iter_mut().enumerate() {
                *total += counters.rows[d].load(Ordering::Relaxed);
            }
        }
        totals
    }

    /// Bytes counted since the table was created, per location: `[pull, push]`.
    pub fn totals<'l>(&self, locations: &'l Locations) -> Vec<(&'l str, [u64; 2])> {
        self.by_location
            .iter()
            .enumerate()
            .filter_map(|(i, entry)| {
                let c = entry.get()?;
                let sum = |d: usize| c.bytes[d].iter().map(|v| v.load(Ordering::Relaxed)).sum();
                Some((
                    locations.name(i).unwrap_or(OTHER_LOCATION),
                    [sum(0), sum(1)],
                ))
            })
            .collect()
    }

    /// The slot range of bucket `b`.
    pub fn bucket_range(&self, b: usize) -> (u32, u32) {
        let n = u64::from(self.num_slots);
        let first = |b: u64| (b * n).div_ceil(BUCKETS as u64) as u32;
        (first(b as u64), first(b as u64 + 1))
    }
}

/// Bytes per second of one table's slot range from one location.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficRate {
    /// Table name.
    pub table: String,
    /// First slot.
    pub slot_start: u32,
    /// One past the last slot.
    pub slot_end: u32,
    /// Client location (empty: unlabelled).
    pub location: String,
    /// Bytes pulled per second.
    pub pull_bytes_per_s: f64,
    /// Bytes pushed per second.
    pub push_bytes_per_s: f64,
}

/// A node's traffic over its window: per table, range and location, and rows per second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficReport {
    /// Ranges with traffic.
    pub rates: Vec<TrafficRate>,
    /// Rows pulled per second.
    pub pull_rows_per_s: f64,
    /// Rows pushed per second.
    pub push_rows_per_s: f64,
}

/// Key of one cumulative counter: table, location index, bucket, direction.
type Key = (String, usize, usize, usize);

/// One reading of every counter.
struct Sample {
    at: Instant,
    bytes: HashMap<Key, u64>,
    rows: [u64; 2],
}

/// Readings of the counters over the window, oldest first.
pub struct TrafficWindow {
    window: Duration,
    samples: Mutex<VecDeque<Sample>>,
}

impl TrafficWindow {
    /// A window of `window` (at least one second).
    pub fn new(window: Duration) -> Self {
        Self {
            window: window.max(Duration::from_secs(1)),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Reads `tables`' counters now and returns the rates since the oldest reading within
    /// the window (all zero on the first reading).
    pub fn rates<'a>(
        &self,
        locations: &Locations,
        tables: impl IntoIterator<Item = (&'a str, &'a TableTraffic)>,
        now: Instant,
    ) -> TrafficReport {
        let mut bytes = HashMap::new();
        let mut rows = [0u64; 2];
        let mut ranges: HashMap<String, &TableTraffic> = HashMap::new();
        for (name, traffic) in tables {
            ranges.insert(name.to_string(), traffic);
            for (loc, entry) in traffic.by_location.iter().enumerate() {
                let Some(c) = entry.get() else { continue };
                for (d, total) in rows.iter_mut().enumerate() {
                    *total += c.rows[d].load(Ordering::Relaxed);
                    for (b, v) in c.bytes[d].iter().enumerate() {
                        let v = v.load(Ordering::Relaxed);
                        if v != 0 {
                            bytes.insert((name.to_string(), loc, b, d), v);
                        }
                    }
                }
            }
        }
        let mut samples = self.samples.lock();
        while samples.len() > 1
            && samples
                .get(1)
                .is_some_and(|s| now.saturating_duration_since(s.at) >= self.window)
        {
            samples.pop_front();
        }
        let report = match samples.front() {
            Some(old) if now > old.at => {
                let secs = now.duration_since(old.at).as_secs_f64();
                rates_between(old, &bytes, rows, secs, locations, &ranges)
            }
            _ => TrafficReport::default(),
        };
        samples.push_back(Sample {
            at: now,
            bytes,
            rows,
        });
        report
    }
}

/// The rates between an older sample and the counters now, `secs` apart.
fn rates_between(
    old: &Sample,
    bytes: &HashMap<Key, u64>,
    rows: [u64; 2],
    secs: f64,
    locations: &Locations,
    ranges: &HashMap<String, &TableTraffic>,
) -> TrafficReport {
    // Counters of a table dropped and created again start over: a smaller value counts whole.
    let delta = |now: u64, then: u64| if now >= then { now - then } else { now };
    let mut by_range: HashMap<(String, usize, usize), [f64; 2]> = HashMap::new();
    for (key, &v) in bytes {
        let moved = delta(v, old.bytes.get(key).copied().unwrap_or(0));
        if moved == 0 {
            continue;
        }
        let (table, loc, bucket, d) = key;
        by_range.entry((table.clone(), *loc, *bucket)).or_default()[*d] += moved as f64 / secs;
    }
    let mut rates: Vec<TrafficRate> = by_range
        .into_iter()
        .filter_map(|((table, loc, bucket), [pull, push])| {
            let (slot_start, slot_end) = ranges.get(&table)?.bucket_range(bucket);
            Some(TrafficRate {
                table,
                slot_start,
                slot_end,
                location: locations.name(loc).unwrap_or(OTHER_LOCATION).to_string(),
                pull_bytes_per_s: pull,
                push_bytes_per_s: push,
            })
        })
        .collect();
    rates.sort_by(|a, b| {
        (&a.table, a.slot_start, &a.location).cmp(&(&b.table, b.slot_start, &b.location))
    });
    TrafficReport {
        rates,
        pull_rows_per_s: delta(rows[0], old.rows[0]) as f64 / secs,
        push_rows_per_s: delta(rows[1], old.rows[1]) as f64 / secs,
    }
}

/// A node's traffic accounting: its interned locations and its window.
pub struct Traffic {
    /// Client locations seen.
    pub locations: Locations,
    /// Readings over the window.
    pub window: TrafficWindow,
}

impl Traffic {
    /// Accounting with a window of `window`.
    pub fn new(window: Duration) -> Arc<Self> {
        Arc::new(Self {
            locations: Locations::default(),
            window: TrafficWindow::new(window),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_interned_and_overflow_into_other() {
        let l = Locations::default();
        assert_eq!(l.index(""), 0);
        assert_eq!(l.index("rack=r1"), 1);
        assert_eq!(l.index("rack=r1"), 1);
        for i in 0..MAX_LOCATIONS * 2 {
            l.index(&format!("rack=x{i}"));
        }
        assert_eq!(l.index("rack=new"), MAX_LOCATIONS - 1);
        assert_eq!(l.name(MAX_LOCATIONS - 1), Some(OTHER_LOCATION));
        assert_eq!(l.index("rack=r1"), 1, "early locations keep their index");
    }

    #[test]
    fn rates_come_from_counts_over_the_window_per_bucket_and_location() {
        let locations = Locations::default();
        let (r1, r2) = (locations.index("rack=r1"), locations.index("rack=r2"));
        let table = TableTraffic::new(4096);
        let window = TrafficWindow::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let first = window.rates(&locations, [("emb", &table)], t0);
        assert_eq!(first, TrafficReport::default());
        let ids: Vec<u64> = (0..1000).collect();
        table.record(r1, Direction::Pull, &ids, 100);
        table.record(r2, Direction::Push, &ids[..10], 100);
        let report = window.rates(&locations, [("emb", &table)], t0 + Duration::from_secs(2));
        let sum = |loc: &str, f: fn(&TrafficRate) -> f64| -> f64 {
            report
                .rates
                .iter()
                .filter(|r| r.location == loc)
                .map(f)
                .sum()
        };
        assert!((sum("rack=r1", |r| r.pull_bytes_per_s) - 50_000.0).abs() < 1e-6);
        assert!((sum("rack=r2", |r| r.push_bytes_per_s) - 500.0).abs() < 1e-6);
        assert_eq!(sum("rack=r1", |r| r.push_bytes_per_s), 0.0);
        assert!((report.pull_rows_per_s - 500.0).abs() < 1e-9);
        assert!((report.push_rows_per_s - 5.0).abs() < 1e-9);
        for r in &report.rates {
            assert_eq!(r.slot_end - r.slot_start, 4096 / BUCKETS as u32);
            let in_range = |ids: &[u64]| {
                ids.iter()
                    .filter(|&&id| (r.slot_start..r.slot_end).contains(&slot_of(id, 4096)))
                    .count() as f64
            };
            let expected = match r.location.as_str() {
                "rack=r1" => in_range(&ids) * 100.0 / 2.0,
                _ => in_range(&ids[..10]) * 100.0 / 2.0,
            };
            let got = r.pull_bytes_per_s + r.push_bytes_per_s;
            assert!((got - expected).abs() < 1e-6, "{r:?}: {expected}");
        }
        // Past the window with no traffic: the old readings age out and the rate falls to 0.
        window.rates(&locations, [("emb", &table)], t0 + Duration::from_secs(20));
        let later = window.rates(&locations, [("emb", &table)], t0 + Duration::from_secs(40));
        assert!(later.rates.is_empty(), "{later:?}");
    }
}
