//! The fault suite's process- and database-level part (issue 10.9): the real `agentd` binary
//! killed with SIGKILL in the middle of turns and started again, and the database cut off
//! under a running server and brought back. The rest of the suite lives beside the features
//! it guards: slow and idle clients in `connections.rs`, the NUL / invalid UTF-8 sweep over
//! every text field in `text_input.rs`. Everything is loopback-only and bounded in time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::backend_test;
use crate::helpers::*;

/// An OpenAI-compatible model on 127.0.0.1 that answers every chat completion after
/// `latency`, echoing the last user message.
async fn mock_model(latency: Duration) -> SocketAddr {
    async fn complete(latency: Duration, body: Value) -> Json<Value> {
        tokio::time::sleep(latency).await;
        let last = body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_owned();
        Json(json!({
            "id": "chatcmpl-faults", "object": "chat.completion", "created": 0, "model": "mock",
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                         "message": {"role": "assistant", "content": format!("re: {last}")}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }))
    }
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<Value>| complete(latency, body)),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `agentd` binary serving one database; killed (SIGKILL) when dropped.
struct Process {
    child: Child,
    base: String,
}

impl Process {
    async fn start(
        db_url: &str,
        port: u16,
        instance: &str,
        model: SocketAddr,
        extra: &[(&str, &str)],
    ) -> Process {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentd"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env("DATABASE_URL", db_url)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("INSTANCE_ID", instance)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("JWT_SECRET", JWT_SECRET)
            .env("BOOTSTRAP_DEMO", "false")
            .env("LLM_PROVIDER", "openai")
            .env("OPENAI_API_KEY", "sk-faults")
            .env("OPENAI_BASE_URL", format!("http://{model}/v1"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let p = Process {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(res) = client.get(format!("{}/health/ready", p.base)).send().await {
                if res.status() == StatusCode::OK {
                    return p;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "agentd did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One visitor's conversation: sends numbered messages one after another, each with its own
/// Idempotency-Key, and remembers which were acknowledged and which was in flight.
#[derive(Default)]
struct Visitor {
    acked: Vec<String>,
    in_flight: Option<String>,
}

async fn chat(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    session: &str,
    message: &str,
) -> Result<StatusCode, reqwest::Error> {
    client
        .post(format!("{base}/api/v1/chat"))
        .header("X-API-Key", key)
        .header("Idempotency-Key", message)
        .json(&json!({"message": message, "session_id": session, "org_id": "faults"}))
        .send()
        .await
        .map(|r| r.status())
}

backend_test! {
    /// kill -9 while turns are running, then start again: every acknowledged turn is stored
    /// once, retrying the interrupted ones with their Idempotency-Key stores them once, and
    /// every session takes a new turn within 2 s of the restart (the new process frees the
    /// leases its previous life held instead of waiting them out).
    async fn kill_9_mid_turn_loses_nothing_and_frees_sessions_at_restart(backend: Backend) {
        let db = TestDb::new(backend).await;
        let model = mock_model(Duration::from_millis(300)).await;
        let port = free_port();
        let mut server = Process::start(&db.url, port, "faults-a", model, &[]).await;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let admin = |m: reqwest::Method, path: &str| client.request(m, format!("{}{path}", server.base)).bearer_auth(ADMIN_TOKEN);
        let res = admin(reqwest::Method::POST, "/api/v1/admin/orgs")
            .json(&json!({"id": "faults", "name": "Faults", "tier": "custom", "rate_limit": {"requests": 100000, "window_seconds": 60}}))
            .send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let key: Value = admin(reqwest::Method::POST, "/api/v1/admin/orgs/faults/keys").json(&json!({"name": "k"})).send().await.unwrap().json().await.unwrap();
        let key = key["api_key"].as_str().unwrap().to_owned();

        let visitors: Arc<Mutex<HashMap<String, Visitor>>> = Arc::default();
        let sessions: Vec<String> = (0..12).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        let mut load = Vec::new();
        for (i, session) in sessions.iter().enumerate() {
            let (client, base, key, session, visitors) = (client.clone(), server.base.clone(), key.clone(), session.clone(), visitors.clone());
            #[allow(clippy::disallowed_methods)]
            load.push(tokio::spawn(async move {
                for j in 0.. {
                    let message = format!("v{i} m{j} {}", uuid::Uuid::new_v4().simple());
                    visitors.lock().unwrap().entry(session.clone()).or_default().in_flight = Some(message.clone());
                    match chat(&client, &base, &key, &session, &message).await {
                        Ok(StatusCode::OK) => {
                            let mut v = visitors.lock().unwrap();
                            let v = v.get_mut(&session).unwrap();
                            v.acked.push(message);
                            v.in_flight = None;
                        }
                        Ok(status) => panic!("{status} before the crash"),
                        Err(_) => return, // the server is gone
                    }
                }
            }));
        }
        // Let turns run, then kill the server in the middle of them (each takes ≥ 300 ms).
        tokio::time::sleep(Duration::from_millis(1600)).await;
        server.kill();
        for task in load {
            task.await.unwrap();
        }
        let visitors = std::mem::take(&mut *visitors.lock().unwrap());
        let acked: usize = visitors.values().map(|v| v.acked.len()).sum();
        let interrupted = visitors.values().filter(|v| v.in_flight.is_some()).count();
        assert!(acked >= 12, "only {acked} turns before the crash");
        assert!(interrupted >= 1, "no turn was in flight at the crash");

        // Restart under the same instance id; every session's first turn is answered within 2 s.
        let server = Process::start(&db.url, port, "faults-a", model, &[]).await;
        let ready = Instant::now();
        let retries = visitors.iter().map(|(session, v)| {
            let (client, base, key) = (client.clone(), server.base.clone(), key.clone());
            let message = v.in_flight.clone().unwrap_or_else(|| format!("after {}", uuid::Uuid::new_v4().simple()));
            let session = session.clone();
            async move {
                let status = chat(&client, &base, &key, &session, &message).await.unwrap();
                (session, message, status, ready.elapsed())
            }
        });
        for (session, message, status, took) in futures_util::future::join_all(retries).await {
            assert_eq!(status, StatusCode::OK, "{session}: {message}");
            assert!(took < Duration::from_secs(2), "{session} was blocked for {took:?} after the restart");
            let history: Value = client.get(format!("{}/api/v1/sessions/{session}/history", server.base))
                .header("X-API-Key", &key).send().await.unwrap().json().await.unwrap();
            let users: Vec<&str> = history["messages"].as_array().unwrap().iter()
                .filter(|m| m["role"] == "user").filter_map(|m| m["content"].as_str()).collect();
            let v = &visitors[&session];
            for sent in v.acked.iter().chain(std::iter::once(&message)) {
                let copies = users.iter().filter(|u| *u == sent).count();
                assert_eq!(copies, 1, "{session}: {sent:?} stored {copies} times: {users:?}");
            }
            assert_eq!(users.len(), v.acked.len() + 1, "{session}: {users:?}");
        }
    }
}

backend_test! {
    /// An instance that dies and never comes back: another instance (another id) gets the
    /// sessions once the dead one's leases lapse, LEASE_TTL_SECONDS after its last renewal.
    async fn a_dead_instances_sessions_free_up_after_the_lease_ttl(backend: Backend) {
        let db = TestDb::new(backend).await;
        let model = mock_model(Duration::from_secs(5)).await;
        let ttl = [("LEASE_TTL_SECONDS", "2")];
        let mut first = Process::start(&db.url, free_port(), "faults-dead", model, &ttl).await;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let res = client.post(format!("{}/api/v1/admin/orgs", first.base)).bearer_auth(ADMIN_TOKEN)
            .json(&json!({"id": "faults", "name": "Faults"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let key: Value = client.post(format!("{}/api/v1/admin/orgs/faults/keys", first.base)).bearer_auth(ADMIN_TOKEN)
            .json(&json!({"name": "k"})).send().await.unwrap().json().await.unwrap();
        let key = key["api_key"].as_str().unwrap().to_owned();
        let session = uuid::Uuid::new_v4().to_string();
        // A turn that takes 5 s starts on the first instance, which dies 1 s into it.
        let (c, base, k, s) = (client.clone(), first.base.clone(), key.clone(), session.clone());
        #[allow(clippy::disallowed_methods)]
        let turn = tokio::spawn(async move { chat(&c, &base, &k, &s, "first").await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        first.kill();
        let _ = turn.await;
        let died = Instant::now();
        let model = mock_model(Duration::from_millis(50)).await;
        let second = Process::start(&db.url, free_port(), "faults-other", model, &[("LEASE_TTL_SECONDS", "2"), ("TURN_QUEUE_TIMEOUT_SECONDS", "20")]).await;
        let status = chat(&client, &second.base, &key, &session, "second").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        // Bounded by the lease (2 s after the last renewal) plus start-up, not by the turn timeout.
        assert!(died.elapsed() < Duration::from_secs(15), "{:?}", died.elapsed());
    }
}

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones, as
/// a database that stops would, and then come back on the same port.
struct DbProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    up: Arc<Mutex<Option<tokio_util::sync::CancellationToken>>>,
}

impl DbProxy {
    async fn new(upstream: SocketAddr) -> DbProxy {
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let proxy = DbProxy {
            addr,
            upstream,
            up: Arc::default(),
        };
        proxy.start().await;
        proxy
    }

    async fn start(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        *self.up.lock().unwrap() = Some(stop.clone());
        let upstream = self.upstream;
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    () = stop.cancelled() => return, // drops the listener: new connections are refused
                    accepted = listener.accept() => match accepted { Ok(c) => c, Err(_) => continue },
                };
                let stop = stop.clone();
                #[allow(clippy::disallowed_methods)]
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        () = stop.cancelled() => {} // drops both sockets: connections reset
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
    }

    fn stop(&self) {
        if let Some(stop) = self.up.lock().unwrap().take() {
            stop.cancel();
        }
    }
}

/// PostgreSQL stopped under a running server: requests that need it get a quick 503
/// problem+json, readiness says 503, and when it is back the server recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gives_503s_and_the_server_recovers_without_a_restart() {
    let Some(base) = postgres_url() else {
        eprintln!("TEST_DATABASE_URL is not set: the database outage test needs PostgreSQL");
        return;
    };
    let parsed = reqwest::Url::parse(&base).unwrap();
    let upstream: SocketAddr =
        tokio::net::lookup_host((parsed.host_str().unwrap(), parsed.port().unwrap_or(5432)))
            .await
            .unwrap()
            .next()
            .unwrap();
    let proxy = DbProxy::new(upstream).await;
    let db = TestDb::new(Backend::Postgres).await;
    let mut via_proxy = reqwest::Url::parse(&db.url).unwrap();
    via_proxy.set_host(Some("127.0.0.1")).unwrap();
    via_proxy.set_port(Some(proxy.addr.port())).unwrap();
    // The production wait for a pooled connection: an outage must fail fast.
    let app = spawn_on_database(via_proxy.as_str(), |s| {
        s.database_acquire_timeout_seconds = 3
    })
    .await;
    let key = app.org_with_key("acme").await;
    let chat = || {
        app.post("/api/v1/chat").header("X-API-Key", &key).json(
            &json!({"message": "hello", "session_id": uuid::Uuid::new_v4(), "org_id": "acme"}),
        )
    };
    assert_eq!(chat().send().await.unwrap().status(), StatusCode::OK);

    proxy.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = problem(chat().send().await.unwrap()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("SERVICE_UNAVAILABLE")),
            "{body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "a 503 took {:?}",
            started.elapsed()
        );
        let (status, _) = problem(
            app.get("/api/v1/conversations")
                .header("X-API-Key", &key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let ready = app.get("/health/ready").send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    proxy.start().await;
    let back = Instant::now();
    loop {
        if app.get("/health/ready").send().await.unwrap().status() == StatusCode::OK {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "not ready 30 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(chat().send().await.unwrap().status(), StatusCode::OK);
    let listed = app
        .get("/api/v1/conversations")
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    drop(db);
}
