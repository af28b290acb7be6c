//! Conversations: create, list, read, change, delete (soft, cascading to messages), run a turn
//! with a message, list and delete messages. End-user callers see only their own.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::chat::{MessageView, ToolCallView, idempotency, message_text, reply};
use super::extract::{Json, Path, Query, path_id};
use super::page::{CursorPageParams, Paged};
use crate::agent::{Delivery, Target, TurnRequest};
use crate::auth::Principal;
use crate::conversations;
use crate::domain::conversation::{Conversation, ConversationKind};
use crate::domain::page::PageRequest;
use crate::domain::turn::TurnMetadata;
use crate::domain::{ConversationId, MessageId};
use crate::http::error::{ApiError, FieldError, Problem};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_conversation, list_conversations))
        .routes(routes!(
            get_conversation,
            update_conversation,
            delete_conversation
        ))
        .routes(routes!(create_message, list_messages))
        .routes(routes!(delete_message))
}

/// Body of `POST /api/v1/conversations`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    /// Default "Chat <timestamp>"; at most 200 characters.
    #[schema(example = "Booking help")]
    pub title: Option<String>,
    /// Any JSON object of yours (at most 16 KiB).
    pub metadata: Option<Value>,
}

/// Body of `PATCH /api/v1/conversations/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConversation {
    pub title: Option<String>,
    pub metadata: Option<Value>,
    pub archived: Option<bool>,
}

/// A conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: ConversationId,
    /// `conversation`, or `session` for those started through /chat.
    pub kind: ConversationKind,
    #[schema(example = "Booking help")]
    pub title: String,
    pub metadata: Value,
    pub archived: bool,
    /// The end user who owns it, for conversations started with an end-user token.
    pub user_id: Option<String>,
    /// How many messages the conversation holds now: exactly the messages its history and
    /// `GET /api/v1/conversations/{id}/messages` list (`total`), i.e. the visitor's messages,
    /// the assistant's (those that only call tools included) and tool results; deleted
    /// messages are not counted.
    #[schema(example = 10)]
    pub message_count: i64,
    pub last_message_at: Option<DateTime<Utc>>,
    #[schema(example = "IDLE")]
    pub current_state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Conversation> for ConversationView {
    fn from(c: Conversation) -> Self {
        Self {
            id: c.id,
            kind: c.kind,
            title: c.title,
            metadata: c.metadata.0,
            archived: c.archived,
            user_id: c.end_user,
            message_count: c.message_count,
            last_message_at: c.last_message_at,
            current_state: c.state.0.stage,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A page of conversations.
pub type ConversationPage = Paged<ConversationView>;

/// A page of messages.
pub type MessagePage = Paged<MessageView>;

/// Filters for listing conversations.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    /// Items to skip (not with `after`).
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
    /// The `id` of the last conversation of the previous page: the next page starts after
    /// it and does not shift when conversations start meanwhile.
    #[param(value_type = Option<String>, format = Uuid)]
    pub after: Option<String>,
    /// Only archived (true) or only active (false) conversations.
    pub archived: Option<bool>,
}

/// Body of `POST /api/v1/conversations/{id}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    #[schema(example = "Do you have time tomorrow at 2 PM?")]
    pub message: String,
}

/// A tool's result within the reply's turn.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolResultView {
    pub tool_call_id: String,
    pub name: String,
    pub result: Value,
}

/// The assistant's reply to a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantReply {
    pub id: MessageId,
    #[schema(example = "assistant")]
    pub role: &'static str,
    pub content: String,
    pub tool_calls: Vec<ToolCallView>,
    pub tool_results: Vec<ToolResultView>,
    pub created_at: DateTime<Utc>,
    pub metadata: TurnMetadata,
}

const MAX_METADATA_BYTES: usize = 16 * 1024;

fn check_title(title: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let t = title?.trim();
    if t.is_empty() || t.chars().count() > 200 {
        errors.push(FieldError::new("title", "must be 1 to 200 characters"));
    }
    Some(t.to_owned())
}

fn check_metadata(m: Option<&Value>, errors: &mut Vec<FieldError>) {
    if let Some(m) = m {
        if !m.is_object() {
            errors.push(FieldError::new("metadata", "must be a JSON object"));
        } else if m.to_string().len() > MAX_METADATA_BYTES {
            errors.push(FieldError::new("metadata", "must be at most 16 KiB"));
        }
    }
}

/// Start a conversation.
#[utoipa::path(post, path = "/api/v1/conversations", tag = "conversations", security(("api_key" = []), ("bearer" = [])),
    request_body = NewConversation,
    responses((status = 201, description = "Created", body = ConversationView)))]
async fn create_conversation(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<NewConversation>,
) -> Result<(StatusCode, axum::Json<ConversationView>), ApiError> {
    let mut errors = Vec::new();
    let title = check_title(body.title.as_deref(), &mut errors);
    check_metadata(body.metadata.as_ref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let now = crate::domain::now();
    let title = title.unwrap_or_else(|| format!("Chat {}", now.format("%Y-%m-%d %H:%M")));
    let metadata = body
        .metadata
        .unwrap_or_else(|| Value::Object(Default::default()));
    let conv =
        conversations::create(&state.store, principal.caller(), &title, &metadata, now).await?;
    Ok((StatusCode::CREATED, axum::Json(conv.into())))
}

/// List conversations, newest first. End users see only their own. Page on with `after` = the
/// last item's `id`.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", security(("api_key" = []), ("bearer" = [])),
    params(ConversationQuery),
    responses((status = 200, description = "A page of conversations", body = ConversationPage)))]
async fn list_conversations(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ConversationQuery>,
) -> Result<axum::Json<ConversationPage>, ApiError> {
    let req = PageRequest::with_cursor(q.limit, q.offset, q.after.as_deref())
        .map_err(ApiError::Validation)?;
    let page = conversations::list(&state.store, principal.caller(), q.archived, req).await?;
    Ok(axum::Json(Paged::of(page, req, ConversationView::from)))
}

/// Get a conversation.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", security(("api_key" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 404, description = "No such conversation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_conversation(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<ConversationView>, ApiError> {
    let conv =
        conversations::visible(&state.store, principal.caller(), path_id("id", &id)?).await?;
    Ok(axum::Json(conv.into()))
}

/// Change a conversation's title, metadata or archived flag.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "conversations", security(("api_key" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = UpdateConversation,
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 404, description = "No such conversation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_conversation(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<UpdateConversation>,
) -> Result<axum::Json<ConversationView>, ApiError> {
    let id = path_id("id", &id)?;
    let mut errors = Vec::new();
    let title = check_title(body.title.as_deref(), &mut errors);
    check_metadata(body.metadata.as_ref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let updated = conversations::update(
        &state.store,
        principal.caller(),
        id,
        title.as_deref(),
        body.metadata.as_ref(),
        body.archived,
        crate::domain::now(),
    )
    .await?;
    Ok(axum::Json(updated.into()))
}

/// Delete a conversation (soft: it and its messages disappear from the API).
#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "conversations", security(("api_key" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such conversation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_conversation(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id("id", &id)?;
    conversations::delete(&state.store, principal.caller(), id, crate::domain::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a message: runs an agent turn and returns the assistant's reply. Accepts
/// `Idempotency-Key` like /chat.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "conversations", security(("api_key" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body → the stored reply")),
    request_body = NewMessage,
    responses(
        (status = 201, description = "The assistant's reply", body = AssistantReply,
            headers(("Idempotency-Replayed" = String, description = "`true` when this is the stored reply to a reused Idempotency-Key; absent otherwise"))),
        (status = 404, description = "No such conversation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another turn is running (TURN_IN_PROGRESS)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The model provider failed (LLM_UPSTREAM_ERROR)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The turn timed out (AGENT_TIMEOUT)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_message(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<NewMessage>,
) -> Result<axum::response::Response, ApiError> {
    let req = message_request(&principal, &headers, &id, &body)?;
    let outcome = state
        .agent
        .start(req, Delivery::Reply)
        .await?
        .outcome()
        .await?;
    let body = AssistantReply {
        id: outcome.message_id,
        role: "assistant",
        content: outcome.response.clone(),
        tool_calls: outcome
            .tool_calls
            .iter()
            .map(|c| ToolCallView {
                id: c.id.clone(),
                name: c.name.clone(),
                arguments: c.arguments.clone(),
            })
            .collect(),
        tool_results: outcome
            .tool_calls
            .iter()
            .map(|c| ToolResultView {
                tool_call_id: c.id.clone(),
                name: c.name.clone(),
                result: c.result.clone(),
            })
            .collect(),
        created_at: outcome.created_at,
        metadata: TurnMetadata::of(&outcome),
    };
    Ok(reply(StatusCode::CREATED, body, outcome.replayed))
}

/// Validates a message for conversation `id`: the turn to ask the agent for (which checks the
/// caller may post to it). Shared by the plain and the streaming endpoint.
pub fn message_request(
    principal: &Principal,
    headers: &HeaderMap,
    id: &str,
    body: &NewMessage,
) -> Result<TurnRequest, ApiError> {
    let id: ConversationId = path_id("id", id)?;
    let message = message_text(principal, &body.message)?;
    let idempotency = idempotency(
        headers,
        principal,
        "messages",
        &[
            principal.org_id().as_str(),
            &id.to_string(),
            message.as_str(),
        ],
    )?;
    Ok(TurnRequest {
        org: principal.org.clone(),
        end_user: principal.end_user.clone(),
        target: Target::Conversation(id),
        message,
        idempotency,
    })
}

/// List a conversation's messages, newest first. Page on with `after` = the last item's `id`.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations", security(("api_key" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id"), CursorPageParams),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 404, description = "No such conversation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_messages(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(page): Query<CursorPageParams>,
) -> Result<axum::Json<MessagePage>, ApiError> {
    let req = page.resolve()?;
    let id = path_id("id", &id)?;
    let (_, p) = conversations::messages(&state.store, principal.caller(), id, true, req).await?;
    Ok(axum::Json(Paged::of(p, req, MessageView::from)))
}

/// Delete one message (soft).
#[utoipa::path(delete, path = "/api/v1/conversations/{id}/messages/{message_id}", tag = "conversations", security(("api_key" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id"), ("message_id" = Uuid, Path, description = "Message id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such message", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_message(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = path_id("id", &id)?;
    let mid = path_id("message_id", &message_id)?;
    conversations::delete_message(
        &state.store,
        principal.caller(),
        id,
        mid,
        crate::domain::now(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
