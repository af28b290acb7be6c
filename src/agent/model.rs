//! Provider-neutral chat types and the model abstraction. Provider crates' own types (such as
//! async-openai's) stay inside their provider module; the agent loop sees only these.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::agent::state::AgentState;
use crate::orgs::Service;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCall {
    /// Provider-assigned id (`call_…`); tool side effects are idempotent per id.
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them: JSON text, possibly malformed (the registry
    /// validates it and reports problems back to the model as a tool error).
    pub arguments: String,
}

/// One message of a conversation as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    /// Text; for `tool` messages, the tool's JSON result (or `{"error": …}`).
    pub content: String,
    /// For `assistant` messages that call tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For `tool` messages: the call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For `tool` messages: the tool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self::text(Role::System, content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::text(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::text(Role::Assistant, content)
    }

    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Self {
        Self {
            role: Role::Tool,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: Some(call.id.clone()),
            name: Some(call.name.clone()),
        }
    }
}

/// A tool offered to the model: name, description and the JSON Schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// What the model needs to know about the world that is not in the messages. Providers that
/// talk to a real LLM ignore most of it (the system prompt carries it in words); the offline
/// model reasons with it directly.
#[derive(Debug, Clone)]
pub struct TurnContext {
    pub now: DateTime<Utc>,
    pub time_zone: chrono_tz::Tz,
    pub services: Vec<Service>,
}

/// One call to the model.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    /// Model name (the org's setting or the server default); providers may ignore it.
    pub model: String,
    /// System prompt first, then the conversation window, then this turn's messages so far
    /// (the user's message, and any tool calls and results of earlier steps of this turn).
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// The agent state from the latest checkpoint (updated within the turn).
    pub state: AgentState,
    pub context: TurnContext,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
    }
}

/// Receives text deltas as a streaming model produces them (in order). Tool-call argument
/// deltas are not passed on: they are assembled into `ModelResponse::tool_calls`.
pub type DeltaSink<'a> = &'a mut (dyn FnMut(&str) + Send);

/// The model's answer to one request: text, tool calls, or both.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelResponse {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    /// The model that answered, as the provider reports it.
    pub model: String,
    /// A new agent state, when the model tracks one (the offline model does); `None` keeps it.
    pub state: Option<AgentState>,
}

/// Failures of a model call, after the provider's own retries.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The provider answered with an error, or not at all (connection refused, reset).
    #[error("model provider error{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Upstream {
        status: Option<u16>,
        message: String,
    },
    /// No answer within the per-call timeout.
    #[error("model call timed out")]
    Timeout,
    /// An answer we could not understand.
    #[error("invalid model response: {0}")]
    InvalidResponse(String),
}
