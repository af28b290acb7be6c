//! A local mock of an OpenAI-compatible Chat Completions server: replies are scripted per
//! test; with the script empty it echoes the last user message. Every request is recorded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub enum Reply {
    Text(String),
    /// `(id, name, arguments text)`
    ToolCalls(Vec<(String, String, String)>),
    Status(u16),
    Slow(Duration, Box<Reply>),
    /// For streaming requests: these text pieces, `gap` apart.
    Trickle(Vec<String>, Duration),
}

pub fn text(s: &str) -> Reply {
    Reply::Text(s.to_owned())
}

pub fn call(id: &str, name: &str, args: Value) -> Reply {
    Reply::ToolCalls(vec![(id.to_owned(), name.to_owned(), args.to_string())])
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    requests: Vec<Value>,
    /// Streamed replies completely sent.
    streams_finished: usize,
}

#[derive(Clone, Default)]
pub struct MockLlm {
    inner: Arc<Mutex<Inner>>,
    pub base_url: String,
}

impl MockLlm {
    pub async fn start() -> Self {
        let mut mock = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        mock.base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(mock.clone());
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        mock
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    pub fn streams_finished(&self) -> usize {
        self.inner.lock().unwrap().streams_finished
    }

    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Settings that point an app at this mock.
    pub fn configure(&self, s: &mut agentd::Settings) {
        s.llm_provider = Some(agentd::config::LlmProvider::Openai);
        s.openai_api_key = Some(agentd::config::Secret::new("sk-test-key"));
        s.openai_base_url.clone_from(&self.base_url);
        s.openai_max_retries = 0;
        s.openai_timeout_seconds = 5;
    }
}

fn completion(message: Value) -> Response {
    axum::Json(json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "mock-model",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
    .into_response()
}

fn render(reply: Reply) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>> {
    Box::pin(async move {
        match reply {
            Reply::Text(t) => completion(json!({"role": "assistant", "content": t})),
            Reply::ToolCalls(calls) => completion(json!({
                "role": "assistant", "content": null,
                "tool_calls": calls.iter().map(|(id, name, args)| json!({
                    "id": id, "type": "function", "function": {"name": name, "arguments": args}
                })).collect::<Vec<_>>()
            })),
            Reply::Status(code) => (
                StatusCode::from_u16(code).unwrap(),
                axum::Json(json!({"error": {"message": "mock failure"}})),
            )
                .into_response(),
            Reply::Trickle(pieces, _) => {
                completion(json!({"role": "assistant", "content": pieces.concat()}))
            }
            Reply::Slow(d, inner) => {
                tokio::time::sleep(d).await;
                render(*inner).await
            }
        }
    })
}

/// The reply as OpenAI's streaming wire format: `data:` chunks, usage, `[DONE]`.
fn stream(mock: MockLlm, reply: Reply) -> Response {
    let chunk = |delta: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "mock-model", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
        )
    };
    let (pieces, gap): (Vec<String>, Duration) = match reply {
        Reply::Trickle(p, gap) => (
            p.into_iter()
                .map(|t| chunk(json!({"content": t})))
                .collect(),
            gap,
        ),
        Reply::Text(t) => (
            vec![chunk(json!({"role": "assistant", "content": t}))],
            Duration::ZERO,
        ),
        Reply::ToolCalls(calls) => (
            vec![chunk(
                json!({"role": "assistant", "tool_calls": calls.iter().enumerate().map(|(i, (id, name, args))| json!({
            "index": i, "id": id, "type": "function", "function": {"name": name, "arguments": args}})).collect::<Vec<_>>()}),
            )],
            Duration::ZERO,
        ),
        other => {
            return futures_util::FutureExt::now_or_never(render(other))
                .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
    };
    let mut frames: VecDeque<String> = pieces.into();
    frames.push_back(format!("data: {}\n\n", json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "mock-model", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})));
    frames.push_back("data: [DONE]\n\n".to_owned());
    let body = futures_util::stream::unfold((frames, true), move |(mut frames, first)| {
        let mock = mock.clone();
        async move {
            if !first && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            let frame = frames.pop_front()?;
            if frames.is_empty() {
                mock.inner.lock().unwrap().streams_finished += 1;
            }
            Some((Ok::<_, std::io::Error>(frame), (frames, false)))
        }
    });
    (
        [("content-type", "text/event-stream")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

async fn complete(State(mock): State<MockLlm>, axum::Json(body): axum::Json<Value>) -> Response {
    let next = {
        let mut inner = mock.inner.lock().unwrap();
        inner.requests.push(body.clone());
        inner.script.pop_front()
    };
    let reply = next.unwrap_or_else(|| {
        let last_user = body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .map(|m| m["content"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        Reply::Text(format!("echo: {last_user}"))
    });
    if body["stream"] == true && !matches!(reply, Reply::Status(_) | Reply::Slow(..)) {
        return stream(mock, reply);
    }
    render(reply).await
}
