//! Chat and sessions: `POST /api/v1/chat` (a session is a conversation whose id the client
//! chose), `GET /api/v1/sessions/{id}/history`, `DELETE /api/v1/sessions/{id}`. Also the
//! pieces the conversations router shares: reading an Idempotency-Key and a message, and the
//! message view. Handlers parse, call the agent or the conversations service, and render.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Json, Path, path_id};
use crate::agent::{Delivery, IdempotencyKey, Target, TurnRequest};
use crate::auth::Principal;
use crate::conversations;
use crate::domain::chat::{Role, ToolCall};
use crate::domain::conversation::Message;
use crate::domain::page::PageRequest;
use crate::domain::turn::TurnMetadata;
use crate::domain::{ConversationId, MessageId, MessageText, OrgId, parse_uuid};
use crate::http::error::{ApiError, FieldError, Problem};
use crate::state::AppState;

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

/// The agent's answer to a chat message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatResponse {
    #[schema(
        example = "Happy to help! Which service would you like: General Consultation, Follow-up Visit or Extended Session?"
    )]
    pub response: String,
    pub session_id: ConversationId,
    /// Id of the assistant's reply message.
    pub message_id: MessageId,
    pub metadata: TurnMetadata,
}

/// A tool call as every response shows it: the arguments are parsed JSON (an object), the
/// same type in `/chat`, histories, message lists and streams (issue 11.8).
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolCallView {
    #[schema(example = "call_0193a4f26c1e7b3a")]
    pub id: String,
    #[schema(example = "check_availability")]
    pub name: String,
    /// The arguments as parsed JSON (or the raw text, as a string, when the model wrote
    /// something that is not JSON).
    #[schema(value_type = crate::domain::chat::JsonObject, example = json!({"service_id": "general-consultation", "date": "2026-12-03"}))]
    pub arguments: serde_json::Value,
}

impl From<&ToolCall> for ToolCallView {
    fn from(c: &ToolCall) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            arguments: c.arguments_json(),
        }
    }
}

/// A stored message as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: MessageId,
    /// user, assistant or tool.
    pub role: Role,
    pub content: String,
    /// Tool calls an assistant message made; `arguments` is a JSON object, as in `/chat`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallView>,
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

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        Self {
            id: m.id,
            role: m.role,
            content: m.content,
            tool_calls: m
                .tool_calls
                .map(|j| j.0.iter().map(ToolCallView::from).collect())
                .unwrap_or_default(),
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
    pub current_state: String,
    /// How many messages the conversation holds now: exactly the messages its history and
    /// `GET /api/v1/conversations/{id}/messages` list (`total`), i.e. the visitor's messages,
    /// the assistant's (those that only call tools included) and tool results; deleted
    /// messages are not counted.
    #[schema(example = 10)]
    pub message_count: i64,
}

/// A session's messages, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionHistory {
    /// The session's id (as every resource carries it).
    pub id: ConversationId,
    /// The same as `id`.
    pub session_id: ConversationId,
    pub messages: Vec<MessageView>,
    pub metadata: SessionMetadata,
}

/// The `Idempotency-Key` header, scoped to the caller and fingerprinted with what it is used
/// for (`route` and the request's `parts`).
pub fn idempotency(
    headers: &HeaderMap,
    principal: &Principal,
    route: &str,
    parts: &[&str],
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    IdempotencyKey::new(
        v.to_str().unwrap_or(""),
        principal.end_user.as_ref(),
        route,
        parts,
    )
    .map(Some)
    .map_err(|e| ApiError::validation("Idempotency-Key", e.0))
}

/// Name of the header set on a reply replayed for a reused Idempotency-Key.
pub const IDEMPOTENCY_REPLAYED: &str = "idempotency-replayed";

/// `body` as the response, with `Idempotency-Replayed: true` when it is a stored reply
/// returned again (as Stripe and the IETF idempotency-key draft's implementations do).
pub fn reply(status: StatusCode, body: impl Serialize, replayed: bool) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    if replayed {
        res.headers_mut()
            .insert(IDEMPOTENCY_REPLAYED, HeaderValue::from_static("true"));
    }
    res
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
        (status = 200, description = "The agent's reply", body = ChatResponse,
            headers(("Idempotency-Replayed" = String, description = "`true` when this is the stored reply to a reused Idempotency-Key; absent otherwise"))),
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
) -> Result<Response, ApiError> {
    let req = chat_request(&principal, &headers, &body)?;
    let handle = state.agent.start(req, Delivery::Reply).await?;
    let session_id = handle.conversation_id;
    let outcome = handle.outcome().await?;
    let body = ChatResponse {
        response: outcome.response.clone(),
        session_id,
        message_id: outcome.message_id,
        metadata: TurnMetadata::of(&outcome),
    };
    Ok(reply(StatusCode::OK, body, outcome.replayed))
}

/// Validates a /chat body (every field error at once) and checks the org: the turn to ask the
/// agent for. Shared by /chat and /chat/stream.
pub fn chat_request(
    principal: &Principal,
    headers: &HeaderMap,
    body: &ChatRequest,
) -> Result<TurnRequest, ApiError> {
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
    Ok(TurnRequest {
        org: principal.org.clone(),
        end_user: principal.end_user.clone(),
        target: Target::Session(ConversationId::from(session)),
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
    let id = path_id("id", &id)?;
    // The latest messages, shown oldest first.
    let latest = PageRequest {
        limit: HISTORY_LIMIT,
        offset: 0,
        after: None,
    };
    let (conv, page) =
        conversations::messages(&state.store, principal.caller(), id, true, latest).await?;
    Ok(axum::Json(SessionHistory {
        id: conv.id,
        session_id: conv.id,
        messages: page
            .items
            .into_iter()
            .rev()
            .map(MessageView::from)
            .collect(),
        metadata: SessionMetadata {
            current_state: conv.state.0.stage,
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
    let id = path_id("id", &id)?;
    conversations::erase(&state.store, principal.caller(), id, crate::domain::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
