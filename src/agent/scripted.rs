//! A scripted model for tests and benchmarks of the agent loop: each call takes the next reply
//! from a script (text, tool calls, a failure, a delay, text trickled piece by piece) and
//! records the request it answered. With the script empty it echoes the last user message.
//! Compiled only with the `test-support` feature; the OpenAI provider's own tests use a real
//! HTTP server speaking the wire format instead (`agent::openai`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::model::{DeltaSink, ModelError, ModelRequest, ModelResponse, word_chunks};
use crate::domain::chat::{ToolCall, Usage};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    Text(String),
    /// `(id, name, arguments as JSON text)`.
    ToolCalls(Vec<(String, String, String)>),
    /// The provider failed with this HTTP status (a 502 `LLM_UPSTREAM_ERROR` to clients).
    Status(u16),
    /// The reply after a pause (a timeout is a pause longer than the turn may take).
    Slow(Duration, Box<Reply>),
    /// For streamed turns: these text pieces, `gap` apart (a plain turn gets them joined).
    Trickle(Vec<String>, Duration),
}

/// A text reply.
pub fn text(s: &str) -> Reply {
    Reply::Text(s.to_owned())
}

/// One tool call.
pub fn call(id: &str, name: &str, args: serde_json::Value) -> Reply {
    Reply::ToolCalls(vec![(id.to_owned(), name.to_owned(), args.to_string())])
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    requests: Vec<ModelRequest>,
    streams_finished: usize,
}

/// The scripted model; clones share the script and the record.
#[derive(Clone, Default)]
pub struct ScriptedModel {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for ScriptedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScriptedModel")
    }
}

impl ScriptedModel {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends replies to the script.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().script.extend(replies);
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<ModelRequest> {
        self.lock().requests.clone()
    }

    /// Streamed replies sent to the end.
    pub fn streams_finished(&self) -> usize {
        self.lock().streams_finished
    }

    pub(crate) async fn complete(
        &self,
        req: &ModelRequest,
        mut on_delta: Option<DeltaSink<'_>>,
    ) -> Result<ModelResponse, ModelError> {
        let next = {
            let mut inner = self.lock();
            inner.requests.push(req.clone());
            inner.script.pop_front()
        };
        let mut reply = next.unwrap_or_else(|| {
            let last_user = req
                .messages
                .iter()
                .rev()
                .find(|m| m.role == crate::domain::chat::Role::User)
                .map_or("", |m| m.content.as_str());
            Reply::Text(format!("echo: {last_user}"))
        });
        while let Reply::Slow(pause, inner) = reply {
            tokio::time::sleep(pause).await;
            reply = *inner;
        }
        let (content, tool_calls) = match reply {
            Reply::Status(status) => {
                return Err(ModelError::Upstream {
                    status: Some(status),
                    message: "scripted failure".to_owned(),
                });
            }
            Reply::Text(t) => {
                if let Some(sink) = on_delta.as_mut() {
                    for piece in word_chunks(&t) {
                        sink(piece);
                    }
                }
                (t, Vec::new())
            }
            Reply::Trickle(pieces, gap) => {
                if let Some(sink) = on_delta.as_mut() {
                    for (i, piece) in pieces.iter().enumerate() {
                        if i > 0 {
                            tokio::time::sleep(gap).await;
                        }
                        sink(piece);
                    }
                }
                (pieces.concat(), Vec::new())
            }
            Reply::ToolCalls(calls) => (
                String::new(),
                calls
                    .into_iter()
                    .map(|(id, name, arguments)| ToolCall {
                        id,
                        name,
                        arguments,
                    })
                    .collect(),
            ),
            // Unwrapped above; a delay is never the reply itself.
            Reply::Slow(..) => {
                return Err(ModelError::InvalidResponse(
                    "scripted delay without a reply".into(),
                ));
            }
        };
        if on_delta.is_some() {
            self.lock().streams_finished += 1;
        }
        Ok(ModelResponse {
            content,
            tool_calls,
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15,
            },
            model: "scripted-model".to_owned(),
            state: None,
        })
    }
}
