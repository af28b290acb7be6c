//! What a turn produces — its outcome, and the typed events a run emits while it runs. The run
//! log holds [`TurnEvent`]s, the SSE writer writes them, and the OpenAPI document describes
//! them: one type for all three.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::chat::Usage;
use super::ids::{ConversationId, MessageId, RunId};

/// How long a stored Idempotency-Key response is replayed: 24 hours.
pub const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// A tool call made during a turn, with its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCallRecord {
    pub id: String,
    #[schema(example = "create_appointment")]
    pub name: String,
    /// The arguments as parsed JSON (or the raw text, as a string, when they were not JSON):
    /// the same type wherever a tool call is shown.
    #[schema(value_type = super::chat::JsonObject, example = json!({"service_id": "general-consultation", "start": "2026-12-03T14:00:00+01:00"}))]
    pub arguments: Value,
    /// The tool's JSON result, or `{"error": "…"}`.
    pub result: Value,
}

/// The result of a turn; also what an idempotent replay returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnOutcome {
    pub run_id: RunId,
    pub conversation_id: ConversationId,
    /// The id of the assistant's reply.
    pub message_id: MessageId,
    pub response: String,
    /// The conversation's stage after the turn.
    pub current_state: String,
    /// Visible messages in the conversation after the turn.
    pub message_count: i64,
    pub tool_calls: Vec<ToolCallRecord>,
    pub usage: Usage,
    pub model: String,
    pub created_at: DateTime<Utc>,
    /// True when this is a stored reply returned again for a reused Idempotency-Key (the
    /// `Idempotency-Replayed: true` header); never stored.
    #[serde(skip)]
    pub replayed: bool,
}

/// What the turn did, beside the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TurnMetadata {
    /// Id of the assistant's reply message.
    pub message_id: MessageId,
    /// Where the conversation stands after the turn, as the skill in charge names it:
    /// COLLECT_SERVICE, COLLECT_DATETIME, COLLECT_CONTACT, CONFIRM or COMPLETE while booking;
    /// IDLE when nothing is in progress.
    #[schema(example = "COLLECT_SERVICE")]
    pub current_state: String,
    /// How many messages the conversation holds after this turn: exactly the messages its history and
    /// `GET /api/v1/conversations/{id}/messages` list (`total`), i.e. the visitor's messages,
    /// the assistant's (those that only call tools included) and tool results; deleted
    /// messages are not counted.
    #[schema(example = 4)]
    pub message_count: i64,
    pub tool_calls: Vec<ToolCallRecord>,
    pub usage: Usage,
    #[schema(example = "offline")]
    pub model: String,
    pub run_id: RunId,
}

impl TurnMetadata {
    pub fn of(o: &TurnOutcome) -> Self {
        Self {
            message_id: o.message_id,
            current_state: o.current_state.clone(),
            message_count: o.message_count,
            tool_calls: o.tool_calls.clone(),
            usage: o.usage,
            model: o.model.clone(),
            run_id: o.run_id,
        }
    }
}

/// Why a run failed, by stable code (the `code` of the problem clients see).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureCode {
    TurnInProgress,
    NotFound,
    Forbidden,
    IdempotencyMismatch,
    AgentTimeout,
    LlmUpstreamError,
    InternalError,
    RunCancelled,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TurnInProgress => "TURN_IN_PROGRESS",
            Self::NotFound => "NOT_FOUND",
            Self::Forbidden => "FORBIDDEN",
            Self::IdempotencyMismatch => "IDEMPOTENCY_MISMATCH",
            Self::AgentTimeout => "AGENT_TIMEOUT",
            Self::LlmUpstreamError => "LLM_UPSTREAM_ERROR",
            Self::InternalError => "INTERNAL_ERROR",
            Self::RunCancelled => "RUN_CANCELLED",
        }
    }
}

/// A failed run, as its final event reports it. The stream renders it as the same
/// problem+json a plain request would have answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunFailure {
    pub code: FailureCode,
}

/// One event of a run. On the wire (Server-Sent Events) the variant is the `event:` name and
/// its fields are the `data:` object, which also carries `chunk` (the text for `chunk`
/// events, `""` otherwise), `done` (true on the last event only) and `run_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TurnEvent {
    /// The conversation's stage: always the first event (with `session_id`), then whenever
    /// the stage changes.
    State {
        /// First event only: the session or conversation id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<ConversationId>,
        #[schema(example = "COLLECT_DATETIME")]
        current_state: String,
    },
    /// A piece of the reply's text, as the model writes it.
    Chunk {
        #[schema(example = "Happy ")]
        chunk: String,
    },
    /// The model called a tool.
    ToolCall {
        id: String,
        #[schema(example = "check_availability")]
        name: String,
        /// Parsed JSON, as in `/chat`'s `metadata.tool_calls`.
        #[schema(value_type = super::chat::JsonObject)]
        arguments: Value,
    },
    /// The tool's result (or `{"error": …}`).
    ToolResult {
        id: String,
        #[schema(example = "check_availability")]
        name: String,
        result: Value,
    },
    /// The last event of a run that succeeded: the whole reply and what the turn did.
    Done {
        response: String,
        message_id: MessageId,
        metadata: TurnMetadata,
    },
    /// The last event of a run that failed; rendered as `error`: the problem+json a plain
    /// request would have answered.
    Error { error: RunFailure },
    /// The last event of a run cancelled by `POST /api/v1/runs/{id}/cancel`: the turn
    /// stopped at a safe point and stored no messages.
    Cancelled {},
}

impl TurnEvent {
    /// The SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::State { .. } => "state",
            Self::Chunk { .. } => "chunk",
            Self::ToolCall { .. } => "tool_call",
            Self::ToolResult { .. } => "tool_result",
            Self::Done { .. } => "done",
            Self::Error { .. } => "error",
            Self::Cancelled {} => "cancelled",
        }
    }

    /// True for the run's last event.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Done { .. } | Self::Error { .. } | Self::Cancelled {}
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_their_name_as_tag() {
        let e = TurnEvent::ToolCall {
            id: "c1".into(),
            name: "t".into(),
            arguments: serde_json::json!({"a": 1}),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], e.name());
        assert_eq!(v["arguments"]["a"], 1);
        assert_eq!(serde_json::from_value::<TurnEvent>(v).unwrap(), e);
        let err = TurnEvent::Error {
            error: RunFailure {
                code: FailureCode::AgentTimeout,
            },
        };
        assert_eq!(
            serde_json::to_value(&err).unwrap()["error"]["code"],
            "AGENT_TIMEOUT"
        );
        assert!(err.is_final());
    }
}
