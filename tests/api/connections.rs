//! Connection limits (issue 10.1) and what a client that goes away gets (10.8), over raw TCP:
//! a head sent too slowly and an idle connection are closed, a long request or stream is not,
//! connections past MAX_CONNECTIONS get a 503 problem, and a turn whose client hung up right
//! after sending it is still answered and stored.

use std::time::Duration;

use agentd::agent::scripted::{Reply, ScriptedModel, text};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend_test;
use crate::helpers::*;

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection; fails if it is still open after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut got))
        .await
        .expect("the server kept the connection open")
        .ok();
    got
}

fn quick_limits(s: &mut agentd::Settings) {
    s.header_read_timeout_seconds = 1;
    s.keep_alive_timeout_seconds = 1;
}

#[tokio::test]
async fn a_connection_that_sends_half_a_request_line_is_closed_after_the_header_timeout() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.header_read_timeout_seconds = 1;
        s.keep_alive_timeout_seconds = 3600;
    })
    .await;
    let mut stream = connect(&app).await;
    stream.write_all(b"GET /hea").await.unwrap();
    let got = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));

    // Trickling the head one byte at a time does not reset the deadline.
    let mut stream = connect(&app).await;
    let trickle = async {
        for b in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if stream.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), trickle)
        .await
        .expect("the server kept reading a head that never ends");
    assert!(app.metric("agentd_http_connections_timed_out_total").await >= 2.0);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_keep_alive_timeout() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.header_read_timeout_seconds = 3600;
        s.keep_alive_timeout_seconds = 1;
    })
    .await;
    // One that never sends anything.
    let mut silent = connect(&app).await;
    assert!(
        read_until_closed(&mut silent, Duration::from_secs(10))
            .await
            .is_empty()
    );
    // One that sent a request and kept the connection.
    let mut used = connect(&app).await;
    used.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut used, Duration::from_secs(10)).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn requests_and_streams_longer_than_the_timeouts_are_not_cut() {
    let model = ScriptedModel::default();
    let app = spawn_app_with_model(Backend::Sqlite, &model, quick_limits).await;
    let key = app.org_with_key("acme").await;
    // A turn that takes 2.5 s, on a connection whose timeouts are 1 s.
    model.script([Reply::Slow(
        Duration::from_millis(2500),
        Box::new(text("done")),
    )]);
    let res = app
        .post("/api/v1/chat")
        .header("X-API-Key", &key)
        .json(&json!({"message": "hi", "session_id": uuid::Uuid::new_v4(), "org_id": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["response"], "done");
    // A stream whose pieces come 0.6 s apart for about 3 s.
    let pieces: Vec<String> = (0..5).map(|i| format!("p{i} ")).collect();
    model.script([Reply::Trickle(pieces, Duration::from_millis(600))]);
    let res = app
        .post("/api/v1/chat/stream")
        .header("X-API-Key", &key)
        .json(&json!({"message": "hi", "session_id": uuid::Uuid::new_v4(), "org_id": "acme"}))
        .send()
        .await
        .unwrap();
    let body = res.text().await.unwrap();
    assert!(body.contains("event: done"), "{body}");
    assert!(body.contains("p4"), "{body}");
}

#[tokio::test]
async fn connections_past_the_cap_get_a_503_problem_and_the_slot_frees_on_close() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.max_connections = 2).await;
    let first = connect(&app).await;
    let _second = connect(&app).await;
    // Give the accept loop a moment to take both.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect(&app).await;
    let got = read_until_closed(&mut third, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.contains("application/problem+json") && text.contains("retry-after: 1"),
        "{text}"
    );
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["code"], "SERVICE_UNAVAILABLE");
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = connect(&app).await;
    fourth
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut fourth, Duration::from_secs(5)).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(app.metric("agentd_http_connections_refused_total").await >= 1.0);
}

backend_test! {
    /// A client that sends `/chat` and hangs up at once still gets its turn answered and
    /// stored (documented in docs/agent.md): the turn belongs to the agent, not to the
    /// connection.
    async fn a_turn_whose_client_hangs_up_is_still_stored(backend: Backend) {
        let model = ScriptedModel::default();
        let app = spawn_app_with_model(backend, &model, |_| {}).await;
        let key = app.org_with_key("acme").await;
        let sessions: Vec<String> = (0..10).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        model.script(sessions.iter().map(|_| Reply::Slow(Duration::from_millis(300), Box::new(text("answered")))));
        for session in &sessions {
            let body = json!({"message": "hello", "session_id": session, "org_id": "acme"}).to_string();
            let req = format!(
                "POST /api/v1/chat HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let mut stream = connect(&app).await;
            stream.write_all(req.as_bytes()).await.unwrap();
            drop(stream);
        }
        for session in &sessions {
            let mut history = Value::Null;
            for _ in 0..100 {
                let res = app.get(&format!("/api/v1/sessions/{session}/history")).header("X-API-Key", &key).send().await.unwrap();
                if res.status() == StatusCode::OK {
                    history = res.json().await.unwrap();
                    if history["messages"].as_array().is_some_and(|m| m.len() == 2) {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let messages = history["messages"].as_array().unwrap_or_else(|| panic!("{session}: {history}"));
            assert_eq!(messages.len(), 2, "{session}: {history}");
            assert_eq!(messages[1]["content"], "answered");
        }
    }
}
