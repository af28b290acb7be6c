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
