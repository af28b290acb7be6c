//! The model abstraction: one request, one response, provider-neutral. Provider crates' own
//! types (such as async-openai's) stay inside their provider module; the agent loop sees only
//! these. Providers dispatch through the [`Model`] enum (no trait objects on the hot path).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::offline::OfflineModel;
use super::openai::OpenAiModel;
use crate::domain::Org;
use crate::domain::chat::{ChatMessage, ToolCall, ToolSpec, Usage};
use crate::domain::conversation::ConversationState;

/// What the model needs to know about the world that is not in the messages. Providers that
/// talk to a real LLM ignore most of it (the system prompt carries it in words); the offline
/// model reasons with it directly.
#[derive(Debug, Clone)]
pub struct TurnContext {
    pub now: DateTime<Utc>,
    pub time_zone: chrono_tz::Tz,
    /// The organisation: its services, hours and settings.
    pub org: Arc<Org>,
}

impl TurnContext {
    pub fn new(org: Arc<Org>, now: DateTime<Utc>) -> Self {
        Self {
            now,
            time_zone: org.settings.tz(),
            org,
        }
    }
}

/// One call to the model.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    /// Model name (the org's setting or the server default); providers may ignore it.
    pub model: String,
    /// System prompt first, then the conversation window, then this turn's messages so far
    /// (the user's message, and any tool calls and results of earlier steps of this turn).
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<std::sync::Arc<ToolSpec>>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// The conversation state from the latest checkpoint (updated within the turn).
    pub state: ConversationState,
    pub context: TurnContext,
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
    /// A new conversation state, when the model tracks one (the offline model does); `None`
    /// keeps it.
    pub state: Option<ConversationState>,
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

/// The model providers.
#[derive(Clone)]
pub enum Model {
    /// Deterministic, built in, no network.
    Offline(OfflineModel),
    /// Any OpenAI-compatible Chat Completions endpoint.
    OpenAi(Arc<OpenAiModel>),
    /// Answers from a script: for tests and benchmarks of the agent loop.
    #[cfg(feature = "test-support")]
    Scripted(super::scripted::ScriptedModel),
}

impl Model {
    pub async fn complete(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        match self {
            Self::Offline(m) => m.complete(req),
            Self::OpenAi(m) => m.complete(req).await,
            #[cfg(feature = "test-support")]
            Self::Scripted(m) => m.complete(req, None).await,
        }
    }

    /// Like `complete`, passing the reply's text to `on_delta` as it is produced: token by
    /// token from an OpenAI-compatible stream; word by word from the offline model, which has
    /// its whole reply at once.
    pub async fn complete_streaming(
        &self,
        req: &ModelRequest,
        on_delta: DeltaSink<'_>,
    ) -> Result<ModelResponse, ModelError> {
        match self {
            Self::Offline(m) => {
                let response = m.complete(req)?;
                for piece in word_chunks(&response.content) {
                    on_delta(piece);
                }
                Ok(response)
            }
            Self::OpenAi(m) => m.complete_streaming(req, on_delta).await,
            #[cfg(feature = "test-support")]
            Self::Scripted(m) => m.complete(req, Some(on_delta)).await,
        }
    }

    /// The model name used when the organisation sets none.
    pub fn default_model_name(&self) -> &str {
        match self {
            Self::Offline(_) => super::offline::MODEL_NAME,
            Self::OpenAi(m) => m.default_model(),
            #[cfg(feature = "test-support")]
            Self::Scripted(_) => "scripted",
        }
    }

    pub fn provider(&self) -> &'static str {
        match self {
            Self::Offline(_) => "offline",
            Self::OpenAi(_) => "openai",
            #[cfg(feature = "test-support")]
            Self::Scripted(_) => "scripted",
        }
    }
}

/// Splits text after each run of whitespace: "Hello there, friend" → "Hello ", "there, ",
/// "friend". Joined, the pieces give back the text exactly.
pub fn word_chunks(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let end = rest[word_end..]
            .find(|c: char| !c.is_whitespace())
            .map_or(rest.len(), |i| word_end + i);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn offline_model_streams_its_reply_word_by_word() {
        let model = Model::Offline(OfflineModel::default());
        let org = crate::domain::org::test_org();
        let req = ModelRequest {
            model: "offline".to_owned(),
            messages: vec![ChatMessage::user("Hello there")],
            tools: Vec::new(),
            temperature: None,
            max_tokens: None,
            state: ConversationState::default(),
            context: TurnContext::new(Arc::new(org), chrono::Utc::now()),
        };
        let mut deltas = Vec::new();
        let response = model
            .complete_streaming(&req, &mut |d: &str| deltas.push(d.to_owned()))
            .await
            .unwrap();
        assert!(!response.content.is_empty());
        assert_eq!(deltas.concat(), response.content);
        assert_eq!(deltas.len(), response.content.split_whitespace().count());
        assert_eq!(response, model.complete(&req).await.unwrap());
    }

    #[test]
    fn word_chunks_rejoin_to_the_text() {
        let text = "Hello there,  friend\nbye ";
        let pieces: Vec<&str> = word_chunks(text).collect();
        assert_eq!(pieces, ["Hello ", "there,  ", "friend\n", "bye "]);
        assert_eq!(pieces.concat(), text);
        assert_eq!(word_chunks("").count(), 0);
    }
}
