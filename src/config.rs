//! Settings: command-line flags override the environment, which overrides `.env` (loaded by
//! `main` with dotenvy, never overriding real environment variables), which overrides the
//! defaults written here. Every variable is listed in `.env.example`.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// A secret string that never prints itself (Debug and logs show `[redacted]`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured when the output is a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Which responses get an access-log line (`ACCESS_LOG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessLog {
    /// Every response, at info.
    All,
    /// Responses slower than ACCESS_LOG_SLOW_MS, at info (5xx are always logged with their
    /// cause by the problem renderer, 4xx at debug).
    Slow,
    /// None.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LlmProvider {
    /// The built-in deterministic model: no network, no key.
    Offline,
    /// Any OpenAI-compatible Chat Completions endpoint (OPENAI_*).
    Openai,
}

/// Server settings shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1", global = true)]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080, global = true)]
    pub port: u16,

    /// Database: `sqlite://PATH?mode=rwc` (embedded, the default) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://./data/agentd.db?mode=rwc",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,

    /// Largest number of pooled database connections.
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub database_max_connections: u32,

    /// PostgreSQL: seconds a request waits for a pooled connection (all busy, or the
    /// database unreachable) before it answers 503. Short, so an outage fails fast.
    #[arg(
        long,
        env = "DATABASE_ACQUIRE_TIMEOUT_SECONDS",
        default_value_t = 3,
        global = true
    )]
    pub database_acquire_timeout_seconds: u64,

    /// Bearer token for the admin API (/api/v1/admin/*). Unset: the admin API is off.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub admin_token: Option<Secret>,

    /// HS256 key for end-user tokens. Unset: a random key per start (tokens die on restart).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<Secret>,

    /// Longest lifetime, in seconds, of a token minted through POST /api/v1/auth/token.
    #[arg(
        long,
        env = "JWT_MAX_TTL_SECONDS",
        default_value_t = 86_400,
        global = true
    )]
    pub jwt_max_ttl_seconds: u64,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,

    /// Which responses get an access-log line: all, slow (slower than ACCESS_LOG_SLOW_MS) or
    /// off. A line per request costs more CPU than a chat turn's own work on a busy server.
    #[arg(long, env = "ACCESS_LOG", value_enum, default_value_t = AccessLog::Slow, global = true)]
    pub access_log: AccessLog,

    /// With ACCESS_LOG=slow: responses that took longer than this many milliseconds to start.
    #[arg(
        long,
        env = "ACCESS_LOG_SLOW_MS",
        default_value_t = 1000,
        global = true
    )]
    pub access_log_slow_ms: u64,

    /// Browser origins allowed for every organisation (comma-separated); orgs add their own.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', global = true)]
    pub cors_origins: Vec<String>,

    /// Seconds a request may take before it is cut off with 408 REQUEST_TIMEOUT. Keep it above
    /// AGENT_TURN_TIMEOUT_SECONDS + TURN_QUEUE_TIMEOUT_SECONDS.
    #[arg(
        long,
        env = "REQUEST_TIMEOUT_SECONDS",
        default_value_t = 120,
        global = true
    )]
    pub request_timeout_seconds: u64,

    /// Seconds a client has, from the first byte of a request, to send its whole head (request
    /// line and headers); then the connection is closed. Stops clients that trickle headers.
    #[arg(
        long,
        env = "HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = 10,
        global = true
    )]
    pub header_read_timeout_seconds: u64,

    /// Seconds a connection may sit idle (no request in progress, none started) before it is
    /// closed, the first request included. Keep it above your load balancer's idle timeout.
    #[arg(
        long,
        env = "KEEP_ALIVE_TIMEOUT_SECONDS",
        default_value_t = 75,
        global = true
    )]
    pub keep_alive_timeout_seconds: u64,

    /// Most client connections open at once; past it a new connection gets 503 and is closed.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000, global = true)]
    pub max_connections: usize,

    /// Model provider: offline or openai. Default: openai when OPENAI_API_KEY is set, else offline.
    #[arg(long, env = "LLM_PROVIDER", value_enum, global = true)]
    pub llm_provider: Option<LlmProvider>,

    /// API key of the OpenAI-compatible endpoint.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true, global = true)]
    pub openai_api_key: Option<Secret>,

    /// Base URL of the OpenAI-compatible API (OpenAI, Azure gateway, Ollama, vLLM, llama.cpp).
    #[arg(
        long,
        env = "OPENAI_BASE_URL",
        default_value = "https://api.openai.com/v1",
        global = true
    )]
    pub openai_base_url: String,

    /// Model used when an organisation sets none.
    #[arg(
        long,
        env = "OPENAI_MODEL",
        default_value = "gpt-4o-mini",
        global = true
    )]
    pub openai_model: String,

    /// Seconds one call to the model may take (each retry gets its own).
    #[arg(
        long,
        env = "OPENAI_TIMEOUT_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub openai_timeout_seconds: u64,

    /// Retries of a model call after 429, 5xx, connection errors and timeouts.
    #[arg(long, env = "OPENAI_MAX_RETRIES", default_value_t = 2, global = true)]
    pub openai_max_retries: u32,

    /// Model calls per turn, at most (each may run tools).
    #[arg(long, env = "AGENT_MAX_STEPS", default_value_t = 8, global = true)]
    pub agent_max_steps: u32,

    /// Earlier messages the model sees in each turn.
    #[arg(
        long,
        env = "AGENT_HISTORY_WINDOW",
        default_value_t = 20,
        global = true
    )]
    pub agent_history_window: u32,

    /// Seconds a whole turn may take (504 AGENT_TIMEOUT past it).
    #[arg(
        long,
        env = "AGENT_TURN_TIMEOUT_SECONDS",
        default_value_t = 60,
        global = true
    )]
    pub agent_turn_timeout_seconds: u64,

    /// Seconds a turn waits for a running turn of the same conversation (409 TURN_IN_PROGRESS past it).
    #[arg(
        long,
        env = "TURN_QUEUE_TIMEOUT_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub turn_queue_timeout_seconds: u64,

    /// Seconds a turn lease lasts without renewal. Running turns renew theirs every third of
    /// it, so a crashed instance's conversations take turns again within this time.
    #[arg(long, env = "LEASE_TTL_SECONDS", default_value_t = 10, global = true)]
    pub lease_ttl_seconds: u64,

    /// This instance's name on the turn leases it holds. Default: the host name and PORT, so
    /// a restarted instance recognises (and frees at once) the leases of its previous life;
    /// set it when several instances share a host name and port (PORT=0 means a random one).
    #[arg(long, env = "INSTANCE_ID", global = true)]
    pub instance_id: Option<String>,

    /// Seconds between keep-alive comments on a silent event stream.
    #[arg(
        long,
        env = "SSE_KEEPALIVE_SECONDS",
        default_value_t = 15,
        global = true
    )]
    pub sse_keepalive_seconds: u64,

    /// Seconds between sweeps of idle sessions (older than their org's session TTL).
    #[arg(
        long,
        env = "SESSION_SWEEP_INTERVAL_SECONDS",
        default_value_t = 300,
        global = true
    )]
    pub session_sweep_interval_seconds: u64,

    /// Seconds an API key's row (and an org's settings) stay cached. A backstop only:
    /// revocations and org changes reach every instance through the change log within
    /// AUTH_SYNC_INTERVAL_MS.
    #[arg(
        long,
        env = "AUTH_CACHE_TTL_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub auth_cache_ttl_seconds: u64,

    /// Milliseconds between reads of the change log (revocations, org changes) that every
    /// instance follows to drop what it cached.
    #[arg(
        long,
        env = "AUTH_SYNC_INTERVAL_MS",
        default_value_t = 500,
        global = true
    )]
    pub auth_sync_interval_ms: u64,

    /// Failed authentications a client address may make per minute; past that it gets 429
    /// with Retry-After for every credential until its allowance refills.
    #[arg(
        long,
        env = "AUTH_FAILURES_PER_MINUTE",
        default_value_t = 30,
        global = true
    )]
    pub auth_failures_per_minute: u32,

    /// Messages (sends, replies, broadcasts) one mailbox agent may send per minute.
    #[arg(
        long,
        env = "MAILBOX_SENDS_PER_MINUTE",
        default_value_t = 100,
        global = true
    )]
    pub mailbox_sends_per_minute: u32,

    /// Searches (messages and contacts) one mailbox agent may run per minute.
    #[arg(
        long,
        env = "MAILBOX_SEARCHES_PER_MINUTE",
        default_value_t = 600,
        global = true
    )]
    pub mailbox_searches_per_minute: u32,

    /// Proxies (IP addresses, comma-separated) whose X-Forwarded-For names the client; the
    /// address rate limits count failures against. Empty: the connection's peer address.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', global = true)]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Fraction (0..1] of an organisation's quota one end user may use on their own.
    #[arg(
        long,
        env = "RATE_LIMIT_END_USER_SHARE",
        default_value_t = 0.25,
        global = true
    )]
    pub rate_limit_end_user_share: f64,

    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(
        long,
        env = "SHUTDOWN_GRACE_SECONDS",
        default_value_t = 20,
        global = true
    )]
    pub shutdown_grace_seconds: u64,

    /// On first start with an empty database, create org `demo` and print its API key.
    #[arg(long, env = "BOOTSTRAP_DEMO", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub bootstrap_demo: bool,

    /// Let webhook targets resolve to loopback, private, link-local or metadata addresses.
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE_NETWORKS", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub webhook_allow_private_networks: bool,

    /// Delays between webhook delivery attempts (comma-separated durations); then it fails.
    #[arg(
        long,
        env = "WEBHOOK_RETRY_SCHEDULE",
        default_value = "5s,5m,30m,2h,5h,10h,10h",
        global = true
    )]
    pub webhook_retry_schedule: String,

    /// Seconds of continuous delivery failure after which a webhook endpoint is disabled.
    #[arg(
        long,
        env = "WEBHOOK_DISABLE_AFTER_SECONDS",
        default_value_t = 432_000,
        global = true
    )]
    pub webhook_disable_after_seconds: u64,

    /// Seconds one webhook delivery attempt may take, connecting included.
    #[arg(
        long,
        env = "WEBHOOK_TIMEOUT_SECONDS",
        default_value_t = 10,
        global = true
    )]
    pub webhook_timeout_seconds: u64,

    /// Seconds between passes of the webhook delivery worker.
    #[arg(
        long,
        env = "WEBHOOK_WORKER_INTERVAL_SECONDS",
        default_value_t = 1,
        global = true
    )]
    pub webhook_worker_interval_seconds: u64,
}

impl Settings {
    /// Defaults with no flags and no environment, for tests and embedding.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            database_url: database_url.into(),
            database_max_connections: 10,
            database_acquire_timeout_seconds: 3,
            admin_token: None,
            jwt_secret: None,
            jwt_max_ttl_seconds: 86_400,
            log_format: LogFormat::Pretty,
            access_log: AccessLog::Slow,
            access_log_slow_ms: 1000,
            cors_origins: Vec::new(),
            request_timeout_seconds: 120,
            header_read_timeout_seconds: 10,
            keep_alive_timeout_seconds: 75,
            max_connections: 10_000,
            llm_provider: None,
            openai_api_key: None,
            openai_base_url: "https://api.openai.com/v1".to_owned(),
            openai_model: "gpt-4o-mini".to_owned(),
            openai_timeout_seconds: 30,
            openai_max_retries: 2,
            agent_max_steps: 8,
            agent_history_window: 20,
            agent_turn_timeout_seconds: 60,
            turn_queue_timeout_seconds: 30,
            session_sweep_interval_seconds: 300,
            lease_ttl_seconds: 10,
            auth_sync_interval_ms: 500,
            auth_failures_per_minute: 30,
            mailbox_sends_per_minute: 100,
            mailbox_searches_per_minute: 600,
            trusted_proxies: Vec::new(),
            instance_id: None,
            sse_keepalive_seconds: 15,
            auth_cache_ttl_seconds: 30,
            rate_limit_end_user_share: 0.25,
            shutdown_grace_seconds: 20,
            bootstrap_demo: false,
            webhook_allow_private_networks: false,
            webhook_retry_schedule: "5s,5m,30m,2h,5h,10h,10h".to_owned(),
            webhook_disable_after_seconds: 432_000,
            webhook_timeout_seconds: 10,
            webhook_worker_interval_seconds: 1,
        }
    }

    /// Refuses settings that would run but be unsafe or meaningless.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = &self.admin_token {
            if !t.expose().is_empty() && t.expose().len() < 16 {
                return Err(
                    "ADMIN_TOKEN must be at least 16 characters (try: openssl rand -hex 32)".into(),
                );
            }
        }
        if let Some(s) = &self.jwt_secret {
            if s.expose().len() < 32 {
                return Err(
                    "JWT_SECRET must be at least 32 bytes (try: openssl rand -hex 32)".into(),
                );
            }
        }
        if self.provider() == LlmProvider::Openai && self.openai_api_key.is_none() {
            return Err("LLM_PROVIDER=openai needs OPENAI_API_KEY".into());
        }
        if !(1..=600).contains(&self.lease_ttl_seconds) {
            return Err("LEASE_TTL_SECONDS must be between 1 and 600".into());
        }
        if !(1..=32).contains(&self.agent_max_steps) {
            return Err("AGENT_MAX_STEPS must be between 1 and 32".into());
        }
        if !(self.rate_limit_end_user_share > 0.0 && self.rate_limit_end_user_share <= 1.0) {
            return Err("RATE_LIMIT_END_USER_SHARE must be in (0, 1]".into());
        }
        if !(1..=300).contains(&self.database_acquire_timeout_seconds) {
            return Err("DATABASE_ACQUIRE_TIMEOUT_SECONDS must be between 1 and 300".into());
        }
        if !(1..=3600).contains(&self.header_read_timeout_seconds) {
            return Err("HEADER_READ_TIMEOUT_SECONDS must be between 1 and 3600".into());
        }
        if !(1..=86_400).contains(&self.keep_alive_timeout_seconds) {
            return Err("KEEP_ALIVE_TIMEOUT_SECONDS must be between 1 and 86400".into());
        }
        if self.max_connections == 0 {
            return Err("MAX_CONNECTIONS must be at least 1".into());
        }
        parse_schedule(&self.webhook_retry_schedule)?;
        Ok(())
    }

    /// The provider in force: LLM_PROVIDER, else openai when a key is set, else offline.
    pub fn provider(&self) -> LlmProvider {
        self.llm_provider
            .unwrap_or(if self.openai_api_key.is_some() {
                LlmProvider::Openai
            } else {
                LlmProvider::Offline
            })
    }

    /// The instance's lease owner name: INSTANCE_ID, else the host name and port (stable
    /// across restarts), else — with PORT=0 — a random one.
    pub fn instance_id(&self) -> String {
        if let Some(id) = self.instance_id.as_deref().filter(|s| !s.is_empty()) {
            return id.to_owned();
        }
        if self.port == 0 {
            return format!("instance-{}", uuid::Uuid::new_v4().simple());
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        format!("{host}:{}", self.port)
    }

    /// The admin token, if one is configured; an empty ADMIN_TOKEN counts as none.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token
            .as_ref()
            .map(Secret::expose)
            .filter(|t| !t.is_empty())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds.max(1))
    }

    pub fn auth_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.auth_cache_ttl_seconds)
    }
}
/// WEBHOOK_RETRY_SCHEDULE's default: eight attempts over about 33 hours.
pub const DEFAULT_RETRY_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";

/// Parses `5s,5m,30m,2h` (humantime durations, comma-separated; empty means no retries).
pub fn parse_schedule(raw: &str) -> Result<Vec<Duration>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            humantime::parse_duration(s)
                .map_err(|e| format!("WEBHOOK_RETRY_SCHEDULE: {s:?} is not a duration ({e})"))
        })
        .collect()
}
