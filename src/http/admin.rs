//! Admin API: organisations and their API keys (`/api/v1/admin/*`, admin token required).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Json, Path, Query, path_uuid};
use super::page::{PageParams, Paged};
use crate::admin::{self, CreatedApiKey, NewApiKey};
use crate::domain::OrgId;
use crate::domain::org::{NewOrg, Org, OrgPatch, UpdateOrg};
use crate::domain::page::Page;
use crate::http::error::{ApiError, Problem};
use crate::state::AppState;
use crate::store::keys::ApiKey;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_org, list_orgs))
        .routes(routes!(get_org, update_org))
        .routes(routes!(deactivate_org))
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
        .merge(super::admin_agents::router())
}

/// A page of organisations.
pub type OrgPage = Paged<Org>;

/// A page of the organisation's API keys, newest first: the same envelope as every list.
pub type KeyList = Paged<ApiKey>;

fn org_id(raw: &str) -> Result<OrgId, ApiError> {
    OrgId::parse(raw).map_err(|e| ApiError::validation("org", e.0))
}

/// The org with its ETag header.
fn with_etag(status: StatusCode, org: Org) -> Response {
    let mut res = (status, axum::Json(&org)).into_response();
    if let Ok(v) = HeaderValue::from_str(&org.etag()) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// Parses `If-Match: "7"` (or `W/"7"`); `*` means "any version".
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("").trim();
    if s == "*" {
        return Ok(None);
    }
    s.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| ApiError::validation("If-Match", "must be an ETag from this API, like \"3\""))
}

/// Drops what this instance cached about an org after a change, so it applies at once.
async fn org_changed(state: &AppState, id: &OrgId) {
    state.auth.evict_org(id).await;
    state.cors.reload(&state.store).await;
}

/// Create an organisation.
#[utoipa::path(post, path = "/api/v1/admin/orgs", tag = "admin", security(("admin" = [])),
    request_body = NewOrg,
    responses(
        (status = 201, description = "Created", body = Org,
            headers(("ETag" = String, description = "Version tag, for If-Match"),
                    ("Location" = String, description = "URL of the new organisation"))),
        (status = 409, description = "The id is taken", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_org(
    State(state): State<AppState>,
    Json(body): Json<NewOrg>,
) -> Result<Response, ApiError> {
    let org = admin::create_org(&state.store, &state.tool_names(), &body.id, body.patch()).await?;
    org_changed(&state, &org.id).await;
    let location = format!("/api/v1/admin/orgs/{}", org.id);
    let mut res = with_etag(StatusCode::CREATED, org);
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// List organisations, newest first.
#[utoipa::path(get, path = "/api/v1/admin/orgs", tag = "admin", security(("admin" = [])),
    params(PageParams),
    responses((status = 200, description = "A page of organisations", body = OrgPage)))]
async fn list_orgs(
    State(state): State<AppState>,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<OrgPage>, ApiError> {
    let req = page.resolve()?;
    let p = state.store.list_orgs(req).await?;
    Ok(axum::Json(Paged::of(p, req, |o| o)))
}

/// Get an organisation.
#[utoipa::path(get, path = "/api/v1/admin/orgs/{org}", tag = "admin", security(("admin" = [])),
    params(("org" = String, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "The organisation", body = Org,
            headers(("ETag" = String, description = "Version tag, for If-Match"))),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_org(
    State(state): State<AppState>,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    let org = admin::get_org(&state.store, &org_id(&org)?).await?;
    Ok(with_etag(StatusCode::OK, org))
}

/// Update an organisation. Only the fields present change. For optimistic concurrency send
/// `If-Match` with the ETag you read, or the `version` field: a stale one gets
/// 412 `PRECONDITION_FAILED` (RFC 9110).
#[utoipa::path(patch, path = "/api/v1/admin/orgs/{org}", tag = "admin", security(("admin" = [])),
    params(("org" = String, Path, description = "Organisation id"),
           ("If-Match" = Option<String>, Header, description = "ETag of the version you read")),
    request_body = UpdateOrg,
    responses(
        (status = 200, description = "The updated organisation", body = Org,
            headers(("ETag" = String, description = "The new version tag"))),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The organisation changed since the version in If-Match or `version` (PRECONDITION_FAILED); re-read it and retry", body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_org(
    State(state): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    Json(body): Json<UpdateOrg>,
) -> Result<Response, ApiError> {
    let id = org_id(&org)?;
    let expected = match (if_match(&headers)?, body.version) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::validation("version", "disagrees with If-Match"));
        }
        (a, b) => a.or(b),
    };
    let org = admin::update_org(
        &state.store,
        &state.tool_names(),
        &id,
        body.patch(),
        expected,
    )
    .await?;
    org_changed(&state, &id).await;
    Ok(with_etag(StatusCode::OK, org))
}

/// Deactivate an organisation: its keys and tokens get 403 `ORG_INACTIVE` from now on.
/// Reactivate with `PATCH {"active": true}`.
#[utoipa::path(post, path = "/api/v1/admin/orgs/{org}/deactivate", tag = "admin", security(("admin" = [])),
    params(("org" = String, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "The deactivated organisation", body = Org),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn deactivate_org(
    State(state): State<AppState>,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    let id = org_id(&org)?;
    let patch = OrgPatch {
        active: Some(false),
        ..Default::default()
    };
    let org = admin::update_org(&state.store, &state.tool_names(), &id, patch, None).await?;
    org_changed(&state, &id).await;
    Ok(with_etag(StatusCode::OK, org))
}

/// Create an API key. The response holds the plaintext key, shown this once only.
#[utoipa::path(post, path = "/api/v1/admin/orgs/{org}/keys", tag = "admin", security(("admin" = [])),
    params(("org" = String, Path, description = "Organisation id")),
    request_body = NewApiKey,
    responses(
        (status = 201, description = "The key, with its plaintext", body = CreatedApiKey),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_key(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Json(body): Json<NewApiKey>,
) -> Result<(StatusCode, axum::Json<CreatedApiKey>), ApiError> {
    let key = admin::create_key(&state.store, &org_id(&org)?, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(key)))
}

/// List an organisation's API keys (never their secrets).
#[utoipa::path(get, path = "/api/v1/admin/orgs/{org}/keys", tag = "admin", security(("admin" = [])),
    params(("org" = String, Path, description = "Organisation id"), PageParams),
    responses(
        (status = 200, description = "A page of keys", body = KeyList),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_keys(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<KeyList>, ApiError> {
    let id = org_id(&org)?;
    let req = page.resolve()?;
    admin::get_org(&state.store, &id).await?;
    // An organisation has a handful of keys: paged here rather than in SQL.
    let keys = state.store.list_keys(&id).await?;
    let total = i64::try_from(keys.len()).unwrap_or(i64::MAX);
    let items = keys
        .into_iter()
        .skip(usize::try_from(req.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(req.limit).unwrap_or(0))
        .collect();
    Ok(axum::Json(Paged::of(
        Page::by_offset(items, total, req),
        req,
        |k| k,
    )))
}

/// Revoke an API key. It stops working on this instance at once (other instances within the
/// auth cache TTL). Revoking twice is harmless.
#[utoipa::path(delete, path = "/api/v1/admin/orgs/{org}/keys/{key_id}", tag = "admin", security(("admin" = [])),
    params(("org" = String, Path, description = "Organisation id"),
           ("key_id" = uuid::Uuid, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key in this organisation", body = Problem, content_type = "application/problem+json"),
    ))]
async fn revoke_key(
    State(state): State<AppState>,
    Path((org, key_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = org_id(&org)?;
    let key_id = path_uuid("key_id", &key_id)?;
    let key = state
        .store
        .revoke_key(&id, key_id, crate::domain::now())
        .await?;
    state.auth.evict_key(&key.prefix, key.id).await;
    Ok(StatusCode::NO_CONTENT)
}
