//! The browser playground: `GET /playground` and its script and stylesheet, compiled into the
//! binary. Public like the other ops routes: the page holds no data, the visitor brings a
//! credential, and every call it makes goes through the authenticated API.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

const INDEX_HTML: &str = include_str!("../../static/playground/index.html");
const APP_JS: &str = include_str!("../../static/playground/app.js");
const STYLE_CSS: &str = include_str!("../../static/playground/style.css");

/// The page is documented; its assets are plain routes (they are not API).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_playground))
        .route("/playground/app.js", get(get_app_js))
        .route("/playground/style.css", get(get_style_css))
}

/// `body` as `content_type`, revalidated on every load so a new binary's page and script
/// never mix with a cached older version.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// A page for trying the agent in a browser: paste an API key or token, pick or start a
/// session, chat with streaming, and watch tool calls, the state and bookings.
#[utoipa::path(get, path = "/playground", tag = "ops", responses(
    (status = 200, description = "The playground page (script and stylesheet under /playground/)", body = String, content_type = "text/html"),
))]
async fn get_playground() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn get_app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn get_style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}
