//! The OpenAPI document describes every mounted route, and every documented route is mounted
//! and protected as documented.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::backend_test;
use crate::helpers::*;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

backend_test! {
    async fn every_documented_operation_is_mounted_and_protected_as_documented(backend: Backend) {
        let app = spawn_app(backend).await;
        let spec: Value = app.get("/openapi.json").send().await.unwrap().json().await.unwrap();
        assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
        let schemes = &spec["components"]["securitySchemes"];
        for s in ["api_key", "bearer", "admin"] {
            assert!(schemes.get(s).is_some(), "security scheme {s} missing");
        }

        // A quota that outlasts one request per undocumented method of every path.
        app.create_org("acme", serde_json::json!({"tier": "custom", "rate_limit": {"requests": 100000, "window_seconds": 60}})).await;
        let key = app.create_key("acme").await["api_key"].as_str().unwrap().to_owned();
        let paths = spec["paths"].as_object().unwrap();
        assert!(paths.len() >= 11, "{:?}", paths.keys());
        for (path, item) in paths {
            let uuid = "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a11";
            let concrete = path.replace("{org}", "acme").replace("{key_id}", uuid).replace("{id}", uuid).replace("{message_id}", uuid);
            for method in METHODS {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let Some(op) = item.get(method) else {
                    // Not documented ⇒ not mounted: even with credentials, 405 for this method.
                    let res = app.client.request(m, app.url(&concrete))
                        .bearer_auth(ADMIN_TOKEN).header("X-API-Key", &key).send().await.unwrap();
                    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is mounted but undocumented");
                    continue;
                };
                let res = app.client.request(m, app.url(&concrete)).send().await.unwrap();
                let secured = op.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
                if secured {
                    // Deny by default: no credentials, no entry.
                    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
                    assert!(op["responses"].get("401").is_some(), "{method} {path} does not document 401");
                } else {
                    assert!(res.status().is_success(), "{method} {path}: {}", res.status());
                }
                assert!(op["responses"].get("500").is_some(), "{method} {path} does not document 500");
                if op.get("requestBody").is_some() {
                    assert!(op["responses"].get("422").is_some(), "{method} {path} does not document 422");
                }
            }
        }
    }
}

backend_test! {
    async fn problem_responses_reference_the_problem_schema(backend: Backend) {
        let app = spawn_app(backend).await;
        let spec: Value = app.get("/openapi.json").send().await.unwrap().json().await.unwrap();
        let problem = &spec["components"]["schemas"]["Problem"];
        for field in ["type", "title", "status", "detail", "code", "request_id"] {
            assert!(problem["properties"].get(field).is_some(), "Problem.{field} missing");
        }
        let r401 = &spec["paths"]["/api/v1/me"]["get"]["responses"]["401"]["content"]["application/problem+json"];
        assert_eq!(r401["schema"]["$ref"], "#/components/schemas/Problem");
    }
}

/// Every request body refuses unknown fields, and says so in the document
/// (`additionalProperties: false`), nested objects included.
#[tokio::test]
async fn request_bodies_are_closed_objects() {
    fn check(spec: &Value, schema: &Value, at: &str, seen: &mut Vec<String>) {
        if !schema.is_object() {
            return;
        }
        if let Some(r) = schema["$ref"].as_str() {
            let name = r.trim_start_matches("#/components/schemas/");
            if seen.iter().any(|s| s == name) {
                return;
            }
            seen.push(name.to_owned());
            return check(spec, &spec["components"]["schemas"][name], name, seen);
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            for alt in schema[key].as_array().into_iter().flatten() {
                check(spec, alt, at, seen);
            }
        }
        check(spec, &schema["items"], at, seen);
        if let Some(props) = schema["properties"].as_object() {
            assert_eq!(
                schema["additionalProperties"], false,
                "{at} accepts unknown fields"
            );
            for (name, prop) in props {
                check(spec, prop, &format!("{at}.{name}"), seen);
            }
        }
    }
    let app = spawn_app(Backend::Sqlite).await;
    let spec: Value = app
        .get("/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut bodies = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            if !schema.is_null() {
                bodies += 1;
                check(&spec, schema, &format!("{method} {path}"), &mut Vec::new());
            }
        }
    }
    assert!(bodies >= 10, "{bodies}");
}

backend_test! {
    async fn streamed_operations_are_event_streams_whose_events_are_documented(backend: Backend) {
        let app = spawn_app(backend).await;
        let spec: Value = app.get("/openapi.json").send().await.unwrap().json().await.unwrap();
        for (path, method) in [
            ("/api/v1/chat/stream", "post"),
            ("/api/v1/conversations/{id}/messages/stream", "post"),
            ("/api/v1/runs/{id}/stream", "get"),
        ] {
            let content = spec["paths"][path][method]["responses"]["200"]["content"].as_object().unwrap();
            // One media type, a string: a generated client hands the stream over instead of
            // parsing it as one JSON object.
            assert_eq!(content.keys().collect::<Vec<_>>(), ["text/event-stream"], "{path}");
            assert_eq!(content["text/event-stream"]["schema"]["type"], "string", "{path}");
        }
        let events = &spec["components"]["schemas"]["TurnEvent"]["oneOf"];
        let names: Vec<&str> = events.as_array().unwrap().iter()
            .map(|v| v["properties"]["event"]["enum"][0].as_str().unwrap())
            .collect();
        assert_eq!(names, ["state", "chunk", "tool_call", "tool_result", "done", "error", "cancelled"]);
    }
}

/// The properties of `schema`, through `$ref`s and `allOf` (a flattened struct).
fn properties(spec: &Value, schema: &Value) -> Vec<String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return properties(spec, &spec["components"]["schemas"][name]);
    }
    let mut out: Vec<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(properties(spec, part));
    }
    out
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &spec["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

/// Every resource carries its identifier as `id` (issue 11.8): what a GET of one item, a 201
/// and every list's items return.
#[tokio::test]
async fn every_resource_carries_its_identifier_as_id() {
    let app = spawn_app(Backend::Sqlite).await;
    let spec: Value = app
        .get("/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for (status, res) in op["responses"].as_object().unwrap() {
                let Some(schema) = res["content"]["application/json"].get("schema") else {
                    continue;
                };
                let props = properties(&spec, schema);
                let at = format!("{method} {path} {status}");
                if props.iter().any(|p| p == "items") && props.iter().any(|p| p == "total") {
                    let mut envelope = props.clone();
                    envelope.sort();
                    assert_eq!(
                        envelope,
                        ["has_more", "items", "limit", "offset", "total"],
                        "{at}: another list envelope"
                    );
                    let items = &resolve(&spec, schema)["properties"]["items"]["items"];
                    assert!(
                        properties(&spec, items).iter().any(|p| p == "id"),
                        "{at}: list items without id"
                    );
                    checked += 1;
                } else if (method == "get" && path.ends_with('}')) || status == "201" {
                    if path == "/api/v1/auth/token" {
                        continue; // a credential, not a stored resource
                    }
                    if path == "/api/v1/messages/broadcast" {
                        // Many resources at once ({"messages", "count"}, as the AgCom API
                        // has it): each message carries its id.
                        let messages = &resolve(&spec, schema)["properties"]["messages"]["items"];
                        assert!(
                            properties(&spec, messages).iter().any(|p| p == "id"),
                            "{at}"
                        );
                        checked += 1;
                        continue;
                    }
                    assert!(
                        props.iter().any(|p| p == "id"),
                        "{at}: no id among {props:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 12, "{checked}");
    // Webhooks keep webhook_id beside id (the seed plugin reads it).
    for s in ["WebhookView", "RegisteredWebhook"] {
        let props = properties(&spec, &spec["components"]["schemas"][s]);
        assert!(
            props.iter().any(|p| p == "id") && props.iter().any(|p| p == "webhook_id"),
            "{s}: {props:?}"
        );
    }
}

/// A document clients can be generated from (issue 11.10): each problem response has an
/// example of its own status and code, the rate-limit headers are declared response headers,
/// `Idempotency-Key` is an optional string, ids and times have realistic examples.
#[tokio::test]
async fn the_document_has_per_status_examples_typed_headers_and_realistic_values() {
    let app = spawn_app(Backend::Sqlite).await;
    let spec: Value = app
        .get("/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chat = &spec["paths"]["/api/v1/chat"]["post"];
    let example = |op: &Value, status: &str| {
        op["responses"][status]["content"]["application/problem+json"]["example"].clone()
    };
    for (status, code) in [
        ("401", "UNAUTHORIZED"),
        ("403", "ORG_MISMATCH"),
        ("409", "TURN_IN_PROGRESS"),
        ("422", "VALIDATION_ERROR"),
        ("429", "RATE_LIMIT_EXCEEDED"),
        ("500", "INTERNAL_ERROR"),
        ("502", "LLM_UPSTREAM_ERROR"),
        ("504", "AGENT_TIMEOUT"),
    ] {
        let ex = example(chat, status);
        assert_eq!(
            (ex["status"].to_string(), ex["code"].as_str()),
            (status.to_owned(), Some(code)),
            "{status}: {ex}"
        );
        assert_eq!(ex["instance"], "/api/v1/chat", "{ex}");
    }
    assert_eq!(example(chat, "422")["errors"][0]["field"], "message");
    let patch_org = &spec["paths"]["/api/v1/admin/orgs/{org}"]["patch"];
    assert_eq!(example(patch_org, "412")["code"], "PRECONDITION_FAILED");

    // Every problem response, everywhere, shows its own status.
    let mut problems = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let admin = op["tags"][0] == "admin";
            for (status, res) in op["responses"].as_object().unwrap() {
                if res["content"].get("application/problem+json").is_some() {
                    problems += 1;
                    let ex = example(op, status);
                    assert_eq!(
                        ex["status"].to_string(),
                        *status,
                        "{method} {path} {status}: {ex}"
                    );
                    assert!(
                        ex["code"].is_string()
                            && ex["type"]
                                .as_str()
                                .unwrap()
                                .starts_with("urn:agentd:problem:")
                    );
                }
                if secured && !admin && status != "401" {
                    for h in ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
                        assert_eq!(
                            res["headers"][h]["schema"]["type"], "integer",
                            "{method} {path} {status} lacks {h}"
                        );
                    }
                }
                if status == "429" {
                    assert_eq!(
                        res["headers"]["Retry-After"]["schema"]["type"], "integer",
                        "{method} {path}"
                    );
                }
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["name"] == "Idempotency-Key" {
                    assert_eq!(
                        (p["in"].as_str(), p["required"].as_bool()),
                        (Some("header"), Some(false)),
                        "{method} {path}"
                    );
                    assert_eq!(p["schema"]["type"], "string", "{method} {path}: {p}");
                }
            }
        }
    }
    assert!(problems > 50, "{problems}");

    // Realistic values: ids and times have examples that parse.
    let conv = &spec["components"]["schemas"]["ConversationView"]["properties"];
    let text = serde_json::to_string(&spec["components"]["schemas"]).unwrap();
    assert!(
        !text.contains("\"example\":\"string\""),
        "placeholder examples left"
    );
    for (field, parse) in [("id", 0), ("created_at", 1)] {
        let ex = conv[field]["example"].as_str().or_else(|| {
            let r = conv[field]["$ref"].as_str()?;
            spec["components"]["schemas"][r.trim_start_matches("#/components/schemas/")]["example"]
                .as_str()
        });
        let ex = ex
            .unwrap_or_else(|| panic!("ConversationView.{field} has no example: {}", conv[field]));
        if parse == 0 {
            uuid::Uuid::parse_str(ex).unwrap();
        } else {
            ex.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        }
    }
}
