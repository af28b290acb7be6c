//! The HTTP surface: the problem+json error type every failure is rendered as, our
//! extractors, the authentication layers, the core resources' routers, the cross-cutting
//! layers, and the OpenAPI document they are all registered in. Skills bring their own routes
//! (built with the same extractors and errors); `app` merges them in through [`router`].

pub mod admin;
pub mod admin_agents;
pub mod auth_layer;
pub mod chat;
pub mod conversations;
pub mod docs;
pub mod error;
pub mod extract;
pub mod ops;
pub mod page;
pub mod playground;
pub mod problem;
pub mod server;
pub mod stream;
pub mod tokens;
pub mod webhooks;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::metrics::{RequestLabels, RouteLabels, method_label};
use crate::state::AppState;
use error::ApiError;
use problem::RequestId;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the skills bring to the HTTP surface.
#[derive(Default)]
pub struct SkillRoutes {
    /// Tenant routes, behind the same authentication as the core's.
    pub routes: OpenApiRouter<AppState>,
    /// Schema names of their webhook payloads (registered by their routes), for the
    /// document's `WebhookEventData`.
    pub event_payloads: Vec<&'static str>,
}

/// Builds the public, tenant and admin routers into one, with the OpenAPI document describing
/// exactly what was mounted.
pub fn router(state: AppState, skills: SkillRoutes) -> (Router, utoipa::openapi::OpenApi) {
    // Deny by default: only `ops` and the playground are public; every tenant route passes
    // `authenticate`, every admin route `require_admin`.
    let tenant = tokens::router()
        .merge(chat::router())
        .merge(conversations::router())
        .merge(skills.routes)
        .merge(stream::router())
        .merge(webhooks::router())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth_layer::authenticate,
        ));
    let admin = admin::router().layer(middleware::from_fn_with_state(
        state.clone(),
        auth_layer::require_admin,
    ));
    let (routes, mut spec) = OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(ops::router())
        .merge(playground::router())
        .merge(tenant)
        .merge(admin)
        .split_for_parts();
    docs::add_standard_errors(&mut spec);
    docs::describe_event_payloads(&mut spec, &skills.event_payloads);

    let app = routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", spec.clone()))
        .fallback(|| async { ApiError::NotFound("No such route.".to_owned()) })
        .with_state(state.clone());
    (layers(app, &state), spec)
}

/// Wraps `app` in the cross-cutting layers every route gets. Public so tests can put routes
/// that misbehave on purpose (panics, slowness) behind exactly the same stack.
pub fn layers(app: Router, state: &AppState) -> Router {
    let origins = state.cors.clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origins.allows(origin)
        }))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("x-agent-handle"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-run-id"),
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
        ])
        .max_age(Duration::from_secs(600));

    let header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };

    // Outermost first. The problem renderer sits inside CORS (errors carry CORS headers, so
    // browsers can read them) and outside timeout/panic/body-limit (their plain responses
    // become problem+json). Compression wraps the finished body.
    app.layer(
        ServiceBuilder::new()
            .layer(middleware::from_fn(problem::request_id))
            .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req.extensions().get::<RequestId>().map_or("", |r| r.0.as_str());
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            })
            .on_response(access_log(&state.settings)))
            .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
            .layer(CompressionLayer::new())
            .layer(cors)
            .layer(header("x-content-type-options", "nosniff"))
            .layer(header("x-frame-options", "DENY"))
            .layer(header("referrer-policy", "no-referrer"))
            .layer(header(
                "content-security-policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
            ))
            .layer(middleware::from_fn(problem::render_problems))
            .layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                state.settings.request_timeout(),
            ))
            .layer(CatchPanicLayer::new())
            .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
    )
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    // Unmatched paths are one series whatever the path (it is attacker-chosen).
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    let m = &state.metrics;
    m.http_duration
        .get_or_create(&RouteLabels {
            method,
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    m.http_requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: res.status().as_u16(),
        })
        .inc();
    res
}

/// The access log (`ACCESS_LOG`): a line per response, or only for slow ones, or none. The
/// problem renderer logs 5xx (with their cause) and 4xx (at debug) whatever this says.
fn access_log<B>(
    settings: &crate::config::Settings,
) -> impl Fn(&axum::http::Response<B>, Duration, &tracing::Span) + Clone + use<B> {
    use crate::config::AccessLog;
    let mode = settings.access_log;
    let slow = Duration::from_millis(settings.access_log_slow_ms);
    move |res, latency, _span| {
        let log = match mode {
            AccessLog::All => true,
            AccessLog::Slow => latency >= slow,
            AccessLog::Off => false,
        };
        if log {
            let latency_ms = latency.as_secs_f64() * 1000.0;
            tracing::info!(
                status = res.status().as_u16(),
                latency_ms,
                "finished processing request"
            );
        }
    }
}
