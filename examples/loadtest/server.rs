//! The server under test: the release `agentd` binary in its own process, so its CPU time can
//! be read from /proc and it runs exactly as users run it. Built first with cargo (so one
//! command suffices), started with a settings environment of its own, stopped with SIGTERM
//! (SIGKILL if it lingers) when the handle is dropped — on errors and Ctrl-C too.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

/// Builds `agentd` in release mode and returns the path of the binary cargo made.
pub fn build() -> anyhow::Result<PathBuf> {
    eprintln!("building the server: cargo build --release --bin agentd");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    // JSON messages on stdout name the binary wherever the target directory is
    // (CARGO_TARGET_DIR, a --target triple); progress and diagnostics still go to stderr.
    let mut cargo = Command::new(env!("CARGO"));
    // `cargo run` gave us the package's own variables (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, …).
    // Build scripts such as ring's rerun when they change, so passing them on would rebuild
    // half the tree here and again at the next plain `cargo build`.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                name,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
            )
        {
            cargo.env_remove(name);
        }
    }
    let out = cargo
        .args([
            "build",
            "--release",
            "--bin",
            "agentd",
            "--manifest-path",
            manifest,
        ])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    anyhow::ensure!(
        out.status.success(),
        "cargo build --release --bin agentd failed"
    );
    for line in out.stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line?) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "agentd" {
            if let Some(exe) = msg["executable"].as_str() {
                return Ok(PathBuf::from(exe));
            }
        }
    }
    anyhow::bail!("cargo built no agentd executable")
}

/// How to start the server.
pub struct Launch<'a> {
    pub bin: &'a Path,
    pub database_url: &'a str,
    pub port: u16,
    pub model_base_url: &'a str,
    /// The run's temporary directory: working directory (no stray `.env`) and log.
    pub dir: &'a Path,
    /// Extra `KEY=VALUE` settings from `--server-env`.
    pub extra_env: &'a [(String, String)],
}

/// A running server; dropping it stops the process.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub base_url: String,
    pub log: PathBuf,
    pub admin_token: String,
}

impl Server {
    pub fn start(launch: &Launch<'_>) -> anyhow::Result<Self> {
        let log = launch.dir.join("agentd.log");
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let admin_token = random_hex(32);
        let mut cmd = Command::new(launch.bin);
        // Only what we set: a developer's AGENT_* or DATABASE_* variables (or their .env,
        // hence the working directory) must not change what is measured.
        cmd.env_clear();
        for keep in [
            "PATH",
            "HOME",
            "LANG",
            "TZ",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
        ] {
            if let Some(v) = std::env::var_os(keep) {
                cmd.env(keep, v);
            }
        }
        cmd.current_dir(launch.dir)
            .env("DATABASE_URL", launch.database_url)
            .env("HOST", "127.0.0.1")
            .env("PORT", launch.port.to_string())
            .env("ADMIN_TOKEN", &admin_token)
            .env("JWT_SECRET", random_hex(48))
            .env("LLM_PROVIDER", "openai")
            .env("OPENAI_API_KEY", "sk-loadtest")
            .env("OPENAI_BASE_URL", launch.model_base_url)
            .env("BOOTSTRAP_DEMO", "false")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .env("SHUTDOWN_GRACE_SECONDS", "5");
        for (k, v) in launch.extra_env {
            cmd.env(k, v);
        }
        let child = cmd
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", launch.bin.display()))?;
        Ok(Self {
            pid: child.id(),
            child,
            base_url: format!("http://127.0.0.1:{}", launch.port),
            log,
            admin_token,
        })
    }

    /// Waits until `GET /health/ready` answers 200 (migrations done, database reachable).
    pub async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let url = format!("{}/health/ready", self.base_url);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "the server exited during start-up ({status}); its log: {}",
                    self.log.display()
                );
            }
            if let Ok(res) = http.get(&url).send().await {
                if res.status().is_success() {
                    return Ok(());
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server was not ready within 120 s; its log: {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, a few seconds for a graceful shutdown, then SIGKILL.
    pub fn stop(&mut self) {
        if !self.running() {
            return;
        }
        // std has no SIGTERM (`Child::kill` is SIGKILL) and `unsafe` is forbidden here.
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// How long the log is now: [`Server::log_summary`] reads from here on.
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// Warning and error lines in the log after byte `from`: `(level, message)` counts, most
    /// frequent first. Load often shows problems only there (retries, slow statements, 5xx
    /// causes).
    pub fn log_summary(&self, from: u64) -> Vec<(String, usize)> {
        use std::io::{Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(&self.log) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(from)).is_err() {
            return Vec::new();
        }
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                if !line.trim().is_empty() {
                    *counts
                        .entry(format!("(text) {}", shorten(&line)))
                        .or_default() += 1;
                }
                continue;
            };
            // Fields sit at the top level (flattened) or under `fields`, depending on the
            // subscriber's settings.
            let field = |name: &str| {
                entry[name]
                    .as_str()
                    .or_else(|| entry["fields"][name].as_str())
                    .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            };
            let level = field("level").unwrap_or_else(|| "?".to_owned());
            let mut message = field("message").unwrap_or_default();
            // What tells one such line from another: the error, or sqlx's slow statement.
            for detail in ["error", "summary"] {
                if let Some(text) = field(detail) {
                    message = format!("{message} [{detail}: {text}]");
                }
            }
            *counts
                .entry(format!("{level} {}", shorten(&message)))
                .or_default() += 1;
        }
        let mut out: Vec<_> = counts.into_iter().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn shorten(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// A port nobody listens on now (the server binds it a moment later).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// The organisation every scenario talks as.
pub const ORG: &str = "load";

/// Creates org [`ORG`] through the admin API (or updates it, on a database that has it) with
/// a quota that never binds, one service and every day open, and returns a new API key.
pub async fn set_up_org(http: &reqwest::Client, server: &Server) -> anyhow::Result<String> {
    let day = json!([{"open": "09:00", "close": "17:00"}]);
    let mut org = json!({
        "name": "Load",
        "tier": "custom",
        "rate_limit": {"requests": 1_000_000, "window_seconds": 1},
        "services": [{"id": "consult", "name": "Consultation", "duration_minutes": 30,
                      "price_cents": 5000, "currency": "USD"}],
        "business_hours": {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day,
                           "sat": day, "sun": day},
        "time_zone": "UTC",
    });
    let admin = format!("{}/api/v1/admin/orgs", server.base_url);
    let token = &server.admin_token;
    let mut create = org.clone();
    create["id"] = json!(ORG);
    let res = http
        .post(&admin)
        .bearer_auth(token)
        .json(&create)
        .send()
        .await?;
    if res.status() == reqwest::StatusCode::CONFLICT {
        // An --existing database from an earlier run: make the org what this run expects.
        org["active"] = json!(true);
        let res = http
            .patch(format!("{admin}/{ORG}"))
            .bearer_auth(token)
            .json(&org)
            .send()
            .await?;
        ensure_ok(res, "PATCH /api/v1/admin/orgs/load").await?;
    } else {
        ensure_ok(res, "POST /api/v1/admin/orgs").await?;
    }
    let res = http
        .post(format!("{admin}/{ORG}/keys"))
        .bearer_auth(token)
        .json(&json!({"name": "loadtest"}))
        .send()
        .await?;
    let key: serde_json::Value = ensure_ok(res, "POST /api/v1/admin/orgs/load/keys")
        .await?
        .json()
        .await?;
    key["api_key"]
        .as_str()
        .map(str::to_owned)
        .context("the key response has no api_key")
}

async fn ensure_ok(res: reqwest::Response, what: &str) -> anyhow::Result<reqwest::Response> {
    if res.status().is_success() {
        return Ok(res);
    }
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    anyhow::bail!("{what} answered {status}: {body}")
}
