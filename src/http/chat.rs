//! Chat and sessions: `POST /api/v1/chat` (a session is a conversation whose id the client
//! chose), `GET /api/v1/sessions/{id}/history`, `DELETE /api/v1/sessions/{id}`. Also the
//! pieces the conversations router shares: ownership checks, Idempotency-Key handling and the
//! message views.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Json, path_uuid};
use crate::agent::model::{ToolCall, Usage};
use crate::agent::runs::RunLog;
use crate::agent::turn::{ToolCallRecord, TurnOutcome, TurnRequest};
use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::{MessageText, OrgId, parse_uuid};
use crate::error::{ApiError, FieldError, Problem};
use crate::store::conversations::{Conversation, StoredMessage};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_chat))
        .routes(routes!(get_history))
        .routes(routes!(delete_session))
}

/// Body of `POST /api/v1/chat`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The visitor's message: 1 to the org's max_message_chars characters; HTML is stripped.
    #[schema(example = "Hello, I need to book an appointment")]
    pub message: String,
    /// Your id for the conversation (a UUID); a new one starts a session.
    #[schema(example = "5f0c6a1e-2b7d-4c3e-9a8f-1d2e3f4a5b6c")]
    pub session_id: String,
    /// Must be the organisation of your credentials.
    #[schema(example = "demo")]
    pub org_id: String,
}

/// What the turn did, beside the reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct TurnMetadata {
    /// Id of the assistant's reply message.
    pub message_id: Uuid,
    /// COLLECT_SERVICE, COLLECT_DATETIME, COLLECT_CONTACT, CONFIRM, COMPLETE or IDLE.
    #[schema(example = "COLLECT_SERVICE")]
    pub current_state: &'static str,
    /// Messages in the conversation, this turn's included (tool calls and results count).
    pub message_count: i64,
    pub tool_calls: Vec<ToolCallRecord>,
    pub usage: Usage,
    #[schema(example = "offline")]
    pub model: String,
    pub run_id: Uuid,
}

impl TurnMetadata {
    pub fn of(o: &TurnOutcome) -> Self {
        Self {
            message_id: o.message_id,
            current_state: o.current_state(),
            message_count: o.message_count,
            tool_calls: o.tool_calls.clone(),
            usage: o.usage,
            model: o.model.clone(),
            run_id: o.run_id,
        }
    }
}

/// The agent's answer to a chat message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatResponse {
    #[schema(
        example = "Happy to help! Which service would you like: General Consultation, Follow-up Visit or Extended Session?"
    )]
    pub response: String,
    pub session_id: Uuid,
    /// Id of the assistant's reply message.
    pub message_id: Uuid,
    pub metadata: TurnMetadata,
}

/// A stored message as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    /// user, assistant or tool.
    #[schema(example = "assistant")]
    pub role: String,
    pub content: String,
    /// Tool calls an assistant message made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For tool results: the call answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For tool results: the tool's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<StoredMessage> for MessageView {
    fn from(m: StoredMessage) -> Self {
        Self {
            id: m.id,
            role: m.role,
            content: m.content,
            tool_calls: m.tool_calls.map(|j| j.0).unwrap_or_default(),
            tool_call_id: m.tool_call_id,
            name: m.tool_name,
            model: m.model,
            created_at: m.created_at,
        }
    }
}

/// State of a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionMetadata {
    #[schema(example = "CONFIRM")]
    pub current_state: &'static str,
    pub message_count: i64,
}

/// A session's messages, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionHistory {
    pub session_id: Uuid,
    pub messages: Vec<MessageView>,
    pub metadata: SessionMetadata,
}

/// The conversation, if the caller may see it: another org's is 404, another end user's 403.
pub async fn visible_conversation(
    state: &AppState,
    p: &Principal,
    id: Uuid,
) -> Result<Conversation, ApiError> {
    let conv = state
        .store
        .get_conversation(p.org_id(), id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation {id}")))?;
    check_owner(p, &conv)?;
    Ok(conv)
}

/// End users may use only their own conversations; API-key callers all of their org's.
pub fn check_owner(p: &Principal, conv: &Conversation) -> Result<(), ApiError> {
    match (&p.end_user, &conv.end_user) {
        (Some(user), owner) if owner.as_deref() != Some(user.as_str()) => Err(ApiError::Forbidden(
            "This conversation belongs to another user.".to_owned(),
        )),
        _ => Ok(()),
    }
}

/// The `Idempotency-Key` header with a fingerprint of what it is used for.
/// Keys are scoped to the caller (the end user, or the API key's organisation as a whole), so
/// two widgets that both number their requests `msg-1` do not collide.
pub fn idempotency(
    headers: &HeaderMap,
    principal: &Principal,
    route: &str,
    parts: &[&str],
) -> Result<Option<(String, String)>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v.to_str().unwrap_or("").trim();
    if key.is_empty() || key.len() > 255 || key.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "Idempotency-Key",
            "must be 1 to 255 printable characters",
        ));
    }
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    for part in parts {
        h.update([0u8]);
        h.update(part.as_bytes());
    }
    let hash: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let scoped = match &principal.end_user {
        Some(user) => format!("user:{}:{key}", user.as_str()),
        None => format!("org:{key}"),
    };
    Ok(Some((scoped, hash)))
}

/// A message validated against the org's limits.
pub fn message_text(p: &Principal, raw: &str) -> Result<MessageText, ApiError> {
    MessageText::parse(raw, p.org.settings.max_message_chars as usize)
        .map_err(|e| ApiError::validation("message", e.0))
}

/// Send a message in a session and get the agent's reply. A new `session_id` starts a
/// session. With `Idempotency-Key`, a retried request returns the stored reply instead of
/// running a second turn.
#[utoipa::path(post, path = "/api/v1/chat", tag = "chat", security(("api_key" = []), ("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body → the stored reply")),
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The agent's reply", body = ChatResponse),
        (status = 403, description = "org_id is not yours (ORG_MISMATCH), or the session is another user's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another turn is running and the org's policy is reject (TURN_IN_PROGRESS)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The model provider failed (LLM_UPSTREAM_ERROR)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The turn timed out (AGENT_TIMEOUT)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn post_chat(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Json(body): Json<ChatRequest>,
) -> Result<axum::Json<ChatResponse>, ApiError> {
    let turn = prepare_chat(&state, &principal, &headers, &body).await?;
    let session_id = turn.conv.id;
    let outcome = state
        .agent
        .run_turn_detached(turn.into_request(&principal, None))
        .await?;
    Ok(axum::Json(ChatResponse {
        response: outcome.response.clone(),
        session_id,
        message_id: outcome.message_id,
        metadata: TurnMetadata::of(&outcome),
    }))
}

/// A turn ready to run: validated, authorised, its conversation found or created.
pub struct PreparedTurn {
    pub conv: Conversation,
    pub message: MessageText,
    pub idempotency: Option<(String, String)>,
}

impl PreparedTurn {
    pub fn into_request(self, principal: &Principal, events: Option<Arc<RunLog>>) -> TurnRequest {
        TurnRequest {
            org: principal.org.clone(),
            end_user: principal.end_user.clone(),
            conversation_id: self.conv.id,
            message: self.message,
            idempotency: self.idempotency,
            run_id: events.as_ref().map_or_else(Uuid::now_v7, |log| log.run_id),
            events,
        }
    }
}

/// Validates a /chat body (every field error at once), checks the org, finds or creates the
/// session and checks the caller may use it. Shared by /chat and /chat/stream.
pub async fn prepare_chat(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    body: &ChatRequest,
) -> Result<PreparedTurn, ApiError> {
    let mut errors = Vec::new();
    let org = OrgId::parse(&body.org_id)
        .map_err(|e| errors.push(FieldError::new("org_id", e.0)))
        .ok();
    let session = parse_uuid(&body.session_id)
        .map_err(|e| errors.push(FieldError::new("session_id", e.0)))
        .ok();
    let message = message_text(principal, &body.message)
        .map_err(|e| {
            if let ApiError::Validation(mut f) = e {
                errors.append(&mut f);
            }
        })
        .ok();
    let (Some(org), Some(session), Some(message)) = (org, session, message) else {
        return Err(ApiError::Validation(errors));
    };
    if &org != principal.org_id() {
        return Err(ApiError::OrgMismatch);
    }
    let idempotency = idempotency(
        headers,
        principal,
        "chat",
        &[org.as_str(), &session.to_string(), message.as_str()],
    )?;
    let end_user = principal.end_user.as_ref().map(|u| u.as_str());
    let conv = state
        .store
        .ensure_session(&org, session, end_user, crate::store::now())
        .await?;
    check_owner(principal, &conv)?;
    Ok(PreparedTurn {
        conv,
        message,
        idempotency,
    })
}

/// Most messages `GET /sessions/{id}/history` returns (the latest ones).
const HISTORY_LIMIT: i64 = 1000;

/// A session's latest messages (up to 1000), oldest first, with tool calls and results.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/history", tag = "chat", security(("api_key" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "The history", body = SessionHistory),
        (status = 404, description = "No such session", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_history(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<SessionHistory>, ApiError> {
    let conv = visible_conversation(&state, &principal, path_uuid("id", &id)?).await?;
    // The latest messages, shown oldest first.
    let page = state
        .store
        .list_messages(principal.org_id(), conv.id, true, HISTORY_LIMIT, 0)
        .await?;
    Ok(axum::Json(SessionHistory {
        session_id: conv.id,
        messages: page
            .items
            .into_iter()
            .rev()
            .map(MessageView::from)
            .collect(),
        metadata: SessionMetadata {
            current_state: conv.state.0.stage.as_str(),
            message_count: conv.message_count,
        },
    }))
}

/// Erase a session: its messages, checkpoints and runs are deleted for good (GDPR erasure).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "chat", security(("api_key" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Erased"),
        (status = 404, description = "No such session", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_session(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_uuid("id", &id)?;
    // Soft-deleted conversations can be erased too: erasure is the stronger request.
    let owner = state
        .store
        .conversation_owner(principal.org_id(), id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no session {id}")))?;
    if let Some(user) = &principal.end_user {
        if owner.as_deref() != Some(user.as_str()) {
            return Err(ApiError::Forbidden(
                "This conversation belongs to another user.".to_owned(),
            ));
        }
    }
    match state
        .store
        .erase_conversation(principal.org_id(), id, crate::store::now())
        .await
    {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(crate::store::StoreError::Conflict(_)) => Err(ApiError::TurnInProgress),
        Err(e) => Err(e.into()),
    }
}
