//! Run cancellation (`POST /api/v1/runs/{id}/cancel`) against the OpenAI provider talking to a
//! local HTTP server that speaks the streaming wire format: the model call in progress is
//! abandoned, the stream ends with `cancelled`, nothing of the turn is stored, and the
//! conversation takes its next turn at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::backend_test;
use crate::helpers::*;
use crate::streaming::parse_sse;

/// What the mock model saw.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    /// Response bodies the client dropped before their end (an abandoned model call).
    abandoned: AtomicUsize,
}

/// Counts an abandoned body when dropped before it finished.
struct DropGuard(Arc<Seen>, bool);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn sse_chunk(content: &str) -> String {
    let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "mock",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": null}]});
    format!("data: {chunk}\n\n")
}

/// An OpenAI-compatible model: a message containing "hold" gets one chunk ("Thinking") and
/// then nothing more for a minute; any other gets "All done." at once.
async fn mock_model(seen: Arc<Seen>) -> std::net::SocketAddr {
    let handler = move |axum::Json(body): axum::Json<Value>| {
        let seen = Arc::clone(&seen);
        async move {
            seen.requests.fetch_add(1, Ordering::SeqCst);
            let last = body["messages"]
                .as_array()
                .and_then(|m| m.last())
                .map(|m| m["content"].to_string())
                .unwrap_or_default();
            let hold = last.contains("hold");
            let guard = DropGuard(seen, false);
            let stream = futures_util::stream::unfold(
                (0, guard),
                move |(i, mut guard)| async move {
                    let piece = match (i, hold) {
                        (0, true) => sse_chunk("Thinking"),
                        (0, false) => sse_chunk("All done."),
                        (1, true) => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return None;
                        }
                        (1, false) => {
                            let end = json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "mock",
                            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
                            format!("data: {end}\n\ndata: [DONE]\n\n")
                        }
                        _ => {
                            guard.1 = true;
                            drop(guard);
                            return None;
                        }
                    };
                    Some((Ok::<_, std::io::Error>(piece), (i + 1, guard)))
                },
            );
            axum::response::Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap()
        }
    };
    let app = axum::Router::new().route("/v1/chat/completions", post(handler));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn app_with_mock(backend: Backend) -> (TestApp, Arc<Seen>, String) {
    let seen = Arc::new(Seen::default());
    let addr = mock_model(Arc::clone(&seen)).await;
    let app = spawn_app_with(backend, move |s| {
        s.llm_provider = Some(agentd::config::LlmProvider::Openai);
        s.openai_api_key = Some(agentd::config::Secret::new("sk-test"));
        s.openai_base_url = format!("http://{addr}/v1");
        s.openai_max_retries = 0;
    })
    .await;
    let key = app.org_with_key("clinic").await;
    (app, seen, key)
}

backend_test! {
    async fn a_cancelled_run_stops_its_model_call_ends_with_cancelled_and_stores_nothing(backend: Backend) {
        let (app, seen, key) = app_with_mock(backend).await;
        let session = Uuid::new_v4();
        let mut res = app.post("/api/v1/chat/stream").header("X-API-Key", &key)
            .json(&json!({"message": "please hold on", "session_id": session, "org_id": "clinic"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let run_id = res.headers()["x-run-id"].to_str().unwrap().to_owned();
        // Read until the model's first words arrive: the model call is in progress.
        let mut body = String::new();
        while !body.contains("Thinking") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), res.chunk()).await.unwrap().unwrap().unwrap();
            body.push_str(&String::from_utf8_lossy(&chunk));
        }

        // Another org cannot cancel it, nor can anyone cancel a run that does not exist.
        let other = app.org_with_key("other").await;
        let res2 = app.post(&format!("/api/v1/runs/{run_id}/cancel")).header("X-API-Key", &other).send().await.unwrap();
        assert_eq!(problem(res2).await.0, StatusCode::NOT_FOUND);
        let res2 = app.post(&format!("/api/v1/runs/{}/cancel", Uuid::now_v7())).header("X-API-Key", &key).send().await.unwrap();
        assert_eq!(problem(res2).await.0, StatusCode::NOT_FOUND);

        let cancel = app.post(&format!("/api/v1/runs/{run_id}/cancel")).header("X-API-Key", &key).send().await.unwrap();
        assert_eq!(cancel.status(), StatusCode::OK);
        let view: Value = cancel.json().await.unwrap();
        assert_eq!(view["status"], "cancelled", "{view}");
        assert_eq!(view["run_id"], run_id.as_str());

        // The stream ends with `cancelled`, marked as the last event.
        body.push_str(&tokio::time::timeout(Duration::from_secs(10), res.text()).await.unwrap().unwrap());
        let events = parse_sse(&body);
        let last = events.iter().rev().find(|e| e.event != ":").unwrap();
        assert_eq!(last.event, "cancelled", "{body}");
        assert_eq!(last.data["done"], true);
        assert!(!events.iter().any(|e| e.event == "done" || e.event == "error"), "{body}");

        // The model call was abandoned (its response body dropped), not waited out.
        tokio::time::timeout(Duration::from_secs(5), async {
            while seen.abandoned.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }).await.expect("the model call should be abandoned");

        // Nothing of the turn is stored; the run says cancelled, from the database now.
        let history = app.get(&format!("/api/v1/sessions/{session}/history")).header("X-API-Key", &key).send().await.unwrap();
        let history: Value = history.json().await.unwrap();
        assert_eq!(history["messages"].as_array().map(Vec::len), Some(0), "{history}");
        assert!(app.state.agent.runs.is_empty());
        let run: Value = app.get(&format!("/api/v1/runs/{run_id}")).header("X-API-Key", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(run["status"], "cancelled", "{run}");
        let replay = app.get(&format!("/api/v1/runs/{run_id}/stream")).header("X-API-Key", &key).send().await.unwrap();
        let replay = parse_sse(&replay.text().await.unwrap());
        assert_eq!(replay.last().unwrap().event, "cancelled");

        // Cancelling again says the same; the conversation takes its next turn at once.
        let again = app.post(&format!("/api/v1/runs/{run_id}/cancel")).header("X-API-Key", &key).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
        let res = app.post("/api/v1/chat/stream").header("X-API-Key", &key)
            .json(&json!({"message": "hello again", "session_id": session, "org_id": "clinic"})).send().await.unwrap();
        let res_run = res.headers()["x-run-id"].to_str().unwrap().to_owned();
        let events = parse_sse(&res.text().await.unwrap());
        assert_eq!(events.last().unwrap().event, "done");
        assert_eq!(events.last().unwrap().data["response"], "All done.");
        assert_eq!(seen.requests.load(Ordering::SeqCst), 2);

        // A run that completed cannot be cancelled.
        let res = app.post(&format!("/api/v1/runs/{res_run}/cancel")).header("X-API-Key", &key).send().await.unwrap();
        let (status, p) = problem(res).await;
        assert_eq!((status, p["code"].as_str()), (StatusCode::CONFLICT, Some("RUN_FINISHED")), "{p}");
    }
}

backend_test! {
    async fn an_end_user_cancels_only_their_own_runs(backend: Backend) {
        let (app, _seen, key) = app_with_mock(backend).await;
        let alice = app.mint_token(&key, "alice").await;
        let bob = app.mint_token(&key, "bob").await;
        let mut res = app.post("/api/v1/chat/stream").bearer_auth(&alice)
            .json(&json!({"message": "hold please", "session_id": Uuid::new_v4(), "org_id": "clinic"})).send().await.unwrap();
        let run_id = res.headers()["x-run-id"].to_str().unwrap().to_owned();
        let _first = res.chunk().await.unwrap();

        let res2 = app.post(&format!("/api/v1/runs/{run_id}/cancel")).bearer_auth(&bob).send().await.unwrap();
        assert_eq!(problem(res2).await.0, StatusCode::FORBIDDEN);
        let res2 = app.post(&format!("/api/v1/runs/{run_id}/cancel")).bearer_auth(&alice).send().await.unwrap();
        assert_eq!(res2.status(), StatusCode::OK);
        let events = parse_sse(&res.text().await.unwrap());
        assert_eq!(events.last().unwrap().event, "cancelled");
    }
}
