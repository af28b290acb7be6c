//! End-user token minting (`POST /api/v1/auth/token`) and the caller's own view (`GET /api/v1/me`).

use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Json;
use crate::auth::{Credential, Principal};
use crate::domain::{EndUserId, RateLimit};
use crate::http::error::{ApiError, Problem};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token))
        .routes(routes!(get_me))
}

/// Lifetime of a token when the request names none.
const DEFAULT_TTL_SECONDS: u64 = 3600;
const MIN_TTL_SECONDS: u64 = 60;

/// Body of `POST /api/v1/auth/token`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Your id for the end user (a WordPress user id, a customer id, a visitor id).
    #[schema(example = "wp-user-42")]
    pub user_id: String,
    /// Lifetime in seconds: 60 up to the server's JWT_MAX_TTL_SECONDS (default 86400). Default 3600.
    #[schema(example = 3600)]
    pub ttl_seconds: Option<u64>,
}

/// A freshly minted end-user token.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    /// HS256 JWT; send it as `Authorization: Bearer <token>`.
    pub token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    #[schema(example = 3600)]
    pub expires_in: u64,
    pub expires_at: DateTime<Utc>,
    #[schema(example = "demo")]
    pub org_id: String,
    #[schema(example = "wp-user-42")]
    pub user_id: String,
}

/// Mint a short-lived end-user token (API-key callers only), for a browser widget or app to
/// call the API as that end user.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", security(("api_key" = [])),
    request_body = NewToken,
    responses(
        (status = 201, description = "The token", body = IssuedToken),
        (status = 403, description = "End-user tokens cannot mint tokens", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<NewToken>,
) -> Result<(axum::http::StatusCode, axum::Json<IssuedToken>), ApiError> {
    if !matches!(principal.credential, Credential::ApiKey { .. }) {
        return Err(ApiError::Forbidden(
            "Only API-key callers can mint tokens.".to_owned(),
        ));
    }
    let max_ttl = state.settings.jwt_max_ttl_seconds.max(MIN_TTL_SECONDS);
    let mut errors = Vec::new();
    let user = EndUserId::parse(&body.user_id)
        .map_err(|e| errors.push(crate::http::error::FieldError::new("user_id", e.0)))
        .ok();
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS.min(max_ttl));
    if !(MIN_TTL_SECONDS..=max_ttl).contains(&ttl) {
        errors.push(crate::http::error::FieldError::new(
            "ttl_seconds",
            format!("must be between {MIN_TTL_SECONDS} and {max_ttl}"),
        ));
    }
    let Some(user) = user.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let now = crate::domain::now();
    let expires_at = now + Duration::seconds(i64::try_from(ttl).unwrap_or(i64::MAX));
    let token = state
        .auth
        .jwt()
        .mint(
            principal.org_id().as_str(),
            user.as_str(),
            principal.minting_key(),
            now,
            expires_at,
        )
        .map_err(ApiError::internal)?;
    Ok((
        axum::http::StatusCode::CREATED,
        axum::Json(IssuedToken {
            token,
            token_type: "Bearer",
            expires_in: ttl,
            expires_at,
            org_id: principal.org_id().to_string(),
            user_id: user.as_str().to_owned(),
        }),
    ))
}

/// Who the API thinks you are.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    #[schema(example = "demo")]
    pub org_id: String,
    /// `api_key` or `end_user_token`.
    #[schema(example = "api_key")]
    pub credential: &'static str,
    /// The end user, for token callers.
    pub user_id: Option<String>,
    /// The API key's id, for key callers.
    pub key_id: Option<uuid::Uuid>,
    /// The organisation's quota.
    pub rate_limit: RateLimit,
}

/// Describe the caller: organisation, credential and quota. Handy to test a key or token.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, description = "The caller", body = Me)))]
async fn get_me(principal: Principal) -> axum::Json<Me> {
    let (credential, key_id) = match principal.credential {
        Credential::ApiKey { key_id } => ("api_key", Some(key_id)),
        Credential::EndUserToken { .. } => ("end_user_token", None),
        Credential::StreamToken { .. } => ("stream_token", None),
    };
    axum::Json(Me {
        org_id: principal.org_id().to_string(),
        credential,
        user_id: principal.end_user.map(|u| u.as_str().to_owned()),
        key_id,
        rate_limit: principal.org.rate_limit,
    })
}
