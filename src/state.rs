//! What every handler shares: [`AppState`], cheap to clone (everything inside is an `Arc` or a
//! pool handle). Built by `app::build_app`; lives outside `http` so that the layers below the
//! routers (and the skills' routes) can name it without importing the HTTP layer's internals.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::Agent;
use crate::auth::Authenticator;
use crate::config::Settings;
use crate::cors::CorsOrigins;
use crate::domain::events::EventCatalog;
use crate::metrics::Metrics;
use crate::rate_limit::{AgentRateLimiter, AuthFailureLimiter, OrgRateLimiter};
use crate::store::Store;

/// Everything handlers share. One `Arc`: every extraction clones the state, and a clone is
/// then one reference count instead of a dozen (issue 9.3).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub auth: Authenticator,
    pub limiter: OrgRateLimiter,
    /// Failed authentications per client address.
    pub auth_failures: AuthFailureLimiter,
    /// The mailbox's sends and searches per agent.
    pub agent_limits: AgentRateLimiter,
    pub metrics: Arc<Metrics>,
    pub cors: CorsOrigins,
    pub agent: Agent,
    /// Every webhook event type the server emits (the core's and the skills').
    pub events: Arc<EventCatalog>,
    /// SHA-256 of ADMIN_TOKEN; `None` turns the admin API off.
    pub admin_digest: Option<[u8; 32]>,
    /// Cancelled when shutdown starts; long-running work watches it.
    pub shutdown: CancellationToken,
    /// Every background task runs on this, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Webhook delivery (the background loop, and the test pings sent inline).
    pub webhooks: crate::webhooks::Worker,
}

impl AppState {
    /// Names of the tools organisations may enable (the tool registry's).
    pub fn tool_names(&self) -> Vec<&'static str> {
        self.agent.skills.tools().names()
    }
}
