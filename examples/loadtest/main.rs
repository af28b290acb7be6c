//! The load benchmark (issue 9.7): starts the release `agentd` on SQLite or PostgreSQL with a
//! mock OpenAI-compatible model, drives closed-loop clients through the chat API, and prints
//! turns/s, latency percentiles, errors and the server's CPU per turn. A tool to run by hand,
//! not a test: `cargo run --release --example loadtest -- --help`; see README.md beside it.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "printing the report (stdout) and the progress (stderr) is this program's job"
)]

mod database;
mod mock;
mod procfs;
mod report;
mod scenario;
mod seed;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use crate::database::{Backend, Database};
use crate::procfs::MachineTicks;
use crate::report::{Percentiles, Report, ScenarioResult, Settings};
use crate::scenario::{Scenario, Target, Window};
use crate::server::{Launch, Server};

/// Load benchmark of agentd: the release server in its own process, a mock model, N
/// closed-loop clients. Prints turns/s, latency, errors and CPU per turn for each scenario.
#[derive(Debug, Parser)]
#[command(name = "loadtest")]
struct Args {
    /// Database: `postgres://USER@HOST/DB` creates a fresh database `loadtest_<random>` on that
    /// server (dropped afterwards unless --keep); `sqlite://PATH?mode=rwc` uses that file.
    /// Default: a new SQLite file in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,

    /// Use the PostgreSQL database at --database-url as it is instead of creating a fresh one
    /// (to rerun against an already seeded database).
    #[arg(long, requires = "database_url")]
    existing: bool,

    /// Keep the database (and the temporary directory with the server's log) afterwards.
    #[arg(long)]
    keep: bool,

    /// Concurrent clients; each sends its next turn as soon as its last one is answered.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    clients: u16,

    /// Warm-up per scenario, not measured (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    warmup: Duration,

    /// Measured time per scenario.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// Scenarios to run, in this order (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "reused,fresh,stream,tools,hot"
    )]
    scenario: Vec<Scenario>,

    /// Conversations to store in the organisation before measuring (e.g. 1000000).
    #[arg(long, default_value_t = 0)]
    seed_conversations: u64,

    /// Messages in each seeded conversation.
    #[arg(long, default_value_t = 2)]
    seed_messages: u32,

    /// Run ANALYZE after seeding. Off by default: a freshly loaded, never analysed database
    /// is one worth measuring (PostgreSQL's autovacuum may still analyse it meanwhile).
    #[arg(long)]
    analyze: bool,

    /// Latency of the mock model per call (before its first byte).
    #[arg(long, default_value_t = 0)]
    mock_latency_ms: u64,

    /// Length of the mock model's replies, in words (≈ tokens; one stream chunk each).
    #[arg(long, default_value_t = 20)]
    mock_tokens: u32,

    /// The server binary. Default: build it with `cargo build --release --bin agentd` first.
    #[arg(long)]
    server_bin: Option<PathBuf>,

    /// Port for the server. Default: a free one.
    #[arg(long)]
    port: Option<u16>,

    /// Extra server settings, `KEY=VALUE` (repeatable), e.g. DATABASE_MAX_CONNECTIONS=20.
    #[arg(long = "server-env", value_parser = parse_key_value)]
    server_env: Vec<(String, String)>,

    /// Print the results as JSON too (after the table).
    #[arg(long)]
    json: bool,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Everything to undo at the end, whatever happened in between.
struct Workspace {
    dir: Option<tempfile::TempDir>,
    database: Option<Database>,
}

async fn run(args: &Args) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: the load generator is a debug build and will be the bottleneck; \
             run it with `cargo run --release --example loadtest`"
        );
    }
    anyhow::ensure!(
        procfs::available(),
        "this load test reads CPU time from /proc: it runs on Linux only"
    );
    let bin = match &args.server_bin {
        // Absolute: the server runs in the temporary directory.
        Some(bin) => std::fs::canonicalize(bin)
            .with_context(|| format!("no server binary at {}", bin.display()))?,
        None => server::build()?,
    };
    let mut ws = Workspace {
        dir: Some(
            tempfile::Builder::new()
                .prefix("agentd-loadtest-")
                .tempdir()
                .context("cannot create a temporary directory")?,
        ),
        database: None,
    };
    // Ctrl-C abandons the measurement (whose guards stop the server and the mock) but not
    // the clean-up below.
    let result = tokio::select! {
        result = measure(args, &bin, &mut ws) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    // The server has stopped by now (its guard lived inside `measure`).
    if let Some(db) = &ws.database {
        if args.keep {
            if let Some(url) = db.kept() {
                eprintln!("kept the database: {url}");
            }
        } else if let Err(e) = db.remove().await {
            eprintln!("warning: could not remove the test database: {e:#}");
        }
    }
    if let Some(dir) = ws.dir.take() {
        if args.keep || result.is_err() {
            let path = dir.keep();
            eprintln!("kept the run's directory (server log): {}", path.display());
        }
    }
    result
}

async fn measure(args: &Args, bin: &std::path::Path, ws: &mut Workspace) -> anyhow::Result<()> {
    let dir = ws
        .dir
        .as_ref()
        .map(|d| d.path().to_owned())
        .context("no working directory")?;
    let db = Database::prepare(args.database_url.as_deref(), args.existing, &dir).await?;
    let database_url = db.url.clone();
    let backend = db.backend;
    let local_postgres = db.local_postgres.clone();
    let database_label = format!("{} at {}", db.version, db.label);
    ws.database = Some(db);

    let mock = mock::MockModel::start(
        Duration::from_millis(args.mock_latency_ms),
        args.mock_tokens,
    )
    .await?;
    let port = match args.port {
        Some(port) => port,
        None => server::free_port()?,
    };
    let mut server = Server::start(&Launch {
        bin,
        database_url: &database_url,
        port,
        model_base_url: &mock.base_url(),
        dir: &dir,
        extra_env: &args.server_env,
    })?;
    let clients = usize::from(args.clients);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .tcp_nodelay(true)
        // Past the server's own bounds (turn 60 s + queue 30 s): a stuck turn shows as a
        // timeout rather than holding the run forever.
        .timeout(Duration::from_secs(150))
        .build()?;
    server.wait_ready(&http).await.inspect_err(|_| {
        eprintln!("server log: {}", server.log.display());
    })?;
    let api_key = server::set_up_org(&http, &server).await?;
    eprintln!(
        "server pid {} on {} ({database_label}); log {}",
        server.pid,
        server.base_url,
        server.log.display()
    );

    let target = Target {
        http,
        base_url: server.base_url.clone(),
        api_key,
    };
    let seeded = if args.seed_conversations > 0 {
        eprintln!(
            "seeding {} conversations into org {} …",
            args.seed_conversations,
            server::ORG
        );
        Some(
            seed::seed(
                backend,
                &database_url,
                server::ORG,
                args.seed_conversations,
                args.seed_messages,
                args.analyze,
            )
            .await?,
        )
    } else {
        None
    };
    if let Some(seeded) = &seeded {
        let total = seed::check_through_api(&target, seeded.conversations).await?;
        eprintln!(
            "seeded in {:.1} s; the API lists {total} conversations",
            seeded.seconds
        );
    }

    // Set-up (and seeding, which holds SQLite's write lock for seconds) is not what is
    // measured: summarise the server's log from here on.
    let log_from = server.log_len();
    let ticks_per_second = procfs::clock_ticks_per_second();
    let mut results = Vec::new();
    for &scenario in &args.scenario {
        scenario::check(&target, scenario)
            .await
            .with_context(|| format!("scenario {} does not work", scenario.name()))?;
        eprintln!(
            "{}: {} clients, {:?} warm-up, {:?} measured …",
            scenario.name(),
            clients,
            args.warmup,
            args.duration
        );
        let result = run_scenario(
            &target,
            scenario,
            clients,
            args,
            &mut server,
            &mock,
            local_postgres.as_deref(),
            ticks_per_second,
        )
        .await?;
        eprintln!(
            "{}: {:.0} turns/s, {} errors",
            scenario.name(),
            result.turns_per_second,
            result.error_count()
        );
        results.push(result);
        anyhow::ensure!(
            server.running(),
            "the server exited during the run; its log: {}",
            server.log.display()
        );
    }

    let postgres_maintenance = if backend == Backend::Postgres && seeded.is_some() {
        seed::postgres_maintenance(&database_url)
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    server.stop();
    let report = Report {
        machine: procfs::Machine::describe(),
        settings: Settings {
            database: database_label,
            database_url: redact_url(&database_url),
            commit: commit(),
            clients,
            warmup_seconds: args.warmup.as_secs_f64(),
            duration_seconds: args.duration.as_secs_f64(),
            mock_latency_ms: args.mock_latency_ms,
            mock_tokens: args.mock_tokens,
            seeded,
            server_env: args
                .server_env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        },
        results,
        server_log: server.log_summary(log_from),
        postgres_maintenance,
    };
    println!("{}", report.render());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// CPU readings at one instant.
struct Readings {
    server: u64,
    postgres: Option<u64>,
    own: u64,
    machine: MachineTicks,
    model_calls: u64,
}

impl Readings {
    fn take(
        server_pid: u32,
        postgres: Option<&str>,
        mock: &mock::MockModel,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            server: procfs::process_ticks(server_pid)?,
            postgres: postgres.map(procfs::postgres_ticks),
            own: procfs::own_ticks()?,
            machine: MachineTicks::now(),
            model_calls: mock
                .counters
                .requests
                .load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename them"
)]
async fn run_scenario(
    target: &Target,
    scenario: Scenario,
    clients: usize,
    args: &Args,
    server: &mut Server,
    mock: &mock::MockModel,
    postgres: Option<&str>,
    ticks_per_second: u64,
) -> anyhow::Result<ScenarioResult> {
    let start = Instant::now();
    let window = Window {
        from: start + args.warmup,
        until: start + args.warmup + args.duration,
    };
    let set = scenario::spawn(target, scenario, clients, window);
    tokio::time::sleep_until(window.from.into()).await;
    let before = Readings::take(server.pid, postgres, mock)?;
    tokio::time::sleep_until(window.until.into()).await;
    let after = Readings::take(server.pid, postgres, mock)?;
    let rss = procfs::rss_kib(server.pid);
    let peak = procfs::peak_rss_kib(server.pid);
    let measured = scenario::collect(set).await?;

    let turns = measured.turns;
    let per_turn = |ticks: u64| {
        (turns > 0).then(|| {
            procfs::ticks_to_duration(ticks, ticks_per_second).as_secs_f64() * 1000.0 / turns as f64
        })
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let seconds = args.duration.as_secs_f64();
    Ok(ScenarioResult {
        scenario: scenario.name(),
        clients,
        seconds,
        turns,
        turns_per_second: turns as f64 / seconds,
        latency_ms: Percentiles::of(&measured.latencies_us),
        first_chunk_ms: Percentiles::of(&measured.first_chunk_us),
        errors: measured.errors,
        server_cpu_ms_per_turn: per_turn(after.server.saturating_sub(before.server)),
        postgres_cpu_ms_per_turn: after
            .postgres
            .zip(before.postgres)
            .and_then(|(a, b)| per_turn(a.saturating_sub(b))),
        loadgen_cpu_ms_per_turn: per_turn(after.own.saturating_sub(before.own)),
        machine_busy_percent: after.machine.busy_percent_since(before.machine),
        others_busy_percent: {
            let ours = (after.server + after.postgres.unwrap_or(0) + after.own)
                .saturating_sub(before.server + before.postgres.unwrap_or(0) + before.own);
            after.machine.percent_since(before.machine, ours)
        },
        model_calls_per_turn: (turns > 0)
            .then(|| after.model_calls.saturating_sub(before.model_calls) as f64 / turns as f64),
        server_rss_mib: rss.map(mib),
        server_peak_rss_mib: peak.map(mib),
    })
}

/// The commit the server was built from (with `+dirty` for local changes), for the report.
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR")])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "(unknown commit)".to_owned();
    };
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{head}+dirty") } else { head }
}

fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
