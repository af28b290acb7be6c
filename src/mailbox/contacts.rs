//! The mailbox's address book (issue 12.4): contacts per organisation, changed by any of its
//! agents, with optimistic locking (`expected_version`) and soft deletion (`is_active`).
//! Routes and store queries together: the rules are few.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Caller;
use super::routes::Pagination;
use crate::domain::agents::{AgentHandle, agent_text};
use crate::domain::page::{Page, PageRequest};
use crate::domain::{FieldError, OrgId};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{Json, Path, Query};
use crate::state::AppState;
use crate::store::agents::{NewAudit, record_audit};
use crate::store::{
    Backend, Store, StoreError, StoreResult, is_unique_violation, on_pool, on_read,
};

const DISPLAY_NAME_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 500;
const MAX_TAGS: usize = 20;
const MAX_TAG_CHARS: usize = 50;
const MAX_QUERY_CHARS: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts, create_contact))
        .routes(routes!(search_contacts))
        .routes(routes!(get_contact, update_contact, delete_contact))
}

/// A contact of the organisation's address book.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Contact {
    /// The handle again: every resource carries its identifier as `id` (issue 11.8).
    #[schema(example = "billing-bot")]
    pub id: String,
    #[schema(example = "billing-bot")]
    pub handle: String,
    #[schema(example = "Billing assistant")]
    pub display_name: String,
    #[schema(example = "Ask about invoices and refunds.")]
    pub description: String,
    #[schema(value_type = Vec<String>, example = json!(["finance"]))]
    pub tags: SqlJson<Vec<String>>,
    pub is_active: bool,
    /// Grows with every change; send it back as `expected_version` to change the contact.
    pub version: i64,
    /// The agent that made the last change.
    #[schema(example = "planner")]
    pub updated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "handle AS id, handle, display_name, description, tags, is_active, version, updated_by, created_at, updated_at";

/// Body of `POST /api/v1/contacts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    /// 1–64 characters of a-z, 0-9, '.', '_', '-'; unique in the organisation.
    #[schema(example = "billing-bot")]
    pub handle: String,
    /// 1–100 characters; the handle when absent.
    pub display_name: Option<String>,
    /// Up to 500 characters.
    pub description: Option<String>,
    /// Up to 20 tags of 1–50 characters.
    pub tags: Option<Vec<String>>,
    /// Default true.
    pub is_active: Option<bool>,
}

/// Body of `PUT /api/v1/contacts/{handle}`: the fields present change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContact {
    /// The version you read: a contact that has moved on is 409 `VERSION_CONFLICT`.
    #[schema(example = 1)]
    pub expected_version: i64,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub is_active: Option<bool>,
}

fn field<T>(
    r: Result<T, crate::domain::Invalid>,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    r.map_err(|e| errors.push(FieldError::new(name, e.0))).ok()
}

fn tags(raw: Option<&[String]>, errors: &mut Vec<FieldError>) -> Option<Vec<String>> {
    let raw = raw?;
    if raw.len() > MAX_TAGS {
        errors.push(FieldError::new(
            "tags",
            format!("must hold at most {MAX_TAGS} tags"),
        ));
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let t = t.trim();
        if t.is_empty() || t.chars().count() > MAX_TAG_CHARS {
            errors.push(FieldError::new(
                format!("tags[{i}]"),
                format!("must be 1 to {MAX_TAG_CHARS} characters"),
            ));
        } else if !out.iter().any(|x| x == t) {
            out.push(t.to_owned());
        }
    }
    Some(out)
}

fn handle_of(raw: &str) -> Result<AgentHandle, ApiError> {
    AgentHandle::parse(raw).map_err(|e| ApiError::validation("handle", e.0))
}

/// `tags` filter of a query string: comma-separated, every one required.
fn tag_filter(raw: Option<&str>) -> Result<Vec<String>, ApiError> {
    let tags: Vec<String> = raw
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if tags.len() > MAX_TAGS || tags.iter().any(|t| t.chars().count() > MAX_TAG_CHARS) {
        return Err(ApiError::validation(
            "tags",
            format!("at most {MAX_TAGS} tags of 1 to {MAX_TAG_CHARS} characters"),
        ));
    }
    Ok(tags)
}

/// The SQL clauses requiring every tag, parameters numbered from `first`.
fn tag_clauses(backend: Backend, n: usize, first: usize) -> String {
    (0..n)
        .map(|i| match backend {
            Backend::Sqlite => format!(
                " AND EXISTS (SELECT 1 FROM json_each(c.tags) j WHERE j.value = ${})",
                first + i
            ),
            Backend::Postgres => format!(" AND jsonb_exists(c.tags, ${})", first + i),
        })
        .collect()
}

/// The audit event of a contact change.
fn contact_event(event_type: &'static str, caller: &Caller, c: &Contact) -> NewAudit {
    NewAudit {
        event_type,
        actor: caller.handle.to_string(),
        target: Some(c.handle.clone()),
        details: serde_json::json!({"version": c.version, "is_active": c.is_active}),
    }
}

/// The contact queries.
struct Contacts<'a>(&'a Store);

impl Contacts<'_> {
    async fn get(&self, org: &OrgId, handle: &AgentHandle) -> StoreResult<Option<Contact>> {
        let sql =
            format!("SELECT {COLUMNS} FROM mailbox_contacts c WHERE org_id = $1 AND handle = $2");
        Ok(on_read!(self.0, pool => sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(handle.as_str())
            .fetch_optional(pool)
            .await)?)
    }

    async fn list(
        &self,
        org: &OrgId,
        active_only: bool,
        tags: &[String],
        query: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Contact>> {
        // $1 org, $2 active_only, $3 pattern (or NULL), $4 limit, $5 offset, then the tags.
        let filter = format!(
            "c.org_id = $1 AND ($2 = FALSE OR c.is_active) AND ($3 IS NULL OR LOWER(c.handle) LIKE $3 ESCAPE '\\' \
             OR LOWER(c.display_name) LIKE $3 ESCAPE '\\' OR LOWER(c.description) LIKE $3 ESCAPE '\\'){}",
            tag_clauses(self.0.backend(), tags.len(), 6)
        );
        let sql = format!(
            "SELECT {COLUMNS} FROM mailbox_contacts c WHERE {filter} ORDER BY c.handle LIMIT $4 OFFSET $5"
        );
        let count = format!(
            "SELECT COUNT(*) FROM mailbox_contacts c WHERE {filter} AND $4 > 0 AND $5 >= 0"
        );
        let pattern = query.map(|q| {
            let escaped = q
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let (items, total) = on_read!(self.0, pool => {
            let mut q = sqlx::query_as(&sql)
                .bind(org.as_str())
                .bind(active_only)
                .bind(pattern.as_deref())
                .bind(page.limit)
                .bind(page.offset);
            for t in tags {
                q = q.bind(t);
            }
            let items: Vec<Contact> = q.fetch_all(pool).await?;
            let mut c = sqlx::query_scalar(&count)
                .bind(org.as_str())
                .bind(active_only)
                .bind(pattern.as_deref())
                .bind(page.limit)
                .bind(page.offset);
            for t in tags {
                c = c.bind(t);
            }
            let total: i64 = c.fetch_one(pool).await?;
            Ok::<_, sqlx::Error>((items, total))
        })?;
        Ok(Page::by_offset(items, total, page))
    }
}

/// The contact, or 404.
async fn existing(
    state: &AppState,
    caller: &Caller,
    handle: &AgentHandle,
) -> Result<Contact, ApiError> {
    Contacts(&state.store)
        .get(caller.org_id(), handle)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no contact {handle}")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Only active contacts (default true).
    pub active_only: Option<bool>,
    /// Comma-separated tags; contacts with every one of them.
    pub tags: Option<String>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
}

/// A page of contacts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactPage {
    pub contacts: Vec<Contact>,
    pub pagination: Pagination,
}

/// List the organisation's contacts by handle.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(ContactQuery),
    responses((status = 200, description = "A page of contacts", body = ContactPage)))]
async fn list_contacts(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ContactQuery>,
) -> Result<axum::Json<ContactPage>, ApiError> {
    let page = PageRequest::new(q.limit, q.offset).map_err(ApiError::Validation)?;
    let tags = tag_filter(q.tags.as_deref())?;
    let found = Contacts(&state.store)
        .list(
            caller.org_id(),
            q.active_only.unwrap_or(true),
            &tags,
            None,
            page,
        )
        .await?;
    Ok(axum::Json(ContactPage {
        pagination: Pagination::of(page, &found),
        contacts: found.items,
    }))
}

/// Add a contact to the organisation's address book (409 if the handle is there already,
/// active or not).
#[utoipa::path(post, path = "/api/v1/contacts", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    request_body = NewContact,
    responses(
        (status = 201, description = "The contact", body = Contact),
        (status = 409, description = "The handle exists", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_contact(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewContact>,
) -> Result<(StatusCode, axum::Json<Contact>), ApiError> {
    let mut errors = Vec::new();
    let handle = field(AgentHandle::parse(&body.handle), "handle", &mut errors);
    let display_name = field(
        agent_text(
            body.display_name.as_deref().unwrap_or(&body.handle),
            DISPLAY_NAME_MAX,
            false,
        ),
        "display_name",
        &mut errors,
    );
    let description = field(
        agent_text(
            body.description.as_deref().unwrap_or(""),
            DESCRIPTION_MAX,
            true,
        ),
        "description",
        &mut errors,
    );
    let tags = tags(body.tags.as_deref(), &mut errors).unwrap_or_default();
    let (Some(handle), Some(display_name), Some(description)) = (handle, display_name, description)
    else {
        return Err(ApiError::Validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let now = crate::domain::now();
    let sql = format!(
        "INSERT INTO mailbox_contacts (org_id, handle, display_name, description, tags, is_active, version, \
         updated_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $8) RETURNING {COLUMNS}"
    );
    let org = caller.org_id();
    let res: Result<Contact, sqlx::Error> = on_pool!(&state.store, pool => async {
        let mut tx = pool.begin().await?;
        let contact: Contact = sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(handle.as_str())
            .bind(&display_name)
            .bind(&description)
            .bind(SqlJson(&tags))
            .bind(body.is_active.unwrap_or(true))
            .bind(caller.handle.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        record_audit!(tx, org, now, &[contact_event("contact.created", &caller, &contact)]);
        tx.commit().await?;
        Ok(contact)
    }.await);
    match res {
        Ok(c) => Ok((StatusCode::CREATED, axum::Json(c))),
        Err(e) if is_unique_violation(&e) => Err(ApiError::Conflict(format!(
            "contact {handle} exists already"
        ))),
        Err(e) => Err(StoreError::from(e).into()),
    }
}

/// Get a contact (inactive ones too).
#[utoipa::path(get, path = "/api/v1/contacts/{handle}", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(("handle" = String, Path, description = "Contact handle")),
    responses(
        (status = 200, description = "The contact", body = Contact),
        (status = 404, description = "No such contact", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(handle): Path<String>,
) -> Result<axum::Json<Contact>, ApiError> {
    Ok(axum::Json(
        existing(&state, &caller, &handle_of(&handle)?).await?,
    ))
}

/// Change a contact, naming the version you read: if it has moved on, 409 `VERSION_CONFLICT`
/// with its `current_version`, and nothing changes.
#[utoipa::path(put, path = "/api/v1/contacts/{handle}", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(("handle" = String, Path, description = "Contact handle")),
    request_body = UpdateContact,
    responses(
        (status = 200, description = "The changed contact", body = Contact),
        (status = 404, description = "No such contact", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "VERSION_CONFLICT: the contact changed since that version", body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(handle): Path<String>,
    Json(body): Json<UpdateContact>,
) -> Result<axum::Json<Contact>, ApiError> {
    let handle = handle_of(&handle)?;
    let mut errors = Vec::new();
    let display_name = body.display_name.as_deref().and_then(|d| {
        field(
            agent_text(d, DISPLAY_NAME_MAX, false),
            "display_name",
            &mut errors,
        )
    });
    let description = body.description.as_deref().and_then(|d| {
        field(
            agent_text(d, DESCRIPTION_MAX, true),
            "description",
            &mut errors,
        )
    });
    let tags = tags(body.tags.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    change(
        &state,
        &caller,
        "contact.updated",
        &handle,
        Some(body.expected_version),
        display_name,
        description,
        tags,
        body.is_active,
    )
    .await
}

/// Applies a change guarded by `expected` (any version when `None`).
#[expect(clippy::too_many_arguments, reason = "each field of the change, named")]
async fn change(
    state: &AppState,
    caller: &Caller,
    event_type: &'static str,
    handle: &AgentHandle,
    expected: Option<i64>,
    display_name: Option<String>,
    description: Option<String>,
    tags: Option<Vec<String>>,
    is_active: Option<bool>,
) -> Result<axum::Json<Contact>, ApiError> {
    let sql = format!(
        "UPDATE mailbox_contacts SET display_name = COALESCE($4, display_name), \
         description = COALESCE($5, description), tags = COALESCE($6, tags), \
         is_active = COALESCE($7, is_active), version = version + 1, updated_by = $8, updated_at = $9 \
         WHERE org_id = $1 AND handle = $2 AND ($3 IS NULL OR version = $3) RETURNING {COLUMNS}"
    );
    let (org, now) = (caller.org_id(), crate::domain::now());
    let updated: Option<Contact> = on_pool!(&state.store, pool => async {
        let mut tx = pool.begin().await?;
        let updated: Option<Contact> = sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(handle.as_str())
            .bind(expected)
            .bind(display_name)
            .bind(description)
            .bind(tags.map(SqlJson))
            .bind(is_active)
            .bind(caller.handle.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(c) = &updated {
            record_audit!(tx, org, now, &[contact_event(event_type, caller, c)]);
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(updated)
    }.await)
    .map_err(StoreError::from)?;
    match updated {
        Some(c) => Ok(axum::Json(c)),
        None => {
            let current = existing(state, caller, handle).await?;
            Err(ApiError::VersionConflict {
                detail: format!(
                    "contact {handle} is at version {}, not {}; re-read it and retry",
                    current.version,
                    expected.unwrap_or_default()
                ),
                current_version: current.version,
            })
        }
    }
}

/// Remove a contact: soft (`is_active` becomes false; its history stays). Reactivate with a
/// `PUT` of `"is_active": true`.
#[utoipa::path(delete, path = "/api/v1/contacts/{handle}", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(("handle" = String, Path, description = "Contact handle")),
    responses(
        (status = 200, description = "The deactivated contact", body = Contact),
        (status = 404, description = "No such contact", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(handle): Path<String>,
) -> Result<axum::Json<Contact>, ApiError> {
    let handle = handle_of(&handle)?;
    existing(&state, &caller, &handle).await?;
    change(
        &state,
        &caller,
        "contact.deleted",
        &handle,
        None,
        None,
        None,
        None,
        Some(false),
    )
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactSearchQuery {
    /// Text found in the handle, display name or description (case-insensitive), 1–200 characters.
    pub query: String,
    /// Comma-separated tags; contacts with every one of them.
    pub tags: Option<String>,
    /// Only active contacts (default true).
    pub active_only: Option<bool>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
}

/// Contacts found.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactSearchResults {
    pub contacts: Vec<Contact>,
    pub query: String,
    pub count: usize,
}

/// Search the address book: handle, display name and description, by handle.
#[utoipa::path(get, path = "/api/v1/contacts/search", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(ContactSearchQuery),
    responses((status = 200, description = "Matching contacts", body = ContactSearchResults)))]
async fn search_contacts(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ContactSearchQuery>,
) -> Result<axum::Json<ContactSearchResults>, ApiError> {
    let text = q.query.trim();
    if text.is_empty() || text.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::validation(
            "query",
            format!("must be 1 to {MAX_QUERY_CHARS} characters"),
        ));
    }
    let tags = tag_filter(q.tags.as_deref())?;
    let page = PageRequest::new(q.limit, None).map_err(ApiError::Validation)?;
    let found = Contacts(&state.store)
        .list(
            caller.org_id(),
            q.active_only.unwrap_or(true),
            &tags,
            Some(text),
            page,
        )
        .await?;
    Ok(axum::Json(ContactSearchResults {
        count: found.items.len(),
        contacts: found.items,
        query: q.query,
    }))
}
