//! One agent turn: take the conversation's lease → load its state and history window → loop
//! model → tools (at most `max_steps`) → commit messages, checkpoints, run record and the
//! idempotency record in one transaction → release. A failed turn writes only its run record.
//! [`Agent::start`](super::Agent::start) is how a turn begins; this is the turn itself.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Agent;
use super::model::{ModelError, ModelRequest, TurnContext};
use super::runs::RunLog;
use super::tools::ToolContext;
use crate::domain::chat::{ChatMessage, Role, ToolCall, Usage};
use crate::domain::conversation::{Conversation, ConversationState, Message, NotOwner, RunStatus};
use crate::domain::org::TurnPolicy;
use crate::domain::turn::{
    FailureCode, IDEMPOTENCY_WINDOW, RunFailure, ToolCallRecord, TurnEvent, TurnMetadata,
    TurnOutcome,
};
use crate::domain::{EndUserId, MessageId, MessageText, Org, RunId};
use crate::store::StoreError;
use crate::store::turns::{
    LeaseRequest, Leased, NewCheckpoint, NewMessage, NewSession, RunRecord, TurnCommit,
};

/// An `Idempotency-Key` scoped to its caller, with a fingerprint of the request it was used
/// for: the same key and fingerprint replay the stored reply; another fingerprint is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key as stored: prefixed with its caller (`user:…:` or `org:`), so two widgets that
    /// both number their requests `msg-1` do not collide.
    pub key: String,
    /// SHA-256 (hex) of the route and the request's parts.
    pub hash: String,
}

impl IdempotencyKey {
    /// Checks the raw header value (1–255 printable characters) and fingerprints the request.
    pub fn new(
        raw: &str,
        end_user: Option<&EndUserId>,
        route: &str,
        parts: &[&str],
    ) -> Result<Self, crate::domain::Invalid> {
        use sha2::{Digest, Sha256};
        let key = raw.trim();
        if key.is_empty() || key.len() > 255 || key.chars().any(char::is_control) {
            return Err(crate::domain::Invalid(
                "must be 1 to 255 printable characters".to_owned(),
            ));
        }
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        for part in parts {
            h.update([0u8]);
            h.update(part.as_bytes());
        }
        let hash: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let key = match end_user {
            Some(user) => format!("user:{}:{key}", user.as_str()),
            None => format!("org:{key}"),
        };
        Ok(Self { key, hash })
    }
}

/// A turn ready to run.
#[derive(Debug, Clone)]
pub(super) struct Turn {
    pub org: Arc<Org>,
    pub end_user: Option<EndUserId>,
    pub target: super::Target,
    pub message: MessageText,
    pub idempotency: Option<IdempotencyKey>,
    pub run_id: RunId,
    /// Where a streamed turn reports its progress (text deltas, tool calls, states).
    pub events: Option<Arc<RunLog>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("another turn of this conversation is in progress")]
    Busy,
    #[error("no such conversation")]
    NotFound,
    #[error(transparent)]
    NotOwner(#[from] NotOwner),
    #[error("the Idempotency-Key was used with another request")]
    IdempotencyMismatch,
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("the turn took longer than {0:?}")]
    Timeout(Duration),
    #[error("the turn's task failed: {0}")]
    Crashed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the run was cancelled")]
    Cancelled,
}

impl TurnError {
    /// The stable code this failure is reported with.
    pub fn code(&self) -> FailureCode {
        match self {
            Self::Busy => FailureCode::TurnInProgress,
            Self::NotFound => FailureCode::NotFound,
            Self::NotOwner(_) => FailureCode::Forbidden,
            Self::IdempotencyMismatch => FailureCode::IdempotencyMismatch,
            Self::Timeout(_) | Self::Model(ModelError::Timeout) => FailureCode::AgentTimeout,
            Self::Model(_) => FailureCode::LlmUpstreamError,
            Self::Crashed(_) | Self::Store(_) => FailureCode::InternalError,
            Self::Cancelled => FailureCode::RunCancelled,
        }
    }
}

impl From<crate::conversations::ConversationError> for TurnError {
    fn from(e: crate::conversations::ConversationError) -> Self {
        use crate::conversations::ConversationError as C;
        match e {
            C::NotFound | C::MessageNotFound => Self::NotFound,
            C::NotOwner(e) => Self::NotOwner(e),
            C::Busy => Self::Busy,
            C::Store(e) => Self::Store(e),
        }
    }
}

/// Text the agent sends when it ran out of steps.
const OUT_OF_STEPS: &str = "Sorry, I could not finish that request. Could you rephrase it?";

impl Agent {
    /// The stored reply of `idem`, if it was used within the idempotency window: the reply
    /// for the same request, `IdempotencyMismatch` for another one.
    pub(super) async fn replay(
        &self,
        org: &Org,
        idem: &IdempotencyKey,
    ) -> Result<Option<TurnOutcome>, TurnError> {
        let since = crate::domain::now() - IDEMPOTENCY_WINDOW;
        let Some((stored_hash, response)) = self
            .store
            .idempotent_response(&org.id, &idem.key, since)
            .await?
        else {
            return Ok(None);
        };
        if stored_hash != idem.hash {
            return Err(TurnError::IdempotencyMismatch);
        }
        serde_json::from_value(response).map(Some).map_err(|e| {
            TurnError::Store(StoreError::Corrupt(format!(
                "stored idempotent response: {e}"
            )))
        })
    }

    /// Runs one turn.
    pub(super) async fn run_turn(&self, req: Turn) -> Result<TurnOutcome, TurnError> {
        let org_id = req.org.id.clone();
        let policy = req.org.settings.turn_policy;
        let conversation_id = req.target.id();

        // In-process queue first (FIFO, no polling), then the database lease, which is what
        // keeps turns apart across instances; one deadline bounds both waits together.
        let deadline = tokio::time::Instant::now() + self.settings.queue_timeout;
        let local = self
            .locks
            .get_with(conversation_id, || Arc::new(tokio::sync::Mutex::new(())));
        let _local_guard = match policy {
            TurnPolicy::Reject => local.try_lock().map_err(|_| TurnError::Busy)?,
            TurnPolicy::Enqueue => tokio::time::timeout_at(deadline, local.lock())
                .await
                .map_err(|_| TurnError::Busy)?,
        };
        let token = Uuid::now_v7();
        let conv = self.acquire(&req, token, policy, deadline).await?;

        let result = match conv.check_owner(req.end_user.as_ref()) {
            Ok(()) => self.turn_with_lease(&req, &conv, token).await,
            Err(e) => Err(TurnError::NotOwner(e)),
        };
        if let Err(e) = &result {
            if let Err(release) = self.store.release_lease(&org_id, conv.id, token).await {
                tracing::warn!(error = %crate::telemetry::cause_chain(&release), "could not release a turn lease; it will expire");
            }
            tracing::info!(conversation = %conv.id, error = %crate::telemetry::cause_chain(e), "turn failed");
        }
        result
    }

    /// Renews the turn's lease every third of its TTL, for as long as it is polled. Ends only
    /// when the lease is lost (someone else holds the conversation now): the turn must stop.
    async fn keep_lease(
        &self,
        org: &crate::domain::OrgId,
        id: crate::domain::ConversationId,
        token: Uuid,
    ) {
        let every = (self.settings.lease_ttl / 3).max(Duration::from_millis(50));
        loop {
            tokio::time::sleep(every).await;
            let expires = crate::domain::now() + self.settings.lease_ttl();
            match self.store.renew_lease(org, id, token, expires).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(conversation = %id, "a turn lost its lease; stopping it");
                    return;
                }
                // The database may be back before the lease expires: keep trying.
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::cause_chain(&e), "could not renew a turn lease");
                }
            }
        }
    }

    /// Takes the conversation's lease (creating a session at its first message), waiting for
    /// another turn under the `enqueue` policy.
    async fn acquire(
        &self,
        req: &Turn,
        token: Uuid,
        policy: TurnPolicy,
        deadline: tokio::time::Instant,
    ) -> Result<Conversation, TurnError> {
        let now = crate::domain::now();
        let title = format!("Chat {}", now.format("%Y-%m-%d %H:%M"));
        let create = match req.target {
            super::Target::Session(_) => Some(NewSession {
                end_user: req.end_user.as_ref().map(EndUserId::as_str),
                title: &title,
            }),
            super::Target::Conversation(_) => None,
        };
        loop {
            let now = crate::domain::now();
            let lease = LeaseRequest {
                org: &req.org.id,
                id: req.target.id(),
                create,
                token,
                owner: &self.settings.instance_id,
                now,
                expires_at: now + self.settings.lease_ttl(),
            };
            match self.store.take_lease(&lease).await? {
                Leased::Taken { conv, .. } => return Ok(*conv),
                Leased::Missing => return Err(TurnError::NotFound),
                Leased::Busy => {}
            }
            if policy == TurnPolicy::Reject || tokio::time::Instant::now() >= deadline {
                return Err(TurnError::Busy);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn turn_with_lease(
        &self,
        req: &Turn,
        conv: &Conversation,
        token: Uuid,
    ) -> Result<TurnOutcome, TurnError> {
        // Under the lease, so a retry that raced the original sees its committed reply.
        if let Some(idem) = &req.idempotency {
            if let Some(outcome) = self.replay(&req.org, idem).await? {
                self.store
                    .release_lease(&req.org.id, conv.id, token)
                    .await?;
                return Ok(outcome);
            }
        }
        let started_at = crate::domain::now();
        let run_id = req.run_id;
        let timeout = self.settings.turn_timeout;
        // The lease is short; renew it while the model and the tools work.
        let steps = async {
            tokio::select! {
                produced = self.steps(req, conv, run_id, started_at) => produced,
                () = self.keep_lease(&req.org.id, conv.id, token) => Err(TurnError::Timeout(timeout)),
            }
        };
        let run = tokio::time::timeout(timeout, steps).await;
        let failure = match run {
            Ok(Ok(mut produced)) => {
                // A streamed run keeps its events with its record, final event included, so
                // a reader resuming after it ended replays them from the database.
                produced.run.events = req.events.as_ref().map(|log| {
                    let mut events = log.events();
                    events.push(done_event(&produced.outcome));
                    events
                });
                let outcome_value = serde_json::to_value(&produced.outcome)
                    .map_err(|e| TurnError::Store(StoreError::Corrupt(e.to_string())))?;
                let commit = TurnCommit {
                    org: &req.org.id,
                    conversation_id: conv.id,
                    lease_token: token,
                    base_seq: conv.last_seq,
                    messages: std::mem::take(&mut produced.messages),
                    checkpoints: std::mem::take(&mut produced.checkpoints),
                    state: &produced.state,
                    run: produced.run.clone(),
                    idempotency: req
                        .idempotency
                        .as_ref()
                        .map(|i| (i.key.as_str(), i.hash.as_str(), &outcome_value)),
                    now: produced.outcome.created_at,
                };
                match self.store.commit_turn(&commit).await {
                    Ok(()) => return Ok(produced.outcome),
                    Err(StoreError::Conflict(_)) => TurnError::Timeout(timeout),
                    Err(e) => TurnError::Store(e),
                }
            }
            Ok(Err(e)) => e,
            Err(_) => TurnError::Timeout(timeout),
        };
        let failed = RunRecord {
            id: run_id,
            conversation_id: conv.id,
            status: if matches!(failure, TurnError::Cancelled) {
                RunStatus::Cancelled
            } else {
                RunStatus::Failed
            },
            model: None,
            steps: 0,
            usage: Usage::default(),
            // "CODE: cause": operators read the cause; the API shows clients only the code.
            error: Some(format!(
                "{}: {}",
                failure.code().as_str(),
                crate::telemetry::cause_chain(&failure)
            )),
            events: req.events.as_ref().map(|log| {
                let mut events = log.events();
                events.push(error_event(&failure));
                events
            }),
            started_at,
            finished_at: crate::domain::now(),
        };
        if let Err(e) = self.store.record_failed_run(&req.org.id, &failed).await {
            tracing::warn!(error = %crate::telemetry::cause_chain(&e), "could not record a failed run");
        }
        Err(failure)
    }

    /// The model ⇄ tools loop; returns everything to commit.
    async fn steps(
        &self,
        req: &Turn,
        conv: &Conversation,
        run_id: RunId,
        started_at: DateTime<Utc>,
    ) -> Result<Produced, TurnError> {
        let org = &req.org;
        let after = (conv.last_seq - i64::from(self.settings.history_window)).max(0);
        // A new conversation has no history: no round trip for it.
        let history = if conv.last_seq == 0 {
            Vec::new()
        } else {
            self.store.messages_after(&org.id, conv.id, after).await?
        };
        let context = TurnContext::new(Arc::clone(org), started_at);

        let mut messages = vec![ChatMessage::system(self.system_prompt(&context))];
        messages.extend(window(&history));
        let user = ChatMessage::user(req.message.as_str());
        messages.push(user.clone());

        let mut produced_messages = vec![new_message(Role::User, &user, None, None, started_at)];
        let mut checkpoints = Vec::new();
        let mut records = Vec::new();
        let mut usage = Usage::default();
        let mut state = conv.state.0.clone();
        let mut model_name = String::new();
        let tool_ctx = ToolContext {
            store: self.store.clone(),
            org: Arc::clone(org),
            end_user: req.end_user.clone(),
            conversation_id: conv.id,
            now: started_at,
        };
        let specs = self.skills.tools().specs(&org.settings.enabled_tools);
        let model_cfg = &org.settings.model;

        // Cancellation (`POST /runs/{id}/cancel`) stops the turn at a safe point: before a
        // model call, while waiting for the model, or before a step's tools start. Tools that
        // have started finish (each is its own task, recorded once), then the turn stops;
        // nothing of it is committed.
        let cancel = req.events.as_ref().map(|log| log.cancellation().clone());
        let cancelled = || cancel.as_ref().is_some_and(CancellationToken::is_cancelled);
        let mut step: i64 = 0;
        let reply = loop {
            if cancelled() {
                return Err(TurnError::Cancelled);
            }
            step += 1;
            let request = ModelRequest {
                model: model_cfg
                    .model
                    .clone()
                    .unwrap_or_else(|| self.model.default_model_name().to_owned()),
                messages: messages.clone(),
                tools: specs.clone(),
                temperature: model_cfg.temperature,
                max_tokens: model_cfg.max_tokens,
                state: state.clone(),
                context: context.clone(),
            };
            let response = match (&req.events, &cancel) {
                (Some(log), Some(cancel)) => {
                    let mut sink = |delta: &str| {
                        log.push(TurnEvent::Chunk {
                            chunk: delta.to_owned(),
                        });
                    };
                    tokio::select! {
                        response = self.model.complete_streaming(&request, &mut sink) => response?,
                        () = cancel.cancelled() => return Err(TurnError::Cancelled),
                    }
                }
                _ => self.model.complete(&request).await?,
            };
            usage.add(response.usage);
            model_name.clone_from(&response.model);
            let now = crate::domain::now();
            let tool_calls = if i64::from(self.settings.max_steps) <= step {
                Vec::new()
            } else {
                response.tool_calls.clone()
            };
            let model_tracks_state = response.state.is_some();
            if let Some(s) = response.state {
                report_stage(req, &state.stage, &s);
                state = s;
            }

            if tool_calls.is_empty() {
                let text = if response.tool_calls.is_empty() {
                    response.content
                } else {
                    OUT_OF_STEPS.to_owned()
                };
                let msg = ChatMessage::assistant(text);
                produced_messages.push(new_message(
                    Role::Assistant,
                    &msg,
                    Some(&model_name),
                    Some(response.usage),
                    now,
                ));
                checkpoints.push(checkpoint(conv, step, &state));
                break msg.content;
            }

            if cancelled() {
                return Err(TurnError::Cancelled);
            }
            let mut call_msg = ChatMessage::assistant(response.content);
            call_msg.tool_calls.clone_from(&tool_calls);
            produced_messages.push(new_message(
                Role::Assistant,
                &call_msg,
                Some(&model_name),
                Some(response.usage),
                now,
            ));
            messages.push(call_msg);
            for (index, call) in tool_calls.iter().enumerate() {
                let arguments = serde_json::from_str(&call.arguments)
                    .unwrap_or_else(|_| Value::String(call.arguments.clone()));
                if let Some(log) = &req.events {
                    log.push(TurnEvent::ToolCall {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        arguments: arguments.clone(),
                    });
                }
                let effect_key = match &req.idempotency {
                    Some(IdempotencyKey { key, hash }) => {
                        format!("idem:{key}:{hash}:{step}:{index}:{}", call.name)
                    }
                    // Scoped to this turn's place in the conversation: a retried turn has the
                    // same place, while a provider that numbers calls per response (`call_0`)
                    // does not make later turns look like repeats.
                    None => format!("{}:{}", conv.last_seq + 1, call.id),
                };
                // Its own tracked task: a turn timeout (or shutdown) dropping this turn cannot
                // cut a call between its side effect and the record that makes it happen once.
                let result = {
                    let (tools, ctx, call) =
                        (self.skills.tools().clone(), tool_ctx.clone(), call.clone());
                    self.tasks
                        .spawn(async move { tools.run(&ctx, &call, &effect_key).await })
                        .await
                        .unwrap_or_else(|_| serde_json::json!({ "error": "the tool failed" }))
                };
                if let Some(log) = &req.events {
                    log.push(TurnEvent::ToolResult {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        result: result.clone(),
                    });
                }
                if !model_tracks_state && result.get("error").is_none() {
                    if let Some(skill) = self.skills.owner_of(&call.name) {
                        let before = state.stage.clone();
                        skill.observe(&mut state, call, &result);
                        report_stage(req, &before, &state);
                    }
                }
                let msg = ChatMessage::tool_result(call, result.to_string());
                produced_messages.push(new_message(
                    Role::Tool,
                    &msg,
                    None,
                    None,
                    crate::domain::now(),
                ));
                messages.push(msg);
                records.push(ToolCallRecord {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    arguments,
                    result,
                });
            }
            checkpoints.push(checkpoint(conv, step, &state));
        };

        let finished_at = crate::domain::now();
        let message_id = produced_messages
            .last()
            .map_or_else(MessageId::new, |m| m.id);
        let visible = i64::try_from(produced_messages.len()).unwrap_or(0);
        Ok(Produced {
            outcome: TurnOutcome {
                run_id,
                conversation_id: conv.id,
                message_id,
                response: reply,
                current_state: state.stage.clone(),
                message_count: conv.message_count + visible,
                tool_calls: records,
                usage,
                model: model_name.clone(),
                created_at: finished_at,
            },
            state,
            run: RunRecord {
                id: run_id,
                conversation_id: conv.id,
                status: RunStatus::Completed,
                model: Some(model_name),
                steps: step,
                usage,
                error: None,
                events: None,
                started_at,
                finished_at,
            },
            messages: produced_messages,
            checkpoints,
        })
    }
}

struct Produced {
    outcome: TurnOutcome,
    state: ConversationState,
    run: RunRecord,
    messages: Vec<NewMessage>,
    checkpoints: Vec<NewCheckpoint>,
}

/// The final event of a run that succeeded.
pub(super) fn done_event(outcome: &TurnOutcome) -> TurnEvent {
    TurnEvent::Done {
        response: outcome.response.clone(),
        message_id: outcome.message_id,
        metadata: TurnMetadata::of(outcome),
    }
}

/// The final event of a run that failed.
pub(super) fn error_event(e: &TurnError) -> TurnEvent {
    match e {
        TurnError::Cancelled => TurnEvent::Cancelled {},
        e => TurnEvent::Error {
            error: RunFailure { code: e.code() },
        },
    }
}

/// Tells a stream when the stage changes.
fn report_stage(req: &Turn, before: &str, after: &ConversationState) {
    if let Some(log) = &req.events {
        if before != after.stage {
            log.push(TurnEvent::State {
                session_id: None,
                current_state: after.stage.clone(),
            });
        }
    }
}

fn checkpoint(conv: &Conversation, step: i64, state: &ConversationState) -> NewCheckpoint {
    let version = conv.checkpoint_version + step;
    NewCheckpoint {
        version,
        parent_version: (version > 1).then_some(version - 1),
        step,
        state: state.clone(),
    }
}

fn new_message(
    role: Role,
    m: &ChatMessage,
    model: Option<&str>,
    usage: Option<Usage>,
    at: DateTime<Utc>,
) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        role,
        content: m.content.clone(),
        tool_calls: (!m.tool_calls.is_empty()).then(|| m.tool_calls.clone()),
        tool_call_id: m.tool_call_id.clone(),
        tool_name: m.name.clone(),
        model: model.map(str::to_owned),
        usage,
        created_at: at,
    }
}

/// The stored window as model messages. It starts at a user message, and tool calls and tool
/// results are kept only in pairs: a window cut between a call and its result, or a deleted
/// message, would otherwise leave half a pair that providers refuse.
fn window(history: &[Message]) -> Vec<ChatMessage> {
    let start = history
        .iter()
        .position(|m| m.role == Role::User)
        .unwrap_or(history.len());
    let msgs = &history[start..];
    let answered: HashSet<&str> = msgs
        .iter()
        .filter(|m| m.role == Role::Tool)
        .filter_map(|m| m.tool_call_id.as_deref())
        .collect();
    let called: HashSet<&str> = msgs
        .iter()
        .filter_map(|m| m.tool_calls.as_ref())
        .flat_map(|calls| calls.0.iter().map(|c| c.id.as_str()))
        .collect();
    msgs.iter()
        .filter_map(|m| {
            let role = match m.role {
                Role::System => Role::User,
                other => other,
            };
            let tool_calls: Vec<ToolCall> = m
                .tool_calls
                .as_ref()
                .map(|j| {
                    j.0.iter()
                        .filter(|c| answered.contains(c.id.as_str()))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let orphan_result = role == Role::Tool
                && !m
                    .tool_call_id
                    .as_deref()
                    .is_some_and(|id| called.contains(id));
            let empty_call =
                role == Role::Assistant && m.content.is_empty() && tool_calls.is_empty();
            (!orphan_result && !empty_call).then(|| ChatMessage {
                role,
                content: m.content.clone(),
                tool_calls,
                tool_call_id: m.tool_call_id.clone(),
                name: m.tool_name.clone(),
            })
        })
        .collect()
}

impl Agent {
    /// The org's prompt, where and when the business is, and what each skill with an enabled
    /// tool tells a language model about using its tools.
    fn system_prompt(&self, ctx: &TurnContext) -> String {
        let local_now = ctx.now.with_timezone(&ctx.time_zone);
        let mut prompt = format!(
            "{}\n\nThe business is in time zone {}; it is now {} there.",
            ctx.org.settings.system_prompt,
            ctx.time_zone.name(),
            local_now.format("%A %Y-%m-%d %H:%M"),
        );
        for paragraph in self.skills.prompts(&ctx.org.settings.enabled_tools, ctx) {
            prompt.push(' ');
            prompt.push_str(&paragraph);
        }
        prompt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::types::Json;

    fn stored(role: &str, content: &str, calls: &[&str], answers: Option<&str>) -> Message {
        Message {
            id: MessageId::new(),
            seq: 0,
            role: Role::parse(role).unwrap(),
            content: content.to_owned(),
            tool_calls: (!calls.is_empty()).then(|| {
                Json(
                    calls
                        .iter()
                        .map(|id| ToolCall {
                            id: (*id).to_owned(),
                            name: "t".into(),
                            arguments: "{}".into(),
                        })
                        .collect(),
                )
            }),
            tool_call_id: answers.map(str::to_owned),
            tool_name: answers.map(|_| "t".to_owned()),
            run_id: None,
            model: None,
            usage: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn the_window_starts_at_a_user_message_and_keeps_tool_calls_in_pairs() {
        let history = vec![
            stored("tool", "{}", &[], Some("cut_off")),
            stored("assistant", "reply", &[], None),
            stored("user", "hi", &[], None),
            stored("assistant", "", &["a", "b"], None),
            stored("tool", "{}", &[], Some("a")),
            // b's result was deleted; c's call was deleted.
            stored("tool", "{}", &[], Some("c")),
            stored("assistant", "done", &[], None),
        ];
        let w = window(&history);
        let shape: Vec<(Role, usize, Option<&str>)> = w
            .iter()
            .map(|m| (m.role, m.tool_calls.len(), m.tool_call_id.as_deref()))
            .collect();
        assert_eq!(
            shape,
            [
                (Role::User, 0, None),
                (Role::Assistant, 1, None),
                (Role::Tool, 0, Some("a")),
                (Role::Assistant, 0, None),
            ]
        );
    }
}
