//! Webhook endpoints of an organisation (`/api/v1/webhooks`): register (alias `/register`),
//! list, get, update, delete, send a test event, read the delivery log. API-key callers only;
//! another organisation's webhook is 404. Delivery itself is `webhooks::worker`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Json, Path, Query, path_uuid};
use super::page::{PageParams, Paged};
use crate::auth::Principal;
use crate::domain::events::{EventCatalog, EventType, WebhookEvent, WebhookTestData};
use crate::http::error::{ApiError, FieldError, Problem};
use crate::state::AppState;
use crate::store::webhooks::{DeliveryAttempt, Webhook, WebhookPatch};
use crate::webhooks::check_target;
use crate::webhooks::signing::SigningSecret;

/// Endpoints one organisation may register: bounds the fan-out of every event.
pub const MAX_WEBHOOKS_PER_ORG: i64 = 20;
const MAX_DESCRIPTION_CHARS: usize = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(register_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(test_webhook))
        .routes(routes!(list_deliveries))
}

/// An endpoint to register. Give `event_types` (or a single `event_type`).
// No Debug: it may carry the secret.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "url": "https://shop.example.com/wp-json/agentd/v1/webhook",
    "event_types": ["appointment.created", "appointment.cancelled"],
    "description": "WordPress plugin"
}))]
pub struct NewWebhook {
    /// `https://` (or `http://`) URL receiving POSTs. Must resolve to a public address.
    pub url: String,
    /// Event types to receive; see `WebhookEvent`.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// A single event type, instead of `event_types`.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Signing secret: `whsec_<base64 of 24–64 bytes>` (signed with the decoded bytes), or
    /// any other text of 16–256 characters (signed with its UTF-8 bytes as given, e.g.
    /// `wordpress_webhook_secret`). Generated (`whsec_`, 32 random bytes) when absent.
    #[serde(default)]
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwRm9vYmFy")]
    pub secret: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Changes to an endpoint; absent fields stay as they are. `active: true` re-enables an
/// endpoint that was disabled after failing, and clears its failure record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event_types": ["appointment.created"], "active": true}))]
pub struct UpdateWebhook {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A registered endpoint (the secret is shown only at registration).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    #[schema(example = "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a11")]
    pub id: Uuid,
    /// The same as `id` (kept for plugins that read it).
    #[schema(example = "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a11")]
    pub webhook_id: Uuid,
    #[schema(example = "https://shop.example.com/wp-json/agentd/v1/webhook")]
    pub url: String,
    #[schema(example = json!(["appointment.created", "appointment.cancelled"]))]
    pub event_types: Vec<String>,
    pub description: Option<String>,
    /// False when switched off by PATCH or after failing continuously.
    pub active: bool,
    /// Start of the current run of failed deliveries, if any.
    pub failing_since: Option<chrono::DateTime<chrono::Utc>>,
    pub disabled_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why the endpoint was disabled automatically.
    pub disabled_reason: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            webhook_id: w.id,
            url: w.url,
            event_types: w.event_types,
            description: w.description,
            active: w.active,
            failing_since: w.failing_since,
            disabled_at: w.disabled_at,
            disabled_reason: w.disabled_reason,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A newly registered endpoint, with its signing secret: store it now, it is not shown again.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a11",
    "webhook_id": "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a11",
    "url": "https://shop.example.com/wp-json/agentd/v1/webhook",
    "event_types": ["appointment.cancelled", "appointment.created"],
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwRm9vYmFy",
    "description": "WordPress plugin",
    "created_at": "2026-11-23T10:15:00.123456Z",
    "active": true
}))]
pub struct RegisteredWebhook {
    pub id: Uuid,
    /// The same as `id` (kept for plugins that read it).
    pub webhook_id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    /// The signing secret, as given or generated. For a `whsec_` secret the HMAC key is the
    /// base64-decoded part after `whsec_`; for any other secret it is the secret's own bytes.
    pub secret: String,
    pub description: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub active: bool,
}

/// A page of endpoints, newest first.
pub type WebhookPage = Paged<WebhookView>;

/// A page of the delivery log, newest first.
pub type DeliveryPage = Paged<DeliveryAttempt>;

/// The test event that was sent and what the endpoint answered. A failed test is retried on
/// the usual schedule, like any delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestDelivery {
    pub event: WebhookEvent,
    pub attempt: DeliveryAttempt,
}

fn key_callers_only(p: &Principal) -> Result<(), ApiError> {
    Ok(p.require_api_key("Webhooks")?)
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no webhook {id}"))
}

/// `event_types` and/or `event_type`, known and deduplicated; `None` when neither is given.
fn event_types(
    catalog: &EventCatalog,
    many: Option<&[String]>,
    one: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<EventType>> {
    if many.is_none() && one.is_none() {
        return None;
    }
    let mut out = Vec::new();
    let named = many
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("event_types[{i}]"), t.as_str()))
        .chain(one.map(|t| ("event_type".to_owned(), t)));
    for (field, raw) in named {
        match catalog.parse(raw) {
            Some(t) if !out.contains(&t) => out.push(t),
            Some(_) => {}
            None => errors.push(FieldError::new(
                field,
                format!("unknown event type {raw:?}; known: {}", catalog.known()),
            )),
        }
    }
    if out.is_empty() && errors.is_empty() {
        errors.push(FieldError::new(
            "event_types",
            format!("must name at least one of: {}", catalog.known()),
        ));
    }
    Some(out)
}

async fn checked_url(state: &AppState, raw: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match check_target(raw, state.settings.webhook_allow_private_networks).await {
        Ok(url) => Some(url.to_string()),
        Err(e) => {
            errors.push(FieldError::new("url", e.0));
            None
        }
    }
}

fn checked_description(raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let d = raw?.trim();
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.push(FieldError::new(
            "description",
            "must be at most 500 characters",
        ));
    }
    Some(d.to_owned())
}

/// Register a webhook endpoint.
///
/// The response is the only time the signing secret is shown. Targets resolving to loopback,
/// private, link-local or metadata addresses are refused (422) unless the operator allows
/// private networks.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("api_key" = [])),
    request_body = NewWebhook,
    responses(
        (status = 201, description = "Registered; keep the secret", body = RegisteredWebhook),
        (status = 409, description = "The organisation has 20 endpoints already (CONFLICT)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid URL (refused address), unknown event type, or a secret that is neither whsec_ base64 nor 16–256 characters (VALIDATION_ERROR)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_webhook(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<NewWebhook>,
) -> Result<(StatusCode, axum::Json<RegisteredWebhook>), ApiError> {
    register(state, principal, body).await
}

/// Register a webhook endpoint (alias of `POST /api/v1/webhooks`).
#[utoipa::path(post, path = "/api/v1/webhooks/register", tag = "webhooks", security(("api_key" = [])),
    request_body = NewWebhook,
    responses(
        (status = 201, description = "Registered; keep the secret", body = RegisteredWebhook),
        (status = 409, description = "The organisation has 20 endpoints already (CONFLICT)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid URL (refused address), unknown event type, or a secret that is neither whsec_ base64 nor 16–256 characters (VALIDATION_ERROR)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn register_webhook(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<NewWebhook>,
) -> Result<(StatusCode, axum::Json<RegisteredWebhook>), ApiError> {
    register(state, principal, body).await
}

async fn register(
    state: AppState,
    principal: Principal,
    body: NewWebhook,
) -> Result<(StatusCode, axum::Json<RegisteredWebhook>), ApiError> {
    key_callers_only(&principal)?;
    let mut errors = Vec::new();
    let types = event_types(
        &state.events,
        body.event_types.as_deref(),
        body.event_type.as_deref(),
        &mut errors,
    );
    if types.is_none() {
        errors.push(FieldError::new(
            "event_types",
            format!("required; one or more of: {}", state.events.known()),
        ));
    }
    let secret = match body.secret.as_deref() {
        None => Some(SigningSecret::generate()),
        // Not trimmed here: a raw secret signs with exactly the bytes the plugin sent.
        Some(raw) => SigningSecret::parse(raw)
            .map_err(|e| errors.push(FieldError::new("secret", e)))
            .ok(),
    };
    let description = checked_description(body.description.as_deref(), &mut errors);
    let url = checked_url(&state, &body.url, &mut errors).await;
    let (Some(types), Some(secret), Some(url), true) = (types, secret, url, errors.is_empty())
    else {
        return Err(ApiError::Validation(errors));
    };
    let org = principal.org_id();
    if state.store.count_webhooks(org).await? >= MAX_WEBHOOKS_PER_ORG {
        return Err(ApiError::Conflict(format!(
            "An organisation may register at most {MAX_WEBHOOKS_PER_ORG} webhooks; delete one first."
        )));
    }
    let hook = state
        .store
        .create_webhook(
            org,
            &url,
            secret.expose(),
            description.as_deref(),
            &types,
            crate::domain::now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(RegisteredWebhook {
            id: hook.id,
            webhook_id: hook.id,
            url: hook.url,
            event_types: hook.event_types,
            secret: secret.expose().to_owned(),
            description: hook.description,
            created_at: hook.created_at,
            active: hook.active,
        }),
    ))
}

/// List the organisation's webhook endpoints, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("api_key" = [])),
    params(PageParams),
    responses((status = 200, description = "A page of endpoints", body = WebhookPage)))]
async fn list_webhooks(
    State(state): State<AppState>,
    principal: Principal,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<WebhookPage>, ApiError> {
    key_callers_only(&principal)?;
    let req = page.resolve()?;
    let page = state.store.list_webhooks(principal.org_id(), req).await?;
    Ok(axum::Json(Paged::of(page, req, WebhookView::from)))
}

/// Get a webhook endpoint.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookView),
        (status = 404, description = "No such webhook in this organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_webhook(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    key_callers_only(&principal)?;
    let id = path_uuid("id", &id)?;
    state
        .store
        .get_webhook(principal.org_id(), id)
        .await?
        .map(|w| axum::Json(w.into()))
        .ok_or_else(|| not_found(id))
}

/// Change a webhook's URL, event types, description or `active` flag.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The updated endpoint", body = WebhookView),
        (status = 404, description = "No such webhook in this organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_webhook(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<UpdateWebhook>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    key_callers_only(&principal)?;
    let id = path_uuid("id", &id)?;
    let mut errors = Vec::new();
    let types = event_types(
        &state.events,
        body.event_types.as_deref(),
        body.event_type.as_deref(),
        &mut errors,
    );
    let description = checked_description(body.description.as_deref(), &mut errors);
    let url = match &body.url {
        Some(raw) => checked_url(&state, raw, &mut errors).await,
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let patch = WebhookPatch {
        url,
        description,
        event_types: types,
        active: body.active,
    };
    state
        .store
        .update_webhook(principal.org_id(), id, &patch, crate::domain::now())
        .await?
        .map(|w| axum::Json(w.into()))
        .ok_or_else(|| not_found(id))
}

/// Delete a webhook endpoint; pending deliveries to it are dropped.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such webhook in this organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_webhook(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    key_callers_only(&principal)?;
    let id = path_uuid("id", &id)?;
    if state.store.delete_webhook(principal.org_id(), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(id))
    }
}

/// Send a `webhook.test` event to the endpoint now, whatever it subscribes to, and report
/// what it answered (within WEBHOOK_TIMEOUT_SECONDS).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "Sent; `attempt.outcome` says whether the endpoint accepted it", body = TestDelivery,
            example = json!({
                "event": {"id": "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a11", "type": "webhook.test",
                          "created_at": "2026-11-23T10:15:00.123456Z", "org_id": "clinic",
                          "data": {"webhook_id": "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a10", "message": "This is a test event from agentd."}},
                "attempt": {"id": "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a12", "event_id": "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a11",
                            "event_type": "webhook.test", "attempt": 1, "outcome": "delivered", "status_code": 200,
                            "latency_ms": 42, "error": null, "next_retry_at": null, "created_at": "2026-11-23T10:15:00.165432Z"}
            })),
        (status = 404, description = "No such webhook in this organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn test_webhook(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<TestDelivery>, ApiError> {
    key_callers_only(&principal)?;
    let id = path_uuid("id", &id)?;
    let data = serde_json::to_value(WebhookTestData {
        webhook_id: id,
        message: "This is a test event from agentd.".to_owned(),
    })
    .map_err(ApiError::internal)?;
    let now = crate::domain::now();
    let lease = chrono::Duration::from_std(state.webhooks.lease()).unwrap_or_default();
    let due = state
        .store
        .create_test_delivery(principal.org_id(), id, &data, now, now + lease)
        .await?
        .ok_or_else(|| not_found(id))?;
    let event = WebhookEvent {
        id: due.event_id,
        kind: due.event_type.clone(),
        created_at: due.event_created_at,
        org_id: due.org_id.clone(),
        data,
    };
    let (attempt, _) = state.webhooks.attempt(due, now).await?;
    Ok(axum::Json(TestDelivery { event, attempt }))
}

/// The endpoint's delivery log, newest first: one line per attempt (event, status code,
/// latency, error, next retry), plus an `endpoint_disabled` line if it was switched off.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Webhook id"), PageParams),
    responses(
        (status = 200, description = "A page of delivery attempts", body = DeliveryPage),
        (status = 404, description = "No such webhook in this organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<DeliveryPage>, ApiError> {
    key_callers_only(&principal)?;
    let id = path_uuid("id", &id)?;
    let req = page.resolve()?;
    let org = principal.org_id();
    if state.store.get_webhook(org, id).await?.is_none() {
        return Err(not_found(id));
    }
    let page = state.store.list_attempts(org, id, req).await?;
    Ok(axum::Json(Paged::of(page, req, |a| a)))
}
