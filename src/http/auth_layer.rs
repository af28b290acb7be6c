//! The authentication layers: `authenticate` for the tenant API (API key or end-user JWT, then
//! the org's rate limit) and `require_admin` for the admin API. Both count failed credentials
//! per client address: past the allowance (AUTH_FAILURES_PER_MINUTE) an address gets `429`
//! with `Retry-After` for any credential until it refills.

use crate::auth::{Principal, is_admin_token};
use crate::domain::RunId;
use crate::http::error::ApiError;
use crate::rate_limit::Decision;
use crate::state::AppState;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub const API_KEY_HEADER: &str = "x-api-key";

/// The token route, which an agent may call with its secret instead of a credential header.
pub const TOKEN_PATH: &str = "/api/v1/auth/token";

/// The client's address (see [`client_address`]), for handlers that check credentials
/// themselves.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

/// Counts a refused credential presented in a body (an agent's secret) against the client's
/// address; `Some(retry after)` once the address is past its allowance.
pub fn count_body_failure(state: &AppState, ip: Option<IpAddr>) -> Option<u64> {
    ip.and_then(|ip| state.auth_failures.failed(ip))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The run id of a `GET /api/v1/runs/{id}/stream` path: the one route a stream token opens.
fn run_stream_path(path: &str) -> Option<RunId> {
    let id = path
        .strip_prefix("/api/v1/runs/")?
        .strip_suffix("/stream")?;
    uuid::Uuid::try_parse(id).ok().map(RunId::from)
}

/// `stream_token` from the query string.
fn stream_token(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "stream_token")
        .map(|(_, v)| v.into_owned())
}

/// A stream token presented (in the query) for the run stream route, without header
/// credentials: `(run id, token)`.
fn presented_stream_token(req: &Request) -> Option<(RunId, String)> {
    let headers = req.headers();
    if headers.contains_key(API_KEY_HEADER)
        || headers.contains_key(header::AUTHORIZATION)
        || req.method() != axum::http::Method::GET
    {
        return None;
    }
    Some((
        run_stream_path(req.uri().path())?,
        stream_token(req.uri().query())?,
    ))
}

async fn resolve_headers(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if let Some(key) = headers.get(API_KEY_HEADER) {
        let key = key
            .to_str()
            .map_err(|_| ApiError::Unauthorized("The API key is malformed."))?;
        return Ok(state.auth.authenticate_key(key.trim()).await?);
    }
    match bearer(headers) {
        // Some HTTP clients only let plugin authors set Authorization: accept keys there too.
        Some(t) if t.starts_with("ak_") => Ok(state.auth.authenticate_key(t).await?),
        Some(t) => Ok(state.auth.authenticate_token(t).await?),
        None => Err(ApiError::Unauthorized(
            "Authentication required: send X-API-Key: ak_… or Authorization: Bearer <token>.",
        )),
    }
}

/// The client's address: the connection's peer, or — when the peer is a trusted proxy — the
/// nearest address in `X-Forwarded-For` that is not one. `None` without a connection (the
/// router driven in-process).
fn client_address(state: &AppState, req: &Request) -> Option<IpAddr> {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>()?.0.ip();
    let trusted = &state.settings.trusted_proxies;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|a| !trusted.contains(a))
            .unwrap_or(peer),
    )
}

/// `429` for an address past its failed-credential allowance.
fn too_many_failures(retry_after_secs: u64) -> Response {
    ApiError::RateLimited { retry_after_secs }.into_response()
}

/// Counts a refused credential against the client's address. (A request that presents none
/// is not a guess, and is not counted.)
fn count_failure(state: &AppState, ip: Option<IpAddr>, refused: Response) -> Response {
    match ip.and_then(|ip| state.auth_failures.failed(ip)) {
        Some(wait) => too_many_failures(wait),
        None => refused,
    }
}

/// Resolves the caller into a [`Principal`], charges the org's quota and reports it in the
/// `RateLimit-*` headers (and the `X-RateLimit-*` twins) of whatever the handler answers.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = client_address(&state, &req);
    if let Some(wait) = ip.and_then(|ip| state.auth_failures.blocked(ip)) {
        return too_many_failures(wait);
    }
    let presented = req.headers().contains_key(API_KEY_HEADER)
        || req.headers().contains_key(header::AUTHORIZATION)
        || presented_stream_token(&req).is_some();
    // An agent logs in with its handle and secret in the body (the mailbox, issue 12): the
    // token route then runs without a principal, checks the secret itself, and counts a wrong
    // one against the client's address like any refused credential.
    if !presented && req.method() == axum::http::Method::POST && req.uri().path() == TOKEN_PATH {
        req.extensions_mut().insert(ClientAddress(ip));
        return next.run(req).await;
    }
    let resolved = match presented_stream_token(&req) {
        Some((run_id, token)) => state
            .auth
            .authenticate_stream_token(&token, run_id)
            .await
            .map_err(ApiError::from),
        None => resolve_headers(&state, req.headers()).await,
    };
    let principal = match resolved {
        Ok(p) => p,
        Err(e @ (ApiError::Unauthorized(_) | ApiError::TokenExpired)) if presented => {
            return count_failure(&state, ip, e.into_response());
        }
        Err(e) => return e.into_response(),
    };
    let decision = state.limiter.check(
        principal.org_id(),
        principal.org.rate_limit,
        principal.end_user.as_ref().map(|u| u.as_str()),
    );
    let mut res = match decision.retry_after {
        Some(retry_after_secs) => ApiError::RateLimited { retry_after_secs }.into_response(),
        None => {
            req.extensions_mut().insert(principal);
            req.extensions_mut().insert(decision);
            next.run(req).await
        }
    };
    // A handler that charged a tighter quota of its own (the mailbox's per-agent buckets)
    // has set the headers already: they stand.
    if !res.headers().contains_key("ratelimit-limit") {
        rate_limit_headers(res.headers_mut(), decision);
    }
    res
}

/// Writes `d` as `RateLimit-*` headers and their `X-RateLimit-*` twins.
pub fn rate_limit_headers(headers: &mut HeaderMap, d: Decision) {
    let pairs = [
        ("ratelimit-limit", "x-ratelimit-limit", u64::from(d.limit)),
        (
            "ratelimit-remaining",
            "x-ratelimit-remaining",
            u64::from(d.remaining),
        ),
        ("ratelimit-reset", "x-ratelimit-reset", d.reset_seconds),
    ];
    for (name, twin, value) in pairs {
        let value = HeaderValue::from(value);
        headers.insert(HeaderName::from_static(name), value.clone());
        headers.insert(HeaderName::from_static(twin), value);
    }
}

/// Admits only callers with `Authorization: Bearer $ADMIN_TOKEN`. With no token configured
/// the admin API does not exist (404, saying how to enable it).
pub async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = state.admin_digest else {
        return ApiError::NotFound(
            "The admin API is disabled on this server: set ADMIN_TOKEN to enable it.".to_owned(),
        )
        .into_response();
    };
    let ip = client_address(&state, &req);
    if let Some(wait) = ip.and_then(|ip| state.auth_failures.blocked(ip)) {
        return too_many_failures(wait);
    }
    match bearer(req.headers()) {
        Some(t) if is_admin_token(t, &expected) => next.run(req).await,
        Some(_) => count_failure(
            &state,
            ip,
            ApiError::Unauthorized("The admin token is wrong.").into_response(),
        ),
        None => {
            ApiError::Unauthorized("Admin token required: Authorization: Bearer <ADMIN_TOKEN>.")
                .into_response()
        }
    }
}
