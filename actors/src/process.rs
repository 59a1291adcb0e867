//! Process metrics read from `/proc` at scrape time, under the standard `process_*` names
//! Prometheus users and dashboards expect (the same names the Go and Python clients export):
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_cpu_seconds_total`, `process_threads` and
//! `process_start_time_seconds`.
//!
//! Invariants:
//! - Reading never fails a scrape: a `/proc` file that cannot be read or parsed (another OS, a
//!   restricted sandbox) leaves its series out, it does not produce an error or a made-up value.
//! - The parsers are pure functions over the files' text, tested on their own; the only I/O is
//!   in [`ProcessStats::read`] and [`boot_time`].
//! - Works under systemd's `ProcSubset=pid` (the shipped units), which hides every `/proc` file
//!   that is not a process's own, `/proc/stat` and `/proc/uptime` included: the start time needs
//!   the boot time, which then comes from a fresh thread's start (see [`boot_time`]). `accumen_memory_usage_bytes` and `accumen_goroutines` come from
//!   the same read (`NodeMetrics::refresh_process`), so the two views never disagree in method.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of the CPU times in `/proc/PID/stat`. The kernel exports them in
/// `USER_HZ`, which is 100 on every architecture Linux runs on today (it is not `CONFIG_HZ`);
/// Prometheus' own procfs library assumes the same, and `sysconf` would need `unsafe`.
const USER_HZ: f64 = 100.0;

/// One reading of the process's resources. `None` fields could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    pub resident_memory_bytes: Option<u64>,
    pub virtual_memory_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Unix time the process started, in seconds.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads `/proc/self/{status,stat,limits,fd}`, and the boot time once ([`boot_time`]).
    pub fn read() -> Self {
        let mut out = ProcessStats::default();
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let s = parse_status(&status);
            out.resident_memory_bytes = s.resident_memory_bytes;
            out.virtual_memory_bytes = s.virtual_memory_bytes;
            out.threads = s.threads;
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some(s) = parse_stat(&stat)
        {
            out.cpu_seconds = Some(s.cpu_seconds);
            out.start_time_seconds = boot_time().map(|b| b + s.start_ticks as f64 / USER_HZ);
            // VmSize is in kB; stat's vsize is exact bytes: prefer it.
            out.virtual_memory_bytes = Some(s.virtual_memory_bytes);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            out.max_fds = parse_max_open_files(&limits);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself is one of the entries; count it like every exporter
            // does (it is an open descriptor while we look).
            out.open_fds = Some(dir.count() as u64);
        }
        out
    }
}

/// What `/proc/self/status` gives: `VmRSS`, `VmSize` (kB) and `Threads`.
pub fn parse_status(text: &str) -> ProcessStats {
    let mut out = ProcessStats::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(n) = value.parse::<u64>() else {
            continue;
        };
        match key {
            "VmRSS:" => out.resident_memory_bytes = n.checked_mul(1024),
            "VmSize:" => out.virtual_memory_bytes = n.checked_mul(1024),
            "Threads:" => out.threads = Some(n),
            _ => {}
        }
    }
    out
}

/// The fields of `/proc/self/stat` the metrics use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub cpu_seconds: f64,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
    pub virtual_memory_bytes: u64,
}

/// Parses `/proc/self/stat`. The second field (the command name, in parentheses) may contain
/// spaces and parentheses itself, so the fields are counted after its *last* `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: state is field 3; utime 14, stime 15, starttime 22, vsize 23 (1-based).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let (utime, stime) = (field(14)?, field(15)?);
    Some(Stat {
        cpu_seconds: (utime.saturating_add(stime)) as f64 / USER_HZ,
        start_ticks: field(22)?,
        virtual_memory_bytes: field(23)?,
    })
}

/// Boot time, Unix seconds, read once: `/proc/stat`'s `btime` where it is visible, otherwise
/// [`boot_time_from_thread`]. Both are "the wall clock now minus the time since boot", so they
/// agree to a clock tick; the value is kept so that every scrape exports the same start time.
pub fn boot_time() -> Option<f64> {
    static BOOT: OnceLock<Option<f64>> = OnceLock::new();
    *BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|t| parse_boot_time(&t))
            .map(|b| b as f64)
            .or_else(boot_time_from_thread)
    })
}

/// Boot time without `/proc/stat`: a thread started now has its start time, in clock ticks since
/// boot, in `/proc/thread-self/stat` (its own process's file, which `ProcSubset=pid` leaves
/// visible), so boot = wall clock now - those ticks / `USER_HZ`. Exact to a tick (10 ms) and a
/// thread spawn; no `unsafe` clock call (`CLOCK_BOOTTIME`) needed.
pub fn boot_time_from_thread() -> Option<f64> {
    std::thread::Builder::new()
        .name("boot-time".into())
        .spawn(|| {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
            let s = parse_stat(&stat)?;
            Some(now.as_secs_f64() - s.start_ticks as f64 / USER_HZ)
        })
        .ok()?
        .join()
        .ok()
        .flatten()
}

/// The `btime` line of `/proc/stat`: boot time, Unix seconds.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits` (`None` if `unlimited`).
pub fn parse_max_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Encodes the `process_*` series from a fresh [`ProcessStats::read`] on every scrape.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = ProcessStats::read();
        let gauges: [(&str, &str, Option<u64>); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_memory_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.virtual_memory_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                s.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors (soft limit)",
                s.max_fds,
            ),
            ("process_threads", "Number of OS threads", s.threads),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
        }
        if let Some(v) = s.cpu_seconds {
            // Registered without `_total`: the encoder adds it to counters.
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                c.metric_type(),
            )?)?;
        }
        if let Some(v) = s.start_time_seconds {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\taccumen\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t  900000 kB\nVmSize:\t  812344 kB\nVmRSS:\t   40960 kB\nThreads:\t17\n\
        SigQ:\t0/31457\n";

    #[test]
    fn status_fields() {
        let s = parse_status(STATUS);
        assert_eq!(s.resident_memory_bytes, Some(40960 * 1024));
        assert_eq!(s.virtual_memory_bytes, Some(812344 * 1024));
        assert_eq!(s.threads, Some(17));
        // Garbage and missing lines leave the fields unset rather than inventing values.
        let s = parse_status("VmRSS:\tlots kB\nThreads:\n");
        assert_eq!(s, ProcessStats::default());
    }

    #[test]
    fn stat_fields_counted_after_the_last_parenthesis() {
        // A command name with spaces and parentheses must not shift the fields.
        let stat = "4242 (we) ird (name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
            250 130 0 0 20 0 17 0 123456 831848448 10240 18446744073709551615 1 1 0 0 0 0 0 \
            4096 17640 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(stat).unwrap();
        assert_eq!(s.cpu_seconds, 3.8);
        assert_eq!(s.start_ticks, 123456);
        assert_eq!(s.virtual_memory_bytes, 831848448);
        assert_eq!(parse_stat("4242 (accumen) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis at all"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn boot_time_and_fd_limit() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nintr 5\nbtime 1764670000\nprocesses 9\n"),
            Some(1764670000)
        );
        assert_eq!(parse_boot_time("cpu 1 2 3\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
            Max cpu time              unlimited            unlimited            seconds   \n\
            Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_open_files(unlimited), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let s = ProcessStats::read();
        assert!(s.resident_memory_bytes.unwrap() > 0);
        assert!(s.virtual_memory_bytes.unwrap() >= s.resident_memory_bytes.unwrap());
        assert!(s.threads.unwrap() >= 1);
        assert!(s.open_fds.unwrap() >= 3);
        assert!(s.cpu_seconds.is_some());
        let start = s.start_time_seconds.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // Started in the past, and not before 2020 (a wrong tick rate would show here).
        assert!(start <= now + 1.0 && start > 1_577_836_800.0, "{start}");
    }

    /// What the node sees under `ProcSubset=pid`: no `/proc/stat`, so the boot time comes from a
    /// fresh thread's start; it must agree with `btime` (to rounding: btime is whole seconds).
    #[cfg(target_os = "linux")]
    #[test]
    fn boot_time_without_proc_stat_agrees_with_btime() {
        let from_thread = boot_time_from_thread().unwrap();
        let btime = parse_boot_time(&std::fs::read_to_string("/proc/stat").unwrap()).unwrap();
        assert!(
            (from_thread - btime as f64).abs() < 2.0,
            "{from_thread} vs btime {btime}"
        );
        assert_eq!(boot_time(), Some(btime as f64));
    }

    #[test]
    fn collector_exports_the_standard_names() {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        if cfg!(target_os = "linux") {
            for name in [
                "process_resident_memory_bytes",
                "process_virtual_memory_bytes",
                "process_open_fds",
                "process_max_fds",
                "process_threads",
                "process_start_time_seconds",
            ] {
                assert!(text.contains(&format!("# TYPE {name} gauge")), "{text}");
            }
            assert!(text.contains("process_cpu_seconds_total "), "{text}");
        }
    }
}
