//! Token minting (`POST /api/v1/auth/token`: end-user tokens, and agent tokens for the mailbox) and the caller's own view (`GET /api/v1/me`).

use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth_layer::{ClientAddress, count_body_failure};
use super::extract::Json;
use crate::auth::{Credential, Principal};
use crate::domain::agents::AgentHandle;
use crate::domain::{EndUserId, OrgId, RateLimit};
use crate::http::error::{ApiError, FieldError, Problem};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token))
        .routes(routes!(get_me))
}

/// Lifetime of a token when the request names none.
const DEFAULT_TTL_SECONDS: u64 = 3600;
const MIN_TTL_SECONDS: u64 = 60;

/// Body of `POST /api/v1/auth/token`: either an end-user token (`user_id`, with an API key),
/// or an agent token for the mailbox (`agent_handle` and `agent_secret`, with an API key or
/// with `org_id`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Your id for the end user (a WordPress user id, a customer id, a visitor id). Not with
    /// `agent_handle`.
    #[schema(example = "wp-user-42")]
    pub user_id: Option<String>,
    /// Lifetime in seconds: 60 up to the server's JWT_MAX_TTL_SECONDS (default 86400). Default 3600.
    #[schema(example = 3600)]
    pub ttl_seconds: Option<u64>,
    /// The agent to log in as (the mailbox); with `agent_secret`.
    #[schema(example = "billing-bot")]
    pub agent_handle: Option<String>,
    /// The agent's secret, as shown when it was registered or rotated.
    #[schema(example = "as_Xk3v9QmZp2Lb0Wq1e2R3t4Y5u6I7o8P9a0S1d2F3")]
    pub agent_secret: Option<String>,
    /// The agent's organisation, when no API key is sent (must match the key's otherwise).
    #[schema(example = "demo")]
    pub org_id: Option<String>,
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

/// A freshly minted agent token (the mailbox): an HS256 JWT whose claims carry
/// `agent_handle` and `agent_display_name`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentAccessToken {
    /// Send it as `Authorization: Bearer <access_token>` to the mailbox routes.
    pub access_token: String,
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    #[schema(example = 3600)]
    pub expires_in: u64,
}

/// The body of the token route and who sent it: the principal is absent when an agent logs in
/// with `org_id` and its secret, without a credential header.
pub struct TokenRequest {
    principal: Option<Principal>,
    client: Option<std::net::IpAddr>,
    body: NewToken,
}

impl FromRequest<AppState> for TokenRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let principal = req.extensions().get::<Principal>().cloned();
        let client = req.extensions().get::<ClientAddress>().and_then(|c| c.0);
        if principal
            .as_ref()
            .is_some_and(|p| !matches!(p.credential, Credential::ApiKey { .. }))
        {
            return Err(ApiError::Forbidden(
                "Only API-key callers (or agents with their secret) can mint tokens.".to_owned(),
            ));
        }
        match Json::<NewToken>::from_request(req, state).await {
            Ok(Json(body)) => Ok(Self {
                principal,
                client,
                body,
            }),
            // Without credentials, a body that is not an agent login is no credential either.
            Err(_) if principal.is_none() => Err(unauthenticated()),
            Err(e) => Err(e),
        }
    }
}

fn unauthenticated() -> ApiError {
    ApiError::Unauthorized(
        "Authentication required: send X-API-Key: ak_…, or an agent_handle, agent_secret and org_id.",
    )
}

/// Mint a short-lived token. With an API key and `user_id`: an end-user token, for a browser
/// widget or app to call the API as that end user (201). With `agent_handle` and
/// `agent_secret` (and an API key, or `org_id`): an agent token for the mailbox (200).
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", security(("api_key" = []), ()),
    request_body = NewToken,
    responses(
        (status = 201, description = "An end-user token", body = IssuedToken),
        (status = 200, description = "An agent token", body = AgentAccessToken),
        (status = 401, description = "No API key, or a wrong agent handle or secret", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "End-user tokens cannot mint tokens", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_token(
    State(state): State<AppState>,
    request: TokenRequest,
) -> Result<Response, ApiError> {
    let TokenRequest {
        principal,
        client,
        body,
    } = request;
    let max_ttl = state.settings.jwt_max_ttl_seconds.max(MIN_TTL_SECONDS);
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS.min(max_ttl));
    let ttl_error = (!(MIN_TTL_SECONDS..=max_ttl).contains(&ttl)).then(|| {
        FieldError::new(
            "ttl_seconds",
            format!("must be between {MIN_TTL_SECONDS} and {max_ttl}"),
        )
    });
    if body.agent_handle.is_some() || body.agent_secret.is_some() {
        return agent_token(&state, principal, client, body, ttl, ttl_error).await;
    }
    let Some(principal) = principal else {
        return Err(unauthenticated());
    };
    let mut errors: Vec<FieldError> = ttl_error.into_iter().collect();
    if body.org_id.is_some() {
        errors.push(FieldError::new(
            "org_id",
            "is for agent logins only; an API key names its organisation",
        ));
    }
    let user = match body.user_id.as_deref().map(EndUserId::parse) {
        Some(Ok(user)) => Some(user),
        Some(Err(e)) => {
            errors.push(FieldError::new("user_id", e.0));
            None
        }
        None => {
            errors.push(FieldError::new("user_id", "is required"));
            None
        }
    };
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
        StatusCode::CREATED,
        axum::Json(IssuedToken {
            token,
            token_type: "Bearer",
            expires_in: ttl,
            expires_at,
            org_id: principal.org_id().to_string(),
            user_id: user.as_str().to_owned(),
        }),
    )
        .into_response())
}

/// An agent login: the secret is checked with argon2; a wrong one counts against the client's
/// address like a wrong API key.
async fn agent_token(
    state: &AppState,
    principal: Option<Principal>,
    client: Option<std::net::IpAddr>,
    body: NewToken,
    ttl: u64,
    ttl_error: Option<FieldError>,
) -> Result<Response, ApiError> {
    let mut errors: Vec<FieldError> = ttl_error.into_iter().collect();
    if body.user_id.is_some() {
        errors.push(FieldError::new(
            "user_id",
            "is for end-user tokens; an agent token names no end user",
        ));
    }
    let handle = match body.agent_handle.as_deref().map(AgentHandle::parse) {
        Some(Ok(h)) => Some(h),
        Some(Err(e)) => {
            errors.push(FieldError::new("agent_handle", e.0));
            None
        }
        None => {
            errors.push(FieldError::new(
                "agent_handle",
                "is required with agent_secret",
            ));
            None
        }
    };
    let secret = match body.agent_secret.as_deref() {
        Some(s) if !s.is_empty() && s.len() <= 200 => Some(s),
        Some(_) => {
            errors.push(FieldError::new("agent_secret", "must be 1 to 200 bytes"));
            None
        }
        None => {
            errors.push(FieldError::new(
                "agent_secret",
                "is required with agent_handle",
            ));
            None
        }
    };
    let org = match (&principal, body.org_id.as_deref()) {
        (Some(p), None) => Some(p.org_id().clone()),
        (Some(p), Some(raw)) => {
            if raw != p.org_id().as_str() {
                return Err(ApiError::OrgMismatch);
            }
            Some(p.org_id().clone())
        }
        (None, Some(raw)) => match OrgId::parse(raw) {
            Ok(id) => Some(id),
            Err(e) => {
                errors.push(FieldError::new("org_id", e.0));
                None
            }
        },
        (None, None) => {
            errors.push(FieldError::new("org_id", "is required without an API key"));
            None
        }
    };
    let (Some(handle), Some(secret), Some(org)) = (handle, secret, org) else {
        return Err(ApiError::Validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (org, agent) = match state.auth.agent_login(&org, &handle, secret).await {
        Ok(found) => found,
        Err(e @ crate::auth::AuthError::Unauthorized(_)) => {
            if let Some(wait) = count_body_failure(state, client) {
                return Err(ApiError::RateLimited {
                    retry_after_secs: wait,
                });
            }
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let now = crate::domain::now();
    let expires_at = now + Duration::seconds(i64::try_from(ttl).unwrap_or(i64::MAX));
    let token = state
        .auth
        .jwt()
        .mint_agent(
            org.id.as_str(),
            handle.as_str(),
            &agent.display_name,
            agent.secret_version,
            principal.as_ref().and_then(Principal::minting_key),
            now,
            expires_at,
        )
        .map_err(ApiError::internal)?;
    // The mailbox's audit log (issue 12.5) records every agent token issued.
    let via = if principal.is_some() {
        "api_key"
    } else {
        "secret"
    };
    state
        .store
        .record_token_issued(
            &org.id,
            &handle,
            serde_json::json!({"via": via, "expires_in": ttl}),
            now,
        )
        .await?;
    Ok(axum::Json(AgentAccessToken {
        access_token: token,
        token_type: "bearer",
        expires_in: ttl,
    })
    .into_response())
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
        Credential::AgentToken { .. } => ("agent_token", None),
    };
    axum::Json(Me {
        org_id: principal.org_id().to_string(),
        credential,
        user_id: principal.end_user.map(|u| u.as_str().to_owned()),
        key_id,
        rate_limit: principal.org.rate_limit,
    })
}
