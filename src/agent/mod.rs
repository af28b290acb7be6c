//! The agent: models (providers), tools, and the turn loop that joins them. Independent of
//! HTTP: a turn can run from a handler, a test or the CLI.

pub mod model;
pub mod nlu;
pub mod offline;
pub mod openai;
pub mod runs;
pub mod state;
pub mod tools;
pub mod turn;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::store::Store;
use model::{DeltaSink, ModelError, ModelRequest, ModelResponse};

/// The model providers, dispatched by enum (no trait objects on the hot path).
#[derive(Clone)]
pub enum Model {
    /// Deterministic, built in, no network.
    Offline(offline::OfflineModel),
    /// Any OpenAI-compatible Chat Completions endpoint.
    OpenAi(Arc<openai::OpenAiModel>),
}

impl Model {
    pub async fn complete(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        match self {
            Self::Offline(m) => m.complete(req),
            Self::OpenAi(m) => m.complete(req).await,
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
        }
    }

    /// The model name used when the organisation sets none.
    pub fn default_model_name(&self) -> String {
        match self {
            Self::Offline(_) => "offline".to_owned(),
            Self::OpenAi(m) => m.default_model().to_owned(),
        }
    }

    pub fn provider(&self) -> &'static str {
        match self {
            Self::Offline(_) => "offline",
            Self::OpenAi(_) => "openai",
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

/// Limits of the turn loop.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Model calls per turn, at most.
    pub max_steps: u32,
    /// Earlier messages the model sees.
    pub history_window: u32,
    /// Longest a turn may take once it runs.
    pub turn_timeout: Duration,
    /// Longest a turn waits for another turn of the same conversation (policy `enqueue`).
    pub queue_timeout: Duration,
    /// How long a streamed run's events stay replayable after it was last read.
    pub run_retention: Duration,
}

impl AgentSettings {
    /// A lease outlives the longest turn, so only a crashed instance's lease ever expires.
    pub fn lease_duration(&self) -> Duration {
        self.turn_timeout + Duration::from_secs(30)
    }
}

/// The agent as the HTTP layer uses it; cheap to clone.
#[derive(Clone)]
pub struct Agent {
    pub store: Store,
    pub model: Model,
    pub tools: tools::ToolRegistry,
    pub settings: AgentSettings,
    pub tasks: TaskTracker,
    /// Event logs of streamed runs.
    pub runs: runs::RunHub,
    /// One FIFO mutex per recently active conversation: turns queue here before the lease.
    locks: moka::sync::Cache<Uuid, Arc<tokio::sync::Mutex<()>>>,
}

impl Agent {
    pub fn new(store: Store, model: Model, settings: AgentSettings, tasks: TaskTracker) -> Self {
        Self {
            store,
            model,
            tools: tools::ToolRegistry::builtin(),
            runs: runs::RunHub::new(settings.run_retention),
            settings,
            tasks,
            locks: moka::sync::Cache::builder()
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::model::{ChatMessage, TurnContext};
    use crate::agent::state::AgentState;

    #[tokio::test]
    async fn offline_model_streams_its_reply_word_by_word() {
        let model = Model::Offline(offline::OfflineModel);
        let req = ModelRequest {
            model: "offline".to_owned(),
            messages: vec![ChatMessage::user("Hello there")],
            tools: Vec::new(),
            temperature: None,
            max_tokens: None,
            state: AgentState::default(),
            context: TurnContext {
                now: chrono::Utc::now(),
                time_zone: chrono_tz::UTC,
                services: Vec::new(),
            },
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
