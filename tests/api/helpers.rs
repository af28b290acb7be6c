//! `spawn_app`: a real server on a random port over a fresh database (a temporary SQLite
//! file, or a fresh PostgreSQL schema when TEST_DATABASE_URL is set), plus one helper per
//! endpoint. Log output only with TEST_LOG=1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use agentd::agent::Model;
use agentd::agent::scripted::ScriptedModel;
use agentd::config::Secret;
use agentd::{AppState, Settings};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const JWT_SECRET: &str = "test-jwt-secret-at-least-32-bytes-long!";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend: `mod NAME { fn sqlite(); fn postgres() }`. The
/// PostgreSQL variant runs only when TEST_DATABASE_URL is set (CI sets it).
#[macro_export]
macro_rules! backend_test {
    ($(#[$meta:meta])* async fn $name:ident($backend:ident: Backend) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($backend: $crate::helpers::Backend) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::helpers::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_url().is_some() {
                    run($crate::helpers::Backend::Postgres).await;
                } else {
                    eprintln!("TEST_DATABASE_URL is not set: PostgreSQL variant not run");
                }
            }
        }
    };
}

pub fn postgres_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// A database of its own for one test; removed when dropped.
pub struct TestDb {
    pub url: String,
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}/agentd.db?mode=rwc", dir.path().display());
                Self {
                    url,
                    pg: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let base = postgres_url().expect("TEST_DATABASE_URL");
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                Self {
                    url: with_search_path(&base, &schema),
                    pg: Some((base, schema)),
                    _dir: None,
                }
            }
        }
    }
}

/// `base` with every connection's search_path set to `schema`.
pub fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, schema)) = self.pg.take() {
            // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub state: AppState,
    pub stop: CancellationToken,
    /// The model every instance of this app answers with, when the test chose one.
    model: Option<Model>,
    /// Kept for its Drop: the database lives as long as the app.
    _db: TestDb,
}

pub fn test_settings(url: &str) -> Settings {
    let mut s = Settings::for_database(url);
    s.admin_token = Some(Secret::new(ADMIN_TOKEN));
    s.jwt_secret = Some(Secret::new(JWT_SECRET));
    s.shutdown_grace_seconds = 5;
    // The suite runs many servers at once on a small machine: a pooled-connection wait of the
    // production 3 s turned busy moments into 503s (and tool errors) that are not under test.
    // The outage test sets the short wait back.
    s.database_acquire_timeout_seconds = 30;
    s
}

fn init_logs() {
    if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
        agentd::telemetry::init(agentd::config::LogFormat::Pretty);
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(backend, None, tweak).await
}

/// An app whose agent answers from `model`'s script (every instance of it shares the script).
pub async fn spawn_app_with_model(
    backend: Backend,
    model: &ScriptedModel,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn(backend, Some(Model::Scripted(model.clone())), tweak).await
}

async fn spawn(
    backend: Backend,
    model: Option<Model>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    init_logs();
    let db = TestDb::new(backend).await;
    let mut settings = test_settings(&db.url);
    tweak(&mut settings);
    let app = agentd::app::build_app_with_model(settings, model.clone())
        .await
        .unwrap();
    let mut test_app = serve(app.router, app.state, db).await;
    test_app.model = model;
    test_app
}

/// A server on a database the test set up itself (behind a proxy, say); the test keeps the
/// database alive as long as it needs it.
pub async fn spawn_on_database(url: &str, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    init_logs();
    let mut settings = test_settings(url);
    tweak(&mut settings);
    let app = agentd::app::build_app_with_model(settings, None)
        .await
        .unwrap();
    let db = TestDb {
        url: url.to_owned(),
        pg: None,
        _dir: None,
    };
    serve(app.router, app.state, db).await
}

/// Serves `router` (already layered) on a random port.
pub async fn serve(router: axum::Router, state: AppState, db: TestDb) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let app = agentd::App {
        router,
        openapi: Default::default(),
        state: state.clone(),
    };
    let stopped = stop.clone().cancelled_owned();
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move {
        let _ = app.serve(listener, stopped).await;
    });
    TestApp {
        base: format!("http://{addr}"),
        client: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        state,
        stop,
        model: None,
        _db: db,
    }
}

impl TestApp {
    /// A second server on the same database, as another instance behind a load balancer.
    pub async fn second_instance(&self, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = test_settings(&self._db.url);
        tweak(&mut settings);
        let app = agentd::app::build_app_with_model(settings, self.model.clone())
            .await
            .unwrap();
        let shared = TestDb {
            url: self._db.url.clone(),
            pg: None,
            _dir: None,
        };
        let mut other = serve(app.router, app.state, shared).await;
        other.model = self.model.clone();
        other
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(self.url(path))
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// Creates an organisation through the admin API; panics unless 201.
    pub async fn create_org(&self, id: &str, extra: Value) -> Value {
        let mut body = json!({ "id": id, "name": format!("Org {id}") });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let res = self
            .admin(reqwest::Method::POST, "/api/v1/admin/orgs")
            .json(&body)
            .send()
            .await
            .unwrap();
        created(res).await
    }

    /// Creates an API key for `org`; returns the key's JSON (with `api_key`, the plaintext).
    pub async fn create_key(&self, org: &str) -> Value {
        let res = self
            .admin(
                reqwest::Method::POST,
                &format!("/api/v1/admin/orgs/{org}/keys"),
            )
            .json(&json!({ "name": "test key" }))
            .send()
            .await
            .unwrap();
        created(res).await
    }

    /// An org with a key: returns the plaintext key.
    pub async fn org_with_key(&self, org: &str) -> String {
        self.create_org(org, json!({})).await;
        self.create_key(org).await["api_key"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn me_with_key(&self, key: &str) -> Response {
        self.get("/api/v1/me")
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap()
    }

    pub async fn me_with_token(&self, token: &str) -> Response {
        self.get("/api/v1/me")
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Mints an end-user token with an API key.
    pub async fn mint_token(&self, key: &str, user: &str) -> String {
        let res = self
            .post("/api/v1/auth/token")
            .header("X-API-Key", key)
            .json(&json!({ "user_id": user }))
            .send()
            .await
            .unwrap();
        let body = created(res).await;
        body["token"].as_str().unwrap().to_owned()
    }

    /// Value of a Prometheus sample line starting with `name` (labels included).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0.0, |v| v.parse().unwrap())
    }
}

/// Asserts a 201 (showing the body otherwise) and returns the JSON body.
pub async fn created(res: Response) -> Value {
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Asserts a problem+json response and returns (status, body).
pub async fn problem(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let request_id = res
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = res.json().await.unwrap();
    assert_eq!(ct.as_deref(), Some("application/problem+json"), "{body}");
    for field in [
        "type",
        "title",
        "status",
        "detail",
        "code",
        "request_id",
        "instance",
    ] {
        assert!(body.get(field).is_some(), "problem without {field}: {body}");
    }
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert_eq!(body["request_id"].as_str(), request_id.as_deref(), "{body}");
    (status, body)
}

/// A TCP forwarder to PostgreSQL that a test can cut and restore, to play a database outage.
pub struct Outage {
    pub port: u16,
    up: Arc<AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
}

impl Outage {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (up2, cut2) = (up.clone(), cut.clone());
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection closed at once
                }
                let cut = cut2.clone();
                #[allow(clippy::disallowed_methods)]
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cut.notified() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Business hours open every day 09:00–17:00, so booking tests pass on any weekday.
pub fn every_day_hours() -> Value {
    let day = json!([{"open": "09:00", "close": "17:00"}]);
    json!({"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day})
}

/// An org with the demo services, open every day, and a key for it.
pub async fn booking_org(app: &TestApp, id: &str, extra: Value) -> String {
    let mut body = json!({
        "services": [
            {"id": "general-consultation", "name": "General Consultation", "duration_minutes": 30, "price_cents": 5000},
            {"id": "follow-up", "name": "Follow-up Visit", "duration_minutes": 15, "price_cents": 2500},
            {"id": "extended-session", "name": "Extended Session", "duration_minutes": 60, "price_cents": 9000}
        ],
        "business_hours": every_day_hours(),
        "time_zone": "Europe/Berlin",
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    app.create_org(id, body).await;
    app.create_key(id).await["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

impl TestApp {
    /// `POST /api/v1/chat` with an API key.
    pub async fn chat(&self, key: &str, org: &str, session: uuid::Uuid, message: &str) -> Response {
        self.post("/api/v1/chat")
            .header("X-API-Key", key)
            .json(&json!({"message": message, "session_id": session, "org_id": org}))
            .send()
            .await
            .unwrap()
    }

    /// `GET /api/v1/sessions/{id}/history`.
    pub async fn history(&self, key: &str, session: uuid::Uuid) -> Value {
        let res = self
            .get(&format!("/api/v1/sessions/{session}/history"))
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }
}
