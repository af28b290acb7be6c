//! The composition root: `build_app` (what `serve` and the tests use) puts the store, the
//! skills, the agent and the HTTP layer together; then the serve loop with graceful shutdown
//! and the background housekeeping. The only module that knows every other one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::offline::OfflineModel;
use crate::agent::openai::{OpenAiConfig, OpenAiModel};
use crate::agent::{Agent, AgentSettings, Model, Skills};
use crate::auth::Authenticator;
use crate::auth::jwt::JwtKeys;
use crate::config::Settings;
use crate::cors::CorsOrigins;
use crate::domain::events::{EventCatalog, EventType};
use crate::domain::page::PageRequest;
use crate::metrics::Metrics;
use crate::rate_limit::{AuthFailureLimiter, OrgRateLimiter};
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// A built application: the router, its OpenAPI document and the state behind them.
pub struct App {
    pub router: Router,
    /// The OpenAPI document as `/openapi.json` serves it.
    pub openapi: serde_json::Value,
    pub state: AppState,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid settings: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// How long start-up waits for an unreachable database (a PostgreSQL container still booting).
const DATABASE_WAIT: Duration = Duration::from_secs(30);

/// Connects the store, applies migrations and builds the router.
pub async fn build_app(settings: Settings) -> Result<App, StartError> {
    build_app_with_model(settings, None).await
}

/// [`build_app`] with a model provider of the caller's (tests and benchmarks script one);
/// `None` takes the one the settings name.
pub async fn build_app_with_model(
    settings: Settings,
    model: Option<Model>,
) -> Result<App, StartError> {
    settings.validate().map_err(StartError::Config)?;
    let store = Store::connect_with(
        &settings.database_url,
        settings.database_max_connections,
        std::time::Duration::from_secs(settings.database_acquire_timeout_seconds),
    )
    .await?;
    wait_for_database(&store).await?;
    store.migrate().await?;
    let app = build_app_with_store(settings, store, model).await;
    // What this instance held before a crash or kill is nobody's now: free it at once.
    let freed = app
        .state
        .store
        .release_owner_leases(&app.state.agent.settings.instance_id)
        .await?;
    if freed > 0 {
        tracing::info!(
            leases = freed,
            "freed the turn leases of this instance's previous run"
        );
    }
    Ok(app)
}

async fn wait_for_database(store: &Store) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + DATABASE_WAIT;
    let mut pause = Duration::from_millis(250);
    loop {
        match store.ping().await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(error = %crate::telemetry::cause_chain(&e), "database not reachable yet; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(4));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Builds the router on an already migrated store.
pub async fn build_app_with_store(settings: Settings, store: Store, model: Option<Model>) -> App {
    let metrics = Metrics::new();
    let tasks = TaskTracker::new();
    let jwt_secret = match &settings.jwt_secret {
        Some(s) => s.expose().as_bytes().to_vec(),
        None => {
            tracing::warn!(
                "JWT_SECRET is not set: using a random key, so end-user tokens stop working at restart \
                 and differ between instances. Set JWT_SECRET in production."
            );
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            key.to_vec()
        }
    };
    let auth = Authenticator::new(
        store.clone(),
        JwtKeys::new(&jwt_secret),
        settings.auth_cache_ttl(),
        Arc::clone(&metrics),
        tasks.clone(),
    );
    let admin_digest = settings.admin_token().map(crate::auth::admin_digest);
    if admin_digest.is_none() {
        tracing::info!("ADMIN_TOKEN is not set: the admin API (/api/v1/admin/*) is disabled");
    }
    let skills = crate::skills::builtin();
    let model = model.unwrap_or_else(|| model_from(&settings, &skills));
    let events = EventCatalog::new(skills.event_types().into_iter().chain(EventType::CORE));
    let agent = Agent::new(
        store.clone(),
        model,
        skills,
        AgentSettings {
            max_steps: settings.agent_max_steps,
            history_window: settings.agent_history_window,
            turn_timeout: Duration::from_secs(settings.agent_turn_timeout_seconds.max(1)),
            queue_timeout: Duration::from_secs(settings.turn_queue_timeout_seconds),
            lease_ttl: Duration::from_secs(settings.lease_ttl_seconds.max(1)),
            instance_id: settings.instance_id(),
        },
        tasks.clone(),
    );
    tracing::info!(provider = agent.model.provider(), "model provider ready");
    let cors = CorsOrigins::new(&settings.cors_origins);
    cors.reload(&store).await;
    let state = AppState::new(crate::state::Shared {
        webhooks: crate::webhooks::Worker::new(
            store.clone(),
            crate::webhooks::WebhookSettings::from_settings(&settings),
        ),
        limiter: OrgRateLimiter::new(settings.rate_limit_end_user_share),
        auth_failures: AuthFailureLimiter::new(settings.auth_failures_per_minute),
        agent_limits: crate::rate_limit::AgentRateLimiter::new(
            settings.mailbox_sends_per_minute,
            settings.mailbox_searches_per_minute,
        ),
        settings: Arc::new(settings),
        store,
        auth,
        metrics,
        cors,
        agent,
        events: Arc::new(events),
        admin_digest,
        shutdown: CancellationToken::new(),
        tasks,
    });
    // The mailbox (issue 12) is a slice, not a skill, but its routes join the tenant API the
    // same way.
    let mut routes = crate::skills::routes();
    routes.routes = routes.routes.merge(crate::mailbox::router(&state));
    let (router, openapi) = crate::http::router(state.clone(), routes);
    App {
        router,
        openapi,
        state,
    }
}

/// The model provider the settings ask for (validated beforehand: openai has a key).
fn model_from(settings: &Settings, skills: &Skills) -> Model {
    match (settings.provider(), &settings.openai_api_key) {
        (crate::config::LlmProvider::Openai, Some(key)) => {
            let mut cfg = OpenAiConfig::new(key.clone());
            cfg.base_url.clone_from(&settings.openai_base_url);
            cfg.default_model.clone_from(&settings.openai_model);
            cfg.request_timeout = Duration::from_secs(settings.openai_timeout_seconds.max(1));
            cfg.max_retries = settings.openai_max_retries;
            Model::OpenAi(Arc::new(OpenAiModel::new(cfg)))
        }
        _ => Model::Offline(OfflineModel::new(skills.offline())),
    }
}

/// Sessions one sweep erases per organisation, at most (the rest wait for the next sweep).
const SWEEP_BATCH: i64 = 500;

/// Erases sessions idle past their organisation's TTL, and expired idempotency records.
/// Returns how many sessions were erased.
pub async fn sweep_once(state: &AppState) -> Result<u64, StoreError> {
    let now = crate::domain::now();
    let mut erased = 0;
    let mut offset = 0;
    loop {
        let page = state
            .store
            .list_orgs(PageRequest {
                limit: 100,
                offset,
                after: None,
            })
            .await?;
        for org in &page.items {
            let ttl = chrono::Duration::seconds(
                i64::try_from(org.settings.session_ttl_seconds).unwrap_or(i64::MAX / 2),
            );
            erased += state
                .store
                .sweep(
                    &org.id,
                    now - ttl,
                    now - crate::domain::turn::IDEMPOTENCY_WINDOW,
                    now,
                    SWEEP_BATCH,
                )
                .await?;
        }
        offset += 100;
        if offset >= page.total {
            return Ok(erased);
        }
    }
}

impl App {
    /// Starts the housekeeping tasks: limiter pruning and CORS refresh (for changes made by
    /// other instances), every minute until shutdown; and the webhook delivery worker.
    pub fn start_background(&self) {
        let state = self.state.clone();
        self.state.tasks.spawn(async move {
            let every = Duration::from_secs(state.settings.session_sweep_interval_seconds.max(1));
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = state.shutdown.cancelled() => break,
                    _ = tick.tick() => match sweep_once(&state).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(sessions = n, "erased idle sessions"),
                        Err(e) => tracing::warn!(error = %crate::telemetry::cause_chain(&e), "session sweep failed"),
                    },
                }
            }
        });
        // Revocations and org changes made anywhere reach this instance's caches.
        let state = self.state.clone();
        self.state.tasks.spawn(async move {
            let every = Duration::from_millis(state.settings.auth_sync_interval_ms.max(50));
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = state.shutdown.cancelled() => break,
                    _ = tick.tick() => match state.auth.sync_once().await {
                        Ok(orgs) if !orgs.is_empty() => state.cors.reload(&state.store).await,
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %crate::telemetry::cause_chain(&e), "could not read the auth change log"),
                    },
                }
            }
        });
        let worker = self.state.webhooks.clone();
        self.state
            .tasks
            .spawn(worker.run(self.state.shutdown.clone()));
        let state = self.state.clone();
        self.state.tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await;
            loop {
                tokio::select! {
                    () = state.shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        state.limiter.housekeeping();
                        state.auth_failures.housekeeping();
                        state.agent_limits.housekeeping();
                        state.cors.reload(&state.store).await;
                        let old = crate::domain::now() - chrono::Duration::days(1);
                        if let Err(e) = state.store.prune_auth_changes(old).await {
                            tracing::warn!(error = %crate::telemetry::cause_chain(&e), "could not prune the auth change log");
                        }
                    }
                }
            }
        });
    }

    /// Serves on `listener` until `stop` resolves, then shuts down gracefully: stop accepting,
    /// let in-flight requests finish, cancel background work, wait for it (bounded by the
    /// grace period) and close the pool.
    pub async fn serve(
        self,
        listener: TcpListener,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let App { router, state, .. } = self;
        let shutdown = state.shutdown.clone();
        let grace = Duration::from_secs(state.settings.shutdown_grace_seconds);
        let signal = async move {
            stop.await;
            tracing::info!("shutting down: finishing in-flight requests");
            shutdown.cancel();
        };
        let limits = crate::http::server::ConnLimits {
            header_read_timeout: Duration::from_secs(state.settings.header_read_timeout_seconds),
            keep_alive_timeout: Duration::from_secs(state.settings.keep_alive_timeout_seconds),
            max_connections: state.settings.max_connections,
        };
        // Shutdown stops the accept loop; each connection finishes its request in progress.
        let server = crate::http::server::serve(
            listener,
            router,
            limits,
            state.metrics.connections.clone(),
            state.shutdown.clone(),
        );
        let cancelled = state.shutdown.clone();
        tokio::select! {
            ((), ()) = async { tokio::join!(server, signal) } => {}
            // In-flight requests get the grace period, then the process stops anyway.
            () = async { cancelled.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("grace period over: dropping the requests still running");
            }
        }
        state.tasks.close();
        if tokio::time::timeout(grace, state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not finish within the grace period");
        }
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Binds `HOST:PORT`.
pub async fn bind(settings: &Settings) -> Result<TcpListener, StartError> {
    let addr = SocketAddr::new(settings.host, settings.port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
