//! The scenarios and the closed loop that drives them: N clients, each sending its next turn
//! as soon as the previous answer has arrived, for a warm-up (not recorded) and then the
//! measured window. A turn counts in the window it completed in; turns still running when
//! the window closes are waited for but not counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::ValueEnum;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::mock;
use crate::server::ORG;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Each client keeps one session of its own: the common case of a chat widget.
    Reused,
    /// Every turn starts a new session: what first messages of many visitors cost.
    Fresh,
    /// Reused sessions through `POST /api/v1/chat/stream` (SSE until `done`).
    Stream,
    /// Reused sessions whose every turn calls a tool: two model calls and one tool.
    Tools,
    /// All clients share ONE session: turns serialize on the conversation.
    Hot,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Reused => "reused",
            Self::Fresh => "fresh",
            Self::Stream => "stream",
            Self::Tools => "tools",
            Self::Hot => "hot",
        }
    }

    fn message(self) -> String {
        match self {
            Self::Tools => format!("Which {} do you offer?", mock::TOOL_TRIGGER),
            _ => "Hello, I would like to book an appointment.".to_owned(),
        }
    }

    fn streamed(self) -> bool {
        self == Self::Stream
    }
}

/// How the clients reach the server.
#[derive(Clone)]
pub struct Target {
    pub http: reqwest::Client,
    pub base_url: String,
    pub api_key: String,
}

/// One client's record of the measured window.
#[derive(Default)]
pub struct Record {
    /// Latency of each successful turn, in microseconds.
    latencies: Vec<u64>,
    /// Streamed turns: time to the first `chunk` event, in microseconds.
    first_chunk: Vec<u64>,
    errors: BTreeMap<String, u64>,
}

/// What one turn came to.
enum Outcome {
    Ok { first_chunk: Option<Duration> },
    Failed(String),
}

/// The figures of one scenario's measured window, before the CPU figures are added.
pub struct Measured {
    pub turns: u64,
    pub latencies_us: Vec<u64>,
    pub first_chunk_us: Vec<u64>,
    pub errors: BTreeMap<String, u64>,
}

/// Timing of a run: clients start now, record from `from`, stop sending at `until`.
#[derive(Clone, Copy)]
pub struct Window {
    pub from: Instant,
    pub until: Instant,
}

/// Runs `clients` closed-loop clients of `scenario` until `window.until` and returns what
/// they recorded within the window. The caller takes its CPU readings at the window's ends.
pub fn spawn(
    target: &Target,
    scenario: Scenario,
    clients: usize,
    window: Window,
) -> JoinSet<Record> {
    let hot = Uuid::new_v4();
    let message: Arc<str> = scenario.message().into();
    let mut set = JoinSet::new();
    for _ in 0..clients {
        let target = target.clone();
        let message = Arc::clone(&message);
        let own = Uuid::new_v4();
        set.spawn(async move {
            let mut record = Record::default();
            while Instant::now() < window.until {
                let session = match scenario {
                    Scenario::Fresh => Uuid::new_v4(),
                    Scenario::Hot => hot,
                    _ => own,
                };
                let started = Instant::now();
                let outcome = turn(&target, scenario, session, &message).await;
                let ended = Instant::now();
                let counted = ended >= window.from && ended <= window.until;
                match outcome {
                    Outcome::Ok { first_chunk } if counted => {
                        record.latencies.push(micros(ended - started));
                        if let Some(first) = first_chunk {
                            record.first_chunk.push(micros(first));
                        }
                    }
                    Outcome::Failed(why) => {
                        if counted {
                            *record.errors.entry(why.clone()).or_default() += 1;
                        }
                        // A refused connection fails at once: do not spin on it.
                        if why.starts_with("transport") {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    Outcome::Ok { .. } => {}
                }
            }
            record
        });
    }
    set
}

/// Waits for the clients of [`spawn`] and merges their records.
pub async fn collect(mut set: JoinSet<Record>) -> anyhow::Result<Measured> {
    let mut all = Record::default();
    while let Some(done) = set.join_next().await {
        let record = done.context("a client task failed")?;
        all.latencies.extend(record.latencies);
        all.first_chunk.extend(record.first_chunk);
        for (why, n) in record.errors {
            *all.errors.entry(why).or_default() += n;
        }
    }
    all.latencies.sort_unstable();
    all.first_chunk.sort_unstable();
    Ok(Measured {
        turns: all.latencies.len() as u64,
        latencies_us: all.latencies,
        first_chunk_us: all.first_chunk,
        errors: all.errors,
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn request(
    target: &Target,
    scenario: Scenario,
    session: Uuid,
    message: &str,
) -> reqwest::RequestBuilder {
    let path = if scenario.streamed() {
        "/api/v1/chat/stream"
    } else {
        "/api/v1/chat"
    };
    target
        .http
        .post(format!("{}{path}", target.base_url))
        .header("x-api-key", &target.api_key)
        .json(&json!({"message": message, "session_id": session, "org_id": ORG}))
}

async fn turn(target: &Target, scenario: Scenario, session: Uuid, message: &str) -> Outcome {
    let started = Instant::now();
    let res = match request(target, scenario, session, message).send().await {
        Ok(res) => res,
        Err(e) => return Outcome::Failed(transport(&e)),
    };
    if !res.status().is_success() {
        return Outcome::Failed(refusal(res).await);
    }
    if !scenario.streamed() {
        // Read the body whole, so the connection goes back to the pool.
        return match res.bytes().await {
            Ok(_) => Outcome::Ok { first_chunk: None },
            Err(e) => Outcome::Failed(transport(&e)),
        };
    }
    read_stream(res, started).await
}

/// `409 TURN_IN_PROGRESS`: the status and the problem's `code`.
async fn refusal(res: reqwest::Response) -> String {
    let status = res.status().as_u16();
    let code = res
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|p| p["code"].as_str().map(str::to_owned));
    match code {
        Some(code) => format!("{status} {code}"),
        None => status.to_string(),
    }
}

fn transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    format!("transport {kind}")
}

/// Reads an SSE turn to its end: the `done` event is success, an `error` event a failure
/// named by its problem code. Notes when the first `chunk` event arrived.
async fn read_stream(res: reqwest::Response, started: Instant) -> Outcome {
    let mut body = res.bytes_stream();
    let mut line = Vec::new();
    let mut event = String::new();
    let mut first_chunk = None;
    let mut end: Option<Result<(), String>> = None;
    while let Some(bytes) = body.next().await {
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(e) => return Outcome::Failed(transport(&e)),
        };
        for &b in bytes.iter() {
            if b != b'\n' {
                line.push(b);
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches('\r');
            if let Some(name) = text.strip_prefix("event:") {
                event = name.trim().to_owned();
                if event == "chunk" && first_chunk.is_none() {
                    first_chunk = Some(started.elapsed());
                }
            } else if let Some(data) = text.strip_prefix("data:") {
                match event.as_str() {
                    "done" => end = Some(Ok(())),
                    "error" => {
                        let code = serde_json::from_str::<serde_json::Value>(data.trim())
                            .ok()
                            .and_then(|d| d["error"]["code"].as_str().map(str::to_owned))
                            .unwrap_or_else(|| "unknown".to_owned());
                        end = Some(Err(format!("stream error {code}")));
                    }
                    _ => {}
                }
            } else if text.is_empty() {
                event.clear();
            }
            line.clear();
        }
    }
    match end {
        Some(Ok(())) => Outcome::Ok { first_chunk },
        Some(Err(why)) => Outcome::Failed(why),
        None => Outcome::Failed("stream ended without done".to_owned()),
    }
}

/// One turn of `scenario` on a session of its own, checked for what the scenario is meant to
/// exercise (the reply came from the mock; a tool turn called the tool), so a server that
/// quietly does something else fails loudly instead of producing fast, meaningless figures.
pub async fn check(target: &Target, scenario: Scenario) -> anyhow::Result<()> {
    let session = Uuid::new_v4();
    let message = scenario.message();
    let res = request(target, scenario, session, &message)
        .send()
        .await
        .context("the server did not answer")?;
    let status = res.status();
    let text = res.text().await?;
    anyhow::ensure!(
        status.is_success(),
        "a {} turn answered {status}: {text}",
        scenario.name()
    );
    // The final JSON: the whole response, or the data of the stream's `done` event.
    let done: serde_json::Value = if scenario.streamed() {
        let data = text
            .split("\n\n")
            .find(|ev| ev.lines().any(|l| l.trim() == "event: done"))
            .and_then(|ev| ev.lines().find_map(|l| l.strip_prefix("data:")))
            .with_context(|| format!("the stream had no done event: {text}"))?;
        serde_json::from_str(data.trim())?
    } else {
        serde_json::from_str(&text)?
    };
    let model = done["metadata"]["model"].as_str().unwrap_or("");
    anyhow::ensure!(
        model == "loadtest-mock",
        "the reply did not come from the mock model (model {model:?}): {done}"
    );
    if scenario == Scenario::Tools {
        let tool = done["metadata"]["tool_calls"][0]["name"]
            .as_str()
            .unwrap_or("");
        anyhow::ensure!(
            tool == mock::TOOL,
            "the tool turn called no {} tool: {done}",
            mock::TOOL
        );
    }
    Ok(())
}
