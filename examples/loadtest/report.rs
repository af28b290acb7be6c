//! The figures of a run and how they are printed: a compact table to paste into
//! docs/operations.md, with the machine and the settings it was measured with, and optionally
//! the same as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::procfs::Machine;
use crate::seed::Seeded;

/// Latency percentiles in milliseconds (nearest rank).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Of `sorted` microseconds; `None` when there are none.
    pub fn of(sorted: &[u64]) -> Option<Self> {
        let last = sorted.len().checked_sub(1)?;
        let at = |q: f64| {
            // Nearest rank: the smallest value with at least q of the samples at or below it.
            let rank = (q * sorted.len() as f64).ceil() as usize;
            sorted[rank.saturating_sub(1).min(last)] as f64 / 1000.0
        };
        Some(Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: sorted[last] as f64 / 1000.0,
        })
    }
}

/// One scenario's measured window.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub scenario: &'static str,
    pub clients: usize,
    /// Length of the measured window.
    pub seconds: f64,
    /// Successful turns completed in the window.
    pub turns: u64,
    pub turns_per_second: f64,
    pub latency_ms: Option<Percentiles>,
    /// Streamed turns: time to the first `chunk` event.
    pub first_chunk_ms: Option<Percentiles>,
    /// Failed turns by cause: HTTP status and problem code, stream error code, or transport.
    pub errors: BTreeMap<String, u64>,
    /// Server process CPU (user + system) per successful turn.
    pub server_cpu_ms_per_turn: Option<f64>,
    /// All PostgreSQL processes' CPU per successful turn (local PostgreSQL only).
    pub postgres_cpu_ms_per_turn: Option<f64>,
    /// The load generator's own CPU (clients and mock model) per successful turn.
    pub loadgen_cpu_ms_per_turn: Option<f64>,
    /// Share of all cores busy during the window, whoever used them.
    pub machine_busy_percent: f64,
    /// The part of that not used by the server, PostgreSQL's processes for this database or
    /// the load generator: other work on the machine, which the figures then share it with.
    pub others_busy_percent: f64,
    /// Requests the mock model answered per successful turn (2 for a tool turn; more means
    /// retries or failed turns).
    pub model_calls_per_turn: Option<f64>,
    /// Server resident memory at the end of the window, and its peak so far.
    pub server_rss_mib: Option<f64>,
    pub server_peak_rss_mib: Option<f64>,
}

impl ScenarioResult {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What the run measured and with what.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub database: String,
    pub database_url: String,
    pub commit: String,
    pub clients: usize,
    pub warmup_seconds: f64,
    pub duration_seconds: f64,
    pub mock_latency_ms: u64,
    pub mock_tokens: u32,
    pub seeded: Option<Seeded>,
    pub server_env: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub settings: Settings,
    pub results: Vec<ScenarioResult>,
    /// Warning and error lines of the server's log by message, with their counts.
    pub server_log: Vec<(String, usize)>,
    /// PostgreSQL's vacuum/analyse record of the seeded tables, when it applies.
    pub postgres_maintenance: Vec<String>,
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

impl Report {
    pub fn render(&self) -> String {
        let m = &self.machine;
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "machine:  {} CPUs ({}), {:.1} GiB RAM, Linux {}",
            m.cpus, m.cpu_model, m.memory_gib, m.kernel
        );
        let _ = writeln!(out, "server:   agentd {} (release build)", s.commit);
        let seeded = s.seeded.as_ref().map_or_else(
            || "new database".to_owned(),
            |d| {
                format!(
                    "{} seeded conversations × {} messages ({:.0} s to seed{})",
                    d.conversations,
                    d.messages_each,
                    d.seconds,
                    if d.analyzed {
                        ", then ANALYZE"
                    } else {
                        ", never analysed"
                    }
                )
            },
        );
        let _ = writeln!(out, "database: {}, {seeded}", s.database);
        let _ = writeln!(
            out,
            "load:     {} closed-loop clients, {:.0} s warm-up, {:.0} s measured; mock model {} ms latency, {} tokens",
            s.clients, s.warmup_seconds, s.duration_seconds, s.mock_latency_ms, s.mock_tokens
        );
        if !s.server_env.is_empty() {
            let _ = writeln!(out, "server env: {}", s.server_env.join(" "));
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| scenario | turns/s | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU ms/turn | PG CPU ms/turn | loadgen CPU ms/turn | busy % (others) | model calls/turn | RSS MiB |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.results {
            let l = r.latency_ms;
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} ({:.0}) | {} | {} |",
                r.scenario,
                r.turns_per_second,
                opt(l.map(|l| l.p50), 1),
                opt(l.map(|l| l.p90), 1),
                opt(l.map(|l| l.p99), 1),
                opt(l.map(|l| l.max), 0),
                r.error_count(),
                opt(r.server_cpu_ms_per_turn, 2),
                opt(r.postgres_cpu_ms_per_turn, 2),
                opt(r.loadgen_cpu_ms_per_turn, 2),
                r.machine_busy_percent,
                r.others_busy_percent,
                opt(r.model_calls_per_turn, 2),
                opt(r.server_rss_mib, 0),
            );
        }
        for r in &self.results {
            if let Some(f) = r.first_chunk_ms {
                let _ = writeln!(
                    out,
                    "\n{}: first chunk after p50 {:.1} / p90 {:.1} / p99 {:.1} / max {:.0} ms",
                    r.scenario, f.p50, f.p90, f.p99, f.max
                );
            }
        }
        let errors: Vec<_> = self
            .results
            .iter()
            .filter(|r| !r.errors.is_empty())
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(out, "\nerrors:");
            for r in errors {
                let list: Vec<String> = r.errors.iter().map(|(k, n)| format!("{n}× {k}")).collect();
                let _ = writeln!(out, "  {}: {}", r.scenario, list.join(", "));
            }
        }
        if !self.server_log.is_empty() {
            let _ = writeln!(out, "\nserver log (warnings and errors, by message):");
            for (line, n) in self.server_log.iter().take(15) {
                let _ = writeln!(out, "  {n}× {line}");
            }
            if self.server_log.len() > 15 {
                let _ = writeln!(out, "  … {} more kinds", self.server_log.len() - 15);
            }
        }
        if !self.postgres_maintenance.is_empty() {
            let _ = writeln!(out, "\nPostgreSQL maintenance at the end:");
            for line in &self.postgres_maintenance {
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        let p = Percentiles::of(&sorted).unwrap();
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert!(Percentiles::of(&[]).is_none());
        assert_eq!(Percentiles::of(&[7000]).unwrap().p99, 7.0);
    }
}
