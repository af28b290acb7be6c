//! One rule for text, the same on both backends (issue 10.2): every string the API accepts
//! (JSON body fields at any depth, object keys, path segments and query parameters) is refused
//! with 422 and a field error when it holds NUL or another control character, and anything
//! else never causes a 5xx. The fields are not listed by hand: they come from the OpenAPI
//! document, so a new endpoint or field is swept the day it is added. Each request goes to a
//! SQLite server and (with TEST_DATABASE_URL) a PostgreSQL server, which must answer alike.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::helpers::*;

const SESSION: &str = "5f0c6a1e-2b7d-4c3e-9a8f-1d2e3f4a5b6c";

/// A valid body for every operation that takes JSON; the sweep changes one string at a time.
fn base_body(method: &str, path: &str) -> Option<Value> {
    Some(match (method, path) {
        ("POST", "/api/v1/admin/orgs") => json!({
            "id": "sweep-new", "name": "New", "system_prompt": "Be kind.", "time_zone": "UTC",
            "tier": "custom", "rate_limit": {"requests": 1000, "window_seconds": 60},
            "model": {"model": "gpt-4o-mini"}, "enabled_tools": ["check_availability"],
            "allowed_origins": ["https://shop.example.com"],
            "services": [{"id": "cut", "name": "Cut", "duration_minutes": 30, "currency": "EUR"}],
        }),
        ("PATCH", "/api/v1/admin/orgs/{org}") => json!({
            "name": "Renamed", "system_prompt": "Be brief.", "time_zone": "Europe/Berlin",
            "model": {"model": "gpt-4o-mini"}, "enabled_tools": ["check_availability"],
            "allowed_origins": ["https://shop.example.com"], "tier": "basic",
            "services": [{"id": "cut", "name": "Cut", "duration_minutes": 30, "currency": "EUR"}],
        }),
        ("POST", "/api/v1/admin/orgs/{org}/keys") => json!({"name": "plugin"}),
        ("POST", "/api/v1/admin/orgs/{org}/agents") => {
            json!({"handle": "helper", "display_name": "Helper", "description": "Helps."})
        }
        ("PATCH", "/api/v1/admin/orgs/{org}/agents/{handle}") => {
            json!({"display_name": "Helper", "description": "Helps."})
        }
        ("POST", "/api/v1/auth/token") => json!({"user_id": "wp-user-42"}),
        ("POST", "/api/v1/messages" | "/api/v1/messages/broadcast" | "/api/v1/messages/group") => {
            json!({"to_handles": ["sweeper"], "subject": "Hi", "body": "Hello", "tags": ["t"]})
        }
        ("POST", "/api/v1/messages/{id}/reply" | "/api/v1/threads/{id}/reply") => {
            json!({"body": "Thanks", "subject": "Re", "tags": ["t"]})
        }
        ("PUT", "/api/v1/threads/{id}/metadata") => json!({"key": "ticket", "value": "T-1"}),
        ("POST", "/api/v1/contacts") => {
            json!({"handle": "helper", "display_name": "Helper", "description": "Helps.", "tags": ["t"]})
        }
        ("PUT", "/api/v1/contacts/{handle}") => json!({
            "expected_version": 1, "display_name": "Helper", "description": "Helps.", "tags": ["t"],
        }),
        ("POST", "/api/v1/chat" | "/api/v1/chat/stream") => {
            json!({"message": "hello", "session_id": SESSION, "org_id": "sweep"})
        }
        ("POST", "/api/v1/conversations") => json!({"title": "Help", "metadata": {"note": "x"}}),
        ("PATCH", "/api/v1/conversations/{id}") => {
            json!({"title": "Help", "metadata": {"note": "x"}})
        }
        (
            "POST",
            "/api/v1/conversations/{id}/messages" | "/api/v1/conversations/{id}/messages/stream",
        ) => {
            json!({"message": "hello"})
        }
        ("POST", "/api/v1/webhooks" | "/api/v1/webhooks/register") => json!({
            "url": "https://93.184.216.34/hook", "event_types": ["appointment.created"],
            "description": "plugin",
        }),
        ("PATCH", "/api/v1/webhooks/{id}") => json!({"description": "plugin"}),
        _ => return None,
    })
}

/// Where a string can go in a body of this schema, as JSON pointers (`/services/0/name`).
/// A schema without a type (free JSON such as `metadata`) takes a string and an object of
/// strings.
fn string_pointers(spec: &Value, schema: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return string_pointers(spec, &spec["components"]["schemas"][name], at, out);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for alt in schema[key].as_array().into_iter().flatten() {
            string_pointers(spec, alt, at, out);
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if types.contains(&"string") {
        out.push(at.to_owned());
    }
    if types.contains(&"array") {
        string_pointers(spec, &schema["items"], &format!("{at}/0"), out);
    }
    if let Some(props) = schema["properties"].as_object() {
        for (name, prop) in props {
            string_pointers(spec, prop, &format!("{at}/{name}"), out);
        }
    }
    let untyped = schema.as_object().is_some_and(|o| {
        ![
            "type",
            "$ref",
            "oneOf",
            "anyOf",
            "allOf",
            "properties",
            "enum",
        ]
        .iter()
        .any(|k| o.contains_key(*k))
    });
    if untyped && !at.is_empty() {
        out.push(at.to_owned());
        out.push(format!("{at}/note"));
    }
}

/// The field name the server reports for a JSON pointer: `/services/0/name` → `services[0].name`.
fn field_name(pointer: &str) -> String {
    let mut name = String::new();
    for seg in pointer.split('/').skip(1) {
        if seg.parse::<usize>().is_ok() {
            name.push_str(&format!("[{seg}]"));
        } else {
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(seg);
        }
    }
    name
}

/// `body` with `value` at `pointer`, creating the objects and arrays on the way.
fn with_value_at(body: &Value, pointer: &str, value: Value) -> Value {
    let mut body = body.clone();
    let mut node = &mut body;
    for seg in pointer.split('/').skip(1) {
        node = match seg.parse::<usize>() {
            Ok(i) => {
                if !node.is_array() {
                    *node = json!([]);
                }
                let items = node.as_array_mut().unwrap();
                while items.len() <= i {
                    items.push(Value::Null);
                }
                &mut items[i]
            }
            Err(_) => {
                if !node.is_object() {
                    *node = Value::Object(Map::new());
                }
                node.as_object_mut()
                    .unwrap()
                    .entry(seg.to_owned())
                    .or_insert(Value::Null)
            }
        };
    }
    *node = value;
    body
}

fn refused(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// Fixed hard cases, then arbitrary strings (a fixed seed, so both backends and every rerun
/// see the same ones).
fn samples(n_random: usize) -> Vec<String> {
    let mut out: Vec<String> = [
        "\0",
        "a\0b",
        "\u{1}",
        "\u{1b}[31mred",
        "\u{7f}",
        "\u{85}",
        "\u{9f}",
        "tab\there",
        "line\nbreak",
        "",
        " ",
        "%00",
        "\\u0000",
        "'; DROP TABLE orgs; --",
        "\u{fffd}",
        "\u{feff}x",
        "\u{202e}evil",
        "😀",
        "\u{10ffff}",
        "a\u{301}",
    ]
    .map(str::to_owned)
    .to_vec();
    out.push("x".repeat(20_000));
    let mut runner = TestRunner::deterministic();
    let arbitrary = prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\\x7f-\\x9f a-zé😀]{0,24}",
        proptest::collection::vec(any::<char>(), 0..64).prop_map(String::from_iter),
    ];
    for _ in 0..n_random {
        out.push(arbitrary.new_tree(&mut runner).unwrap().current());
    }
    out
}

struct Side {
    app: TestApp,
    key: String,
    webhook: String,
}

impl Side {
    async fn new(backend: Backend) -> Side {
        // As the org's quota below, the mailbox agent's buckets outlast the sweep.
        let app = spawn_app_with(backend, |s| {
            s.mailbox_sends_per_minute = 1_000_000;
            s.mailbox_searches_per_minute = 1_000_000;
        })
        .await;
        app.create_org(
            "sweep",
            json!({"tier": "custom", "rate_limit": {"requests": 1000000, "window_seconds": 60}}),
        )
        .await;
        app.create_org("sweep-admin", json!({})).await;
        // The mailbox speaks for an agent: every tenant request names this one.
        app.admin(reqwest::Method::POST, "/api/v1/admin/orgs/sweep/agents")
            .json(&json!({"handle": "sweeper"}))
            .send()
            .await
            .unwrap();
        let key = app.create_key("sweep").await["api_key"]
            .as_str()
            .unwrap()
            .to_owned();
        let chat = app
            .post("/api/v1/chat")
            .header("X-API-Key", &key)
            .json(&base_body("POST", "/api/v1/chat").unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(chat.status(), StatusCode::OK);
        let hook = created(
            app.post("/api/v1/webhooks")
                .header("X-API-Key", &key)
                .json(&base_body("POST", "/api/v1/webhooks").unwrap())
                .send()
                .await
                .unwrap(),
        )
        .await;
        let webhook = hook["webhook_id"].as_str().unwrap().to_owned();
        Side { app, key, webhook }
    }

    /// A valid value for a path parameter the sweep is not changing.
    fn path_value(&self, path: &str, name: &str) -> String {
        match name {
            "org" => "sweep-admin".to_owned(),
            "id" if path.starts_with("/api/v1/webhooks") => self.webhook.clone(),
            "id" if path.starts_with("/api/v1/conversations")
                || path.starts_with("/api/v1/sessions") =>
            {
                SESSION.to_owned()
            }
            "id" if path.starts_with("/api/v1/appointments") => "APPT-00000000".to_owned(),
            _ => uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Sends one request and returns its status and, for a 422, the first field named. The
    /// body is read to the end, so a streamed turn is over before the next request.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        swept: Option<(&str, &str)>,
        query: Option<(&str, &str)>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Option<String>) {
        let mut url = reqwest::Url::parse(&self.app.base).unwrap();
        {
            let mut segs = url.path_segments_mut().unwrap();
            segs.clear();
            for seg in path.split('/').skip(1) {
                match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => match swept {
                        Some((swept, value)) if swept == name => segs.push(value),
                        _ => segs.push(&self.path_value(path, name)),
                    },
                    None => segs.push(seg),
                };
            }
        }
        if let Some((name, value)) = query {
            url.query_pairs_mut().append_pair(name, value);
        }
        let mut req = self.app.client.request(method.clone(), url);
        req = if path.starts_with("/api/v1/admin") {
            req.bearer_auth(ADMIN_TOKEN)
        } else {
            req.header("X-API-Key", &self.key)
                .header("X-Agent-Handle", "sweeper")
        };
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let bytes = res.bytes().await.unwrap_or_default();
        let field = (status == StatusCode::UNPROCESSABLE_ENTITY)
            .then(|| serde_json::from_slice::<Value>(&bytes).ok())
            .flatten()
            .and_then(|b| b["errors"][0]["field"].as_str().map(str::to_owned));
        (status, field)
    }
}

/// What to send: the operation, and which path parameter, query parameter or body field gets
/// the sample.
enum Target {
    Path(String),
    Query(String),
    Body(String),
}

async fn spec(app: &TestApp) -> Value {
    app.get("/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Every operation and every place it takes text, read from the OpenAPI document.
fn targets(spec: &Value) -> Vec<(Method, String, Target, Option<Value>)> {
    let mut out = Vec::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let m: Method = method.to_uppercase().parse().unwrap();
            let body_schema = &op["requestBody"]["content"]["application/json"]["schema"];
            let base = if body_schema.is_null() {
                None
            } else {
                let base = base_body(m.as_str(), path);
                assert!(
                    base.is_some(),
                    "{m} {path} takes JSON: give base_body a valid body for it"
                );
                base
            };
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap().to_owned();
                match p["in"].as_str() {
                    Some("path") => {
                        out.push((m.clone(), path.clone(), Target::Path(name), base.clone()))
                    }
                    Some("query") => {
                        out.push((m.clone(), path.clone(), Target::Query(name), base.clone()))
                    }
                    // Header values cannot hold control characters: the HTTP parser refuses them.
                    _ => {}
                }
            }
            if !body_schema.is_null() {
                let mut pointers = Vec::new();
                string_pointers(spec, body_schema, "", &mut pointers);
                pointers.dedup();
                assert!(
                    !pointers.is_empty(),
                    "{m} {path}: no text fields found in its schema"
                );
                for pointer in pointers {
                    out.push((m.clone(), path.clone(), Target::Body(pointer), base.clone()));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_text_field_follows_one_rule_on_both_backends() {
    let mut sides = vec![Side::new(Backend::Sqlite).await];
    if postgres_url().is_some() {
        sides.push(Side::new(Backend::Postgres).await);
    }
    let spec = spec(&sides[0].app).await;
    let targets = targets(&spec);
    let samples = samples(12);
    let mut swept = 0;
    for (method, path, target, base) in &targets {
        for sample in &samples {
            let body_for = |pointer: Option<&str>| {
                base.as_ref().map(|b| {
                    let b = match pointer {
                        Some(p) => with_value_at(b, p, Value::String(sample.clone())),
                        None => b.clone(),
                    };
                    serde_json::to_vec(&b).unwrap()
                })
            };
            let (expected_field, answers) = match target {
                Target::Path(name) => {
                    let mut answers = Vec::new();
                    for side in &sides {
                        answers.push(
                            side.send(method, path, Some((name, sample)), None, body_for(None))
                                .await,
                        );
                    }
                    (name.clone(), answers)
                }
                Target::Query(name) => {
                    let mut answers = Vec::new();
                    for side in &sides {
                        answers.push(
                            side.send(method, path, None, Some((name, sample)), body_for(None))
                                .await,
                        );
                    }
                    (name.clone(), answers)
                }
                Target::Body(pointer) => {
                    let mut answers = Vec::new();
                    for side in &sides {
                        answers.push(
                            side.send(method, path, None, None, body_for(Some(pointer)))
                                .await,
                        );
                    }
                    (field_name(pointer), answers)
                }
            };
            swept += 1;
            let what = format!("{method} {path} {expected_field}={sample:?}");
            let (status, field) = &answers[0];
            assert!(!status.is_server_error(), "{what}: {status}");
            // An empty path segment matches no route; every other refused sample is a 422
            // naming the field.
            let reaches = !matches!(target, Target::Path(_)) || !sample.is_empty();
            if refused(sample) && reaches {
                assert_eq!(
                    (*status, field.as_deref()),
                    (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Some(expected_field.as_str())
                    ),
                    "{what}"
                );
            }
            if let Some(other) = answers.get(1) {
                assert_eq!(&answers[0], other, "{what}: SQLite and PostgreSQL disagree");
            }
        }
    }
    assert!(swept > 500, "only {swept} cases swept");
}

/// Raw bytes that are not UTF-8 in a JSON body are a syntax error (400 INVALID_JSON), for
/// every operation that takes JSON; so is a body cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_and_unknown_fields_are_refused_by_every_body() {
    let mut sides = vec![Side::new(Backend::Sqlite).await];
    if postgres_url().is_some() {
        sides.push(Side::new(Backend::Postgres).await);
    }
    let spec = spec(&sides[0].app).await;
    let mut seen = std::collections::BTreeSet::new();
    for (method, path, _, base) in targets(&spec) {
        let Some(base) = base else { continue };
        if !seen.insert((method.clone(), path.clone())) {
            continue;
        }
        let text = serde_json::to_string(&base).unwrap();
        // Replace the first string's opening quote's content with a lone 0xFF byte.
        let at = text.find(":\"").unwrap() + 2;
        let mut bad = text.as_bytes().to_vec();
        bad.insert(at, 0xff);
        let unknown =
            serde_json::to_vec(&with_value_at(&base, "/unknown_field", json!(1))).unwrap();
        for side in &sides {
            let (status, _) = side
                .send(&method, &path, None, None, Some(bad.clone()))
                .await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{method} {path}: invalid UTF-8"
            );
            let (status, field) = side
                .send(&method, &path, None, None, Some(unknown.clone()))
                .await;
            assert_eq!(
                (status, field.as_deref()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_field")),
                "{method} {path}: an unknown field must be refused"
            );
        }
    }
    assert!(seen.len() >= 10, "{seen:?}");
}
