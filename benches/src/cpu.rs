//! Machine-wide CPU time over the measured window, from `/proc/stat`.
//!
//! Server and load generator share the machine in W1, so the machine's busy time per step is
//! what a step costs end to end. Split into user and kernel time it shows how much of a
//! networked step goes to the kernel's TCP work, which bounds networked ÷ in-process.

use std::time::Duration;

/// Cumulative busy CPU time of the whole machine (all cores) at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuTimes {
    /// User and nice time, seconds.
    pub user_s: f64,
    /// Kernel time (system, hard and soft interrupts), seconds.
    pub kernel_s: f64,
}

impl CpuTimes {
    /// Read the machine's totals; `None` where `/proc/stat` is absent or unreadable.
    pub fn now() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        Self::parse(&text, clock_ticks_per_s())
    }

    /// Parse the aggregate `cpu` line of `/proc/stat` text, with `ticks_per_s` clock ticks a second.
    pub fn parse(stat: &str, ticks_per_s: f64) -> Option<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let mut fields = line.split_whitespace().skip(1).map(str::parse::<u64>);
        let mut next = || fields.next().and_then(Result::ok);
        // user nice system idle iowait irq softirq
        let (user, nice, system) = (next()?, next()?, next()?);
        let (_idle, _iowait, irq, softirq) = (next()?, next()?, next()?, next()?);
        Some(Self {
            user_s: (user + nice) as f64 / ticks_per_s,
            kernel_s: (system + irq + softirq) as f64 / ticks_per_s,
        })
    }

    /// The busy time spent between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user_s: (self.user_s - earlier.user_s).max(0.0),
            kernel_s: (self.kernel_s - earlier.kernel_s).max(0.0),
        }
    }
}

fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Machine CPU per counted step over the window, as reported in the summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPerStep {
    /// User time per step, ms (all processes on the machine).
    pub user_ms: f64,
    /// Kernel time per step, ms.
    pub kernel_ms: f64,
    /// Mean busy cores over the window.
    pub busy_cores: f64,
}

impl CpuPerStep {
    /// Divide the window's busy time by its steps; `None` without steps.
    pub fn new(used: CpuTimes, steps: u64, window: Duration) -> Option<Self> {
        if steps == 0 || window.is_zero() {
            return None;
        }
        let per_step = 1000.0 / steps as f64;
        Some(Self {
            user_ms: used.user_s * per_step,
            kernel_ms: used.kernel_s * per_step,
            busy_cores: (used.user_s + used.kernel_s) / window.as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_aggregate_line_and_splits_user_from_kernel() {
        let stat = "cpu  100 20 30 400 5 6 7 0 0 0\ncpu0 50 10 15 200 2 3 3 0 0 0\n";
        let t = CpuTimes::parse(stat, 100.0).expect("parses");
        assert_eq!(t.user_s, 1.2);
        assert_eq!(t.kernel_s, 0.43);
    }

    #[test]
    fn rejects_text_without_a_cpu_line() {
        assert_eq!(CpuTimes::parse("intr 1 2 3\n", 100.0), None);
        assert_eq!(CpuTimes::parse("cpu 1 2\n", 100.0), None);
    }

    #[test]
    fn per_step_divides_by_steps_and_window() {
        let used = CpuTimes {
            user_s: 3.0,
            kernel_s: 1.0,
        };
        let p = CpuPerStep::new(used, 2000, Duration::from_secs(2)).expect("has steps");
        assert_eq!(p.user_ms, 1.5);
        assert_eq!(p.kernel_ms, 0.5);
        assert_eq!(p.busy_cores, 2.0);
        assert_eq!(CpuPerStep::new(used, 0, Duration::from_secs(2)), None);
    }

    #[test]
    fn reads_this_machine_when_proc_stat_exists() {
        if std::path::Path::new("/proc/stat").exists() {
            let a = CpuTimes::now().expect("readable /proc/stat");
            let b = CpuTimes::now().expect("readable /proc/stat");
            let d = b.since(&a);
            assert!(d.user_s >= 0.0 && d.kernel_s >= 0.0);
        }
    }
}
