//! The mailbox's thread routes (`/api/v1/threads…`): the threads an agent takes part in, their
//! messages, replies, shared metadata and per-participant archiving. A thread the caller does
//! not take part in is 404.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::Caller;
use super::routes::{MessagePage, Pagination};
use super::service::{self, NewReply};
use super::store::{Mailbox, Message, Thread};
use crate::domain::page::PageRequest;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{Json, Path, Query, path_uuid};
use crate::http::page::PageParams;
use crate::state::AppState;

/// Most keys a thread's metadata holds.
pub const MAX_METADATA_KEYS: usize = 50;
/// Longest key, in characters.
pub const MAX_KEY_CHARS: usize = 100;
/// Largest value, as JSON text.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_threads))
        .routes(routes!(get_thread))
        .routes(routes!(list_thread_messages))
        .routes(routes!(reply_to_thread))
        .routes(routes!(set_thread_metadata, get_thread_metadata))
        .routes(routes!(get_thread_metadata_key))
        .routes(routes!(archive_thread))
        .routes(routes!(unarchive_thread))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThreadQuery {
    /// true: only the threads you archived; false: only the others; absent: all.
    pub archived: Option<bool>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
}

/// A page of threads.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadPage {
    pub threads: Vec<Thread>,
    pub pagination: Pagination,
}

/// The thread, if the caller takes part in it; 404 otherwise.
async fn thread_of(state: &AppState, caller: &Caller, raw: &str) -> Result<Thread, ApiError> {
    let id = path_uuid("id", raw)?;
    Mailbox(&state.store)
        .visible_thread(caller.org_id(), &caller.handle, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no thread {id}")))
}

/// List the threads you take part in, most recently active first.
#[utoipa::path(get, path = "/api/v1/threads", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(ThreadQuery),
    responses((status = 200, description = "A page of threads", body = ThreadPage)))]
async fn list_threads(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ThreadQuery>,
) -> Result<axum::Json<ThreadPage>, ApiError> {
    let page = PageRequest::new(q.limit, q.offset).map_err(ApiError::Validation)?;
    let found = Mailbox(&state.store)
        .list_threads(caller.org_id(), &caller.handle, q.archived, page)
        .await?;
    Ok(axum::Json(ThreadPage {
        pagination: Pagination::of(page, &found),
        threads: found.items,
    }))
}

/// Get a thread you take part in.
#[utoipa::path(get, path = "/api/v1/threads/{id}", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Thread id")),
    responses(
        (status = 200, description = "The thread", body = Thread),
        (status = 404, description = "No such thread among yours", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_thread(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Thread>, ApiError> {
    Ok(axum::Json(thread_of(&state, &caller, &id).await?))
}

/// The messages of a thread that you sent or received, oldest first.
#[utoipa::path(get, path = "/api/v1/threads/{id}/messages", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Thread id"), PageParams),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 404, description = "No such thread among yours", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_thread_messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<MessagePage>, ApiError> {
    let page = page.resolve()?;
    let thread = thread_of(&state, &caller, &id).await?;
    let found = Mailbox(&state.store)
        .thread_messages(caller.org_id(), &caller.handle, thread.id, page)
        .await?;
    Ok(axum::Json(MessagePage {
        pagination: Pagination::of(page, &found),
        messages: found.items,
    }))
}

/// Reply in a thread: to its latest message (of those you sent or received), and so to every
/// other participant that is still an active agent.
#[utoipa::path(post, path = "/api/v1/threads/{id}/reply", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Thread id")),
    request_body = NewReply,
    responses(
        (status = 201, description = "The reply", body = Message),
        (status = 404, description = "No such thread among yours", body = Problem, content_type = "application/problem+json"),
    ))]
async fn reply_to_thread(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<NewReply>,
) -> Result<(StatusCode, axum::Json<Message>), ApiError> {
    let thread = thread_of(&state, &caller, &id).await?;
    let latest = Mailbox(&state.store)
        .latest_message(caller.org_id(), &caller.handle, thread.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no message in thread {}", thread.id)))?;
    let reply = service::reply_to(&state.store, &caller, &latest, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(reply)))
}

/// Body of `PUT /api/v1/threads/{id}/metadata`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataEntry {
    /// 1–100 characters.
    #[schema(example = "ticket")]
    pub key: String,
    /// Any JSON value up to 8 KiB; `null` removes the key.
    #[schema(value_type = Object, example = json!("T-1042"))]
    pub value: serde_json::Value,
}

/// A thread's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadMetadata {
    pub thread_id: Uuid,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// One metadata entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetadataValue {
    /// The key again: every resource carries its identifier as `id` (issue 11.8).
    pub id: String,
    pub key: String,
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
}

/// Set one key of a thread's metadata (shared by its participants); `"value": null` removes it.
#[utoipa::path(put, path = "/api/v1/threads/{id}/metadata", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Thread id")),
    request_body = MetadataEntry,
    responses(
        (status = 200, description = "The thread's metadata after the change", body = ThreadMetadata),
        (status = 404, description = "No such thread among yours", body = Problem, content_type = "application/problem+json"),
    ))]
async fn set_thread_metadata(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<MetadataEntry>,
) -> Result<axum::Json<ThreadMetadata>, ApiError> {
    let thread = thread_of(&state, &caller, &id).await?;
    let key = body.key.trim();
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(ApiError::validation(
            "key",
            format!("must be 1 to {MAX_KEY_CHARS} characters"),
        ));
    }
    let value = (!body.value.is_null()).then_some(&body.value);
    if let Some(v) = value {
        if serde_json::to_string(v).map_or(usize::MAX, |s| s.len()) > MAX_VALUE_BYTES {
            return Err(ApiError::validation(
                "value",
                format!("must be at most {MAX_VALUE_BYTES} bytes of JSON"),
            ));
        }
        if !thread.metadata.contains_key(key) && thread.metadata.len() >= MAX_METADATA_KEYS {
            return Err(ApiError::validation(
                "key",
                format!("a thread holds at most {MAX_METADATA_KEYS} keys"),
            ));
        }
    }
    let metadata = Mailbox(&state.store)
        .set_thread_metadata(caller.org_id(), &caller.handle, thread.id, key, value)
        .await?;
    Ok(axum::Json(ThreadMetadata {
        thread_id: thread.id,
        metadata,
    }))
}

/// A thread's metadata.
#[utoipa::path(get, path = "/api/v1/threads/{id}/metadata", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Thread id")),
    responses(
        (status = 200, description = "The metadata", body = ThreadMetadata),
        (status = 404, description = "No such thread among yours", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_thread_metadata(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<ThreadMetadata>, ApiError> {
    let thread = thread_of(&state, &caller, &id).await?;
    Ok(axum::Json(ThreadMetadata {
        thread_id: thread.id,
        metadata: thread.metadata.0,
    }))
}

/// One key of a thread's metadata.
#[utoipa::path(get, path = "/api/v1/threads/{id}/metadata/{key}", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Thread id"),
           ("key" = String, Path, description = "Metadata key")),
    responses(
        (status = 200, description = "The entry", body = MetadataValue),
        (status = 404, description = "No such thread among yours, or no such key", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_thread_metadata_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<axum::Json<MetadataValue>, ApiError> {
    let thread = thread_of(&state, &caller, &id).await?;
    let value = thread.metadata.get(&key).cloned().ok_or_else(|| {
        ApiError::NotFound(format!("thread {} has no metadata key {key}", thread.id))
    })?;
    Ok(axum::Json(MetadataValue {
        id: key.clone(),
        key,
        value,
    }))
}

async fn set_archived(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    archived: bool,
) -> Result<axum::Json<Thread>, ApiError> {
    let id = path_uuid("id", raw)?;
    if !Mailbox(&state.store)
        .set_archived(caller.org_id(), &caller.handle, id, archived)
        .await?
    {
        return Err(ApiError::NotFound(format!("no thread {id}")));
    }
    Ok(axum::Json(thread_of(state, caller, raw).await?))
}

/// Archive a thread for yourself (the other participants are not affected).
#[utoipa::path(post, path = "/api/v1/threads/{id}/archive", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Thread id")),
    responses(
        (status = 200, description = "The thread", body = Thread),
        (status = 404, description = "No such thread among yours", body = Problem, content_type = "application/problem+json"),
    ))]
async fn archive_thread(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Thread>, ApiError> {
    set_archived(&state, &caller, &id, true).await
}

/// Unarchive a thread for yourself.
#[utoipa::path(post, path = "/api/v1/threads/{id}/unarchive", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Thread id")),
    responses(
        (status = 200, description = "The thread", body = Thread),
        (status = 404, description = "No such thread among yours", body = Problem, content_type = "application/problem+json"),
    ))]
async fn unarchive_thread(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Thread>, ApiError> {
    set_archived(&state, &caller, &id, false).await
}
