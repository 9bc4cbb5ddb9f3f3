//! The standard `process_*` series (CPU time, memory, file descriptors, threads, start
//! time), read from `/proc/self` on every scrape. Elsewhere than Linux there are none.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// What `/proc/self` says about this process now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory size, bytes.
    pub virtual_bytes: Option<u64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
    /// Threads.
    pub threads: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Soft limit of open file descriptors (`None` when unlimited).
    pub max_fds: Option<u64>,
}

/// Fields of `/proc/self/stat` this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    utime_ticks: u64,
    stime_ticks: u64,
    threads: u64,
    start_ticks: u64,
    vsize_bytes: u64,
    rss_pages: u64,
}

/// Parses `/proc/[pid]/stat`: the fields after the command name (which may hold spaces
/// and parentheses, so the last `)` ends it).
fn parse_stat(text: &str) -> Option<Stat> {
    let after = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name; field n is at index n - 3.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        threads: field(20)?,
        start_ticks: field(22)?,
        vsize_bytes: field(23)?,
        rss_pages: field(24)?,
    })
}

/// Boot time in seconds since the Unix epoch (`btime` of `/proc/stat`).
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits` (`None`: unlimited or absent).
fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl ProcessStats {
    /// This process's figures now (each one `None` where `/proc` could not be read).
    #[cfg(target_os = "linux")]
    pub fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let ticks = clock_ticks_per_second();
        let page = page_size();
        let stat = read("/proc/self/stat").as_deref().and_then(parse_stat);
        let boot = read("/proc/stat").as_deref().and_then(parse_boot_time);
        Self {
            cpu_seconds: stat
                .zip(ticks)
                .map(|(s, t)| s.utime_ticks.saturating_add(s.stime_ticks) as f64 / t as f64),
            resident_bytes: stat.zip(page).map(|(s, p)| s.rss_pages.saturating_mul(p)),
            virtual_bytes: stat.map(|s| s.vsize_bytes),
            start_time_seconds: stat
                .zip(ticks)
                .zip(boot)
                .map(|((s, t), b)| b as f64 + s.start_ticks as f64 / t as f64),
            threads: stat.map(|s| s.threads),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as u64),
            max_fds: read("/proc/self/limits").as_deref().and_then(parse_max_fds),
        }
    }

    /// Nothing outside Linux.
    #[cfg(not(target_os = "linux"))]
    pub fn read() -> Self {
        Self::default()
    }
}

/// `sysconf(_SC_CLK_TCK)`: the unit of the CPU and start times in `/proc/self/stat`.
#[cfg(target_os = "linux")]
fn clock_ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value; it has no memory arguments.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

/// `sysconf(_SC_PAGESIZE)`: the unit of the resident set size in `/proc/self/stat`.
#[cfg(target_os = "linux")]
fn page_size() -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value; it has no memory arguments.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

/// Encodes the `process_*` families from `/proc/self` on each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = ProcessStats::read();
        if let Some(v) = s.cpu_seconds {
            let counter = ConstCounter::new(v);
            let name = "process_cpu";
            let help = "Total user and system CPU time spent in seconds.";
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                Some(&Unit::Seconds),
                counter.metric_type(),
            )?)?;
        }
        let gauges: [(&str, &str, Option<Unit>, Option<f64>); 6] = [
            (
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(Unit::Bytes),
                s.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory",
                "Virtual memory size in bytes.",
                Some(Unit::Bytes),
                s.virtual_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                s.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                None,
                s.max_fds.map(|v| v as f64),
            ),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch in seconds.",
                Some(Unit::Seconds),
                s.start_time_seconds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process.",
                None,
                s.threads.map(|v| v as f64),
            ),
        ];
        for (name, help, unit, value) in gauges {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let text = "4242 (strata (x) y) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0 17 0 12345 \
                    104857600 2560 18446744073709551615 1 2 3 4 5";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                utime_ticks: 150,
                stime_ticks: 50,
                threads: 17,
                start_ticks: 12345,
                vsize_bytes: 104_857_600,
                rss_pages: 2560,
            })
        );
        assert_eq!(parse_stat("4242 (cut short) S 1 2"), None);
        assert_eq!(parse_stat("no name at all"), None);
    }

    #[test]
    fn boot_time_and_fd_limit_are_read() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_boot_time("cpu 1\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(
            parse_max_fds(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read_from_proc() {
        let s = ProcessStats::read();
        assert!(s.cpu_seconds.is_some_and(|v| v >= 0.0), "{s:?}");
        assert!(s.resident_bytes.is_some_and(|v| v > 0), "{s:?}");
        assert!(s.virtual_bytes.is_some_and(|v| v > 0), "{s:?}");
        assert!(s.threads.is_some_and(|v| v >= 1), "{s:?}");
        assert!(s.open_fds.is_some_and(|v| v >= 1), "{s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        assert!(
            s.start_time_seconds
                .is_some_and(|t| t <= now + 1.0 && t > now - 86_400.0 * 365.0),
            "{s:?}"
        );
    }
}
