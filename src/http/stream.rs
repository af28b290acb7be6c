//! Streaming: `POST /api/v1/chat/stream` and `POST /api/v1/conversations/{id}/messages/stream`
//! answer Server-Sent Events while the turn runs; `GET /api/v1/runs/{id}/stream` replays a
//! run's events after `Last-Event-ID` and follows it live; `GET /api/v1/runs/{id}` reports its
//! status. The turn runs as a tracked task writing into the run's event log, so a client that
//! goes away costs nothing and the turn still completes and is persisted.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::chat::{ChatRequest, chat_request};
use super::conversations::{NewMessage, message_request};
use super::extract::{Json, Path, Query, path_id};
use super::problem::RequestId;
use crate::agent::runs::{RunEvent, RunLog};
use crate::agent::{Delivery, TurnRequest};
use crate::auth::{Credential, Principal};
use crate::conversations;
use crate::domain::conversation::{RunStatus, check_owner};
use crate::domain::turn::TurnEvent;
use crate::domain::{ConversationId, RunId};
use crate::http::error::{ApiError, Problem};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_chat_stream))
        .routes(routes!(post_message_stream))
        .routes(routes!(get_run_stream))
        .routes(routes!(get_run))
        .routes(routes!(cancel_run))
}

/// Lifetime of a stream token (for `EventSource` reconnects).
const STREAM_TOKEN_TTL: chrono::Duration = chrono::Duration::minutes(30);

/// Where a stream is written for: the request's id and path go into an `error` event's
/// problem, exactly as a plain request's problem would carry them.
#[derive(Clone)]
struct Writer {
    run_id: RunId,
    request_id: Option<String>,
    instance: String,
    /// Added to the first event of the stream that started the run.
    stream_token: Option<String>,
}

impl Writer {
    /// The `data:` object of one event: the event's fields, plus `chunk` (`""` unless it is a
    /// chunk), `done` and `run_id`; an `error` event's failure rendered as problem+json.
    fn frame(&self, ev: &RunEvent) -> Value {
        let mut data = match serde_json::to_value(&ev.event) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        data.entry("chunk").or_insert_with(|| json!(""));
        data.insert("done".into(), json!(ev.event.is_final()));
        data.insert("run_id".into(), json!(self.run_id));
        if let TurnEvent::Error { error } = &ev.event {
            let mut problem = ApiError::from_failure(error.code).problem();
            problem.request_id.clone_from(&self.request_id);
            problem.instance = Some(self.instance.clone());
            data.insert("error".into(), json!(problem));
        }
        if let (1, Some(token)) = (ev.seq, &self.stream_token) {
            data.insert("stream_token".into(), json!(token));
        }
        Value::Object(data)
    }

    fn event(&self, ev: &RunEvent) -> Event {
        let seq = ev.seq.to_string();
        Event::default()
            .id(seq.clone())
            .event(ev.event.name())
            .json_data(self.frame(ev))
            .unwrap_or_else(|_| Event::default().id(seq).event(ev.event.name()).data("{}"))
    }
}

struct Follow {
    log: Arc<RunLog>,
    writer: Writer,
    cursor: u64,
    pending: VecDeque<RunEvent>,
    over: bool,
    shutdown: CancellationToken,
}

/// The events of `log` after `cursor`, then live ones until the run ends or the server shuts
/// down. Reads by cursor from the shared log: no per-reader buffer to grow.
fn follow(
    log: Arc<RunLog>,
    writer: Writer,
    cursor: u64,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = Follow {
        log,
        writer,
        cursor,
        pending: VecDeque::new(),
        over: false,
        shutdown,
    };
    futures_util::stream::unfold(start, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                let event = st.writer.event(&ev);
                return Some((Ok(event), st));
            }
            if st.over {
                return None;
            }
            let (events, over) = st.log.after(st.cursor);
            if let Some(last) = events.last() {
                st.cursor = last.seq;
                st.pending.extend(events);
                st.over = over;
                continue;
            }
            if over {
                return None;
            }
            tokio::select! {
                () = st.log.wait_beyond(st.cursor) => {}
                () = st.shutdown.cancelled() => return None,
            }
        }
    })
}

fn sse_response(state: &AppState, log: Arc<RunLog>, writer: Writer, cursor: u64) -> Response {
    let keepalive = Duration::from_secs(state.settings.sse_keepalive_seconds.max(1));
    let run_id = log.run_id;
    let sse = Sse::new(follow(log, writer, cursor, state.shutdown.clone()))
        .keep_alive(KeepAlive::new().interval(keepalive).text("keep-alive"));
    let mut res = sse.into_response();
    let h = res.headers_mut();
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Ok(v) = HeaderValue::from_str(&run_id.to_string()) {
        h.insert("x-run-id", v);
    }
    res
}

/// Starts a streamed turn and answers with its event stream; the first event carries a
/// stream token for reconnects.
async fn start_streamed_turn(
    state: &AppState,
    principal: &Principal,
    req: TurnRequest,
    request_id: Option<String>,
    instance: String,
) -> Result<Response, ApiError> {
    let handle = state.agent.start(req, Delivery::Stream).await?;
    let Some(log) = handle.log else {
        return Err(ApiError::internal(std::io::Error::other(
            "a streamed run without an event log",
        )));
    };
    let sub = match (&principal.end_user, &principal.credential) {
        (Some(u), _) => u.as_str().to_owned(),
        (None, Credential::ApiKey { key_id }) => format!("key:{key_id}"),
        (None, _) => "key:unknown".to_owned(),
    };
    let now = crate::domain::now();
    let token = state
        .auth
        .jwt()
        .mint_stream(
            principal.org_id().as_str(),
            &sub,
            handle.run_id,
            principal.minting_key(),
            now,
            now + STREAM_TOKEN_TTL,
        )
        .map_err(ApiError::internal)?;
    let writer = Writer {
        run_id: handle.run_id,
        request_id,
        instance,
        stream_token: Some(token),
    };
    let mut res = sse_response(state, log, writer, 0);
    if handle.replayed {
        res.headers_mut().insert(
            super::chat::IDEMPOTENCY_REPLAYED,
            HeaderValue::from_static("true"),
        );
    }
    Ok(res)
}

/// `POST /api/v1/chat` as Server-Sent Events: the reply streams as it is written. Same body,
/// same persistence, same Idempotency-Key behaviour. Events: `state` (first; carries
/// `session_id` and a `stream_token`), `chunk`, `tool_call`, `tool_result`, `state`, then
/// `done` or `error`. Every `data:` is JSON with at least `chunk` and `done`.
#[utoipa::path(post, path = "/api/v1/chat/stream", tag = "chat", security(("api_key" = []), ("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    request_body = ChatRequest,
    responses(
        (status = 200, description = "Server-Sent Events: `event:` is the event name and `data:` the event as JSON (schema TurnEvent, plus `chunk`, `done` and `run_id`; the first also `stream_token`). X-Run-ID names the run",
            content_type = "text/event-stream", body = String,
            headers(("X-Run-ID" = Uuid, description = "The run, for GET /api/v1/runs/{run_id}/stream"),
                ("Idempotency-Replayed" = String, description = "`true` when the stream replays the stored reply to a reused Idempotency-Key; absent otherwise"))),
        (status = 403, description = "org_id is not yours (ORG_MISMATCH)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn post_chat_stream(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    request_id: Option<axum::Extension<RequestId>>,
    Json(body): Json<ChatRequest>,
) -> Result<Response, ApiError> {
    let req = chat_request(&principal, &headers, &body)?;
    let instance = "/api/v1/chat/stream".to_owned();
    start_streamed_turn(&state, &principal, req, request_id.map(|r| r.0.0), instance).await
}

/// `POST /api/v1/conversations/{id}/messages` as Server-Sent Events (see /chat/stream).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages/stream", tag = "conversations", security(("api_key" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    request_body = NewMessage,
    responses(
        (status = 200, description = "Server-Sent Events, as for /api/v1/chat/stream (schema TurnEvent)", content_type = "text/event-stream", body = String,
            headers(("X-Run-ID" = Uuid, description = "The run"),
                ("Idempotency-Replayed" = String, description = "`true` when the stream replays the stored reply to a reused Idempotency-Key; absent otherwise"))),
        (status = 404, description = "No such conversation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn post_message_stream(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    request_id: Option<axum::Extension<RequestId>>,
    Json(body): Json<NewMessage>,
) -> Result<Response, ApiError> {
    let req = message_request(&principal, &headers, &id, &body)?;
    let instance = format!("/api/v1/conversations/{id}/messages/stream");
    start_streamed_turn(&state, &principal, req, request_id.map(|r| r.0.0), instance).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this event id (as the `Last-Event-ID` header; the header wins).
    pub last_event_id: Option<u64>,
    /// A stream token from the run's first event, for clients that cannot send headers
    /// (browser `EventSource`). Valid for this run's stream only, 30 minutes.
    pub stream_token: Option<String>,
}

/// The run's log, if the caller may read it: another org's is 404, another user's 403.
fn visible_run(
    state: &AppState,
    p: &Principal,
    run_id: RunId,
) -> Result<Option<Arc<RunLog>>, ApiError> {
    let Some(log) = state.agent.runs.get(run_id) else {
        return Ok(None);
    };
    if &log.org_id != p.org_id() {
        return Ok(None);
    }
    check_owner(
        log.end_user.as_ref().map(|u| u.as_str()),
        p.end_user.as_ref(),
    )
    .map_err(|_| ApiError::Forbidden("This run belongs to another user.".to_owned()))?;
    Ok(Some(log))
}

/// Replay a streamed run's events after `Last-Event-ID` and follow it live until `done`.
/// Works after the run ended too (replay only), for RUN_RETENTION_SECONDS.
#[utoipa::path(get, path = "/api/v1/runs/{id}/stream", tag = "chat", security(("api_key" = []), ("bearer" = []), ("stream_token" = [])),
    params(("id" = Uuid, Path, description = "Run id (X-Run-ID)"),
           ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event"),
           StreamQuery),
    responses(
        (status = 200, description = "Server-Sent Events after Last-Event-ID, as for /api/v1/chat/stream (schema TurnEvent)", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such run, or its events are no longer kept", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_run_stream(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    request_id: Option<axum::Extension<RequestId>>,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    let run_id: RunId = path_id("id", &id)?;
    let log = match visible_run(&state, &principal, run_id)? {
        Some(live) => live,
        None => stored_run(&state, &principal, run_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no streamed run {run_id}")))?,
    };
    let header_cursor = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let writer = Writer {
        run_id,
        request_id: request_id.map(|r| r.0.0),
        instance: format!("/api/v1/runs/{run_id}/stream"),
        stream_token: None,
    };
    Ok(sse_response(
        &state,
        log,
        writer,
        header_cursor.or(q.last_event_id).unwrap_or(0),
    ))
}

/// A finished streamed run, from its stored events, if the caller may read it.
async fn stored_run(
    state: &AppState,
    principal: &Principal,
    run_id: RunId,
) -> Result<Option<Arc<RunLog>>, ApiError> {
    let org = principal.org_id();
    let Some(run) = state.store.get_run(org, run_id).await? else {
        return Ok(None);
    };
    let Some(events) = state.store.run_events(org, run_id).await? else {
        return Ok(None);
    };
    let conv = run_conversation(state, principal, run_id, run.conversation_id).await?;
    let end_user = conv
        .end_user
        .as_deref()
        .and_then(|u| crate::domain::EndUserId::parse(u).ok());
    Ok(Some(Arc::new(RunLog::finished(
        org.clone(),
        end_user,
        &run,
        events,
    ))))
}

/// The conversation of a stored run, if the caller may see it (end users: their own).
async fn run_conversation(
    state: &AppState,
    principal: &Principal,
    run_id: RunId,
    conversation: ConversationId,
) -> Result<crate::domain::conversation::Conversation, ApiError> {
    conversations::visible(&state.store, principal.caller(), conversation)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::NotFound(_) => ApiError::NotFound(format!("no run {run_id}")),
            other => other,
        })
}

/// A run's status and result.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    /// The run's id (as every resource carries it).
    pub id: RunId,
    /// The same as `id`.
    pub run_id: RunId,
    pub conversation_id: ConversationId,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub model: Option<String>,
    pub steps: Option<i64>,
    pub total_tokens: Option<i64>,
    /// For failed runs: the problem code (LLM_UPSTREAM_ERROR, AGENT_TIMEOUT, …).
    #[schema(example = "LLM_UPSTREAM_ERROR")]
    pub error: Option<String>,
    /// For streamed runs still kept: the `done` event's data (response, message_id, metadata).
    pub result: Option<Value>,
}

/// A run's status: from the live log while it streams, from the database afterwards.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "chat", security(("api_key" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_run(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<RunView>, ApiError> {
    let run_id: RunId = path_id("id", &id)?;
    run_view(&state, &principal, run_id).await.map(axum::Json)
}

/// How long `POST /runs/{id}/cancel` waits for the run to stop before answering 202.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Cancel a streamed run: the model call in progress is abandoned, no further model call or
/// tool starts, and the run ends with a `cancelled` event; none of the turn's messages are
/// stored. A tool already running finishes first (its effect, like any tool's, happens once).
/// Answers when the run has stopped (200), or after 5 s with the run still stopping (202).
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "chat", security(("api_key" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Run id (X-Run-ID)")),
    responses(
        (status = 200, description = "The run, stopped: status `cancelled`", body = RunView),
        (status = 202, description = "Cancellation requested; the run is still stopping (a tool call is finishing): status `running`", body = RunView),
        (status = 404, description = "No such run, or it is not running on this instance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "RUN_FINISHED: the run had already completed or failed", body = Problem, content_type = "application/problem+json"),
    ))]
async fn cancel_run(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<RunView>), ApiError> {
    let run_id: RunId = path_id("id", &id)?;
    if let Some(log) = visible_run(&state, &principal, run_id)? {
        log.cancel();
        // The turn notices at its next safe point; the run record is written before the log
        // is marked over, so the view below reads the final status.
        let _ = tokio::time::timeout(CANCEL_WAIT, log.wait_over()).await;
    }
    let view = run_view(&state, &principal, run_id).await?;
    match view.status {
        RunStatus::Cancelled => Ok((StatusCode::OK, axum::Json(view))),
        RunStatus::Running => Ok((StatusCode::ACCEPTED, axum::Json(view))),
        done => Err(ApiError::RunFinished(done.as_str())),
    }
}

/// A run's status: from the live log while it streams, from the database afterwards.
async fn run_view(
    state: &AppState,
    principal: &Principal,
    run_id: RunId,
) -> Result<RunView, ApiError> {
    let log = visible_run(state, principal, run_id)?;
    let stored = state.store.get_run(principal.org_id(), run_id).await?;
    let mut last_event = None;
    if let Some(run) = &stored {
        // End users see only runs of their own conversations.
        run_conversation(state, principal, run_id, run.conversation_id).await?;
        if log.is_none() {
            last_event = state
                .store
                .run_events(principal.org_id(), run_id)
                .await?
                .and_then(|mut events| events.pop());
        }
    }
    let snapshot = log.as_ref().map(|l| l.snapshot());
    // The `done` event's data, as the stream wrote it.
    let result = last_event
        .or_else(|| snapshot.as_ref().and_then(|s| s.last.clone()))
        .and_then(|last| {
            let done = matches!(last, TurnEvent::Done { .. });
            let writer = Writer {
                run_id,
                request_id: None,
                instance: String::new(),
                stream_token: None,
            };
            done.then(|| {
                writer.frame(&RunEvent {
                    seq: 0,
                    event: last,
                })
            })
        });
    match (stored, log, snapshot) {
        (Some(run), _, _) => Ok(RunView {
            id: run_id,
            run_id,
            conversation_id: run.conversation_id,
            status: run.status,
            started_at: run.started_at,
            finished_at: Some(run.finished_at),
            model: run.model,
            steps: Some(run.steps),
            total_tokens: Some(run.total_tokens),
            error: run
                .error
                .map(|e| e.split(':').next().unwrap_or_default().to_owned()),
            result,
        }),
        (None, Some(log), Some(snap)) => Ok(RunView {
            id: run_id,
            run_id,
            conversation_id: log.conversation_id,
            status: snap.status,
            started_at: log.started_at,
            finished_at: snap.finished_at,
            model: None,
            steps: None,
            total_tokens: None,
            error: None,
            result,
        }),
        _ => Err(ApiError::NotFound(format!("no run {run_id}"))),
    }
}
