//! The command line: `serve` (the default), `migrate`, `orgs …`, `keys …`, `agents …`,
//! `token`.
//! Management commands work on the database directly (no running server needed) through the
//! same operations as the admin API.

use std::io::Write;

use anyhow::{Context, bail};
use chrono::{DateTime, Duration, Utc};
use clap::{Args, Parser, Subcommand};

use crate::admin::{self, AdminError, NewApiKey};
use crate::auth::jwt::JwtKeys;
use crate::config::Settings;
use crate::domain::org::{OrgPatch, UpdateOrg};
use crate::domain::page::PageRequest;
use crate::domain::{EndUserId, OrgId, RateLimit, Tier, parse_uuid};
use crate::http::error::ApiError;
use crate::http::extract::parse_json;
use crate::store::Store;

/// agentd — a self-hostable conversational-agent server for websites and shops.
///
/// With no command it runs the server. Settings come from flags, then the environment, then a
/// `.env` file in the working directory (see .env.example).
#[derive(Debug, Parser)]
#[command(name = "agentd", version, about, long_about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

/// Settings a management command uses; the server's other settings are still accepted after
/// it (and read from the environment) but left out of its `--help`.
const MANAGEMENT_SETTINGS: [&str; 2] = ["database_url", "jwt_secret"];

/// The command line as parsed: [`Cli`]'s, with the server's settings hidden from the help of
/// the management commands, so `agentd keys create --help` shows that command's options, not
/// forty server flags (issue 11.9). (clap copies a global flag into a subcommand only where
/// the subcommand does not have it yet: a hidden copy put there first stays hidden.)
pub fn command() -> clap::Command {
    let cmd = <Cli as clap::CommandFactory>::command();
    let hidden: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set() && !MANAGEMENT_SETTINGS.contains(&a.get_id().as_str()))
        .map(|a| a.clone().hide(true))
        .collect();
    ["migrate", "orgs", "keys", "token"]
        .into_iter()
        .fold(cmd, |cmd, name| {
            cmd.mut_subcommand(name, |sub| sub.args(hidden.iter().cloned()))
        })
}

/// Parses the process's arguments with [`command`]; exits with clap's message on an error.
pub fn parse() -> Cli {
    let matches = command().get_matches();
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default when no command is given).
    Serve,
    /// Apply pending database migrations and exit (the server also does this on start).
    Migrate,
    /// Create, inspect and change organisations (tenants).
    #[command(subcommand)]
    Orgs(OrgsCommand),
    /// Create, list and revoke an organisation's API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Register, list and change the mailbox's agents of an organisation; rotate their secrets.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Mint an end-user token (JWT) for development; needs JWT_SECRET to match the server's.
    Token {
        /// Organisation the token belongs to.
        #[arg(long)]
        org: String,
        /// End-user id to put in the token's `sub` claim.
        #[arg(long)]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Create an organisation.
    Create {
        /// Its id: letters, digits, `_` and `-`, at most 100.
        id: String,
        #[command(flatten)]
        fields: OrgFlags,
    },
    /// List organisations, newest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long, default_value_t = 0)]
        offset: i64,
    },
    /// Show one organisation as JSON.
    Show { id: String },
    /// Change an organisation; only the options given change.
    Update {
        id: String,
        #[command(flatten)]
        fields: OrgFlags,
    },
    /// Deactivate an organisation: its keys and tokens are refused with 403 ORG_INACTIVE.
    Deactivate { id: String },
}

/// Organisation fields settable from the command line. `--json` takes any field of the admin
/// API's body; the other options override it.
#[derive(Debug, Args)]
pub struct OrgFlags {
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// free (100/h), basic (500/h), premium (2000/h) or custom (with --requests/--window-seconds).
    #[arg(long, value_parser = ["free", "basic", "premium", "custom"])]
    tier: Option<String>,
    /// Requests per window, for tier custom.
    #[arg(long, requires = "window_seconds")]
    requests: Option<u32>,
    /// Window length in seconds, for tier custom.
    #[arg(long, requires = "requests")]
    window_seconds: Option<u32>,
    /// Instructions given to the agent in every conversation.
    #[arg(long)]
    system_prompt: Option<String>,
    /// IANA time zone of the business, such as Europe/Berlin.
    #[arg(long)]
    time_zone: Option<String>,
    /// A browser origin allowed to call the API (repeat for more); replaces the list.
    #[arg(long = "allowed-origin")]
    allowed_origins: Option<Vec<String>>,
    /// Seconds an idle session is kept.
    #[arg(long)]
    session_ttl_seconds: Option<u64>,
    /// Longest chat message in characters.
    #[arg(long)]
    max_message_chars: Option<u32>,
    /// Any other fields, as a JSON object shaped like the PATCH body of the admin API.
    #[arg(long, value_name = "JSON")]
    json: Option<String>,
}

impl OrgFlags {
    fn into_patch(self) -> anyhow::Result<OrgPatch> {
        let mut patch = match &self.json {
            Some(raw) => parse_json::<UpdateOrg>(raw.as_bytes())
                .map_err(|e| anyhow::anyhow!(describe(&e)))
                .context("--json")?
                .patch(),
            None => OrgPatch::default(),
        };
        if let Some(t) = &self.tier {
            patch.tier = Some(Tier::parse(t).map_err(|e| anyhow::anyhow!("--tier {e}"))?);
        }
        if let (Some(requests), Some(window_seconds)) = (self.requests, self.window_seconds) {
            patch.rate_limit = Some(RateLimit {
                requests,
                window_seconds,
            });
        }
        patch.name = self.name.or(patch.name);
        patch.system_prompt = self.system_prompt.or(patch.system_prompt);
        patch.time_zone = self.time_zone.or(patch.time_zone);
        patch.allowed_origins = self.allowed_origins.or(patch.allowed_origins);
        patch.session_ttl_seconds = self.session_ttl_seconds.or(patch.session_ttl_seconds);
        patch.max_message_chars = self.max_message_chars.or(patch.max_message_chars);
        Ok(patch)
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints the plaintext key once.
    Create {
        #[arg(long)]
        org: String,
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// Expiry as RFC 3339 (2027-01-31T00:00:00Z); never, when absent.
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// List an organisation's keys.
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke a key by its id.
    Revoke {
        #[arg(long)]
        org: String,
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Register an agent; prints its secret once.
    Create {
        #[arg(long)]
        org: String,
        /// 1–64 characters of a-z, 0-9, '.', '_', '-'.
        #[arg(long)]
        handle: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List an organisation's agents.
    List {
        #[arg(long)]
        org: String,
    },
    /// Change an agent's display name, description or active flag.
    Update {
        #[arg(long)]
        org: String,
        handle: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// true or false.
        #[arg(long)]
        active: Option<bool>,
    },
    /// Give an agent a new secret (printed once); the old one and its tokens stop working.
    RotateSecret {
        #[arg(long)]
        org: String,
        handle: String,
    },
}

/// Prints an error and its causes to stderr.
pub fn report(err: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    for cause in err.chain().skip(1) {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
}

fn fields(errors: &[crate::domain::FieldError]) -> String {
    errors
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A person-readable rendering of a refused body for the terminal.
fn describe(err: &ApiError) -> String {
    match err {
        ApiError::Validation(errors) => fields(errors),
        other => other.to_string(),
    }
}

/// A person-readable rendering of a refused operator action.
fn api(err: AdminError) -> anyhow::Error {
    match err {
        AdminError::Validation(errors) => anyhow::anyhow!(fields(&errors)),
        other => anyhow::anyhow!(crate::telemetry::cause_chain(&other)),
    }
}

/// The tool names organisations may enable: the registry's.
fn tool_names() -> Vec<&'static str> {
    crate::skills::builtin().tools().names()
}

fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").context("writing to stdout")
}

fn out_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    out(&serde_json::to_string_pretty(value)?)
}

fn org_id(raw: &str) -> anyhow::Result<OrgId> {
    OrgId::parse(raw).map_err(|e| anyhow::anyhow!("organisation id {raw:?} {e}"))
}

async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database_url, 2)
        .await
        .context("opening the database")?;
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    crate::telemetry::init(settings.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            open_store(&settings).await?;
            out("database is up to date")
        }
        Command::Orgs(cmd) => orgs(&open_store(&settings).await?, cmd).await,
        Command::Keys(cmd) => keys(&open_store(&settings).await?, cmd).await,
        Command::Agents(cmd) => agents(&open_store(&settings).await?, cmd).await,
        Command::Token { org, sub, ttl } => {
            settings.validate().map_err(|e| anyhow::anyhow!(e))?;
            let Some(secret) = &settings.jwt_secret else {
                bail!(
                    "JWT_SECRET is not set: a token signed with a random key would be useless to the server"
                );
            };
            let org = org_id(&org)?;
            let sub = EndUserId::parse(&sub).map_err(|e| anyhow::anyhow!("--sub {e}"))?;
            let now = Utc::now();
            let exp = now + Duration::seconds(i64::try_from(ttl).context("--ttl is too large")?);
            let token = JwtKeys::new(secret.expose().as_bytes()).mint(
                org.as_str(),
                sub.as_str(),
                None,
                now,
                exp,
            )?;
            out(&token)
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = crate::build_app(settings.clone()).await?;
    let listener = crate::app::bind(&settings).await?;
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    // A wildcard listen address is no address to send a person to.
    let addr = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    if settings.bootstrap_demo {
        if let Some(key) = admin::bootstrap_demo(&app.state.store, &app.state.tool_names())
            .await
            .map_err(api)?
        {
            let per_hour = admin::DEMO_RATE_LIMIT.requests;
            let per_user = (f64::from(per_hour) * settings.rate_limit_end_user_share).ceil();
            out(&format!(
                "\nFirst run: created organisation \"demo\" with sample services. It may make \
                 {per_hour} requests an hour ({per_user} per end user); change that with \
                 `agentd orgs update demo --tier …`.\n\
                 Its API key (shown only now, store it):\n\n    {key}\n\n\
                 Try it:\n\n    curl -i http://{addr}/api/v1/me -H 'X-API-Key: {key}'\n\n\
                 Or chat with the agent in your browser: http://{addr}/playground (paste the key).\n"
            ))?;
        }
    }
    tracing::info!(%addr, backend = ?app.state.store.backend(), "agentd listening; docs at http://{addr}/docs");
    app.start_background();
    app.serve(listener, crate::app::shutdown_signal()).await?;
    Ok(())
}

async fn orgs(store: &Store, cmd: OrgsCommand) -> anyhow::Result<()> {
    match cmd {
        OrgsCommand::Create { id, fields } => {
            let org = admin::create_org(store, &tool_names(), &id, fields.into_patch()?)
                .await
                .map_err(api)?;
            out_json(&org)
        }
        OrgsCommand::List { limit, offset } => {
            let page = store
                .list_orgs(PageRequest {
                    limit: limit.clamp(1, 1000),
                    offset: offset.max(0),
                    after: None,
                })
                .await?;
            out(&format!(
                "{:<24} {:<8} {:<8} {:>12}  NAME",
                "ID", "ACTIVE", "TIER", "QUOTA"
            ))?;
            for o in &page.items {
                let quota = format!("{}/{}s", o.rate_limit.requests, o.rate_limit.window_seconds);
                out(&format!(
                    "{:<24} {:<8} {:<8} {:>12}  {}",
                    o.id,
                    o.active,
                    o.tier.as_str(),
                    quota,
                    o.name
                ))?;
            }
            out(&format!("({} of {})", page.items.len(), page.total))
        }
        OrgsCommand::Show { id } => {
            out_json(&admin::get_org(store, &org_id(&id)?).await.map_err(api)?)
        }
        OrgsCommand::Update { id, fields } => {
            let org = admin::update_org(
                store,
                &tool_names(),
                &org_id(&id)?,
                fields.into_patch()?,
                None,
            )
            .await
            .map_err(api)?;
            out_json(&org)
        }
        OrgsCommand::Deactivate { id } => {
            let patch = OrgPatch {
                active: Some(false),
                ..OrgPatch::default()
            };
            let org = admin::update_org(store, &tool_names(), &org_id(&id)?, patch, None)
                .await
                .map_err(api)?;
            out(&format!("organisation {} deactivated", org.id))
        }
    }
}

async fn keys(store: &Store, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create {
            org,
            name,
            expires_at,
        } => {
            let key = admin::create_key(store, &org_id(&org)?, &NewApiKey { name, expires_at })
                .await
                .map_err(api)?;
            out(&format!(
                "created key {} ({}) for {org}; store it now, it is not shown again:\n{}",
                key.key.id, key.key.name, key.api_key
            ))
        }
        KeysCommand::List { org } => {
            let org = org_id(&org)?;
            admin::get_org(store, &org).await.map_err(api)?;
            out(&format!(
                "{:<36}  {:<12}  {:<8}  NAME",
                "ID", "PREFIX", "STATUS"
            ))?;
            let now = Utc::now();
            for k in store.list_keys(&org).await? {
                let status = if k.revoked_at.is_some() {
                    "revoked"
                } else if k.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                };
                out(&format!(
                    "{:<36}  {:<12}  {:<8}  {}",
                    k.id, k.prefix, status, k.name
                ))?;
            }
            Ok(())
        }
        KeysCommand::Revoke { org, key_id } => {
            let key_id = parse_uuid(&key_id).map_err(|e| anyhow::anyhow!("key id {e}"))?;
            let key = store
                .revoke_key(&org_id(&org)?, key_id, crate::domain::now())
                .await?;
            out(&format!(
                "revoked key {} ({}); running servers drop it (and the tokens it minted) within a second",
                key.id, key.name
            ))
        }
    }
}

async fn agents(store: &Store, cmd: AgentsCommand) -> anyhow::Result<()> {
    use crate::admin::agents::{self as mailbox_agents, NewAgent, UpdateAgent, parse_handle};
    match cmd {
        AgentsCommand::Create {
            org,
            handle,
            display_name,
            description,
        } => {
            let created = mailbox_agents::create_agent(
                store,
                &org_id(&org)?,
                &NewAgent {
                    handle,
                    display_name,
                    description,
                    active: None,
                },
            )
            .await
            .map_err(api)?;
            out(&format!(
                "registered agent {} ({}) in {org}; store its secret now, it is not shown again:\n{}",
                created.agent.handle, created.agent.display_name, created.agent_secret
            ))
        }
        AgentsCommand::List { org } => {
            let agents = mailbox_agents::list_agents(store, &org_id(&org)?)
                .await
                .map_err(api)?;
            out(&format!("{:<32}  {:<8}  DISPLAY NAME", "HANDLE", "STATUS"))?;
            for a in agents {
                let status = if a.active { "active" } else { "inactive" };
                out(&format!(
                    "{:<32}  {:<8}  {}",
                    a.handle, status, a.display_name
                ))?;
            }
            Ok(())
        }
        AgentsCommand::Update {
            org,
            handle,
            display_name,
            description,
            active,
        } => {
            let agent = mailbox_agents::update_agent(
                store,
                &org_id(&org)?,
                &parse_handle(&handle).map_err(api)?,
                &UpdateAgent {
                    display_name,
                    description,
                    active,
                },
            )
            .await
            .map_err(api)?;
            out_json(&agent)
        }
        AgentsCommand::RotateSecret { org, handle } => {
            let rotated = mailbox_agents::rotate_secret(
                store,
                &org_id(&org)?,
                &parse_handle(&handle).map_err(api)?,
            )
            .await
            .map_err(api)?;
            out(&format!(
                "new secret for agent {}; the old one and its tokens stop working within a second:\n{}",
                rotated.agent.handle, rotated.agent_secret
            ))
        }
    }
}
