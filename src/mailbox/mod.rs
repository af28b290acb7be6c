//! The agent mailbox (issue 12, docs/mailbox.md): asynchronous messages between the agents of
//! an organisation (and people acting as agents), in threads, with full-text search.
//!
//! A slice of its own: the caller ([`Caller`], an agent, from an agent token or an API key
//! naming an agent with `X-Agent-Handle`), the routes (`routes.rs`), the service rules
//! (`service.rs`) and the queries of its tables (`store.rs`). Agent identities themselves
//! (registration, secrets, tokens) live below, in `admin::agents`, `store::agents` and `auth`,
//! because the token route and the admin API need them.

pub mod audit;
pub mod contacts;
pub mod routes;
pub mod service;
pub mod store;
pub mod thread_routes;

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{Credential, Principal};
use crate::domain::agents::AgentHandle;
use crate::domain::{Org, OrgId};
use crate::http::auth_layer::rate_limit_headers;
use crate::http::error::ApiError;
use crate::rate_limit::{AgentAction, Decision};
use crate::state::AppState;

/// The header with which an API-key caller (a server-side integration) acts as one of its
/// organisation's agents.
pub const AGENT_HANDLE_HEADER: &str = "x-agent-handle";

/// The agent calling a mailbox route. Its identity comes only from its credential: the agent
/// token's claim, or the agent an API key names (which must be an active agent of the key's
/// organisation).
#[derive(Debug, Clone)]
pub struct Caller {
    pub org: Arc<Org>,
    pub handle: AgentHandle,
    pub display_name: String,
}

impl Caller {
    pub fn org_id(&self) -> &OrgId {
        &self.org.id
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Unauthorized("Authentication required."))?;
        let named = match parts.headers.get(AGENT_HANDLE_HEADER) {
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| AgentHandle::parse(s.trim()).ok())
                    .ok_or_else(|| {
                        ApiError::validation(
                            "X-Agent-Handle",
                            "must be 1 to 64 characters of a-z, 0-9, '.', '_' and '-'",
                        )
                    })?,
            ),
            None => None,
        };
        let handle = match (&principal.credential, named) {
            (Credential::AgentToken { handle, .. }, None) => handle.clone(),
            (Credential::AgentToken { handle, .. }, Some(named)) if named == *handle => named,
            (Credential::AgentToken { .. }, Some(_)) => {
                return Err(ApiError::Forbidden(
                    "X-Agent-Handle names another agent than the token's.".to_owned(),
                ));
            }
            (Credential::ApiKey { .. }, Some(named)) => named,
            (Credential::ApiKey { .. }, None) => {
                return Err(ApiError::Forbidden(
                    "The mailbox speaks for an agent: send an agent token, or X-Agent-Handle with the API key."
                        .to_owned(),
                ));
            }
            (Credential::EndUserToken { .. } | Credential::StreamToken { .. }, _) => {
                return Err(ApiError::Forbidden(
                    "End-user tokens do not open the mailbox.".to_owned(),
                ));
            }
        };
        // The token's agent was checked by the auth layer; an API key's is checked here.
        let agent = state.auth.agent(principal.org_id(), &handle).await?;
        let Some(agent) = agent.filter(|a| a.active) else {
            return Err(ApiError::Forbidden(format!(
                "{handle} is not an active agent of this organisation."
            )));
        };
        Ok(Self {
            org: principal.org,
            handle,
            display_name: agent.display_name.clone(),
        })
    }
}

/// What a mailbox route charges to the agent's own buckets, by method and route.
fn action_of(method: &axum::http::Method, route: &str) -> Option<AgentAction> {
    match (method.as_str(), route) {
        (
            "POST",
            "/api/v1/messages"
            | "/api/v1/messages/broadcast"
            | "/api/v1/messages/group"
            | "/api/v1/messages/{id}/reply"
            | "/api/v1/threads/{id}/reply",
        ) => Some(AgentAction::Send),
        ("GET", "/api/v1/messages/search" | "/api/v1/contacts/search") => Some(AgentAction::Search),
        _ => None,
    }
}

/// Per-agent limits (issue 12.6): sends and searches are charged to the agent's own bucket,
/// inside the organisation's quota that the auth layer charged already. The headers report
/// whichever of the two has less left; a refusal is 429 with `Retry-After` and the agent
/// bucket's headers.
async fn agent_limits(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let action = route.and_then(|r| action_of(req.method(), &r));
    let handle = req
        .extensions()
        .get::<Principal>()
        .and_then(|p| match &p.credential {
            Credential::AgentToken { handle, .. } => Some((p.org_id().clone(), handle.to_string())),
            Credential::ApiKey { .. } => req
                .headers()
                .get(AGENT_HANDLE_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|h| AgentHandle::parse(h.trim()).ok())
                .map(|h| (p.org_id().clone(), h.to_string())),
            _ => None,
        });
    let (Some(action), Some((org, handle))) = (action, handle) else {
        return next.run(req).await;
    };
    let org_decision = req.extensions().get::<Decision>().copied();
    let mine = state.agent_limits.check(&org, &handle, action);
    let shown = match org_decision {
        Some(o) if mine.retry_after.is_none() && o.remaining <= mine.remaining => o,
        _ => mine,
    };
    let mut res = match mine.retry_after {
        Some(retry_after_secs) => ApiError::RateLimited { retry_after_secs }.into_response(),
        None => next.run(req).await,
    };
    rate_limit_headers(res.headers_mut(), shown);
    res
}

/// The mailbox's routes, behind the tenant authentication layer.
pub fn router(state: &AppState) -> utoipa_axum::router::OpenApiRouter<AppState> {
    routes::router()
        .merge(thread_routes::router())
        .merge(contacts::router())
        .merge(audit::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            agent_limits,
        ))
}
