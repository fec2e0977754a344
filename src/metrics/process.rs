//! The `process_*` family as Prometheus's Go client exports it for etcd: resident and virtual
//! memory, CPU seconds, open and maximum file descriptors, start time; read from `/proc/self`
//! when scraped.
//!
//! Owns: reading those numbers. Never: runs outside a scrape.

use std::fs;

/// One reading of the process's numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub virtual_memory_max_bytes: Option<u64>,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
}

/// Reads `/proc/self`; fields that cannot be read stay zero.
pub fn read() -> ProcessStats {
    let mut stats = ProcessStats::default();
    // SAFETY: sysconf only reads a system constant.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    let page = u64::try_from(page).unwrap_or(4096);
    if let Ok(stat) = fs::read_to_string("/proc/self/stat") {
        // The command name may hold spaces: the fields start after its closing parenthesis.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        // Field numbers of proc(5), minus the 3 before this slice (pid, comm) and 1 for 0-based.
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        let cpu_ticks = field(14).unwrap_or(0) + field(15).unwrap_or(0);
        stats.cpu_seconds = cpu_ticks as f64 / ticks;
        stats.virtual_memory_bytes = field(23).unwrap_or(0);
        stats.resident_memory_bytes = field(24).unwrap_or(0) * page;
        let boot = boot_time_seconds().unwrap_or(0);
        stats.start_time_seconds = boot as f64 + field(22).unwrap_or(0) as f64 / ticks;
    }
    stats.open_fds = fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    if let Ok(limits) = fs::read_to_string("/proc/self/limits") {
        stats.max_fds = soft_limit(&limits, "Max open files");
        stats.virtual_memory_max_bytes = soft_limit(&limits, "Max address space");
    }
    stats
}

fn boot_time_seconds() -> Option<u64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of one `/proc/self/limits` row; `unlimited` is the largest value, as Go's
/// procfs reports it.
fn soft_limit(limits: &str, name: &str) -> Option<u64> {
    let row = limits.lines().find(|l| l.starts_with(name))?;
    let soft = row[name.len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let stats = read();
        assert!(stats.resident_memory_bytes > 0);
        assert!(stats.open_fds > 0);
        assert!(stats.max_fds.unwrap_or(0) >= stats.open_fds);
        assert!(stats.start_time_seconds > 1.0e9);
    }

    #[test]
    fn limits_rows() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n\
                      Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(soft_limit(limits, "Max open files"), Some(1024));
        assert_eq!(soft_limit(limits, "Max address space"), Some(u64::MAX));
    }
}
