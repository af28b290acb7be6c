//! Streaming: `POST /api/v1/chat/stream` and `POST /api/v1/conversations/{id}/messages/stream`
//! answer Server-Sent Events while the turn runs; `GET /api/v1/runs/{id}/stream` replays a
//! run's events after `Last-Event-ID` and follows it live; `GET /api/v1/runs/{id}` reports its
//! status. The turn runs as a tracked task writing into the run's event log, so a client that
//! goes away costs nothing and the turn still completes and is persisted.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::{FutureExt, Stream};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::chat::{ChatRequest, PreparedTurn, TurnMetadata, check_owner, prepare_chat};
use super::conversations::{NewMessage, prepare_message};
use super::extract::{Json, Query, path_uuid};
use super::problem::RequestId;
use crate::agent::runs::{RunEvent, RunLog, RunStatus};
use crate::agent::word_chunks;
use crate::app::AppState;
use crate::auth::{Credential, Principal};
use crate::error::{ApiError, Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_chat_stream))
        .routes(routes!(post_message_stream))
        .routes(routes!(get_run_stream))
        .routes(routes!(get_run))
}

/// Lifetime of a stream token (for `EventSource` reconnects).
const STREAM_TOKEN_TTL: chrono::Duration = chrono::Duration::minutes(30);

/// The `data:` of every event. Fields beyond `chunk` and `done` depend on the event name.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"chunk": "Happy ", "done": false, "run_id": "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a11"}))]
pub struct StreamEventData {
    /// Text delta (`chunk` events); empty for the others.
    pub chunk: String,
    /// True on the last event (`done` or `error`).
    pub done: bool,
    pub run_id: Uuid,
    /// `state` (first event): the session/conversation id.
    pub session_id: Option<Uuid>,
    /// `state`: IDLE, COLLECT_SERVICE, COLLECT_DATETIME, COLLECT_CONTACT, CONFIRM, COMPLETE.
    pub current_state: Option<String>,
    /// First event: a token for `GET /api/v1/runs/{run_id}/stream?stream_token=…`.
    pub stream_token: Option<String>,
    /// `tool_call` / `tool_result`: the call's id and the tool's name.
    pub id: Option<String>,
    pub name: Option<String>,
    /// `tool_call`: the arguments.
    pub arguments: Option<Value>,
    /// `tool_result`: the result (or `{"error": …}`).
    pub result: Option<Value>,
    /// `done`: the whole reply.
    pub response: Option<String>,
    /// `done`: what the turn did.
    pub metadata: Option<TurnMetadata>,
    /// `error`: the problem+json of the failure.
    pub error: Option<Problem>,
}

fn sse_event(ev: &RunEvent) -> Event {
    Event::default()
        .id(ev.seq.to_string())
        .event(ev.name)
        .json_data(&ev.data)
        .unwrap_or_else(|_| {
            Event::default()
                .id(ev.seq.to_string())
                .event(ev.name)
                .data("{}")
        })
}

struct Follow {
    log: Arc<RunLog>,
    cursor: u64,
    pending: VecDeque<RunEvent>,
    over: bool,
    shutdown: CancellationToken,
}

/// The events of `log` after `cursor`, then live ones until the run ends or the server shuts
/// down. Reads by cursor from the shared log: no per-reader buffer to grow.
fn follow(
    log: Arc<RunLog>,
    cursor: u64,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = Follow {
        log,
        cursor,
        pending: VecDeque::new(),
        over: false,
        shutdown,
    };
    futures_util::stream::unfold(start, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                let event = sse_event(&ev);
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

fn sse_response(state: &AppState, log: Arc<RunLog>, cursor: u64) -> Response {
    let keepalive = Duration::from_secs(state.settings.sse_keepalive_seconds.max(1));
    let run_id = log.run_id;
    let sse = Sse::new(follow(log, cursor, state.shutdown.clone()))
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

/// Starts a streamed turn and answers with its event stream.
async fn start_streamed_turn(
    state: &AppState,
    principal: &Principal,
    turn: PreparedTurn,
    request_id: Option<String>,
    instance: String,
) -> Result<Response, ApiError> {
    let conv = &turn.conv;
    // A reused Idempotency-Key with another body is refused as an ordinary problem, before
    // the stream starts (the turn would only find out after the 200 was sent).
    if let Some((key, hash)) = &turn.idempotency {
        let since = crate::store::now() - chrono::Duration::hours(24);
        if let Some((stored, _)) = state
            .store
            .idempotent_response(principal.org_id(), key, since)
            .await?
        {
            if &stored != hash {
                return Err(ApiError::IdempotencyMismatch);
            }
        }
    }
    let run_id = Uuid::now_v7();
    let end_user = principal.end_user.as_ref().map(|u| u.as_str().to_owned());
    let log = state.agent.runs.start(
        run_id,
        principal.org_id().clone(),
        end_user.clone(),
        conv.id,
    );
    let sub = match (&end_user, &principal.credential) {
        (Some(u), _) => u.clone(),
        (None, Credential::ApiKey { key_id }) => format!("key:{key_id}"),
        (None, _) => "key:unknown".to_owned(),
    };
    let now = crate::store::now();
    let token = state
        .auth
        .jwt()
        .mint_stream(
            principal.org_id().as_str(),
            &sub,
            run_id,
            now,
            now + STREAM_TOKEN_TTL,
        )
        .map_err(ApiError::internal)?;
    log.push(
        "state",
        json!({ "session_id": conv.id, "current_state": conv.state.0.stage.as_str(), "stream_token": token }),
    );

    let agent = state.agent.clone();
    let req = turn.into_request(principal, Some(Arc::clone(&log)));
    let task_log = Arc::clone(&log);
    state.tasks.spawn(async move {
        let log = task_log;
        // A panic must still end the stream (with INTERNAL_ERROR), or its readers would wait
        // on keep-alives forever.
        let outcome = std::panic::AssertUnwindSafe(agent.run_turn(req))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                Err(crate::agent::turn::TurnError::Store(crate::store::StoreError::Corrupt(
                    "the turn panicked".to_owned(),
                )))
            });
        match outcome {
            Ok(outcome) => {
                // A replayed (idempotent) turn produced no deltas: send its text now, so
                // readers of `chunk` alone still get the reply.
                if !log.after(0).0.iter().any(|e| e.name == "chunk") {
                    for piece in word_chunks(&outcome.response) {
                        log.push("chunk", json!({ "chunk": piece }));
                    }
                }
                let metadata = TurnMetadata::of(&outcome);
                let done = json!({ "done": true, "response": outcome.response, "message_id": outcome.message_id, "metadata": metadata });
                log.finish(RunStatus::Completed, "done", done.clone(), Some(done));
            }
            Err(e) => {
                let mut problem = ApiError::from(e).problem();
                problem.request_id = request_id;
                problem.instance = Some(instance);
                log.finish(RunStatus::Failed, "error", json!({ "done": true, "error": problem }), None);
            }
        }
    });
    Ok(sse_response(state, log, 0))
}

/// `POST /api/v1/chat` as Server-Sent Events: the reply streams as it is written. Same body,
/// same persistence, same Idempotency-Key behaviour. Events: `state` (first; carries
/// `session_id` and a `stream_token`), `chunk`, `tool_call`, `tool_result`, `state`, then
/// `done` or `error`. Every `data:` is JSON with at least `chunk` and `done`.
#[utoipa::path(post, path = "/api/v1/chat/stream", tag = "chat", security(("api_key" = []), ("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    request_body = ChatRequest,
    responses(
        (status = 200, description = "text/event-stream of events whose data is StreamEventData; X-Run-ID names the run",
            content_type = "text/event-stream", body = StreamEventData,
            headers(("X-Run-ID" = Uuid, description = "The run, for GET /api/v1/runs/{run_id}/stream"))),
        (status = 403, description = "org_id is not yours (ORG_MISMATCH)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn post_chat_stream(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    request_id: Option<axum::Extension<RequestId>>,
    Json(body): Json<ChatRequest>,
) -> Result<Response, ApiError> {
    let turn = prepare_chat(&state, &principal, &headers, &body).await?;
    let instance = "/api/v1/chat/stream".to_owned();
    start_streamed_turn(
        &state,
        &principal,
        turn,
        request_id.map(|r| r.0.0),
        instance,
    )
    .await
}

/// `POST /api/v1/conversations/{id}/messages` as Server-Sent Events (see /chat/stream).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages/stream", tag = "conversations", security(("api_key" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    request_body = NewMessage,
    responses(
        (status = 200, description = "text/event-stream of StreamEventData events", content_type = "text/event-stream", body = StreamEventData,
            headers(("X-Run-ID" = Uuid, description = "The run"))),
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
    let turn = prepare_message(&state, &principal, &headers, &id, &body).await?;
    let instance = format!("/api/v1/conversations/{id}/messages/stream");
    start_streamed_turn(
        &state,
        &principal,
        turn,
        request_id.map(|r| r.0.0),
        instance,
    )
    .await
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
    run_id: Uuid,
) -> Result<Option<Arc<RunLog>>, ApiError> {
    let Some(log) = state.agent.runs.get(run_id) else {
        return Ok(None);
    };
    if &log.org_id != p.org_id() {
        return Ok(None);
    }
    match (&p.end_user, &log.end_user) {
        (Some(u), owner) if owner.as_deref() != Some(u.as_str()) => Err(ApiError::Forbidden(
            "This run belongs to another user.".to_owned(),
        )),
        _ => Ok(Some(log)),
    }
}

/// Replay a streamed run's events after `Last-Event-ID` and follow it live until `done`.
/// Works after the run ended too (replay only), for RUN_RETENTION_SECONDS.
#[utoipa::path(get, path = "/api/v1/runs/{id}/stream", tag = "chat", security(("api_key" = []), ("bearer" = []), ("stream_token" = [])),
    params(("id" = Uuid, Path, description = "Run id (X-Run-ID)"),
           ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event"),
           StreamQuery),
    responses(
        (status = 200, description = "text/event-stream of StreamEventData events", content_type = "text/event-stream", body = StreamEventData),
        (status = 404, description = "No such run, or its events are no longer kept", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_run_stream(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    let run_id = path_uuid("id", &id)?;
    let log = visible_run(&state, &principal, run_id)?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no streamed run {run_id} (or its events are no longer kept)"
        ))
    })?;
    let header_cursor = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    Ok(sse_response(
        &state,
        log,
        header_cursor.or(q.last_event_id).unwrap_or(0),
    ))
}

/// A run's status and result.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub run_id: Uuid,
    pub conversation_id: Uuid,
    /// running, completed or failed.
    #[schema(example = "completed")]
    pub status: String,
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
    let run_id = path_uuid("id", &id)?;
    let log = visible_run(&state, &principal, run_id)?;
    let stored = state.store.get_run(principal.org_id(), run_id).await?;
    if let Some(run) = &stored {
        // End users see only runs of their own conversations.
        let conv = state
            .store
            .get_conversation(principal.org_id(), run.conversation_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no run {run_id}")))?;
        check_owner(&principal, &conv)?;
    }
    let snapshot = log.as_ref().map(|l| l.snapshot());
    match (stored, log, snapshot) {
        (Some(run), _, snap) => Ok(axum::Json(RunView {
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
            result: snap.and_then(|s| s.result),
        })),
        (None, Some(log), Some(snap)) => Ok(axum::Json(RunView {
            run_id,
            conversation_id: log.conversation_id,
            status: match snap.status {
                RunStatus::Running => "running",
                RunStatus::Completed => "completed",
                RunStatus::Failed => "failed",
            }
            .to_owned(),
            started_at: log.started_at,
            finished_at: snap.finished_at,
            model: None,
            steps: None,
            total_tokens: None,
            error: None,
            result: snap.result,
        })),
        _ => Err(ApiError::NotFound(format!("no run {run_id}"))),
    }
}
