//! What the load test reads from Linux's `/proc`: CPU time of a process (the server, the
//! load generator itself, PostgreSQL), the whole machine's busy time, memory, and the machine
//! description printed with the figures.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

/// Clock ticks per second of the `/proc` CPU counters (`getconf CLK_TCK`; 100 on Linux
/// almost everywhere, which is also the fallback). Read by a command because `sysconf` would
/// need `unsafe`, which this crate forbids.
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// User + system CPU time a process has used so far, in ticks.
pub fn process_ticks(pid: u32) -> anyhow::Result<u64> {
    ticks_of(&format!("/proc/{pid}/stat"))
}

/// Like [`process_ticks`], for the load generator itself (the clients and the mock model).
pub fn own_ticks() -> anyhow::Result<u64> {
    ticks_of("/proc/self/stat")
}

fn ticks_of(path: &str) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    // The command name in parentheses may hold spaces: count the fields after its last ')'.
    // There the 1st is field 3 of proc(5) (state), so utime (14) and stime (15) are the 12th
    // and 13th.
    let rest = stat
        .rfind(')')
        .map(|at| &stat[at + 1..])
        .with_context(|| format!("{path} has no command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("{path} has no CPU time field {i}"))
    };
    Ok(field(11)? + field(12)?)
}

/// CPU ticks used so far by the PostgreSQL processes that work for database `db`: the client
/// backends connected to it, and the shared ones (postmaster, WAL writer, checkpointer,
/// background writer, autovacuum) whose work it causes in part. Backends of other databases
/// — other test suites on the same server — are left out. PostgreSQL processes are those
/// whose command name (`/proc/<pid>/comm`) or command line starts with `postgres`; a backend
/// names itself `postgres: 15/main: USER DB HOST(PORT) STATE`. A process that exits between
/// two readings takes its ticks with it, so short-lived backends are missed (the server's
/// pooled connections are long-lived).
pub fn postgres_ticks(db: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if comm.trim() != "postgres" && !cmdline.starts_with(b"postgres") {
            continue;
        }
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let client = cmdline.contains('(') || cmdline.contains("[local]");
        if !client || cmdline.split_whitespace().any(|word| word == db) {
            // It may have exited since the directory was read.
            total += process_ticks(pid).unwrap_or(0);
        }
    }
    total
}

/// The machine's busy and total CPU ticks so far, over all cores (`/proc/stat`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineTicks {
    pub busy: u64,
    pub total: u64,
}

impl MachineTicks {
    pub fn now() -> Self {
        let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
            return Self::default();
        };
        let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
            return Self::default();
        };
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let values: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|v| v.parse().ok())
            .collect();
        let total: u64 = values.iter().sum();
        let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
        Self {
            busy: total.saturating_sub(idle),
            total,
        }
    }

    /// The busy share of all cores between `earlier` and `self`, in percent.
    pub fn busy_percent_since(self, earlier: Self) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        100.0 * self.busy.saturating_sub(earlier.busy) as f64 / total as f64
    }

    /// The share of all cores that was busy between `earlier` and `self` but not with `ours`
    /// ticks (the processes we account for): other work on the machine, in percent.
    pub fn percent_since(self, earlier: Self, ours: u64) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        let others = self.busy.saturating_sub(earlier.busy).saturating_sub(ours);
        100.0 * others as f64 / total as f64
    }
}

/// Resident memory of a process now (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// Peak resident memory of a process so far (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The machine the figures were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let memory_kib: u64 = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            memory_gib: memory_kib as f64 / (1024.0 * 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// Ticks as milliseconds.
pub fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / per_second.max(1) as f64)
}

/// Whether `/proc` is there to read (Linux); without it CPU figures are left out.
pub fn available() -> bool {
    Path::new("/proc/self/stat").exists()
}
