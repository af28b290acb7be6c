//! Admin API for the mailbox's agents (issue 12): `/api/v1/admin/orgs/{org}/agents…`, admin
//! token required. Secrets are shown once, at registration and rotation.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Json, Path};
use crate::admin::agents::{self, AgentWithSecret, NewAgent, UpdateAgent, parse_handle};
use crate::domain::OrgId;
use crate::http::error::{ApiError, Problem};
use crate::state::AppState;
use crate::store::agents::Agent;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_agent, list_agents))
        .routes(routes!(get_agent, update_agent))
        .routes(routes!(rotate_agent_secret))
}

/// The organisation's agents, by handle.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub items: Vec<Agent>,
}

fn org_id(raw: &str) -> Result<OrgId, ApiError> {
    OrgId::parse(raw).map_err(|e| ApiError::validation("org", e.0))
}

/// Register an agent for the mailbox. The response holds its secret, shown this once only.
#[utoipa::path(post, path = "/api/v1/admin/orgs/{org}/agents", tag = "admin", security(("admin" = [])),
    params(("org" = String, Path, description = "Organisation id")),
    request_body = NewAgent,
    responses(
        (status = 201, description = "The agent, with its secret", body = AgentWithSecret),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The handle is taken", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_agent(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Json(body): Json<NewAgent>,
) -> Result<(StatusCode, axum::Json<AgentWithSecret>), ApiError> {
    let created = agents::create_agent(&state.store, &org_id(&org)?, &body).await?;
    state.auth.evict_agents().await;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// List an organisation's agents (never their secrets).
#[utoipa::path(get, path = "/api/v1/admin/orgs/{org}/agents", tag = "admin", security(("admin" = [])),
    params(("org" = String, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "The agents", body = AgentList),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_agents(
    State(state): State<AppState>,
    Path(org): Path<String>,
) -> Result<axum::Json<AgentList>, ApiError> {
    let items = agents::list_agents(&state.store, &org_id(&org)?).await?;
    Ok(axum::Json(AgentList { items }))
}

/// Get an agent.
#[utoipa::path(get, path = "/api/v1/admin/orgs/{org}/agents/{handle}", tag = "admin", security(("admin" = [])),
    params(("org" = String, Path, description = "Organisation id"),
           ("handle" = String, Path, description = "Agent handle")),
    responses(
        (status = 200, description = "The agent", body = Agent),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_agent(
    State(state): State<AppState>,
    Path((org, handle)): Path<(String, String)>,
) -> Result<axum::Json<Agent>, ApiError> {
    let agent = agents::get_agent(&state.store, &org_id(&org)?, &parse_handle(&handle)?).await?;
    Ok(axum::Json(agent))
}

/// Change an agent's display name, description or active flag. A deactivated agent's tokens
/// stop working and it receives no messages.
#[utoipa::path(patch, path = "/api/v1/admin/orgs/{org}/agents/{handle}", tag = "admin", security(("admin" = [])),
    params(("org" = String, Path, description = "Organisation id"),
           ("handle" = String, Path, description = "Agent handle")),
    request_body = UpdateAgent,
    responses(
        (status = 200, description = "The updated agent", body = Agent),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_agent(
    State(state): State<AppState>,
    Path((org, handle)): Path<(String, String)>,
    Json(body): Json<UpdateAgent>,
) -> Result<axum::Json<Agent>, ApiError> {
    let agent =
        agents::update_agent(&state.store, &org_id(&org)?, &parse_handle(&handle)?, &body).await?;
    state.auth.evict_agents().await;
    Ok(axum::Json(agent))
}

/// Give an agent a new secret (in the response, shown once). The old secret and every token
/// minted with it stop working.
#[utoipa::path(post, path = "/api/v1/admin/orgs/{org}/agents/{handle}/rotate-secret", tag = "admin", security(("admin" = [])),
    params(("org" = String, Path, description = "Organisation id"),
           ("handle" = String, Path, description = "Agent handle")),
    responses(
        (status = 200, description = "The agent, with its new secret", body = AgentWithSecret),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ))]
async fn rotate_agent_secret(
    State(state): State<AppState>,
    Path((org, handle)): Path<(String, String)>,
) -> Result<axum::Json<AgentWithSecret>, ApiError> {
    let rotated =
        agents::rotate_secret(&state.store, &org_id(&org)?, &parse_handle(&handle)?).await?;
    state.auth.evict_agents().await;
    Ok(axum::Json(rotated))
}
