//! The OpenAI-compatible model provider: maps our chat types to the Chat Completions API of any
//! OpenAI-compatible server (OpenAI, Azure OpenAI's v1 endpoint, Ollama, vLLM, llama.cpp), whole
//! or streamed as Server-Sent Events, and owns the one retry policy for model calls.
//!
//! Requests are built with async-openai's wire types but sent through our own `reqwest` call,
//! and responses are read with the small lenient structs below. async-openai 0.28's `Client`
//! does not fit: its errors drop the HTTP status, it cannot see `Retry-After`, it treats
//! connection errors as permanent, it retries 5xx on its own backoff (15 minutes by default),
//! and it logs whole upstream bodies. Its response types are also strict (required `object`
//! and `created`, closed enums for `finish_reason` and `service_tier`), which breaks on servers
//! that are only mostly compatible.

use std::fmt;
use std::time::Duration;

use async_openai::types::{
    ChatCompletionMessageToolCall, ChatCompletionRequestAssistantMessage,
    ChatCompletionRequestAssistantMessageContent, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestSystemMessageContent,
    ChatCompletionRequestToolMessage, ChatCompletionRequestToolMessageContent,
    ChatCompletionRequestUserMessage, ChatCompletionRequestUserMessageContent,
    ChatCompletionStreamOptions, ChatCompletionTool, ChatCompletionToolType,
    CreateChatCompletionRequest, FunctionCall, FunctionObject,
};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rand::Rng;
use reqwest::Url;
use serde::Deserialize;

use crate::agent::model::{DeltaSink, ModelError, ModelRequest, ModelResponse};
use crate::config::Secret;
use crate::domain::chat::{ChatMessage, Role, ToolCall, ToolSpec, Usage};

/// How to reach an OpenAI-compatible server and how hard to try.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Sent as `Authorization: Bearer …`; never logged (its Debug is redacted).
    pub api_key: Secret,
    /// The API root, ending before `/chat/completions` (`https://api.openai.com/v1`). A query
    /// string (`?api-version=…` for some gateways) is kept.
    pub base_url: String,
    /// Used when a request names no model.
    pub default_model: String,
    /// Longest one attempt may take, from connecting to the last byte of the body. A streamed
    /// call waits this long for the response head, then at most this long between chunks.
    pub request_timeout: Duration,
    /// Attempts after the first one, for 408, 409, 429, 5xx, connection errors and timeouts.
    pub max_retries: u32,
    /// Upper bound of the first backoff; doubles per retry (full jitter below it).
    pub initial_backoff: Duration,
    /// No wait between attempts is longer than this, `Retry-After` included.
    pub max_backoff: Duration,
}

impl OpenAiConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://api.openai.com/v1";
    pub const DEFAULT_MODEL: &'static str = "gpt-4o-mini";

    /// The defaults: OpenAI itself, `gpt-4o-mini`, 30 s per attempt, 2 retries, backoff from
    /// 500 ms up to 8 s.
    pub fn new(api_key: Secret) -> Self {
        Self {
            api_key,
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            default_model: Self::DEFAULT_MODEL.to_owned(),
            request_timeout: Duration::from_secs(30),
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";

/// What every call needs and can fail to build (bad URL, key not valid in a header, no TLS).
struct Transport {
    http: reqwest::Client,
    endpoint: Url,
    authorization: HeaderValue,
}

/// A model behind an OpenAI-compatible Chat Completions endpoint.
pub struct OpenAiModel {
    /// `Err` holds why the provider cannot work; every call then fails with it, at once.
    transport: Result<Transport, String>,
    /// Kept only to scrub it out of upstream error messages.
    api_key: Secret,
    default_model: String,
    request_timeout: Duration,
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl fmt::Debug for OpenAiModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiModel")
            .field(
                "endpoint",
                &self.transport.as_ref().map(|t| t.endpoint.as_str()),
            )
            .field("default_model", &self.default_model)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .finish_non_exhaustive()
    }
}

impl OpenAiModel {
    /// The model used when a request names none.
    pub fn default_model(&self) -> &str {
        &self.default_model
    }

    /// Never fails: a configuration that cannot work is logged here and reported by every call
    /// (as a non-retryable [`ModelError::Upstream`]). Use [`OpenAiModel::try_new`] to refuse
    /// it at start-up instead.
    pub fn new(cfg: OpenAiConfig) -> Self {
        let transport = build_transport(&cfg);
        if let Err(e) = &transport {
            tracing::error!(error = %e, "the openai model provider is misconfigured");
        }
        Self::with_transport(cfg, transport)
    }

    /// Like [`OpenAiModel::new`], but a configuration that cannot work is an error.
    pub fn try_new(cfg: OpenAiConfig) -> Result<Self, ModelError> {
        let transport = build_transport(&cfg).map_err(|message| ModelError::Upstream {
            status: None,
            message,
        })?;
        Ok(Self::with_transport(cfg, Ok(transport)))
    }

    fn with_transport(cfg: OpenAiConfig, transport: Result<Transport, String>) -> Self {
        Self {
            transport,
            api_key: cfg.api_key,
            default_model: cfg.default_model,
            request_timeout: cfg.request_timeout,
            max_retries: cfg.max_retries,
            initial_backoff: cfg.initial_backoff,
            max_backoff: cfg.max_backoff,
        }
    }

    /// One model call, retried per the policy in [`OpenAiConfig`]. `req.state` and
    /// `req.context` are not sent (the system prompt carries what the model needs).
    pub async fn complete(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let Prepared {
            transport,
            model,
            body,
        } = self.prepare(req, false)?;
        let mut retries = 0;
        loop {
            let outcome = self
                .attempt(transport, &body, JSON, reqwest::Response::bytes)
                .await
                .and_then(|bytes| parse_response(&bytes, model).map_err(Failure::fatal));
            match outcome {
                Ok(response) => return Ok(response),
                Err(failure) => self.before_retry(&mut retries, failure).await?,
            }
        }
    }

    /// Like [`OpenAiModel::complete`], but the reply is streamed (`"stream": true`): each piece
    /// of text goes to `on_delta` as it arrives, and the whole response is returned at the end.
    ///
    /// Failures are retried as for `complete` as long as nothing has reached `on_delta` yet;
    /// after that a failure is final, so no text is ever delivered twice. `request_timeout`
    /// bounds the wait for the response head, then each silence between two chunks.
    pub async fn complete_streaming(
        &self,
        req: &ModelRequest,
        on_delta: DeltaSink<'_>,
    ) -> Result<ModelResponse, ModelError> {
        let Prepared {
            transport,
            model,
            body,
        } = self.prepare(req, true)?;
        let mut retries = 0;
        loop {
            let outcome = match self
                .attempt(transport, &body, EVENT_STREAM, |response| {
                    std::future::ready(Ok(response))
                })
                .await
            {
                Ok(response) => self.read_stream(response, model, on_delta).await,
                Err(failure) => Err(failure),
            };
            match outcome {
                Ok(response) => return Ok(response),
                Err(failure) => self.before_retry(&mut retries, failure).await?,
            }
        }
    }

    /// What every attempt of one call shares: the transport, the model name and the body.
    fn prepare<'a>(
        &'a self,
        req: &'a ModelRequest,
        stream: bool,
    ) -> Result<Prepared<'a>, ModelError> {
        let transport = self
            .transport
            .as_ref()
            .map_err(|message| ModelError::Upstream {
                status: None,
                message: message.clone(),
            })?;
        let model = if req.model.is_empty() {
            self.default_model.as_str()
        } else {
            req.model.as_str()
        };
        let body = serde_json::to_vec(&wire_request(req, model, stream)).map_err(|e| {
            ModelError::Upstream {
                status: None,
                message: format!("could not encode the request: {e}"),
            }
        })?;
        Ok(Prepared {
            transport,
            model,
            body,
        })
    }

    /// After a failed attempt: the error, if the failure is final or the retries are used up;
    /// otherwise waits out the backoff so the caller can try again. (A loop in each caller
    /// rather than a higher-order helper: an `AsyncFnMut` attempt would make the call's future
    /// lose `Send`, <https://github.com/rust-lang/rust/issues/139475>.)
    async fn before_retry(&self, retries: &mut u32, failure: Failure) -> Result<(), ModelError> {
        if !failure.retryable || *retries >= self.max_retries {
            return Err(failure.error);
        }
        let delay = self.backoff(*retries, failure.retry_after);
        tracing::warn!(
            attempt = *retries + 1,
            max_retries = self.max_retries,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error = %failure.error,
            "model call failed; retrying"
        );
        tokio::time::sleep(delay).await;
        *retries += 1;
        Ok(())
    }

    /// One HTTP exchange, bounded by the per-attempt timeout. A success is handed to `read`
    /// inside that bound (`complete` reads the whole body there; a stream only takes the
    /// response, whose body is then read under the idle timeout). An error status is read
    /// and classified here.
    async fn attempt<T, Fut>(
        &self,
        transport: &Transport,
        body: &[u8],
        accept: &'static str,
        read: impl FnOnce(reqwest::Response) -> Fut,
    ) -> Result<T, Failure>
    where
        Fut: Future<Output = Result<T, reqwest::Error>>,
    {
        let exchange = async {
            let response = transport
                .http
                .post(transport.endpoint.clone())
                .header(header::AUTHORIZATION, transport.authorization.clone())
                .header(header::CONTENT_TYPE, JSON)
                .header(header::ACCEPT, accept)
                .body(body.to_vec())
                .send()
                .await?;
            let status = response.status();
            if status.is_success() {
                return read(response).await.map(Ok);
            }
            let headers = response.headers().clone();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>(Err((status, headers, bytes)))
        };
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Err(_elapsed) => Err(Failure::retry(ModelError::Timeout, None)),
            Ok(Err(e)) => Err(self.transport_failure(e)),
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err((status, headers, bytes)))) => {
                Err(self.status_failure(status, &headers, &bytes))
            }
        }
    }

    /// A request that did not get an answer, or whose body broke off.
    fn transport_failure(&self, e: reqwest::Error) -> Failure {
        if e.is_timeout() {
            return Failure::retry(ModelError::Timeout, None);
        }
        // A builder error is our request, not the network: trying again cannot help.
        let ours = e.is_builder();
        let error = ModelError::Upstream {
            status: None,
            message: self.scrub(error_chain(&e.without_url())),
        };
        if ours {
            Failure::fatal(error)
        } else {
            Failure::retry(error, None)
        }
    }

    /// An answer with an error status.
    fn status_failure(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Failure {
        let upstream = parse_error_body(body);
        let message = self.scrub(upstream.message.unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("no reason given")
                .to_owned()
        }));
        let error = ModelError::Upstream {
            status: Some(status.as_u16()),
            message,
        };
        // A 429 for an exhausted quota does not clear by waiting (async-openai makes the same call).
        let out_of_quota = upstream.kind.as_deref() == Some("insufficient_quota")
            || upstream.code.as_deref() == Some("insufficient_quota");
        if is_retryable_status(status) && !out_of_quota {
            Failure::retry(error, retry_after(headers))
        } else {
            Failure::fatal(error)
        }
    }

    /// Exponential backoff with full jitter (a uniform wait in `[0, min(max, initial·2^n)]`),
    /// or the server's `Retry-After`; never longer than `max_backoff`, so a call's worst case
    /// stays bounded by `(max_retries + 1) · request_timeout + max_retries · max_backoff`.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_backoff);
        }
        let ceiling = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_backoff);
        ceiling.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }

    /// Upstream messages can echo the key (OpenAI's 401 does, partly masked); take it out.
    fn scrub(&self, message: String) -> String {
        let key = self.api_key.expose();
        if key.is_empty() {
            message
        } else {
            message.replace(key, "[redacted]")
        }
    }
}

fn build_transport(cfg: &OpenAiConfig) -> Result<Transport, String> {
    let mut endpoint = Url::parse(cfg.base_url.trim())
        .map_err(|e| format!("the base URL {:?} is not a URL: {e}", cfg.base_url))?;
    if !matches!(endpoint.scheme(), "http" | "https") {
        return Err(format!(
            "the base URL {:?} is not an http(s) URL",
            cfg.base_url
        ));
    }
    endpoint
        .path_segments_mut()
        .map_err(|()| format!("the base URL {:?} cannot take a path", cfg.base_url))?
        .pop_if_empty()
        .push("chat")
        .push("completions");

    let mut authorization = HeaderValue::from_str(&format!("Bearer {}", cfg.api_key.expose()))
        // The error would not show the key, but say nothing about it to be sure.
        .map_err(|_| "the API key contains characters not allowed in an HTTP header".to_owned())?;
    authorization.set_sensitive(true);

    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| format!("could not build the HTTP client: {}", error_chain(&e)))?;
    Ok(Transport {
        http,
        endpoint,
        authorization,
    })
}

/// Why an attempt failed and whether another one may help.
struct Failure {
    error: ModelError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn retry(error: ModelError, retry_after: Option<Duration>) -> Self {
        Self {
            error,
            retryable: true,
            retry_after,
        }
    }

    fn fatal(error: ModelError) -> Self {
        Self {
            error,
            retryable: false,
            retry_after: None,
        }
    }
    /// Once text has reached the caller, another attempt would deliver it again: final.
    fn unless_delivered(self, delivered: bool) -> Self {
        Self {
            retryable: self.retryable && !delivered,
            ..self
        }
    }
}

/// What every attempt of one call shares.
struct Prepared<'a> {
    transport: &'a Transport,
    /// The model asked for: the request's, or the default.
    model: &'a str,
    /// The encoded request.
    body: Vec<u8>,
}

/// The statuses the official OpenAI SDKs retry: request timeout, lock conflict, rate limit and
/// server errors. Other 4xx (400 bad request, 401 bad key, 404 unknown model) fail at once.
fn is_retryable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS
    ) || status.is_server_error()
}

/// `retry-after-ms` (OpenAI's, milliseconds) or `Retry-After` in seconds. The HTTP-date form
/// of `Retry-After` is not used by these servers and falls back to our own backoff.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    if let Some(ms) = number("retry-after-ms") {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    number("retry-after").and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// An error body, as much of it as we can read: OpenAI's `{"error": {message, type, code}}`,
/// a bare `{"error": "…"}` (some gateways), or text.
#[derive(Default)]
struct UpstreamError {
    message: Option<String>,
    kind: Option<String>,
    code: Option<String>,
}

fn parse_error_body(bytes: &[u8]) -> UpstreamError {
    #[derive(Deserialize)]
    struct Wrapped {
        error: Inner,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Inner {
        Object {
            message: Option<String>,
            #[serde(rename = "type")]
            kind: Option<String>,
            code: Option<serde_json::Value>,
        },
        Text(String),
    }

    match serde_json::from_slice::<Wrapped>(bytes) {
        Ok(Wrapped {
            error:
                Inner::Object {
                    message,
                    kind,
                    code,
                },
        }) => UpstreamError {
            message: message.filter(|m| !m.is_empty()),
            kind,
            code: code.map(|c| match c {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            }),
        },
        Ok(Wrapped {
            error: Inner::Text(message),
        }) => UpstreamError {
            message: Some(message).filter(|m| !m.is_empty()),
            ..UpstreamError::default()
        },
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            UpstreamError {
                message: (!text.is_empty()).then(|| truncate(text, 300)),
                ..UpstreamError::default()
            }
        }
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// An error and its sources on one line (reqwest's own Display stops at "error sending
/// request", which hides whether it was DNS, refusal or TLS).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[expect(
    deprecated,
    reason = "`max_tokens` rather than `max_completion_tokens`: every compatible server knows it"
)]
fn wire_request(req: &ModelRequest, model: &str, stream: bool) -> CreateChatCompletionRequest {
    CreateChatCompletionRequest {
        model: model.to_owned(),
        messages: req.messages.iter().map(wire_message).collect(),
        // OpenAI rejects `"tools": []`; leave the field out instead.
        tools: (!req.tools.is_empty()).then(|| req.tools.iter().map(|s| wire_tool(s)).collect()),
        temperature: req.temperature,
        // OpenAI still honours `max_tokens` for its chat models (its reasoning models want
        // `max_completion_tokens`: leave `max_tokens` unset for them); Ollama, llama.cpp and
        // older vLLM know only `max_tokens`.
        max_tokens: req.max_tokens,
        stream: stream.then_some(true),
        // Without it a stream reports no usage at all. Servers that do not know the option
        // (older Ollama, llama.cpp) ignore it.
        stream_options: stream.then_some(ChatCompletionStreamOptions {
            include_usage: true,
        }),
        ..CreateChatCompletionRequest::default()
    }
}

fn wire_message(msg: &ChatMessage) -> ChatCompletionRequestMessage {
    match msg.role {
        Role::System => ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(msg.content.clone()),
            name: None,
        }),
        Role::User => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: ChatCompletionRequestUserMessageContent::Text(msg.content.clone()),
            name: None,
        }),
        Role::Assistant => {
            let tool_calls: Vec<_> = msg
                .tool_calls
                .iter()
                .map(|call| ChatCompletionMessageToolCall {
                    id: call.id.clone(),
                    r#type: ChatCompletionToolType::Function,
                    function: FunctionCall {
                        name: call.name.clone(),
                        arguments: call.arguments.clone(),
                    },
                })
                .collect();
            // A message that only calls tools has no content: null, as the API documents.
            let content = (!msg.content.is_empty() || tool_calls.is_empty())
                .then(|| ChatCompletionRequestAssistantMessageContent::Text(msg.content.clone()));
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                ..ChatCompletionRequestAssistantMessage::default()
            })
        }
        // The API has no `name` on tool messages; the id ties the result to its call.
        Role::Tool => ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
            content: ChatCompletionRequestToolMessageContent::Text(msg.content.clone()),
            tool_call_id: msg.tool_call_id.clone().unwrap_or_default(),
        }),
    }
}

fn wire_tool(spec: &ToolSpec) -> ChatCompletionTool {
    ChatCompletionTool {
        r#type: ChatCompletionToolType::Function,
        function: FunctionObject {
            name: spec.name.clone(),
            description: Some(spec.description.clone()).filter(|d| !d.is_empty()),
            parameters: Some(spec.parameters.clone()),
            strict: None,
        },
    }
}

/// The parts of a chat completion we use, read leniently: compatible servers omit `object`,
/// `created`, `id` or `usage`, and invent `finish_reason` and `service_tier` values.
#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    total_tokens: Option<u32>,
}

fn parse_response(bytes: &[u8], requested_model: &str) -> Result<ModelResponse, ModelError> {
    let wire: WireResponse = serde_json::from_slice(bytes)
        .map_err(|e| ModelError::InvalidResponse(format!("not a chat completion: {e}")))?;
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ModelError::InvalidResponse("the response has no choices".to_owned()))?;
    let message = choice.message;

    let tool_calls = message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .map(|call| ToolCall {
            id: call_id(call.id),
            name: call.function.name,
            // Verbatim, malformed or not: the tool registry validates and tells the model.
            // (A few servers send an object instead of a string; its JSON text is the same
            // arguments.)
            arguments: match call.function.arguments {
                Some(serde_json::Value::String(text)) => text,
                None | Some(serde_json::Value::Null) => "{}".to_owned(),
                Some(other) => other.to_string(),
            },
        })
        .collect();

    Ok(ModelResponse {
        content: message.content.or(message.refusal).unwrap_or_default(),
        tool_calls,
        usage: usage(wire.usage.unwrap_or_default()),
        model: wire
            .model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| requested_model.to_owned()),
        state: None,
    })
}

/// The provider's id for a tool call. Some local servers send none; tool side effects are
/// keyed by it, so make one that cannot collide with another step's.
fn call_id(id: Option<String>) -> String {
    id.filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("call_{}", uuid::Uuid::now_v7().simple()))
}

fn usage(wire: WireUsage) -> Usage {
    let prompt_tokens = wire.prompt_tokens.unwrap_or(0);
    let completion_tokens = wire.completion_tokens.unwrap_or(0);
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: wire
            .total_tokens
            .unwrap_or(prompt_tokens.saturating_add(completion_tokens)),
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

impl OpenAiModel {
    /// Reads one streamed reply to its end. A failure here may be retried only while nothing
    /// has reached `on_delta` (see [`Failure::unless_delivered`]).
    async fn read_stream(
        &self,
        response: reqwest::Response,
        requested_model: &str,
        on_delta: DeltaSink<'_>,
    ) -> Result<ModelResponse, Failure> {
        // Some servers ignore `"stream": true` and answer with one JSON completion; take it
        // as a stream of a single delta rather than failing on it.
        if is_json(response.headers()) {
            let bytes = match tokio::time::timeout(self.request_timeout, response.bytes()).await {
                Err(_elapsed) => return Err(Failure::retry(ModelError::Timeout, None)),
                Ok(Err(e)) => return Err(self.transport_failure(e)),
                Ok(Ok(bytes)) => bytes,
            };
            let reply = parse_response(&bytes, requested_model).map_err(Failure::fatal)?;
            if !reply.content.is_empty() {
                on_delta(&reply.content);
            }
            return Ok(reply);
        }

        let mut body = response.bytes_stream();
        let mut decoder = SseDecoder::default();
        let mut reply = StreamedReply::default();
        loop {
            // The idle timeout: a server that stops sending without closing must not hold the
            // turn until its own deadline.
            let bytes = match tokio::time::timeout(self.request_timeout, body.next()).await {
                Err(_elapsed) => {
                    return Err(Failure::retry(ModelError::Timeout, None)
                        .unless_delivered(reply.delivered()));
                }
                Ok(Some(Err(e))) => {
                    return Err(self
                        .transport_failure(e)
                        .unless_delivered(reply.delivered()));
                }
                Ok(Some(Ok(bytes))) => bytes,
                Ok(None) => break,
            };
            for data in decoder.feed(&bytes) {
                if self.apply_event(&mut reply, &data, on_delta)? {
                    return reply.finish(requested_model);
                }
            }
        }
        // The body ended without `[DONE]`. An event not closed by a blank line is still read
        // (lenient: the spec would drop it).
        if let Some(data) = decoder.finish() {
            if self.apply_event(&mut reply, &data, on_delta)? {
                return reply.finish(requested_model);
            }
        }
        // A reply that announced its end (`finish_reason`) is complete even if the server
        // closed without `[DONE]`; only the usage chunk may be missing.
        if reply.finished {
            return reply.finish(requested_model);
        }
        Err(Failure::retry(
            ModelError::Upstream {
                status: None,
                message: "the stream ended before the reply was complete".to_owned(),
            },
            None,
        )
        .unless_delivered(reply.delivered()))
    }

    /// Applies one SSE `data` payload; `Ok(true)` at `[DONE]`.
    fn apply_event(
        &self,
        reply: &mut StreamedReply,
        data: &str,
        on_delta: DeltaSink<'_>,
    ) -> Result<bool, Failure> {
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: WireChunk = serde_json::from_str(data).map_err(|e| {
            Failure::fatal(ModelError::InvalidResponse(format!(
                "not a chat completion chunk: {e}"
            )))
        })?;
        // OpenAI reports failures after the head as an `{"error": …}` event in the stream.
        if chunk.error.as_ref().is_some_and(|e| !e.is_null()) {
            let upstream = parse_error_body(data.as_bytes());
            let error = ModelError::Upstream {
                status: None,
                message: self.scrub(
                    upstream
                        .message
                        .unwrap_or_else(|| "error in the stream".to_owned()),
                ),
            };
            return Err(Failure::retry(error, None).unless_delivered(reply.delivered()));
        }
        reply.apply(chunk, on_delta);
        Ok(false)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with(JSON))
}

/// Splits a Server-Sent Events body into the `data` of each event, whatever the chunking of
/// the bytes (a line, or a UTF-8 character, may be split across network reads).
/// <https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>
#[derive(Default)]
struct SseDecoder {
    /// The current line, still incomplete; bytes, so a split character is joined before decoding.
    line: Vec<u8>,
    /// The `data` lines of the current event, joined by `\n`.
    data: Option<String>,
    /// The previous byte was a CR: an LF right after it ends the same line.
    after_cr: bool,
}

impl SseDecoder {
    /// The events completed by `bytes`.
    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &byte in bytes {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\n' => self.end_line(&mut events),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut events);
                }
                _ => self.line.push(byte),
            }
        }
        events
    }

    /// The last event, when the body ended without the blank line that closes it.
    fn finish(&mut self) -> Option<String> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut events);
        }
        self.data.take()
    }

    fn end_line(&mut self, events: &mut Vec<String>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            events.extend(self.data.take());
            return;
        }
        let line = String::from_utf8_lossy(&line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        // Comments (`: keep-alive`), `event:`, `id:` and `retry:` carry nothing we use.
        if field == "data" {
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
    }
}

/// A streamed reply, assembled chunk by chunk.
#[derive(Default)]
struct StreamedReply {
    content: String,
    /// In order of first appearance; each keyed by its `index` in the stream.
    calls: Vec<PartialCall>,
    usage: Option<WireUsage>,
    model: Option<String>,
    /// A chunk carried a `finish_reason`: the reply itself is complete.
    finished: bool,
}

struct PartialCall {
    index: usize,
    id: String,
    name: String,
    arguments: String,
}

impl StreamedReply {
    /// Only text is delivered, so text received means text delivered.
    fn delivered(&self) -> bool {
        !self.content.is_empty()
    }

    fn apply(&mut self, chunk: WireChunk, on_delta: DeltaSink<'_>) {
        if self.model.is_none() {
            self.model = chunk.model.filter(|m| !m.is_empty());
        }
        // With `include_usage` only the last chunk has it; the others say `null`.
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        // We never ask for `n > 1`, so there is one choice (none in the usage chunk).
        let Some(choice) = chunk
            .choices
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.index.unwrap_or(0) == 0)
        else {
            return;
        };
        self.finished |= choice.finish_reason.is_some();
        let Some(delta) = choice.delta else {
            return;
        };
        // A refusal is the text the user sees, as in `complete`.
        let text = delta
            .content
            .filter(|t| !t.is_empty())
            .or(delta.refusal.filter(|t| !t.is_empty()));
        if let Some(text) = text {
            on_delta(&text);
            self.content.push_str(&text);
        }
        for piece in delta.tool_calls.unwrap_or_default() {
            self.apply_tool_call(piece);
        }
    }

    fn apply_tool_call(&mut self, piece: WireToolCallDelta) {
        let id = piece.id.filter(|id| !id.is_empty());
        // Servers that leave out `index` send one call at a time: a new id starts the next.
        let index = piece.index.unwrap_or_else(|| {
            let last = self.calls.last().map(|c| c.index);
            match (last, &id) {
                (Some(last), Some(id)) if self.calls.iter().all(|c| &c.id != id) => last + 1,
                (Some(last), _) => last,
                (None, _) => 0,
            }
        });
        let position = match self.calls.iter().position(|c| c.index == index) {
            Some(position) => position,
            None => {
                self.calls.push(PartialCall {
                    index,
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[position];
        // Some gateways repeat the id and name on every piece: keep the first.
        if let Some(id) = id {
            if call.id.is_empty() {
                call.id = id;
            }
        }
        let Some(function) = piece.function else {
            return;
        };
        if let Some(name) = function.name.filter(|n| !n.is_empty()) {
            if call.name.is_empty() {
                call.name = name;
            }
        }
        // Verbatim: the pieces are not JSON on their own, and the whole may be malformed (the
        // tool registry validates it and tells the model).
        match function.arguments {
            Some(serde_json::Value::String(text)) => call.arguments.push_str(&text),
            None | Some(serde_json::Value::Null) => {}
            // A few servers send the arguments as one object; its JSON text is the same.
            Some(other) => call.arguments.push_str(&other.to_string()),
        }
    }

    fn finish(self, requested_model: &str) -> Result<ModelResponse, Failure> {
        let mut calls = self.calls;
        calls.sort_by_key(|c| c.index);
        let tool_calls = calls
            .into_iter()
            .map(|call| {
                if call.name.is_empty() {
                    return Err(Failure::fatal(ModelError::InvalidResponse(
                        "a streamed tool call has no name".to_owned(),
                    )));
                }
                Ok(ToolCall {
                    id: call_id(Some(call.id)),
                    name: call.name,
                    arguments: if call.arguments.is_empty() {
                        "{}".to_owned()
                    } else {
                        call.arguments
                    },
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ModelResponse {
            content: self.content,
            tool_calls,
            usage: usage(self.usage.unwrap_or_default()),
            model: self.model.unwrap_or_else(|| requested_model.to_owned()),
            state: None,
        })
    }
}

/// One `chat.completion.chunk`, read as leniently as [`WireResponse`].
#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<WireChunkChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCallDelta>>,
}

#[derive(Deserialize)]
struct WireToolCallDelta {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunctionDelta>,
}

#[derive(Deserialize)]
struct WireFunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::extract::State;
    use axum::response::Response;
    use axum::routing::post;
    use serde_json::{Value, json};
    use tokio::time::Instant;

    use super::*;
    use crate::agent::model::TurnContext;
    use crate::domain::conversation::ConversationState;

    const KEY: &str = "sk-test-9f8e7d6c5b4a39281706";

    /// One canned answer of the mock server.
    #[derive(Clone)]
    struct Reply {
        status: u16,
        body: String,
        delay: Duration,
        headers: Vec<(&'static str, String)>,
        /// A streamed body instead of `body`, sent piece by piece.
        stream: Option<Vec<Piece>>,
    }

    /// One write of a streamed body.
    #[derive(Clone)]
    enum Piece {
        /// Bytes sent after a pause (bytes, not text: a piece may end inside a character).
        Send(Duration, Vec<u8>),
        /// A pause, then the connection is dropped without ending the body.
        Cut(Duration),
    }

    /// The pause between two pieces of a mock stream, so that each is its own network write.
    const TICK: Duration = Duration::from_millis(10);

    impl Reply {
        fn json(status: u16, body: Value) -> Self {
            Self::text(status, body.to_string())
        }

        fn text(status: u16, body: impl Into<String>) -> Self {
            Self {
                status,
                body: body.into(),
                delay: Duration::ZERO,
                headers: Vec::new(),
                stream: None,
            }
        }

        /// A 200 `text/event-stream` of these events, one write each.
        fn sse(events: Vec<String>) -> Self {
            Self {
                stream: Some(
                    events
                        .into_iter()
                        .map(|event| Piece::Send(TICK, event.into_bytes()))
                        .collect(),
                ),
                ..Self::text(200, "").header("content-type", "text/event-stream")
            }
        }

        /// Writes the stream `size` bytes at a time, cutting lines, and characters, anywhere.
        fn in_pieces_of(mut self, size: usize) -> Self {
            let whole: Vec<u8> = self
                .pieces()
                .iter()
                .flat_map(|p| match p {
                    Piece::Send(_, bytes) => bytes.clone(),
                    Piece::Cut(_) => panic!("cannot re-split a cut stream"),
                })
                .collect();
            self.stream = Some(
                whole
                    .chunks(size)
                    .map(|bytes| Piece::Send(Duration::from_millis(1), bytes.to_vec()))
                    .collect(),
            );
            self
        }

        /// Waits `pause` before the piece at `index`.
        fn pause_before(mut self, index: usize, pause: Duration) -> Self {
            let (Piece::Send(delay, _) | Piece::Cut(delay)) = &mut self.pieces()[index];
            *delay = pause;
            self
        }

        /// Drops the connection after the first `keep` pieces.
        fn cut_after(mut self, keep: usize) -> Self {
            let pieces = self.pieces();
            pieces.truncate(keep);
            pieces.push(Piece::Cut(TICK));
            self
        }

        fn pieces(&mut self) -> &mut Vec<Piece> {
            self.stream.as_mut().expect("a streamed reply")
        }

        fn ok(message: Value) -> Self {
            Self::json(200, completion(message))
        }

        fn error(status: u16, kind: &str, message: &str) -> Self {
            Self::json(
                status,
                json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
            )
        }

        fn after(mut self, delay: Duration) -> Self {
            self.delay = delay;
            self
        }

        fn header(mut self, name: &'static str, value: &str) -> Self {
            self.headers.push((name, value.to_owned()));
            self
        }
    }

    /// A request the mock server received.
    struct Seen {
        headers: http::HeaderMap,
        body: Value,
    }

    #[derive(Clone, Default)]
    struct MockState {
        /// Served in order; the last one repeats.
        replies: Arc<Mutex<VecDeque<Reply>>>,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    /// A real HTTP server on a free local port speaking the Chat Completions wire format.
    struct MockServer {
        base_url: String,
        state: MockState,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for MockServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl MockServer {
        #[allow(clippy::disallowed_methods)]
        async fn start(replies: Vec<Reply>) -> Self {
            let state = MockState::default();
            state.replies.lock().unwrap().extend(replies);
            let app = Router::new()
                .route("/v1/chat/completions", post(serve_reply))
                .with_state(state.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let task = tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            });
            Self {
                base_url: format!("http://{addr}/v1"),
                state,
                task,
            }
        }

        fn requests(&self) -> usize {
            self.state.seen.lock().unwrap().len()
        }

        fn body(&self, index: usize) -> Value {
            self.state.seen.lock().unwrap()[index].body.clone()
        }

        fn header(&self, index: usize, name: &str) -> Option<String> {
            self.state.seen.lock().unwrap()[index]
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        }

        fn config(&self) -> OpenAiConfig {
            OpenAiConfig {
                api_key: Secret::new(KEY),
                base_url: self.base_url.clone(),
                default_model: "default-model".to_owned(),
                request_timeout: Duration::from_secs(5),
                max_retries: 2,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(5),
            }
        }

        fn model(&self) -> OpenAiModel {
            OpenAiModel::try_new(self.config()).unwrap()
        }
    }

    async fn serve_reply(
        State(state): State<MockState>,
        headers: http::HeaderMap,
        body: Bytes,
    ) -> Response {
        state.seen.lock().unwrap().push(Seen {
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        let reply = {
            let mut replies = state.replies.lock().unwrap();
            if replies.len() > 1 {
                replies.pop_front().unwrap()
            } else {
                replies.front().cloned().unwrap()
            }
        };
        tokio::time::sleep(reply.delay).await;
        let mut response = Response::builder().status(reply.status);
        if !reply
            .headers
            .iter()
            .any(|(name, _)| *name == "content-type")
        {
            response = response.header("content-type", "application/json");
        }
        for (name, value) in reply.headers {
            response = response.header(name, value);
        }
        let body = match reply.stream {
            None => Body::from(reply.body),
            Some(pieces) => {
                Body::from_stream(futures_util::stream::iter(pieces).then(|piece| async move {
                    match piece {
                        Piece::Send(pause, bytes) => {
                            tokio::time::sleep(pause).await;
                            Ok(Bytes::from(bytes))
                        }
                        // An error in the body makes hyper drop the connection mid-body.
                        Piece::Cut(pause) => {
                            tokio::time::sleep(pause).await;
                            Err(std::io::Error::other("connection cut"))
                        }
                    }
                }))
            }
        };
        response.body(body).unwrap()
    }

    /// One `chat.completion.chunk` event as OpenAI sends it, with this delta.
    fn chunk(delta: Value) -> String {
        chunk_event(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}]),
            Value::Null,
        )
    }

    /// The chunk that ends the choice.
    fn finish_chunk(reason: &str) -> String {
        chunk_event(
            json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": reason}]),
            Value::Null,
        )
    }

    /// The last chunk with `stream_options.include_usage`: no choices, the usage.
    fn usage_chunk(prompt_tokens: u32, completion_tokens: u32) -> String {
        chunk_event(
            json!([]),
            json!({
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
            }),
        )
    }

    fn chunk_event(choices: Value, usage: Value) -> String {
        let chunk = json!({
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion.chunk",
            "created": 1_741_570_283,
            "model": "gpt-4o-mini-2024-07-18",
            "service_tier": "default",
            "system_fingerprint": "fp_06737a9306",
            "choices": choices,
            "usage": usage
        });
        format!("data: {chunk}\n\n")
    }

    const DONE: &str = "data: [DONE]\n\n";

    /// A whole streamed text reply in OpenAI's order: the role, the text pieces, the finish,
    /// the usage, `[DONE]`.
    fn text_stream(pieces: &[&str]) -> Vec<String> {
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
        )];
        events.extend(pieces.iter().map(|p| chunk(json!({"content": p}))));
        events.extend([finish_chunk("stop"), usage_chunk(19, 10), DONE.to_owned()]);
        events
    }

    /// Runs a streamed call, collecting what reaches the sink.
    async fn stream(
        model: &OpenAiModel,
        req: &ModelRequest,
    ) -> (Result<ModelResponse, ModelError>, Vec<String>) {
        let mut deltas = Vec::new();
        let result = model
            .complete_streaming(req, &mut |d: &str| deltas.push(d.to_owned()))
            .await;
        (result, deltas)
    }

    fn completion(message: Value) -> Value {
        let finish_reason = if message.get("tool_calls").is_some() {
            "tool_calls"
        } else {
            "stop"
        };
        json!({
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion",
            "created": 1_741_569_952,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason
            }],
            "usage": {
                "prompt_tokens": 19,
                "completion_tokens": 10,
                "total_tokens": 29,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
            },
            "service_tier": "default",
            "system_fingerprint": "fp_06737a9306"
        })
    }

    fn request(messages: Vec<ChatMessage>) -> ModelRequest {
        ModelRequest {
            model: "gpt-4o-mini".to_owned(),
            messages,
            tools: Vec::new(),
            temperature: None,
            max_tokens: None,
            state: ConversationState::default(),
            context: TurnContext::new(
                std::sync::Arc::new(crate::domain::org::test_org()),
                chrono::Utc::now(),
            ),
        }
    }

    fn hello() -> ModelRequest {
        request(vec![
            ChatMessage::system("You are a receptionist."),
            ChatMessage::user("Hello"),
        ])
    }

    fn upstream_status(err: &ModelError) -> Option<u16> {
        match err {
            ModelError::Upstream { status, .. } => *status,
            other => panic!("expected an upstream error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn plain_reply_is_mapped_and_request_carries_model_and_settings() {
        let mock = MockServer::start(vec![Reply::ok(
            json!({"role": "assistant", "content": "Hello! How can I help?", "refusal": null}),
        )])
        .await;
        let mut req = hello();
        req.temperature = Some(0.5);
        req.max_tokens = Some(256);

        let response = mock.model().complete(&req).await.unwrap();

        assert_eq!(response.content, "Hello! How can I help?");
        assert!(response.tool_calls.is_empty());
        assert_eq!(
            response.usage,
            Usage {
                prompt_tokens: 19,
                completion_tokens: 10,
                total_tokens: 29
            }
        );
        assert_eq!(response.model, "gpt-4o-mini-2024-07-18");
        assert_eq!(response.state, None);
        let sent = mock.body(0);
        assert_eq!(sent["model"], "gpt-4o-mini");
        assert_eq!(sent["temperature"], 0.5);
        assert_eq!(sent["max_tokens"], 256);
        assert_eq!(
            sent["messages"],
            json!([
                {"role": "system", "content": "You are a receptionist."},
                {"role": "user", "content": "Hello"}
            ])
        );
        assert!(sent.get("tools").is_none(), "no empty tools array: {sent}");
        assert!(sent.get("stream").is_none());
    }

    #[tokio::test]
    async fn empty_model_name_falls_back_to_the_default_model() {
        let mock = MockServer::start(vec![Reply::ok(
            json!({"role": "assistant", "content": "Hi"}),
        )])
        .await;
        let mut req = hello();
        req.model = String::new();

        mock.model().complete(&req).await.unwrap();

        assert_eq!(mock.body(0)["model"], "default-model");
    }

    #[tokio::test]
    async fn tool_call_response_is_mapped() {
        let mock = MockServer::start(vec![Reply::ok(json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "id": "call_Xy12",
                "type": "function",
                "function": {"name": "check_availability", "arguments": "{\"date\":\"2025-03-14\"}"}
            }],
            "refusal": null
        }))])
        .await;

        let response = mock.model().complete(&hello()).await.unwrap();

        assert_eq!(response.content, "");
        assert_eq!(
            response.tool_calls,
            vec![ToolCall {
                id: "call_Xy12".to_owned(),
                name: "check_availability".to_owned(),
                arguments: "{\"date\":\"2025-03-14\"}".to_owned(),
            }]
        );
    }

    #[tokio::test]
    async fn malformed_tool_arguments_pass_through_verbatim() {
        let mock = MockServer::start(vec![Reply::ok(json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "id": "call_bad",
                "type": "function",
                "function": {"name": "add_note", "arguments": "{not json"}
            }]
        }))])
        .await;

        let response = mock.model().complete(&hello()).await.unwrap();

        assert_eq!(response.tool_calls[0].arguments, "{not json");
    }

    #[tokio::test]
    async fn tool_calls_results_and_tools_are_sent_in_the_wire_format() {
        let mock = MockServer::start(vec![Reply::ok(
            json!({"role": "assistant", "content": "We offer haircuts."}),
        )])
        .await;
        let call = ToolCall {
            id: "call_1".to_owned(),
            name: "list_services".to_owned(),
            arguments: "{\"category\":\"hair\"}".to_owned(),
        };
        let mut req = request(vec![
            ChatMessage::system("Be brief."),
            ChatMessage::user("What do you offer?"),
            ChatMessage {
                tool_calls: vec![call.clone()],
                ..ChatMessage::assistant("")
            },
            ChatMessage::tool_result(&call, "{\"services\":[\"haircut\"]}"),
        ]);
        let schema = json!({
            "type": "object",
            "properties": {"category": {"type": "string"}},
            "required": [],
            "additionalProperties": false
        });
        req.tools = vec![Arc::new(ToolSpec {
            name: "list_services".to_owned(),
            description: "List the services on offer.".to_owned(),
            parameters: schema.clone(),
        })];

        mock.model().complete(&req).await.unwrap();

        let sent = mock.body(0);
        let assistant = &sent["messages"][2];
        assert_eq!(assistant["role"], "assistant");
        assert!(assistant.get("content").is_none_or(Value::is_null));
        assert_eq!(
            assistant["tool_calls"],
            json!([{
                "id": "call_1",
                "type": "function",
                "function": {"name": "list_services", "arguments": "{\"category\":\"hair\"}"}
            }])
        );
        assert_eq!(
            sent["messages"][3],
            json!({"role": "tool", "content": "{\"services\":[\"haircut\"]}", "tool_call_id": "call_1"})
        );
        assert_eq!(
            sent["tools"],
            json!([{
                "type": "function",
                "function": {
                    "name": "list_services",
                    "description": "List the services on offer.",
                    "parameters": schema
                }
            }])
        );
    }

    #[tokio::test]
    async fn authorization_header_carries_the_bearer_key() {
        let mock = MockServer::start(vec![Reply::ok(
            json!({"role": "assistant", "content": "Hi"}),
        )])
        .await;

        mock.model().complete(&hello()).await.unwrap();

        assert_eq!(
            mock.header(0, "authorization").as_deref(),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(
            mock.header(0, "content-type").as_deref(),
            Some("application/json")
        );
    }

    #[tokio::test]
    async fn rate_limited_call_is_retried_then_succeeds() {
        let mock = MockServer::start(vec![
            Reply::error(429, "requests", "Rate limit reached for gpt-4o-mini"),
            Reply::ok(json!({"role": "assistant", "content": "Made it"})),
        ])
        .await;

        let response = mock.model().complete(&hello()).await.unwrap();

        assert_eq!(response.content, "Made it");
        assert_eq!(mock.requests(), 2);
    }

    #[tokio::test]
    async fn server_errors_are_retried_until_max_retries_then_reported() {
        let mock = MockServer::start(vec![Reply::text(500, "upstream exploded")]).await;

        let err = mock.model().complete(&hello()).await.unwrap_err();

        assert_eq!(upstream_status(&err), Some(500));
        assert!(err.to_string().contains("upstream exploded"), "{err}");
        assert_eq!(mock.requests(), 3);
    }

    #[tokio::test]
    async fn bad_request_fails_at_once() {
        let mock = MockServer::start(vec![Reply::error(
            400,
            "invalid_request_error",
            "Invalid schema for function 'x'",
        )])
        .await;

        let err = mock.model().complete(&hello()).await.unwrap_err();

        assert_eq!(upstream_status(&err), Some(400));
        assert!(err.to_string().contains("Invalid schema"), "{err}");
        assert_eq!(mock.requests(), 1);
    }

    #[tokio::test]
    async fn unknown_model_fails_at_once() {
        let mock = MockServer::start(vec![Reply::error(
            404,
            "invalid_request_error",
            "The model `gpt-9` does not exist",
        )])
        .await;

        let err = mock.model().complete(&hello()).await.unwrap_err();

        assert_eq!(upstream_status(&err), Some(404));
        assert_eq!(mock.requests(), 1);
    }

    #[tokio::test]
    async fn exhausted_quota_is_not_retried() {
        let mock = MockServer::start(vec![Reply::json(
            429,
            json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
        )])
        .await;

        let err = mock.model().complete(&hello()).await.unwrap_err();

        assert_eq!(upstream_status(&err), Some(429));
        assert_eq!(mock.requests(), 1);
    }

    #[tokio::test]
    async fn retry_after_header_replaces_our_backoff() {
        let mock = MockServer::start(vec![
            Reply::error(429, "requests", "slow down").header("retry-after", "0"),
            Reply::ok(json!({"role": "assistant", "content": "ok"})),
        ])
        .await;
        // Our own backoff would wait up to a minute; the server says no wait is needed.
        let model = OpenAiModel::try_new(OpenAiConfig {
            initial_backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(60),
            ..mock.config()
        })
        .unwrap();

        let response = tokio::time::timeout(Duration::from_secs(5), model.complete(&hello()))
            .await
            .expect("Retry-After: 0 should retry at once")
            .unwrap();

        assert_eq!(response.content, "ok");
        assert_eq!(mock.requests(), 2);
    }

    #[tokio::test]
    async fn slow_server_times_out_after_retries() {
        let mock = MockServer::start(vec![
            Reply::ok(json!({"role": "assistant", "content": "too late"}))
                .after(Duration::from_secs(2)),
        ])
        .await;
        let model = OpenAiModel::try_new(OpenAiConfig {
            request_timeout: Duration::from_millis(100),
            max_retries: 1,
            ..mock.config()
        })
        .unwrap();

        let err = model.complete(&hello()).await.unwrap_err();

        assert!(matches!(err, ModelError::Timeout), "{err:?}");
        assert_eq!(mock.requests(), 2);
    }

    #[tokio::test]
    async fn refused_connection_is_retried_then_reported_without_status() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let model = OpenAiModel::try_new(OpenAiConfig {
            api_key: Secret::new(KEY),
            base_url: format!("http://{addr}/v1"),
            default_model: "m".to_owned(),
            request_timeout: Duration::from_secs(5),
            max_retries: 1,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        })
        .unwrap();

        let err = model.complete(&hello()).await.unwrap_err();

        assert_eq!(upstream_status(&err), None);
        assert!(err.to_string().contains("Connection refused"), "{err}");
        assert!(!err.to_string().contains(KEY));
    }

    #[tokio::test]
    async fn unparseable_success_body_is_an_invalid_response() {
        let mock = MockServer::start(vec![Reply::text(200, "<html>gateway</html>")]).await;

        let err = mock.model().complete(&hello()).await.unwrap_err();

        assert!(matches!(err, ModelError::InvalidResponse(_)), "{err:?}");
        assert_eq!(mock.requests(), 1);
    }

    #[tokio::test]
    async fn response_without_choices_is_an_invalid_response() {
        let mock =
            MockServer::start(vec![Reply::json(200, json!({"model": "m", "choices": []}))]).await;

        let err = mock.model().complete(&hello()).await.unwrap_err();

        assert!(matches!(err, ModelError::InvalidResponse(_)), "{err:?}");
    }

    #[tokio::test]
    async fn loosely_compatible_responses_are_accepted() {
        // No id/object/created/usage, an unknown finish_reason and service_tier, a tool call
        // without id and with object arguments: seen from Ollama, llama.cpp and gateways.
        let mock = MockServer::start(vec![Reply::json(
            200,
            json!({
                "model": "llama3.1:8b",
                "service_tier": "on_demand",
                "choices": [{
                    "message": {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [{"function": {"name": "list_notes", "arguments": {"done": false}}}]
                    },
                    "finish_reason": "eos"
                }]
            }),
        )])
        .await;

        let response = mock.model().complete(&hello()).await.unwrap();

        assert_eq!(response.model, "llama3.1:8b");
        assert_eq!(response.usage, Usage::default());
        let call = &response.tool_calls[0];
        assert!(
            call.id.starts_with("call_") && call.id.len() > 10,
            "{}",
            call.id
        );
        assert_eq!(call.name, "list_notes");
        assert_eq!(call.arguments, r#"{"done":false}"#);
    }

    #[tokio::test]
    async fn errors_and_debug_output_never_show_the_api_key() {
        let mock = MockServer::start(vec![Reply::error(
            401,
            "invalid_request_error",
            &format!("Incorrect API key provided: {KEY}. You can find your API key at …"),
        )])
        .await;
        let model = mock.model();

        let err = model.complete(&hello()).await.unwrap_err();

        assert_eq!(upstream_status(&err), Some(401));
        assert_eq!(mock.requests(), 1);
        for shown in [
            err.to_string(),
            format!("{err:?}"),
            format!("{model:?}"),
            format!("{:?}", mock.config()),
        ] {
            assert!(!shown.contains(KEY), "key leaked: {shown}");
        }
        assert!(err.to_string().contains("Incorrect API key provided"));
    }

    #[test]
    fn endpoint_keeps_the_base_path_and_query() {
        let endpoint = |base: &str| {
            let cfg = OpenAiConfig {
                base_url: base.to_owned(),
                ..OpenAiConfig::new(Secret::new(KEY))
            };
            build_transport(&cfg).map(|t| t.endpoint.to_string())
        };

        assert_eq!(
            endpoint("https://api.openai.com/v1").unwrap(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            endpoint("http://localhost:11434/v1/").unwrap(),
            "http://localhost:11434/v1/chat/completions"
        );
        assert_eq!(
            endpoint("https://res.openai.azure.com/openai/v1?api-version=preview").unwrap(),
            "https://res.openai.azure.com/openai/v1/chat/completions?api-version=preview"
        );
        assert!(endpoint("localhost:8000").is_err());
        assert!(endpoint("not a url").is_err());
    }

    #[test]
    fn misconfiguration_fails_every_call_without_retrying() {
        let cfg = OpenAiConfig {
            base_url: "ftp://example.com".to_owned(),
            ..OpenAiConfig::new(Secret::new(KEY))
        };
        assert!(OpenAiModel::try_new(cfg).is_err());
        let bad_key = OpenAiConfig {
            api_key: Secret::new("sk-line\nbreak"),
            ..OpenAiConfig::new(Secret::new(KEY))
        };
        let err = OpenAiModel::try_new(bad_key).unwrap_err();
        assert!(!format!("{err:?}").contains("sk-line"));
    }

    #[tokio::test]
    async fn misconfigured_model_reports_on_each_call() {
        let model = OpenAiModel::new(OpenAiConfig {
            base_url: "ftp://example.com".to_owned(),
            ..OpenAiConfig::new(Secret::new(KEY))
        });

        let err = model.complete(&hello()).await.unwrap_err();

        assert_eq!(upstream_status(&err), None);
    }

    #[test]
    fn backoff_is_jittered_below_an_exponential_ceiling_capped_by_max() {
        let model = OpenAiModel::new(OpenAiConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..OpenAiConfig::new(Secret::new(KEY))
        });
        for attempt in 0..40 {
            let ceiling = Duration::from_millis(100)
                .saturating_mul(2u32.saturating_pow(attempt))
                .min(Duration::from_millis(1000));
            for _ in 0..20 {
                assert!(model.backoff(attempt, None) <= ceiling);
            }
        }
        assert_eq!(
            model.backoff(0, Some(Duration::from_millis(300))),
            Duration::from_millis(300)
        );
        assert_eq!(
            model.backoff(0, Some(Duration::from_secs(60))),
            Duration::from_millis(1000)
        );
    }

    #[test]
    fn retry_after_headers_are_read_in_seconds_or_milliseconds() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_str(value).unwrap());
            }
            map
        };

        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2"), ("retry-after-ms", "250")])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            None
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")])), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    // -----------------------------------------------------------------------------------------
    // Streaming
    // -----------------------------------------------------------------------------------------

    #[tokio::test]
    async fn streamed_text_reaches_the_sink_in_order_and_joins_into_the_content() {
        let mock = MockServer::start(vec![Reply::sse(text_stream(&[
            "Hello", "! How", " can I", " help?",
        ]))])
        .await;

        let (result, deltas) = stream(&mock.model(), &hello()).await;

        let response = result.unwrap();
        assert_eq!(deltas, ["Hello", "! How", " can I", " help?"]);
        assert_eq!(response.content, "Hello! How can I help?");
        assert!(response.tool_calls.is_empty());
        assert_eq!(response.model, "gpt-4o-mini-2024-07-18");
        let sent = mock.body(0);
        assert_eq!(sent["stream"], true);
        assert_eq!(sent["stream_options"], json!({"include_usage": true}));
        assert_eq!(sent["model"], "gpt-4o-mini");
        assert_eq!(
            mock.header(0, "accept").as_deref(),
            Some("text/event-stream")
        );
    }

    #[tokio::test]
    async fn usage_comes_from_the_final_chunk() {
        let mock = MockServer::start(vec![Reply::sse(text_stream(&["Hi"]))]).await;

        let (result, _) = stream(&mock.model(), &hello()).await;

        assert_eq!(
            result.unwrap().usage,
            Usage {
                prompt_tokens: 19,
                completion_tokens: 10,
                total_tokens: 29
            }
        );
    }

    #[tokio::test]
    async fn a_stream_without_a_usage_chunk_reports_zero_usage() {
        let mock = MockServer::start(vec![Reply::sse(vec![
            chunk(json!({"role": "assistant", "content": "Hi"})),
            finish_chunk("stop"),
            DONE.to_owned(),
        ])])
        .await;

        let (result, _) = stream(&mock.model(), &hello()).await;

        assert_eq!(result.unwrap().usage, Usage::default());
    }

    #[tokio::test]
    async fn streamed_tool_call_arguments_are_assembled_verbatim_and_not_sent_to_the_sink() {
        let mock = MockServer::start(vec![Reply::sse(vec![
            chunk(json!({
                "role": "assistant", "content": null, "refusal": null,
                "tool_calls": [{"index": 0, "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "type": "function",
                    "function": {"name": "check_availability", "arguments": ""}}]
            })),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"da"}}]})),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "te\": \"2025-"}}]})),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "03-14\"}"}}]})),
            finish_chunk("tool_calls"),
            usage_chunk(80, 20),
            DONE.to_owned(),
        ])])
        .await;

        let (result, deltas) = stream(&mock.model(), &hello()).await;

        let response = result.unwrap();
        assert!(deltas.is_empty(), "{deltas:?}");
        assert_eq!(response.content, "");
        assert_eq!(
            response.tool_calls,
            vec![ToolCall {
                id: "call_DdmO9pD3xa9XTPNJ32zg2hcA".to_owned(),
                name: "check_availability".to_owned(),
                arguments: "{\"date\": \"2025-03-14\"}".to_owned(),
            }]
        );
        assert_eq!(response.usage.total_tokens, 100);
    }

    #[tokio::test]
    async fn parallel_streamed_tool_calls_are_assembled_by_index() {
        let start = |index: u32, id: &str, name: &str| {
            chunk(
                json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
            )
        };
        let args = |index: u32, piece: &str| {
            chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        };
        let mock = MockServer::start(vec![Reply::sse(vec![
            chunk(json!({"role": "assistant", "content": null})),
            start(0, "call_a", "list_services"),
            args(0, "{\"category\""),
            start(1, "call_b", "add_note"),
            args(1, "{\"title\":"),
            args(0, ":\"hair\"}"),
            args(1, "\"call Bob\"}"),
            finish_chunk("tool_calls"),
            DONE.to_owned(),
        ])])
        .await;

        let (result, deltas) = stream(&mock.model(), &hello()).await;

        let response = result.unwrap();
        assert!(deltas.is_empty());
        assert_eq!(
            response.tool_calls,
            vec![
                ToolCall {
                    id: "call_a".to_owned(),
                    name: "list_services".to_owned(),
                    arguments: "{\"category\":\"hair\"}".to_owned(),
                },
                ToolCall {
                    id: "call_b".to_owned(),
                    name: "add_note".to_owned(),
                    arguments: "{\"title\":\"call Bob\"}".to_owned(),
                },
            ]
        );
    }

    #[tokio::test]
    async fn server_error_before_the_stream_is_retried_then_streams() {
        let mock = MockServer::start(vec![
            Reply::text(500, "upstream exploded"),
            Reply::sse(text_stream(&["Made", " it"])),
        ])
        .await;

        let (result, deltas) = stream(&mock.model(), &hello()).await;

        assert_eq!(result.unwrap().content, "Made it");
        assert_eq!(deltas, ["Made", " it"]);
        assert_eq!(mock.requests(), 2);
    }

    #[tokio::test]
    async fn stream_cut_after_text_was_delivered_fails_without_retrying() {
        // The role chunk and two text pieces, then the connection drops.
        let mock = MockServer::start(vec![
            Reply::sse(text_stream(&["Your order", " ships on"])).cut_after(3),
        ])
        .await;

        let (result, deltas) = stream(&mock.model(), &hello()).await;

        let err = result.unwrap_err();
        assert_eq!(upstream_status(&err), None);
        assert_eq!(deltas, ["Your order", " ships on"]);
        assert_eq!(mock.requests(), 1);
    }

    #[tokio::test]
    async fn stream_cut_before_any_text_is_retried() {
        let mock = MockServer::start(vec![
            Reply::sse(text_stream(&["lost"])).cut_after(1),
            Reply::sse(text_stream(&["Second", " try"])),
        ])
        .await;

        let (result, deltas) = stream(&mock.model(), &hello()).await;

        assert_eq!(result.unwrap().content, "Second try");
        assert_eq!(deltas, ["Second", " try"]);
        assert_eq!(mock.requests(), 2);
    }

    #[tokio::test]
    async fn stream_that_goes_silent_past_the_timeout_times_out() {
        let mock = MockServer::start(vec![
            Reply::sse(text_stream(&["Let me", " check"])).pause_before(2, Duration::from_secs(5)),
        ])
        .await;
        let model = OpenAiModel::try_new(OpenAiConfig {
            request_timeout: Duration::from_millis(300),
            ..mock.config()
        })
        .unwrap();
        let started = Instant::now();

        let (result, deltas) = stream(&model, &hello()).await;

        assert!(matches!(result, Err(ModelError::Timeout)), "{result:?}");
        assert_eq!(deltas, ["Let me"]);
        assert_eq!(mock.requests(), 1);
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn events_split_across_tiny_network_reads_still_parse() {
        // CRLF line ends, a comment and a keep-alive, and text with multi-byte characters:
        // 3-byte pieces cut lines, the CRLF pairs and the characters themselves.
        let mut events = vec![": OPENROUTER PROCESSING\r\n\r\n".to_owned()];
        events.extend(
            text_stream(&["Café", " à 10 h ", "👋"])
                .into_iter()
                .map(|e| e.replace('\n', "\r\n")),
        );
        events.insert(3, ":\r\n\r\n".to_owned());
        let mock = MockServer::start(vec![Reply::sse(events).in_pieces_of(3)]).await;

        let (result, deltas) = stream(&mock.model(), &hello()).await;

        let response = result.unwrap();
        assert_eq!(deltas, ["Café", " à 10 h ", "👋"]);
        assert_eq!(response.content, "Café à 10 h 👋");
        assert_eq!(response.usage.total_tokens, 29);
    }

    #[tokio::test]
    async fn done_ends_the_stream_even_if_the_connection_stays_open() {
        let mut events = text_stream(&["Done", "."]);
        // Anything after [DONE] would be read only if we kept reading.
        events.push(chunk(json!({"content": " extra"})));
        let after_done = events.len() - 1;
        let mock = MockServer::start(vec![
            Reply::sse(events).pause_before(after_done, Duration::from_secs(5)),
        ])
        .await;
        let started = Instant::now();

        let (result, deltas) = stream(&mock.model(), &hello()).await;

        assert_eq!(result.unwrap().content, "Done.");
        assert_eq!(deltas, ["Done", "."]);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn first_delta_arrives_before_the_rest_of_the_reply() {
        let mock = MockServer::start(vec![
            Reply::sse(text_stream(&["Hello", " there"]))
                .pause_before(2, Duration::from_millis(500)),
        ])
        .await;
        let model = mock.model();
        let started = Instant::now();
        let mut first: Option<Duration> = None;

        let response = model
            .complete_streaming(&hello(), &mut |_: &str| {
                first.get_or_insert_with(|| started.elapsed());
            })
            .await
            .unwrap();
        let whole = started.elapsed();

        assert_eq!(response.content, "Hello there");
        let first = first.unwrap();
        assert!(
            first < Duration::from_millis(300),
            "first delta after {first:?}"
        );
        assert!(
            whole >= Duration::from_millis(500),
            "whole reply in {whole:?}"
        );
    }

    #[tokio::test]
    async fn error_event_in_the_stream_is_an_upstream_error() {
        let mock = MockServer::start(vec![Reply::sse(vec![
            chunk(json!({"role": "assistant", "content": "Par"})),
            format!(
                "data: {}\n\n",
                json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error"}})
            ),
        ])])
        .await;

        let (result, deltas) = stream(&mock.model(), &hello()).await;

        let err = result.unwrap_err();
        assert!(err.to_string().contains("The server had an error"), "{err}");
        assert_eq!(deltas, ["Par"]);
        assert_eq!(mock.requests(), 1);
    }

    #[tokio::test]
    async fn server_that_ignores_stream_true_is_read_as_one_delta() {
        let mock = MockServer::start(vec![Reply::ok(
            json!({"role": "assistant", "content": "All at once"}),
        )])
        .await;

        let (result, deltas) = stream(&mock.model(), &hello()).await;

        assert_eq!(result.unwrap().content, "All at once");
        assert_eq!(deltas, ["All at once"]);
    }

    #[test]
    fn sse_decoder_handles_every_line_ending_comments_and_multi_line_data() {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        for piece in [
            "data: one\n\n",
            ": keep-alive\r\n\r\n",
            "event: message\r\ndata:two\r\rda",
            "ta: three\ndata: lines\n\nretry: 100\n",
            "data: [DONE]",
        ] {
            events.extend(decoder.feed(piece.as_bytes()));
        }

        assert_eq!(events, ["one", "two", "three\nlines"]);
        assert_eq!(decoder.finish().as_deref(), Some("[DONE]"));
    }

    #[test]
    fn streaming_call_can_run_on_another_task() {
        fn assert_send<T: Send>(_: &T) {}
        let model = OpenAiModel::new(OpenAiConfig::new(Secret::new(KEY)));
        let req = hello();
        let mut sink = |_: &str| {};

        let call = model.complete_streaming(&req, &mut sink);

        assert_send(&call);
    }
}
