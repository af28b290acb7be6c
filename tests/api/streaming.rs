//! Server-Sent Events: streamed turns, their events, persistence, disconnects and resumable
//! run streams.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::backend_test;
use crate::helpers::*;
use agentd::agent::scripted::{Reply, ScriptedModel, call, text};
use agentd::domain::turn::TurnEvent;

/// One parsed SSE event.
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: Option<u64>,
    pub event: String,
    pub data: Value,
}

/// Parses a whole `text/event-stream` body; comments are returned as events named `:`.
pub fn parse_sse(body: &str) -> Vec<Sse> {
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut ev = Sse {
                id: None,
                event: "message".into(),
                data: Value::Null,
            };
            let mut data = String::new();
            for line in block.lines() {
                if let Some(c) = line.strip_prefix(':') {
                    ev.event = ":".into();
                    ev.data = json!(c.trim());
                } else if let Some(v) = line.strip_prefix("id:") {
                    ev.id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    ev.event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !data.is_empty() {
                ev.data = serde_json::from_str(&data).unwrap();
            }
            ev
        })
        .collect()
}

fn stream_body(session: Uuid, org: &str, message: &str) -> Value {
    json!({"message": message, "session_id": session, "org_id": org})
}

async fn with_mock(
    backend: Backend,
    tweak: impl FnOnce(&mut agentd::Settings) + Send + 'static,
) -> (TestApp, ScriptedModel, String) {
    let mock = ScriptedModel::default();
    let app = spawn_app_with_model(backend, &mock, tweak).await;
    let key = booking_org(&app, "clinic", json!({})).await;
    (app, mock, key)
}

backend_test! {
    async fn a_streamed_turn_sends_its_events_and_is_stored_like_any_turn(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let session = Uuid::new_v4();
        let res = app.post("/api/v1/chat/stream").header("X-API-Key", &key)
            .json(&stream_body(session, "clinic", "Hello, I need to book an appointment")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        assert_eq!(res.headers()["cache-control"], "no-cache");
        assert_eq!(res.headers()["x-accel-buffering"], "no");
        assert!(res.headers().contains_key("ratelimit-remaining"));
        let run_id = res.headers()["x-run-id"].to_str().unwrap().to_owned();
        let events = parse_sse(&res.text().await.unwrap());

        let ids: Vec<u64> = events.iter().map(|e| e.id.unwrap()).collect();
        assert_eq!(ids, (1..=events.len() as u64).collect::<Vec<_>>(), "every event has an increasing id");
        for e in &events {
            assert!(e.data["chunk"].is_string() && e.data["done"].is_boolean(), "{e:?}");
            assert_eq!(e.data["run_id"], run_id.as_str());
            // The data is the typed event the run log holds, named as on the `event:` line.
            let typed: TurnEvent = serde_json::from_value(e.data.clone()).unwrap();
            assert_eq!(typed.name(), e.event);
        }
        assert_eq!(events[0].event, "state");
        assert_eq!(events[0].data["session_id"], session.to_string());
        assert!(events[0].data["stream_token"].is_string());
        let chunks: Vec<&str> = events.iter().filter(|e| e.event == "chunk").map(|e| e.data["chunk"].as_str().unwrap()).collect();
        assert!(chunks.len() > 3, "the reply streams in word-sized chunks: {chunks:?}");
        let done = events.last().unwrap();
        assert_eq!((done.event.as_str(), done.data["done"].as_bool()), ("done", Some(true)));
        assert_eq!(chunks.concat(), done.data["response"].as_str().unwrap());
        assert_eq!(done.data["metadata"]["current_state"], "COLLECT_SERVICE");
        assert!(events.iter().any(|e| e.event == "state" && e.data["current_state"] == "COLLECT_SERVICE"));

        // Persisted exactly like /chat: the messages, the run.
        let history = app.history(&key, session).await;
        let msgs = history["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1]["id"], done.data["message_id"]);
        assert_eq!(msgs[1]["content"], done.data["response"]);
        let run: Value = app.get(&format!("/api/v1/runs/{run_id}")).header("X-API-Key", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(run["status"], "completed");
        assert_eq!(run["result"]["response"], done.data["response"]);
    }
}

backend_test! {
    async fn tool_calls_and_results_are_streamed_and_failures_end_with_an_error_event(backend: Backend) {
        let (app, mock, key) = with_mock(backend, |_| {}).await;
        mock.script([call("c1", "list_services", json!({})), text("We offer three services.")]);
        let res = app.post("/api/v1/chat/stream").header("X-API-Key", &key)
            .json(&stream_body(Uuid::new_v4(), "clinic", "What do you offer?")).send().await.unwrap();
        let events = parse_sse(&res.text().await.unwrap());
        let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        let call_at = names.iter().position(|n| *n == "tool_call").unwrap();
        assert_eq!(names[call_at + 1], "tool_result");
        assert_eq!(events[call_at].data["name"], "list_services");
        assert_eq!(events[call_at + 1].data["result"]["services"][0]["id"], "general-consultation");
        assert_eq!(*names.last().unwrap(), "done");

        mock.script([Reply::Status(500)]);
        let session = Uuid::new_v4();
        let res = app.post("/api/v1/chat/stream").header("X-API-Key", &key)
            .json(&stream_body(session, "clinic", "Hello")).send().await.unwrap();
        let run_id = res.headers()["x-run-id"].to_str().unwrap().to_owned();
        let events = parse_sse(&res.text().await.unwrap());
        let last = events.last().unwrap();
        assert_eq!((last.event.as_str(), last.data["done"].as_bool()), ("error", Some(true)));
        assert_eq!(last.data["error"]["code"], "LLM_UPSTREAM_ERROR");
        assert_eq!(last.data["error"]["status"], 502);
        // The run record says it failed, with the code only: no provider details for clients.
        let run: Value = app.get(&format!("/api/v1/runs/{run_id}")).header("X-API-Key", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!((run["status"].as_str(), run["error"].as_str()), (Some("failed"), Some("LLM_UPSTREAM_ERROR")));
        assert_eq!(app.history(&key, session).await["messages"].as_array().unwrap().len(), 0);
    }
}

backend_test! {
    async fn refusals_are_plain_problems_not_streams(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let res = app.post("/api/v1/chat/stream").json(&stream_body(Uuid::new_v4(), "clinic", "hi")).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::UNAUTHORIZED);
        let res = app.post("/api/v1/chat/stream").header("X-API-Key", &key).json(&stream_body(Uuid::new_v4(), "clinic", "")).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::UNPROCESSABLE_ENTITY);
        let res = app.post("/api/v1/chat/stream").header("X-API-Key", &key).json(&stream_body(Uuid::new_v4(), "elsewhere", "hi")).send().await.unwrap();
        let (status, body) = problem(res).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("ORG_MISMATCH")));
        let res = app.post(&format!("/api/v1/conversations/{}/messages/stream", Uuid::new_v4())).header("X-API-Key", &key)
            .json(&json!({"message": "hi"})).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
    }
}

backend_test! {
    async fn a_client_that_disconnects_mid_stream_still_gets_its_reply_stored(backend: Backend) {
        let (app, mock, key) = with_mock(backend, |_| {}).await;
        mock.script([Reply::Slow(Duration::from_millis(700), Box::new(text("Here is your answer.")))]);
        let session = Uuid::new_v4();
        let mut res = app.post("/api/v1/chat/stream").header("X-API-Key", &key)
            .json(&stream_body(session, "clinic", "Question")).send().await.unwrap();
        let first = res.chunk().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&first).contains("event: state"));
        drop(res); // the browser tab closes

        // The turn completes on the server; the reply is there on reload.
        app.state.tasks.close();
        tokio::time::timeout(Duration::from_secs(10), app.state.tasks.wait()).await.unwrap();
        let msgs = app.history(&key, session).await["messages"].as_array().unwrap().clone();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1]["content"], "Here is your answer.");
    }
}

backend_test! {
    async fn a_run_stream_replays_after_last_event_id_and_follows_live(backend: Backend) {
        let (app, mock, key) = with_mock(backend, |s| s.sse_keepalive_seconds = 1).await;
        mock.script([Reply::Slow(Duration::from_millis(2500), Box::new(text("one two three four")))]);
        let mut res = app.post("/api/v1/chat/stream").header("X-API-Key", &key)
            .json(&stream_body(Uuid::new_v4(), "clinic", "Hi")).send().await.unwrap();
        let run_id = res.headers()["x-run-id"].to_str().unwrap().to_owned();
        let first = parse_sse(&String::from_utf8_lossy(&res.chunk().await.unwrap().unwrap()));
        let token = first[0].data["stream_token"].as_str().unwrap().to_owned();

        // A second reader joins while the run is in progress, with only the stream token
        // (as a browser EventSource would), and follows it to the end.
        let live = app.client.get(app.url(&format!("/api/v1/runs/{run_id}/stream?stream_token={token}"))).send().await.unwrap();
        assert_eq!(live.status(), StatusCode::OK);
        let live_text = live.text().await.unwrap();
        let live_events = parse_sse(&live_text);
        assert!(live_events.iter().any(|e| e.event == ":"), "keep-alive comments while the model is silent: {live_text}");
        assert_eq!(live_events.last().unwrap().event, "done");
        let original = parse_sse(&res.text().await.unwrap());
        assert_eq!(original.last().unwrap().data, live_events.last().unwrap().data);

        // Finished runs leave the server's memory: a replay comes from the database, event
        // for event what a live reader got.
        assert!(app.state.agent.runs.is_empty());
        let res = app.get(&format!("/api/v1/runs/{run_id}/stream")).header("X-API-Key", &key).send().await.unwrap();
        let stored: Vec<Sse> = parse_sse(&res.text().await.unwrap()).into_iter().filter(|e| e.event != ":").collect();
        let live: Vec<&Sse> = live_events.iter().filter(|e| e.event != ":").collect();
        assert_eq!(stored.len(), live.len());
        for (s, l) in stored.iter().zip(&live) {
            assert_eq!((s.id, &s.event, &s.data), (l.id, &l.event, &l.data));
        }

        // After the run: replay only, from Last-Event-ID on.
        let res = app.get(&format!("/api/v1/runs/{run_id}/stream")).header("X-API-Key", &key).header("Last-Event-ID", "2").send().await.unwrap();
        let replay: Vec<Sse> = parse_sse(&res.text().await.unwrap()).into_iter().filter(|e| e.event != ":").collect();
        assert_eq!(replay.first().unwrap().id, Some(3));
        assert_eq!(replay.last().unwrap().event, "done");

        // The stream token opens nothing else.
        let res = app.get(&format!("/api/v1/me?stream_token={token}")).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::UNAUTHORIZED);
        let res = app.get("/api/v1/me").bearer_auth(&token).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::UNAUTHORIZED);
        let res = app.client.get(app.url(&format!("/api/v1/runs/{}/stream?stream_token={token}", Uuid::new_v4()))).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::UNAUTHORIZED);

        // Another org cannot see the run.
        let other = app.org_with_key("other").await;
        let res = app.get(&format!("/api/v1/runs/{run_id}/stream")).header("X-API-Key", &other).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
        let res = app.get(&format!("/api/v1/runs/{run_id}")).header("X-API-Key", &other).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
    }
}

backend_test! {
    async fn an_idempotent_replay_streams_the_stored_reply(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let session = Uuid::new_v4();
        let send = || app.post("/api/v1/chat/stream").header("X-API-Key", &key).header("Idempotency-Key", "k-1")
            .json(&stream_body(session, "clinic", "Hello")).send();
        let a = parse_sse(&send().await.unwrap().text().await.unwrap());
        let b = parse_sse(&send().await.unwrap().text().await.unwrap());
        assert_eq!(a.last().unwrap().data["message_id"], b.last().unwrap().data["message_id"]);
        let chunks: String = b.iter().filter(|e| e.event == "chunk").map(|e| e.data["chunk"].as_str().unwrap()).collect();
        assert_eq!(chunks, b.last().unwrap().data["response"].as_str().unwrap());
        assert_eq!(b.last().unwrap().data["metadata"]["message_id"], b.last().unwrap().data["message_id"]);
        assert_eq!(app.history(&key, session).await["messages"].as_array().unwrap().len(), 2);

        // The same key with another message is refused up front, as a problem, not a stream.
        let res = app.post("/api/v1/chat/stream").header("X-API-Key", &key).header("Idempotency-Key", "k-1")
            .json(&stream_body(session, "clinic", "Something else")).send().await.unwrap();
        let (status, body) = problem(res).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("IDEMPOTENCY_MISMATCH")));
    }
}

backend_test! {
    async fn the_first_chunk_arrives_before_the_model_has_finished(backend: Backend) {
        let (app, mock, key) = with_mock(backend, |_| {}).await;
        let words: Vec<String> = ["Here ", "is ", "a ", "slow ", "reply."].iter().map(|s| (*s).to_owned()).collect();
        mock.script([Reply::Trickle(words.clone(), Duration::from_millis(250))]);
        let mut res = app.post("/api/v1/chat/stream").header("X-API-Key", &key)
            .json(&stream_body(Uuid::new_v4(), "clinic", "Tell me")).send().await.unwrap();
        let mut seen = String::new();
        let mut finished_when_first_chunk = None;
        while let Some(bytes) = res.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&bytes));
            if finished_when_first_chunk.is_none() && seen.contains("event: chunk") {
                finished_when_first_chunk = Some(mock.streams_finished());
            }
        }
        assert_eq!(finished_when_first_chunk, Some(0), "the first chunk waited for the whole reply");
        let events = parse_sse(&seen);
        let chunks: Vec<&str> = events.iter().filter(|e| e.event == "chunk").map(|e| e.data["chunk"].as_str().unwrap()).collect();
        assert_eq!(chunks, words, "provider deltas are passed on as they come");
        assert_eq!(events.last().unwrap().data["response"], words.concat());
    }
}

backend_test! {
    /// Load safety: 500 streamed turns at once on this 2-core machine all complete, each with
    /// its full event sequence. (How fast is a benchmark's business; this checks correctness
    /// under load.)
    async fn five_hundred_concurrent_streams_complete_without_errors(backend: Backend) {
        let app = spawn_app_with(backend, |s| s.database_max_connections = 20).await;
        let key = booking_org(&app, "clinic", json!({"tier": "custom", "rate_limit": {"requests": 100000, "window_seconds": 60}})).await;
        let client = reqwest::Client::new();
        let streams = (0..500).map(|i| {
            let (client, url, key) = (client.clone(), app.url("/api/v1/chat/stream"), key.clone());
            async move {
                let res = client.post(url).header("X-API-Key", key)
                    .json(&stream_body(Uuid::new_v4(), "clinic", &format!("Hello number {i}")))
                    .send().await.map_err(|e| e.to_string())?;
                if res.status() != StatusCode::OK {
                    return Err(format!("status {}", res.status()));
                }
                let events = parse_sse(&res.text().await.map_err(|e| e.to_string())?);
                match events.last() {
                    Some(e) if e.event == "done" => Ok(events.len()),
                    other => Err(format!("stream ended with {other:?}")),
                }
            }
        });
        let results = futures_util::future::join_all(streams).await;
        let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failures.is_empty(), "{} of 500 failed, e.g. {:?}", failures.len(), failures.first());
    }
}
