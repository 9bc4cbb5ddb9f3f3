//! What a node reports: its usage per table and per slot range, its checkpoints, what runs
//! on it, and the heartbeat that carries them.

use strata_storage::{CacheStats, TierStats};

/// A node's checkpoint as the coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeCheckpoint {
    /// The node's checkpoint id (e.g. `ckpt-00000042`).
    pub id: String,
    /// Wall-clock creation time, ms since the Unix epoch.
    pub created_unix_ms: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Number of tables.
    pub tables: u32,
    /// Total table rows.
    pub rows: u64,
    /// What failed verification, if anything did.
    pub corrupt: Option<String>,
}

/// Rows and bytes a node reports for one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableUsage {
    /// Table name.
    pub name: String,
    /// Rows on the node.
    pub rows: u64,
    /// Bytes on the node.
    pub bytes: u64,
    /// Rows and bytes per memory tier, by tier name ("gpu", "host").
    pub tiers: Vec<(String, TierStats)>,
    /// Counters of the table's caching tier (`None` for host-only tables).
    pub cache: Option<CacheStats>,
}

impl TableUsage {
    /// Adds another node's usage of the same table: rows, bytes, tiers (by name) and cache
    /// counters are summed (saturating: the figures come from the network). A report
    /// without tiers (a node from before they were reported) counts as host rows.
    pub fn add(&mut self, other: &TableUsage) {
        self.rows = self.rows.saturating_add(other.rows);
        self.bytes = self.bytes.saturating_add(other.bytes);
        let host_only = [(
            "host".to_string(),
            TierStats {
                rows: other.rows,
                bytes: other.bytes,
            },
        )];
        let tiers = if other.tiers.is_empty() {
            &host_only[..]
        } else {
            &other.tiers[..]
        };
        for (tier, stats) in tiers {
            match self.tiers.iter_mut().find(|(t, _)| t == tier) {
                Some((_, mine)) => {
                    mine.rows = mine.rows.saturating_add(stats.rows);
                    mine.bytes = mine.bytes.saturating_add(stats.bytes);
                }
                None => self.tiers.push((tier.clone(), *stats)),
            }
        }
        if let Some(theirs) = other.cache {
            let mine = self.cache.get_or_insert_with(CacheStats::default);
            mine.hits = mine.hits.saturating_add(theirs.hits);
            mine.misses = mine.misses.saturating_add(theirs.misses);
            mine.admissions = mine.admissions.saturating_add(theirs.admissions);
            mine.evictions = mine.evictions.saturating_add(theirs.evictions);
            mine.device_ns = mine.device_ns.saturating_add(theirs.device_ns);
        }
    }
}

/// What runs in a server process: its build, start, effective configuration and GPU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// The workspace version (e.g. `0.1.0`).
    pub version: String,
    /// The git commit the binary was built from (full hex), or `unknown`.
    pub commit: String,
    /// Whether tracked files differed from the commit.
    pub dirty: bool,
    /// The cargo profile (`debug`, `release`).
    pub profile: String,
    /// The role (`dev`, `coordinator`, `shard`).
    pub role: String,
    /// When the process started, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Each flag of the role after defaults, as (long name, value), secrets redacted.
    pub config: Vec<(String, String)>,
    /// Short hash of the configuration without its per-instance flags.
    pub config_hash: String,
    /// The data dir as given.
    pub data_dir: String,
    /// The GPU of the GPU tier (`None`: none in use).
    pub gpu: Option<GpuIdentity>,
}

/// A GPU as a node reports it (empty fields: not known).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuIdentity {
    /// The device's model name (e.g. `NVIDIA H100 80GB HBM3`).
    pub model: String,
    /// The driver's version (e.g. `580.65.06`).
    pub driver: String,
    /// The CUDA version the driver supports (e.g. `13.0`).
    pub cuda: String,
}

/// Rows and bytes a node reports for one slot range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeLoad {
    /// First slot.
    pub start: u32,
    /// One past the last slot.
    pub end: u32,
    /// Rows over all tables.
    pub rows: u64,
    /// Bytes over all tables.
    pub bytes: u64,
}

/// A node's heartbeat.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatReport {
    /// Node id.
    pub node_id: String,
    /// Its address now (empty: unchanged).
    pub address: String,
    /// Map epoch it has applied.
    pub epoch: u64,
    /// Catalog version it has applied.
    pub catalog_version: u64,
    /// Per-table usage.
    pub tables: Vec<TableUsage>,
    /// Its newest good checkpoint.
    pub last_checkpoint: Option<NodeCheckpoint>,
    /// Rows and bytes per slot range it serves.
    pub ranges: Vec<RangeLoad>,
    /// Migrations under way on the node, by id.
    pub migrations: Vec<String>,
    /// Data-path bytes per second per table, slot range and client location.
    pub traffic: Vec<TrafficSample>,
    /// Rows pulled per second over the node's traffic window.
    pub pull_rows_per_s: f64,
    /// Rows pushed per second over the node's traffic window.
    pub push_rows_per_s: f64,
    /// Whether it holds changes its newest checkpoint lacks.
    pub unsaved_changes: bool,
    /// What runs on it (`None`: a node that does not report it).
    pub identity: Option<ProcessIdentity>,
}

/// Data-path bytes per second of one table's slot range from clients at one location.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficSample {
    /// Table name.
    pub table: String,
    /// First slot.
    pub slot_start: u32,
    /// One past the last slot.
    pub slot_end: u32,
    /// Client location (`key=value,...`, keys sorted; empty: unlabelled).
    pub location: String,
    /// Bytes pulled per second.
    pub pull_bytes_per_s: f64,
    /// Bytes pushed per second.
    pub push_bytes_per_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_usage_sums_tiers_by_name_and_cache_counters() {
        let stats = |rows, bytes| TierStats { rows, bytes };
        let cache = |hits, device_ns| CacheStats {
            hits,
            misses: 1,
            admissions: 2,
            evictions: 3,
            device_ns,
        };
        let mut total = TableUsage::default();
        total.add(&TableUsage {
            name: "g".into(),
            rows: 10,
            bytes: 100,
            tiers: vec![("gpu".into(), stats(4, 40)), ("host".into(), stats(10, 60))],
            cache: Some(cache(5, 7)),
        });
        // A node from before tiers were reported: its rows count as host rows.
        total.add(&TableUsage {
            name: "g".into(),
            rows: 1,
            bytes: 9,
            tiers: Vec::new(),
            cache: None,
        });
        total.add(&TableUsage {
            name: "g".into(),
            rows: 2,
            bytes: 30,
            tiers: vec![("host".into(), stats(2, 20)), ("gpu".into(), stats(1, 10))],
            cache: Some(cache(6, 1)),
        });
        assert_eq!((total.rows, total.bytes), (13, 139));
        assert_eq!(
            total.tiers,
            vec![("gpu".into(), stats(5, 50)), ("host".into(), stats(13, 89))]
        );
        assert_eq!(
            total.cache,
            Some(CacheStats {
                hits: 11,
                misses: 2,
                admissions: 4,
                evictions: 6,
                device_ns: 8,
            })
        );
    }

    #[test]
    fn table_usage_sums_saturate() {
        let mut total = TableUsage {
            rows: u64::MAX - 1,
            ..Default::default()
        };
        total.add(&TableUsage {
            rows: 5,
            cache: Some(CacheStats {
                hits: u64::MAX,
                ..Default::default()
            }),
            ..Default::default()
        });
        total.add(&TableUsage {
            cache: Some(CacheStats {
                hits: 1,
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(total.rows, u64::MAX);
        assert_eq!(total.cache.map(|c| c.hits), Some(u64::MAX));
    }
}
