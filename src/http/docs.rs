//! The OpenAPI 3.1 document (`/openapi.json`) and Swagger UI (`/docs`, assets compiled in).
//!
//! Routes are mounted through utoipa-axum's `OpenApiRouter`, so a route cannot be mounted
//! without its `#[utoipa::path]` reaching this document. The error responses every route can
//! give (auth, validation, rate limit, 5xx) are added here once rather than on each route.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDoc, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::domain::events::{
    ConversationCreatedData, SessionDeletedData, WebhookEvent, WebhookTestData,
};
use crate::domain::turn::TurnEvent;
use crate::http::error::{FieldError, PROBLEM_JSON, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agentd",
        description = "Self-hostable, multi-tenant conversational-agent server. Errors are \
            RFC 9457 `application/problem+json` with a stable `code`. Authenticated responses \
            carry `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (and \
            `X-RateLimit-*` twins).",
        license(name = "Apache-2.0")
    ),
    components(schemas(Problem, FieldError, TurnEvent, WebhookEvent, ConversationCreatedData, SessionDeletedData, WebhookTestData)),
    tags(
        (name = "chat", description = "Chat turns in sessions (conversations whose id you choose)"),
        (name = "conversations", description = "Conversations and their messages"),
        (name = "appointments", description = "Bookings made by the agent"),
        (name = "webhooks", description = "Signed event deliveries (Standard Webhooks) to your endpoints; payloads are `WebhookEvent`"),
        (name = "auth", description = "End-user and agent tokens, and the caller's identity"),
        (name = "mailbox", description = "Agent-to-agent messages, threads and search (agent token, or API key with X-Agent-Handle); see docs/mailbox.md"),
        (name = "admin", description = "Organisations, API keys and mailbox agents (admin token)"),
        (name = "ops", description = "Health, readiness, metrics"),
    ),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut OpenApiDoc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "Organisation API key `ak_…` (server-side plugins). Also accepted as `Authorization: Bearer ak_…`.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("End-user token or agent token (mailbox), minted with POST /api/v1/auth/token."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "stream_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "stream_token",
                "Token from a streamed run's first event; opens GET /api/v1/runs/{id}/stream of that run only.",
            ))),
        );
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The server's ADMIN_TOKEN."))
                    .build(),
            ),
        );
    }
}

/// Adds the standard error responses to every operation; run on the finished document (the
/// `modifiers` of `ApiDoc` run before utoipa-axum has added the routes).
pub fn add_standard_errors(doc: &mut OpenApiDoc) {
    StandardErrors.modify(doc);
}

/// Schemas of the core's own webhook payloads; skills add theirs.
const CORE_EVENT_PAYLOADS: [&str; 3] = [
    "ConversationCreatedData",
    "SessionDeletedData",
    "WebhookTestData",
];

/// Describes `WebhookEvent.data` as one of the payload schemas: the core's and
/// `skill_payloads` (schema names the skills' routes registered, e.g. `Appointment`).
pub fn describe_event_payloads(doc: &mut OpenApiDoc, skill_payloads: &[&str]) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{OneOfBuilder, Schema};
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let mut one_of = OneOfBuilder::new().description(Some(
        "The `data` of a webhook event, by its `type` (docs/webhooks.md lists every type).",
    ));
    for name in skill_payloads.iter().chain(CORE_EVENT_PAYLOADS.iter()) {
        if components.schemas.contains_key(*name) {
            one_of = one_of.item(Ref::from_schema_name(*name));
        }
    }
    components
        .schemas
        .insert("WebhookEventData".to_owned(), one_of.into());
    if let Some(RefOr::T(Schema::Object(event))) = components.schemas.get_mut("WebhookEvent") {
        event.properties.insert(
            "data".to_owned(),
            Ref::from_schema_name("WebhookEventData").into(),
        );
        if !event.required.iter().any(|r| r == "data") {
            event.required.push("data".to_owned());
        }
    }
}

struct StandardErrors;

fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| problem_response(description).into());
}

impl Modify for StandardErrors {
    fn modify(&self, doc: &mut OpenApiDoc) {
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let admin_only = op
                    .tags
                    .as_ref()
                    .is_some_and(|t| t.iter().any(|t| t == "admin"));
                if secured {
                    add(
                        op,
                        "401",
                        "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED)",
                    );
                    if admin_only {
                        add(
                            op,
                            "404",
                            "Not found, or the admin API is disabled (NOT_FOUND)",
                        );
                    } else {
                        add(
                            op,
                            "403",
                            "Organisation inactive or not allowed (ORG_INACTIVE, FORBIDDEN)",
                        );
                        add(
                            op,
                            "429",
                            "Quota exhausted (RATE_LIMIT_EXCEEDED); see Retry-After",
                        );
                    }
                }
                if op.request_body.is_some() {
                    add(op, "400", "Malformed JSON (INVALID_JSON)");
                    add(op, "413", "Body over 64 KiB (PAYLOAD_TOO_LARGE)");
                    add(
                        op,
                        "415",
                        "Body is not application/json (UNSUPPORTED_MEDIA_TYPE)",
                    );
                }
                if op.request_body.is_some()
                    || op.parameters.as_ref().is_some_and(|p| !p.is_empty())
                {
                    add(
                        op,
                        "422",
                        "Invalid fields (VALIDATION_ERROR), listed in `errors`",
                    );
                }
                add(
                    op,
                    "500",
                    "Unexpected failure (INTERNAL_ERROR); quote the request_id",
                );
            }
        }
    }
}

/// What generated clients need beyond what the annotations say (issue 11.10): an example on
/// every problem response for its own status and code (not one 422 for every status), the
/// `RateLimit-*` headers on tenant responses and `Retry-After` on 429s as declared response
/// headers, `Idempotency-Key` as an optional string, and realistic values for ids and times
/// that have no example. Worked on, and served as, the JSON form: utoipa's types do not read
/// every document they write (an any-value schema `{}`).
pub fn for_clients(doc: &OpenApiDoc) -> serde_json::Value {
    let mut v = serde_json::to_value(doc).unwrap_or_default();
    polish(&mut v);
    v
}

/// Example values the document uses for ids, times and request ids.
pub const EXAMPLE_UUID: &str = "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a11";
const EXAMPLE_TIME: &str = "2026-12-03T14:00:00Z";

/// A response header as the document declares it (inline: utoipa's components have no
/// `headers` section).
fn header(name: &str) -> serde_json::Value {
    use serde_json::json;
    let (description, example) = match name {
        "RateLimit-Limit" => (
            "Requests allowed per window: the tighter of the organisation's quota and the end user's share of it (also sent as X-RateLimit-Limit).",
            500,
        ),
        "RateLimit-Remaining" => (
            "Requests left now (also sent as X-RateLimit-Remaining).",
            499,
        ),
        "RateLimit-Reset" => (
            "Seconds until the quota is whole again (also sent as X-RateLimit-Reset).",
            8,
        ),
        _ => ("Seconds to wait before retrying.", 30),
    };
    json!({"description": description, "schema": {"type": "integer", "minimum": 0, "example": example}})
}

const RATE_HEADERS: [&str; 3] = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"];

fn polish(v: &mut serde_json::Value) {
    let schemas = v["components"]["schemas"].clone();
    if let Some(paths) = v["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    continue;
                }
                polish_operation(path, op, &schemas);
            }
        }
    }
    if let Some(all) = v["components"]["schemas"].as_object_mut() {
        for schema in all.values_mut() {
            realistic_examples(schema);
        }
    }
}

fn polish_operation(path: &str, op: &mut serde_json::Value, schemas: &serde_json::Value) {
    use serde_json::json;
    let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
    let admin = op["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "admin"));
    let field = example_field(op, schemas);
    for p in op["parameters"].as_array_mut().into_iter().flatten() {
        if p["name"] == "Idempotency-Key" {
            p["required"] = json!(false);
            p["schema"] = json!({"type": "string", "minLength": 1, "maxLength": 255,
                                  "example": "5b9f2c1e-3d4a-4f6b-8c7d-9e0f1a2b3c4d"});
        }
    }
    let Some(responses) = op["responses"].as_object_mut() else {
        return;
    };
    for (status, res) in responses.iter_mut() {
        if secured && !admin && status != "401" {
            for h in RATE_HEADERS {
                res["headers"][h] = header(h);
            }
        }
        if status == "429" {
            res["headers"]["Retry-After"] = header("Retry-After");
        }
        let description = res["description"].as_str().unwrap_or("").to_owned();
        // Read with get_mut: indexing would insert nulls where there is no problem body.
        let content = res
            .get_mut("content")
            .and_then(|c| c.get_mut(PROBLEM_JSON))
            .and_then(|c| c.as_object_mut());
        if let (Some(content), Ok(n)) = (content, status.parse::<u16>()) {
            if !content.contains_key("example") {
                content.insert(
                    "example".to_owned(),
                    problem_example(n, &description, path, &field),
                );
            }
        }
    }
}

/// The field a validation example names: the request body's first required field, else the
/// first parameter.
fn example_field(op: &serde_json::Value, schemas: &serde_json::Value) -> String {
    let body = &op["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    if let Some(name) = body
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        let s = &schemas[name];
        if let Some(f) = s["required"][0].as_str() {
            return f.to_owned();
        }
        if let Some(f) = s["properties"].as_object().and_then(|p| p.keys().next()) {
            return f.clone();
        }
    }
    op["parameters"][0]["name"]
        .as_str()
        .unwrap_or("id")
        .to_owned()
}

/// The code a response description names (`… (TURN_IN_PROGRESS)`), else the usual one for
/// its status.
fn code_for(status: u16, description: &str) -> &'static str {
    const CODES: [&str; 20] = [
        "VALIDATION_ERROR",
        "INVALID_JSON",
        "UNSUPPORTED_MEDIA_TYPE",
        "UNAUTHORIZED",
        "TOKEN_EXPIRED",
        "FORBIDDEN",
        "ORG_MISMATCH",
        "ORG_INACTIVE",
        "NOT_FOUND",
        "CONFLICT",
        "PRECONDITION_FAILED",
        "TURN_IN_PROGRESS",
        "IDEMPOTENCY_MISMATCH",
        "RATE_LIMIT_EXCEEDED",
        "PAYLOAD_TOO_LARGE",
        "LLM_UPSTREAM_ERROR",
        "AGENT_TIMEOUT",
        "SERVICE_UNAVAILABLE",
        "INTERNAL_ERROR",
        "REQUEST_TIMEOUT",
    ];
    let named = description
        .split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
        .find_map(|w| CODES.iter().find(|c| **c == w).copied());
    let default = match status {
        400 => "INVALID_JSON",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        408 => "REQUEST_TIMEOUT",
        409 => "CONFLICT",
        412 => "PRECONDITION_FAILED",
        413 => "PAYLOAD_TOO_LARGE",
        415 => "UNSUPPORTED_MEDIA_TYPE",
        422 => "VALIDATION_ERROR",
        429 => "RATE_LIMIT_EXCEEDED",
        502 => "LLM_UPSTREAM_ERROR",
        503 => "SERVICE_UNAVAILABLE",
        504 => "AGENT_TIMEOUT",
        _ => "INTERNAL_ERROR",
    };
    match named {
        // A description may name codes of several statuses; keep to this one's.
        Some(code) if status_of(code) == Some(status) => code,
        _ => default,
    }
}

/// The problem agentd answers with `code`, rendered by the same code as real errors.
fn problem_for(code: &str) -> Option<Problem> {
    use crate::http::error::ApiError as E;
    let err = match code {
        "VALIDATION_ERROR" => return None,
        "INVALID_JSON" => E::InvalidJson("expected `,` or `}` at line 1 column 42".to_owned()),
        "UNSUPPORTED_MEDIA_TYPE" => E::UnsupportedMediaType,
        "UNAUTHORIZED" => E::Unauthorized(
            "Authentication required: send X-API-Key: ak_… or Authorization: Bearer <token>.",
        ),
        "TOKEN_EXPIRED" => E::TokenExpired,
        "FORBIDDEN" => E::Forbidden("This conversation belongs to another user.".to_owned()),
        "ORG_MISMATCH" => E::OrgMismatch,
        "ORG_INACTIVE" => E::OrgInactive,
        "NOT_FOUND" => E::NotFound(format!("no such resource {EXAMPLE_UUID}")),
        "CONFLICT" => E::Conflict("organisation acme already exists".to_owned()),
        "PRECONDITION_FAILED" => E::PreconditionFailed(
            "organisation acme is at version 4, not 3; re-read it and retry".to_owned(),
        ),
        "TURN_IN_PROGRESS" => E::TurnInProgress,
        "IDEMPOTENCY_MISMATCH" => E::IdempotencyMismatch,
        "RATE_LIMIT_EXCEEDED" => E::RateLimited {
            retry_after_secs: 30,
        },
        "PAYLOAD_TOO_LARGE" => E::PayloadTooLarge,
        "LLM_UPSTREAM_ERROR" => E::LlmUpstream(Box::new(std::io::Error::other("upstream"))),
        "AGENT_TIMEOUT" => E::AgentTimeout,
        "SERVICE_UNAVAILABLE" => {
            E::Unavailable("The database is unreachable; retry shortly.".to_owned())
        }
        "REQUEST_TIMEOUT" => {
            return Some(Problem::for_status(axum::http::StatusCode::REQUEST_TIMEOUT));
        }
        _ => E::Internal(Box::new(std::io::Error::other("example"))),
    };
    Some(err.problem())
}

fn status_of(code: &str) -> Option<u16> {
    match code {
        "VALIDATION_ERROR" | "IDEMPOTENCY_MISMATCH" => Some(422),
        other => problem_for(other).map(|p| p.status),
    }
}

fn problem_example(status: u16, description: &str, path: &str, field: &str) -> serde_json::Value {
    let code = code_for(status, description);
    let mut p = problem_for(code).unwrap_or_else(|| {
        crate::http::error::ApiError::validation(field, "must not be empty").problem()
    });
    // A status the code table does not know keeps its own number.
    p.status = status;
    p.instance = Some(path.replace("{id}", EXAMPLE_UUID).replace("{org}", "acme"));
    p.request_id = Some("0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a99".to_owned());
    serde_json::to_value(p).unwrap_or_default()
}

/// Gives uuid and date-time properties without an example a realistic one, recursively.
fn realistic_examples(schema: &mut serde_json::Value) {
    use serde_json::json;
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let no_example = !obj.contains_key("example") && !obj.contains_key("examples");
    let is_string = match obj.get("type") {
        Some(serde_json::Value::String(t)) => t == "string",
        Some(serde_json::Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    if no_example && is_string {
        match obj.get("format").and_then(|f| f.as_str()) {
            Some("uuid") => {
                obj.insert("example".to_owned(), json!(EXAMPLE_UUID));
            }
            Some("date-time") => {
                obj.insert("example".to_owned(), json!(EXAMPLE_TIME));
            }
            _ => {}
        }
    }
    for key in ["properties"] {
        if let Some(props) = obj.get_mut(key).and_then(|p| p.as_object_mut()) {
            props.values_mut().for_each(realistic_examples);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = obj.get_mut(key) {
            realistic_examples(inner);
        }
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(alts) = obj.get_mut(key).and_then(|a| a.as_array_mut()) {
            alts.iter_mut().for_each(realistic_examples);
        }
    }
}
