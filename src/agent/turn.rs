//! One agent turn: take the conversation's lease → load its state and history window → loop
//! model → tools (at most `max_steps`) → commit messages, checkpoints, run record and the
//! idempotency record in one transaction → release. A failed turn writes only its run record.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Agent;
use super::model::{ChatMessage, ModelError, ModelRequest, Role, ToolCall, TurnContext, Usage};
use super::runs::RunLog;
use super::state::{AgentState, Stage};
use super::tools::ToolContext;
use crate::domain::{EndUserId, MessageText};
use crate::orgs::{Org, TurnPolicy};
use crate::store::StoreError;
use crate::store::conversations::{
    Conversation, NewCheckpoint, NewMessage, RunRecord, StoredMessage, TurnCommit,
};

/// Who asks for a turn, on which conversation, saying what.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub org: Arc<Org>,
    pub end_user: Option<EndUserId>,
    pub conversation_id: Uuid,
    pub message: MessageText,
    /// `(Idempotency-Key, hash of the request)`.
    pub idempotency: Option<(String, String)>,
    /// The run's id, chosen by the caller so a stream can announce it before the turn starts.
    pub run_id: Uuid,
    /// Where a streamed turn reports its progress (text deltas, tool calls, states).
    pub events: Option<Arc<RunLog>>,
}

/// A tool call made during a turn, with its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCallRecord {
    pub id: String,
    #[schema(example = "create_appointment")]
    pub name: String,
    /// The arguments as parsed JSON (or the raw text when they were not JSON).
    pub arguments: Value,
    /// The tool's JSON result, or `{"error": "…"}`.
    pub result: Value,
}

/// The result of a turn; also what an idempotent replay returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnOutcome {
    pub run_id: Uuid,
    pub conversation_id: Uuid,
    /// The id of the assistant's reply.
    pub message_id: Uuid,
    pub response: String,
    pub state: AgentState,
    /// Visible messages in the conversation after the turn.
    pub message_count: i64,
    pub tool_calls: Vec<ToolCallRecord>,
    pub usage: Usage,
    pub model: String,
    pub created_at: DateTime<Utc>,
}

impl TurnOutcome {
    pub fn current_state(&self) -> &'static str {
        self.state.stage.as_str()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("another turn of this conversation is in progress")]
    Busy,
    #[error("no such conversation")]
    NotFound,
    #[error("the Idempotency-Key was used with another request")]
    IdempotencyMismatch,
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("the turn took longer than {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TurnError {
    /// The stable problem code this failure is reported with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Busy => "TURN_IN_PROGRESS",
            Self::NotFound => "NOT_FOUND",
            Self::IdempotencyMismatch => "IDEMPOTENCY_MISMATCH",
            Self::Timeout(_) | Self::Model(ModelError::Timeout) => "AGENT_TIMEOUT",
            Self::Model(_) => "LLM_UPSTREAM_ERROR",
            Self::Store(_) => "INTERNAL_ERROR",
        }
    }
}

/// Text the agent sends when it ran out of steps.
const OUT_OF_STEPS: &str = "Sorry, I could not finish that request. Could you rephrase it?";

impl Agent {
    /// Runs a turn to completion on the app's task tracker, so the caller going away (a closed
    /// connection) does not cut the turn short: it still completes and is persisted.
    pub async fn run_turn_detached(&self, req: TurnRequest) -> Result<TurnOutcome, TurnError> {
        let agent = self.clone();
        let handle = self.tasks.spawn(async move { agent.run_turn(req).await });
        match handle.await {
            Ok(r) => r,
            Err(e) => Err(TurnError::Store(StoreError::Corrupt(format!(
                "turn task failed: {e}"
            )))),
        }
    }

    /// Runs one turn.
    pub async fn run_turn(&self, req: TurnRequest) -> Result<TurnOutcome, TurnError> {
        let org_id = req.org.id.clone();
        let policy = req.org.settings.turn_policy;

        // In-process queue first (FIFO, no polling), then the database lease, which is what
        // keeps turns apart across instances; one deadline bounds both waits together.
        let deadline = tokio::time::Instant::now() + self.settings.queue_timeout;
        let local = self.locks.get_with(req.conversation_id, || {
            Arc::new(tokio::sync::Mutex::new(()))
        });
        let _local_guard = match policy {
            TurnPolicy::Reject => local.try_lock().map_err(|_| TurnError::Busy)?,
            TurnPolicy::Enqueue => tokio::time::timeout_at(deadline, local.lock())
                .await
                .map_err(|_| TurnError::Busy)?,
        };
        let token = Uuid::now_v7();
        let conv = self.acquire(&req, token, policy, deadline).await?;

        let result = self.turn_with_lease(&req, &conv, token).await;
        if let Err(e) = &result {
            if let Err(release) = self.store.release_lease(&org_id, conv.id, token).await {
                tracing::warn!(error = %crate::error::cause_chain(&release), "could not release a turn lease; it will expire");
            }
            tracing::info!(conversation = %conv.id, error = %crate::error::cause_chain(e), "turn failed");
        }
        result
    }

    async fn acquire(
        &self,
        req: &TurnRequest,
        token: Uuid,
        policy: TurnPolicy,
        deadline: tokio::time::Instant,
    ) -> Result<Conversation, TurnError> {
        loop {
            let now = crate::store::now();
            let expires = now
                + chrono::Duration::from_std(self.settings.lease_duration())
                    .unwrap_or_else(|_| chrono::Duration::minutes(5));
            if let Some(conv) = self
                .store
                .acquire_lease(&req.org.id, req.conversation_id, token, now, expires)
                .await?
            {
                return Ok(conv);
            }
            // Held elsewhere, or gone: tell the two apart before waiting.
            if self
                .store
                .get_conversation(&req.org.id, req.conversation_id)
                .await?
                .is_none()
            {
                return Err(TurnError::NotFound);
            }
            if policy == TurnPolicy::Reject || tokio::time::Instant::now() >= deadline {
                return Err(TurnError::Busy);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn turn_with_lease(
        &self,
        req: &TurnRequest,
        conv: &Conversation,
        token: Uuid,
    ) -> Result<TurnOutcome, TurnError> {
        if let Some((key, hash)) = &req.idempotency {
            let since = crate::store::now() - chrono::Duration::hours(24);
            if let Some((stored_hash, response)) = self
                .store
                .idempotent_response(&req.org.id, key, since)
                .await?
            {
                if &stored_hash != hash {
                    return Err(TurnError::IdempotencyMismatch);
                }
                self.store
                    .release_lease(&req.org.id, conv.id, token)
                    .await?;
                return serde_json::from_value(response).map_err(|e| {
                    TurnError::Store(StoreError::Corrupt(format!(
                        "stored idempotent response: {e}"
                    )))
                });
            }
        }
        let started_at = crate::store::now();
        let run_id = req.run_id;
        let timeout = self.settings.turn_timeout;
        let run = tokio::time::timeout(timeout, self.steps(req, conv, run_id, started_at)).await;
        let failure = match run {
            Ok(Ok(mut produced)) => {
                let outcome_value = serde_json::to_value(&produced.outcome)
                    .map_err(|e| TurnError::Store(StoreError::Corrupt(e.to_string())))?;
                let commit = TurnCommit {
                    org: &req.org.id,
                    conversation_id: conv.id,
                    lease_token: token,
                    base_seq: conv.last_seq,
                    messages: std::mem::take(&mut produced.messages),
                    checkpoints: std::mem::take(&mut produced.checkpoints),
                    state: produced.outcome.state.clone(),
                    run: produced.run.clone(),
                    idempotency: req
                        .idempotency
                        .as_ref()
                        .map(|(k, h)| (k.as_str(), h.as_str(), &outcome_value)),
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
            status: "failed",
            model: None,
            steps: 0,
            usage: Usage::default(),
            // "CODE: cause": operators read the cause; the API shows clients only the code.
            error: Some(format!(
                "{}: {}",
                failure.code(),
                crate::error::cause_chain(&failure)
            )),
            started_at,
            finished_at: crate::store::now(),
        };
        if let Err(e) = self.store.record_failed_run(&req.org.id, &failed).await {
            tracing::warn!(error = %crate::error::cause_chain(&e), "could not record a failed run");
        }
        Err(failure)
    }

    /// The model ⇄ tools loop; returns everything to commit.
    async fn steps(
        &self,
        req: &TurnRequest,
        conv: &Conversation,
        run_id: Uuid,
        started_at: DateTime<Utc>,
    ) -> Result<Produced, TurnError> {
        let org = &req.org;
        let after = (conv.last_seq - i64::from(self.settings.history_window)).max(0);
        let history = self.store.messages_after(&org.id, conv.id, after).await?;
        let tz: chrono_tz::Tz = org.settings.time_zone.parse().unwrap_or(chrono_tz::Tz::UTC);
        let context = TurnContext {
            now: started_at,
            time_zone: tz,
            services: org.settings.services.clone(),
        };

        let mut messages = vec![ChatMessage::system(system_prompt(org, &context))];
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
        let specs = self.tools.specs(&org.settings.enabled_tools);
        let model_cfg = &org.settings.model;

        let mut step: i64 = 0;
        let reply = loop {
            step += 1;
            let request = ModelRequest {
                model: model_cfg
                    .model
                    .clone()
                    .unwrap_or_else(|| self.model.default_model_name()),
                messages: messages.clone(),
                tools: specs.clone(),
                temperature: model_cfg.temperature,
                max_tokens: model_cfg.max_tokens,
                state: state.clone(),
                context: context.clone(),
            };
            let response = match &req.events {
                Some(log) => {
                    let mut sink =
                        |delta: &str| log.push("chunk", serde_json::json!({ "chunk": delta }));
                    self.model.complete_streaming(&request, &mut sink).await?
                }
                None => self.model.complete(&request).await?,
            };
            usage.add(response.usage);
            model_name.clone_from(&response.model);
            let now = crate::store::now();
            let tool_calls = if i64::from(self.settings.max_steps) <= step {
                Vec::new()
            } else {
                response.tool_calls.clone()
            };
            let model_tracks_state = response.state.is_some();
            if let Some(s) = response.state {
                report_state(req, &state, &s);
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
                    log.push("tool_call", serde_json::json!({ "id": call.id, "name": call.name, "arguments": arguments }));
                }
                let effect_key = match &req.idempotency {
                    Some((key, hash)) => format!("idem:{key}:{hash}:{step}:{index}:{}", call.name),
                    // Scoped to this turn's place in the conversation: a retried turn has the
                    // same place, while a provider that numbers calls per response (`call_0`)
                    // does not make later turns look like repeats.
                    None => format!("{}:{}", conv.last_seq + 1, call.id),
                };
                // Its own tracked task: a turn timeout (or shutdown) dropping this turn cannot
                // cut a call between its side effect and the record that makes it happen once.
                let result = {
                    let (tools, ctx, call) = (self.tools.clone(), tool_ctx.clone(), call.clone());
                    self.tasks
                        .spawn(async move { tools.run(&ctx, &call, &effect_key).await })
                        .await
                        .unwrap_or_else(|_| serde_json::json!({ "error": "the tool failed" }))
                };
                if let Some(log) = &req.events {
                    log.push(
                        "tool_result",
                        serde_json::json!({ "id": call.id, "name": call.name, "result": result }),
                    );
                }
                if !model_tracks_state {
                    let before = state.clone();
                    observe(&mut state, call, &result);
                    report_state(req, &before, &state);
                }
                let msg = ChatMessage::tool_result(call, result.to_string());
                produced_messages.push(new_message(
                    Role::Tool,
                    &msg,
                    None,
                    None,
                    crate::store::now(),
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

        let finished_at = crate::store::now();
        let message_id = produced_messages.last().map_or_else(Uuid::now_v7, |m| m.id);
        let visible = i64::try_from(produced_messages.len()).unwrap_or(0);
        Ok(Produced {
            outcome: TurnOutcome {
                run_id,
                conversation_id: conv.id,
                message_id,
                response: reply,
                state,
                message_count: conv.message_count + visible,
                tool_calls: records,
                usage,
                model: model_name.clone(),
                created_at: finished_at,
            },
            run: RunRecord {
                id: run_id,
                conversation_id: conv.id,
                status: "completed",
                model: Some(model_name),
                steps: step,
                usage,
                error: None,
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
    run: RunRecord,
    messages: Vec<NewMessage>,
    checkpoints: Vec<NewCheckpoint>,
}

/// Tells a stream when the stage changes.
fn report_state(req: &TurnRequest, before: &AgentState, after: &AgentState) {
    if let Some(log) = &req.events {
        if before.stage != after.stage {
            log.push(
                "state",
                serde_json::json!({ "current_state": after.stage.as_str() }),
            );
        }
    }
}

fn checkpoint(conv: &Conversation, step: i64, state: &AgentState) -> NewCheckpoint {
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
        id: Uuid::now_v7(),
        role: role.as_str(),
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
fn window(history: &[StoredMessage]) -> Vec<ChatMessage> {
    let start = history
        .iter()
        .position(|m| m.role == "user")
        .unwrap_or(history.len());
    let msgs = &history[start..];
    let answered: HashSet<&str> = msgs
        .iter()
        .filter(|m| m.role == "tool")
        .filter_map(|m| m.tool_call_id.as_deref())
        .collect();
    let called: HashSet<&str> = msgs
        .iter()
        .filter_map(|m| m.tool_calls.as_ref())
        .flat_map(|calls| calls.0.iter().map(|c| c.id.as_str()))
        .collect();
    msgs.iter()
        .filter_map(|m| {
            let role = match m.role.as_str() {
                "assistant" => Role::Assistant,
                "tool" => Role::Tool,
                _ => Role::User,
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

/// The org's prompt plus the facts an LLM needs to use the tools well.
fn system_prompt(org: &Org, ctx: &TurnContext) -> String {
    let local_now = ctx.now.with_timezone(&ctx.time_zone);
    let services: Vec<String> = ctx
        .services
        .iter()
        .map(|s| format!("{} (id {}, {} min)", s.name, s.id, s.duration_minutes))
        .collect();
    format!(
        "{}\n\nThe business is in time zone {}; it is now {} there. Services: {}. \
         Times passed to tools are local, formatted YYYY-MM-DDTHH:MM. Collect the customer's name, \
         email and phone and get an explicit yes before booking.",
        org.settings.system_prompt,
        ctx.time_zone.name(),
        local_now.format("%A %Y-%m-%d %H:%M"),
        if services.is_empty() {
            "none".to_owned()
        } else {
            services.join(", ")
        }
    )
}

/// Keeps the state meaningful for models that do not track it (LLM providers): what the
/// booking tools did tells where the conversation stands.
fn observe(state: &mut AgentState, call: &ToolCall, result: &Value) {
    if result.get("error").is_some() {
        return;
    }
    let confirmation = result.get("confirmation_number").and_then(Value::as_str);
    match call.name.as_str() {
        "create_appointment" | "reschedule_appointment" | "cancel_appointment" => {
            state.stage = Stage::Complete;
            state.last_confirmation = confirmation.map(str::to_owned);
            state.booking = Default::default();
        }
        "check_availability" if state.stage < Stage::CollectContact => {
            state.stage = Stage::CollectDatetime;
        }
        "list_services" if state.stage == Stage::Idle => state.stage = Stage::CollectService,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::types::Json;

    fn stored(role: &str, content: &str, calls: &[&str], answers: Option<&str>) -> StoredMessage {
        StoredMessage {
            id: Uuid::now_v7(),
            seq: 0,
            role: role.to_owned(),
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
