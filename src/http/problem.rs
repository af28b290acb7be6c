//! Request ids and the problem+json renderer every response passes through.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::http::error::{PROBLEM_JSON, Problem, ProblemCause};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the request being served; in every log line through the trace span.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable_request_id(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then_some(s)
}

/// Takes the caller's `X-Request-ID` when it is sane (≤ 128 of `[A-Za-z0-9._-]`), otherwise
/// makes one (UUIDv7), and echoes it on the response.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(acceptable_request_id)
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let value = HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("invalid"));
    req.headers_mut().insert(REQUEST_ID_HEADER, value.clone());
    req.extensions_mut().insert(RequestId(id));
    let mut res = next.run(req).await;
    res.headers_mut().insert(REQUEST_ID_HEADER, value);
    res
}

/// Writes the body of every error response as problem+json: the [`Problem`] an `ApiError`
/// attached, or one made from the status for errors raised outside our handlers (routing
/// 404/405, body limit 413, timeout 408, caught panics 500). Logs 5xx with their cause and
/// 4xx at debug level, inside the request span.
pub async fn render_problems(req: Request, next: Next) -> Response {
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let path = req.uri().path().to_owned();
    let mut res = next.run(req).await;

    let attached = res.extensions_mut().remove::<Problem>();
    let is_problem_body = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let status = res.status();
    let mut problem = match attached {
        Some(p) => p,
        None if (status.is_client_error() || status.is_server_error()) && !is_problem_body => {
            Problem::for_status(status)
        }
        None => return res,
    };
    problem.instance = Some(path);
    problem.request_id = request_id;

    let cause = res.extensions_mut().remove::<ProblemCause>();
    if status.is_server_error() {
        let cause = cause.map_or_else(|| "no cause recorded".to_owned(), |c| c.0);
        tracing::error!(status = status.as_u16(), code = %problem.code, %cause, "request failed");
    } else {
        tracing::debug!(status = status.as_u16(), code = %problem.code, detail = %problem.detail, "request refused");
    }

    let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
    let headers = res.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_ENCODING);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    *res.body_mut() = Body::from(body);
    res
}
