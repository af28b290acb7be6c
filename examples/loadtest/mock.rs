//! The mock model: an OpenAI-compatible Chat Completions server on 127.0.0.1, whole or
//! streamed, that answers after a set latency with a reply of a set length. It is stateless
//! (each answer is decided from the request body alone) and renders its replies from strings
//! prepared at start, so it costs little CPU beside the server it feeds.
//!
//! A request whose last message is the user's, mentions "services" and offers the
//! `list_services` tool gets a call of that tool; every other request gets text. So a tool
//! turn costs two model calls: the call, then the text after the tool's result.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The name the mock reports as its model (the server records it on every reply).
const MODEL: &str = "loadtest-mock";

/// The tool the `tools` scenario makes the mock call.
pub const TOOL: &str = "list_services";

/// The word in a user message that makes the mock call [`TOOL`].
pub const TOOL_TRIGGER: &str = "services";

/// What the mock was asked, for the report (model calls per turn).
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub streamed: AtomicU64,
    pub tool_calls: AtomicU64,
}

/// Replies rendered once at start; each request only fills in its token counts.
struct Mock {
    latency: Duration,
    completion_tokens: u32,
    /// The reply text as a JSON string literal, quotes included.
    text_json: String,
    /// The streamed reply's `data:` events up to and including the finish chunk.
    text_events: String,
    counters: Arc<Counters>,
}

/// The running mock; dropping it stops it.
pub struct MockModel {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    stop: CancellationToken,
    _tasks: JoinSet<()>,
}

impl MockModel {
    /// Serves on a free port of 127.0.0.1 until dropped.
    pub async fn start(latency: Duration, completion_tokens: u32) -> anyhow::Result<Self> {
        let words = reply_words(completion_tokens);
        let counters = Arc::new(Counters::default());
        let mock = Arc::new(Mock {
            latency,
            completion_tokens,
            text_json: serde_json::to_string(&words.concat())?,
            text_events: text_events(&words),
            counters: Arc::clone(&counters),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .route("/chat/completions", post(complete))
            .with_state(mock);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind the mock model's port")?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let until = stop.clone();
        tasks.spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(until.cancelled_owned());
            if let Err(e) = serve.await {
                eprintln!("warning: the mock model stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            counters,
            stop,
            _tasks: tasks,
        })
    }

    /// The `OPENAI_BASE_URL` that points the server here.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for MockModel {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `n` words, each with its trailing space but the last (one word ≈ one token).
fn reply_words(n: u32) -> Vec<String> {
    const VOCABULARY: &[&str] = &[
        "Sure", "we", "have", "openings", "this", "week", "and", "I", "can", "book", "one", "for",
        "you", "whenever", "it", "suits", "your", "plans", "best", "today",
    ];
    let n = usize::try_from(n.max(1)).unwrap_or(1);
    (0..n)
        .map(|i| {
            let word = VOCABULARY[i % VOCABULARY.len()];
            if i + 1 == n {
                format!("{word}.")
            } else {
                format!("{word} ")
            }
        })
        .collect()
}

fn chunk(delta: &serde_json::Value, finish_reason: Option<&str>) -> String {
    let chunk = serde_json::json!({
        "id": "chatcmpl-loadtest",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    });
    format!("data: {chunk}\n\n")
}

/// A streamed text reply as OpenAI sends it: the role, one chunk per word, the finish chunk.
fn text_events(words: &[String]) -> String {
    let mut out = chunk(
        &serde_json::json!({"role": "assistant", "content": ""}),
        None,
    );
    for word in words {
        out.push_str(&chunk(&serde_json::json!({ "content": word }), None));
    }
    out.push_str(&chunk(&serde_json::json!({}), Some("stop")));
    out
}

/// The parts of a Chat Completions request the mock looks at; the rest is skipped unread.
#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    tools: Vec<Tool>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Tool {
    function: Function,
}

#[derive(Deserialize)]
struct Function {
    name: String,
}

impl Request {
    /// Call the tool when the user just asked about services and the tool is on offer.
    fn wants_tool(&self) -> bool {
        let asked = self.messages.last().is_some_and(|m| {
            m.role == "user"
                && m.content
                    .as_ref()
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|c| c.contains(TOOL_TRIGGER))
        });
        asked && self.tools.iter().any(|t| t.function.name == TOOL)
    }
}

async fn complete(State(mock): State<Arc<Mock>>, body: Bytes) -> Response {
    let req: Request = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => {
            let error = serde_json::json!({"error": {"message": format!("bad request: {e}"), "type": "invalid_request_error"}});
            return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
        }
    };
    let n = mock.counters.requests.fetch_add(1, Ordering::Relaxed);
    if !mock.latency.is_zero() {
        tokio::time::sleep(mock.latency).await;
    }
    // Roughly four bytes of prompt per token, as OpenAI's own rule of thumb has it.
    let prompt_tokens = u32::try_from(body.len() / 4).unwrap_or(u32::MAX);
    let tool = req.wants_tool();
    if tool {
        mock.counters.tool_calls.fetch_add(1, Ordering::Relaxed);
    }
    let call_id = format!("call_loadtest_{n}");
    if req.stream {
        mock.counters.streamed.fetch_add(1, Ordering::Relaxed);
        let (events, completion) = if tool {
            (tool_events(&call_id), 5)
        } else {
            (mock.text_events.clone(), mock.completion_tokens)
        };
        let usage = usage(prompt_tokens, completion);
        let body = format!(
            "{events}data: {{\"id\":\"chatcmpl-loadtest\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"{MODEL}\",\"choices\":[],\"usage\":{usage}}}\n\ndata: [DONE]\n\n"
        );
        return (
            [(header::CONTENT_TYPE, "text/event-stream")],
            Body::from(body),
        )
            .into_response();
    }
    let (message, finish, completion) = if tool {
        (
            format!(
                "{{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{{\"id\":\"{call_id}\",\"type\":\"function\",\"function\":{{\"name\":\"{TOOL}\",\"arguments\":\"{{}}\"}}}}]}}"
            ),
            "tool_calls",
            5,
        )
    } else {
        (
            format!("{{\"role\":\"assistant\",\"content\":{}}}", mock.text_json),
            "stop",
            mock.completion_tokens,
        )
    };
    let usage = usage(prompt_tokens, completion);
    let body = format!(
        "{{\"id\":\"chatcmpl-loadtest\",\"object\":\"chat.completion\",\"created\":0,\"model\":\"{MODEL}\",\"choices\":[{{\"index\":0,\"message\":{message},\"finish_reason\":\"{finish}\"}}],\"usage\":{usage}}}"
    );
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

fn usage(prompt: u32, completion: u32) -> String {
    format!(
        "{{\"prompt_tokens\":{prompt},\"completion_tokens\":{completion},\"total_tokens\":{}}}",
        prompt.saturating_add(completion)
    )
}

/// A streamed tool call as OpenAI sends it: id and name first, the arguments after.
fn tool_events(call_id: &str) -> String {
    let mut out = chunk(
        &serde_json::json!({"role": "assistant", "content": null, "tool_calls": [
            {"index": 0, "id": call_id, "type": "function", "function": {"name": TOOL, "arguments": ""}}
        ]}),
        None,
    );
    out.push_str(&chunk(
        &serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        None,
    ));
    out.push_str(&chunk(&serde_json::json!({}), Some("tool_calls")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: serde_json::Value) -> Request {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn a_question_about_services_calls_the_tool_once() {
        let tools =
            serde_json::json!([{"type": "function", "function": {"name": TOOL, "parameters": {}}}]);
        let first = request(serde_json::json!({
            "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "Which services do you offer?"}],
            "tools": tools,
        }));
        assert!(first.wants_tool());
        let follow_up = request(serde_json::json!({
            "messages": [{"role": "user", "content": "Which services do you offer?"},
                         {"role": "assistant", "content": null, "tool_calls": []},
                         {"role": "tool", "content": "[]", "tool_call_id": "c"}],
            "tools": tools,
        }));
        assert!(!follow_up.wants_tool());
    }

    #[test]
    fn the_reply_has_the_asked_number_of_words() {
        assert_eq!(reply_words(20).concat().split(' ').count(), 20);
        assert_eq!(reply_words(0).len(), 1);
    }
}
