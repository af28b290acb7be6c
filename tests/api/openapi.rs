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
