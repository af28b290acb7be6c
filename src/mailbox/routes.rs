//! The mailbox's HTTP routes (`/api/v1/agents/me`, `/api/v1/messages…`): every one takes
//! the calling agent ([`Caller`]) and answers problem+json on failure.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Caller;
use super::service::{self, Fanout, NewMessage, NewReply};
use super::store::{Mailbox, Message, Search};
use crate::domain::agents::AgentHandle;
use crate::domain::page::{Page, PageRequest};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{Json, Path, Query, path_uuid};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_agent_me))
        .routes(routes!(send_message, list_messages))
        .routes(routes!(broadcast_message))
        .routes(routes!(send_group_message))
        .routes(routes!(search_messages))
        .routes(routes!(get_message))
        .routes(routes!(reply_to_message))
}

/// The calling agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentMe {
    #[schema(example = "demo")]
    pub org_id: String,
    #[schema(example = "billing-bot")]
    pub agent_handle: String,
    #[schema(example = "Billing assistant")]
    pub agent_display_name: String,
}

/// Who the mailbox thinks you are: the agent of your token (or of your API key's
/// `X-Agent-Handle`).
#[utoipa::path(get, path = "/api/v1/agents/me", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The calling agent", body = AgentMe),
        (status = 403, description = "Not an agent's credential", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_agent_me(caller: Caller) -> axum::Json<AgentMe> {
    axum::Json(AgentMe {
        org_id: caller.org_id().to_string(),
        agent_handle: caller.handle.to_string(),
        agent_display_name: caller.display_name,
    })
}

/// Send a message: it starts a thread with the sender and every recipient in it.
#[utoipa::path(post, path = "/api/v1/messages", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    request_body = NewMessage,
    responses(
        (status = 201, description = "The message", body = Message),
        (status = 422, description = "Invalid, or a recipient is not an active agent of your organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewMessage>,
) -> Result<(StatusCode, axum::Json<Message>), ApiError> {
    let mut sent = service::send(&state.store, &caller, &body, Fanout::OneThread).await?;
    let message = sent
        .pop()
        .ok_or_else(|| ApiError::Internal("a message was stored but not returned".into()))?;
    Ok((StatusCode::CREATED, axum::Json(message)))
}

/// Messages sent in one request.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentMessages {
    pub messages: Vec<Message>,
    pub count: usize,
}

/// Broadcast a message: one thread per recipient, each a private exchange with the sender.
#[utoipa::path(post, path = "/api/v1/messages/broadcast", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    request_body = NewMessage,
    responses(
        (status = 201, description = "One message per recipient", body = SentMessages),
        (status = 422, description = "Invalid, or a recipient is not an active agent of your organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn broadcast_message(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewMessage>,
) -> Result<(StatusCode, axum::Json<SentMessages>), ApiError> {
    let messages = service::send(&state.store, &caller, &body, Fanout::ThreadEach).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SentMessages {
            count: messages.len(),
            messages,
        }),
    ))
}

/// Send a group message: one thread shared by the sender and every recipient (replies go to
/// all of them).
#[utoipa::path(post, path = "/api/v1/messages/group", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    request_body = NewMessage,
    responses(
        (status = 201, description = "The message", body = Message),
        (status = 422, description = "Invalid, or a recipient is not an active agent of your organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn send_group_message(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewMessage>,
) -> Result<(StatusCode, axum::Json<Message>), ApiError> {
    send_message(State(state), caller, Json(body)).await
}

/// Get a message you sent or received (anything else is 404).
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "Message id")),
    responses(
        (status = 200, description = "The message", body = Message),
        (status = 404, description = "No such message among yours", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Message>, ApiError> {
    let id = path_uuid("id", &id)?;
    Ok(axum::Json(
        service::visible_message(&state.store, &caller, id).await?,
    ))
}

/// Reply to a message you sent or received: the reply joins its thread and goes to every other
/// participant that is still an active agent.
#[utoipa::path(post, path = "/api/v1/messages/{id}/reply", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "Id of the message answered")),
    request_body = NewReply,
    responses(
        (status = 201, description = "The reply", body = Message),
        (status = 404, description = "No such message among yours", body = Problem, content_type = "application/problem+json"),
    ))]
async fn reply_to_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<NewReply>,
) -> Result<(StatusCode, axum::Json<Message>), ApiError> {
    let id = path_uuid("id", &id)?;
    let original = service::visible_message(&state.store, &caller, id).await?;
    let reply = service::reply_to(&state.store, &caller, &original, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(reply)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// Only this thread's messages.
    pub thread_id: Option<String>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
}

/// Where a page sits in the whole list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pagination {
    pub offset: i64,
    pub limit: i64,
    /// Items in the whole list.
    pub total: i64,
    pub has_more: bool,
}

impl Pagination {
    /// Where `found`, read with `page`, sits in the whole list.
    pub fn of<T>(page: PageRequest, found: &Page<T>) -> Self {
        Self {
            offset: page.offset,
            limit: page.limit,
            total: found.total,
            has_more: found.has_more(),
        }
    }
}

/// A page of messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    pub pagination: Pagination,
}

/// List the messages you sent or received, newest first; only one thread's with `thread_id`.
#[utoipa::path(get, path = "/api/v1/messages", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(MessageQuery),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 404, description = "No such thread among yours", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<MessageQuery>,
) -> Result<axum::Json<MessagePage>, ApiError> {
    let page = PageRequest::new(q.limit, q.offset).map_err(ApiError::Validation)?;
    let thread = q
        .thread_id
        .as_deref()
        .map(|t| path_uuid("thread_id", t))
        .transpose()?;
    let mailbox = Mailbox(&state.store);
    if let Some(t) = thread {
        if !mailbox
            .is_participant(caller.org_id(), &caller.handle, t)
            .await?
        {
            return Err(ApiError::NotFound(format!("no thread {t}")));
        }
    }
    let found = mailbox
        .list_messages(caller.org_id(), &caller.handle, thread, page)
        .await?;
    Ok(axum::Json(MessagePage {
        pagination: Pagination::of(page, &found),
        messages: found.items,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to find, all of them (1–200 characters; punctuation is ignored).
    pub query: String,
    /// Search the subjects (default true).
    pub in_subject: Option<bool>,
    /// Search the bodies (default true).
    pub in_body: Option<bool>,
    /// Only messages from this agent.
    pub from_handle: Option<String>,
    /// Only messages to this agent.
    pub to_handle: Option<String>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
}

/// Search results, best match first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    pub messages: Vec<Message>,
    /// The query as given.
    pub query: String,
    pub count: usize,
}

fn handle_param(name: &str, raw: Option<&str>) -> Result<Option<AgentHandle>, ApiError> {
    raw.map(|h| AgentHandle::parse(h.trim()).map_err(|e| ApiError::validation(name, e.0)))
        .transpose()
}

/// Full-text search over the messages you sent or received (SQLite FTS5 or PostgreSQL
/// `tsvector`): every word must match; best match first, a match in the subject counting more
/// than one in the body.
#[utoipa::path(get, path = "/api/v1/messages/search", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(SearchQuery),
    responses(
        (status = 200, description = "Matching messages, best first", body = SearchResults),
    ))]
async fn search_messages(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<SearchQuery>,
) -> Result<axum::Json<SearchResults>, ApiError> {
    let words = service::query_words(&q.query)?;
    let (in_subject, in_body) = (q.in_subject.unwrap_or(true), q.in_body.unwrap_or(true));
    if !in_subject && !in_body {
        return Err(ApiError::validation(
            "in_subject",
            "in_subject and in_body cannot both be false",
        ));
    }
    let limit = PageRequest::new(q.limit, None)
        .map_err(ApiError::Validation)?
        .limit;
    let search = Search {
        words,
        in_subject,
        in_body,
        from_handle: handle_param("from_handle", q.from_handle.as_deref())?,
        to_handle: handle_param("to_handle", q.to_handle.as_deref())?,
        limit,
    };
    let messages = service::search(&state.store, &caller, &search).await?;
    Ok(axum::Json(SearchResults {
        count: messages.len(),
        messages,
        query: q.query,
    }))
}
