//! Public operational endpoints: `/`, `/health`, `/health/ready`, `/metrics`, and the
//! seed-compatible `/api/v1/health` and `/api/v1/health/ready` (issue 12.9). Never rate limited.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::{ApiError, Problem};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_root))
        .routes(routes!(get_health))
        .routes(routes!(get_ready))
        .routes(routes!(get_metrics))
        .routes(routes!(get_api_health))
        .routes(routes!(get_api_ready))
}

/// Links from the root document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Links {
    #[schema(example = "/docs")]
    pub docs: &'static str,
    #[schema(example = "/openapi.json")]
    pub openapi: &'static str,
    #[schema(example = "/health")]
    pub health: &'static str,
    #[schema(example = "/health/ready")]
    pub ready: &'static str,
    #[schema(example = "/metrics")]
    pub metrics: &'static str,
}

/// What this server is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Root {
    #[schema(example = "agentd")]
    pub name: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    pub links: Links,
}

/// Name, version and links.
#[utoipa::path(get, path = "/", tag = "ops", responses((status = 200, description = "About this server", body = Root)))]
async fn get_root() -> axum::Json<Root> {
    axum::Json(Root {
        name: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        links: Links {
            docs: "/docs",
            openapi: "/openapi.json",
            health: "/health",
            ready: "/health/ready",
            metrics: "/metrics",
        },
    })
}

/// Health status.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, description = "Alive", body = Health)))]
async fn get_health() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Readiness: the database answers. 503 while it does not; 200 again once it does.
#[utoipa::path(get, path = "/health/ready", tag = "ops", responses(
    (status = 200, description = "Ready", body = Health),
    (status = 503, description = "The database is unreachable", body = Problem, content_type = "application/problem+json"),
))]
async fn get_ready(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(axum::Json(Health { status: "ready" })),
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::cause_chain(&e), "readiness check failed");
            Err(ApiError::Unavailable(
                "The database is unreachable.".to_owned(),
            ))
        }
    }
}

/// Prometheus metrics: requests by route and status, latency histograms, key verifications.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"),
))]
async fn get_metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(e.to_string().into()))?;
    let mut res = text.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(res)
}

/// Liveness as the mailbox's seed API reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiHealth {
    #[schema(example = "healthy")]
    pub status: &'static str,
    pub timestamp: chrono::DateTime<chrono::Utc>,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
}

/// Readiness as the mailbox's seed API reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiReadiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    pub timestamp: chrono::DateTime<chrono::Utc>,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    /// `connected` (when it is not, the answer is 503).
    #[schema(example = "connected")]
    pub database: &'static str,
}

/// Liveness, in the seed API's shape (`status`, `timestamp`, `version`); the same check as
/// `/health`.
#[utoipa::path(get, path = "/api/v1/health", tag = "ops", responses((status = 200, description = "Alive", body = ApiHealth)))]
async fn get_api_health() -> axum::Json<ApiHealth> {
    axum::Json(ApiHealth {
        status: "healthy",
        timestamp: crate::domain::now(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Readiness, in the seed API's shape: the database answers (`database: connected`); 503
/// `SERVICE_UNAVAILABLE` while it does not. The same check as `/health/ready`.
#[utoipa::path(get, path = "/api/v1/health/ready", tag = "ops", responses(
    (status = 200, description = "Ready", body = ApiReadiness),
    (status = 503, description = "The database is unreachable", body = Problem, content_type = "application/problem+json"),
))]
async fn get_api_ready(
    State(state): State<AppState>,
) -> Result<axum::Json<ApiReadiness>, ApiError> {
    let _ready = get_ready(State(state)).await?;
    Ok(axum::Json(ApiReadiness {
        status: "ready",
        timestamp: crate::domain::now(),
        version: env!("CARGO_PKG_VERSION"),
        database: "connected",
    }))
}
