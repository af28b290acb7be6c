//! The mailbox's audit log (issue 12.5): `GET /api/v1/audit/events`. Events are written by the
//! changes themselves, in their transactions (`store::agents::record_audit!`), and never
//! changed or deleted (the database refuses it). An agent reads the events it caused and those
//! that name it as their target.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::Caller;
use super::routes::Pagination;
use crate::domain::agents::AgentHandle;
use crate::domain::page::{Page, PageRequest};
use crate::http::error::ApiError;
use crate::http::extract::Query;
use crate::state::AppState;
use crate::store::on_read;

/// The event types recorded.
pub const EVENT_TYPES: &[&str] = &[
    "message.sent",
    "message.replied",
    "message.broadcast",
    "thread.metadata_set",
    "thread.metadata_removed",
    "thread.archived",
    "thread.unarchived",
    "contact.created",
    "contact.updated",
    "contact.deleted",
    "token.issued",
];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_events))
}

/// One audit event.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct AuditEvent {
    /// UUIDv7: sortable by time.
    pub event_id: Uuid,
    #[schema(example = "message.sent")]
    pub event_type: String,
    /// The agent that acted.
    #[schema(example = "planner")]
    pub actor_handle: String,
    /// The agent or contact concerned, if any.
    #[schema(example = "billing-bot")]
    pub target_handle: Option<String>,
    /// Ids and counts of the change (never message text).
    #[schema(value_type = Object)]
    pub details: SqlJson<serde_json::Value>,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events about this agent or contact.
    pub target_handle: Option<String>,
    /// Only events of this type (`message.sent`, `contact.updated`, `token.issued`, …).
    pub event_type: Option<String>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
}

/// A page of audit events.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub pagination: Pagination,
}

/// The audit events you caused or that concern you, newest first.
#[utoipa::path(get, path = "/api/v1/audit/events", tag = "mailbox", security(("bearer" = []), ("api_key" = [])),
    params(AuditQuery),
    responses((status = 200, description = "A page of events", body = AuditPage)))]
async fn list_audit_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let page = PageRequest::new(q.limit, q.offset).map_err(ApiError::Validation)?;
    let target = q
        .target_handle
        .as_deref()
        .map(|h| {
            AgentHandle::parse(h.trim()).map_err(|e| ApiError::validation("target_handle", e.0))
        })
        .transpose()?;
    if let Some(t) = q.event_type.as_deref() {
        if !EVENT_TYPES.contains(&t) {
            return Err(ApiError::validation(
                "event_type",
                format!("must be one of {}", EVENT_TYPES.join(", ")),
            ));
        }
    }
    let filter = "org_id = $1 AND (actor_handle = $2 OR target_handle = $2) \
                  AND ($3 IS NULL OR target_handle = $3) AND ($4 IS NULL OR event_type = $4)";
    let sql = format!(
        "SELECT event_id, event_type, actor_handle, target_handle, details, timestamp \
         FROM mailbox_audit_events WHERE {filter} ORDER BY event_id DESC LIMIT $5 OFFSET $6"
    );
    let count =
        format!("SELECT COUNT(*) FROM mailbox_audit_events WHERE {filter} AND $5 > 0 AND $6 >= 0");
    let org = caller.org_id().as_str();
    let me = caller.handle.as_str();
    let target = target.as_ref().map(AgentHandle::as_str);
    let event_type = q.event_type.as_deref();
    let (events, total) = on_read!(&state.store, pool => async {
        let events: Vec<AuditEvent> = sqlx::query_as(&sql)
            .bind(org).bind(me).bind(target).bind(event_type).bind(page.limit).bind(page.offset)
            .fetch_all(pool)
            .await?;
        let total: i64 = sqlx::query_scalar(&count)
            .bind(org).bind(me).bind(target).bind(event_type).bind(page.limit).bind(page.offset)
            .fetch_one(pool)
            .await?;
        Ok::<_, sqlx::Error>((events, total))
    }.await)
    .map_err(crate::store::StoreError::from)?;
    let found = Page::by_offset(events, total, page);
    Ok(axum::Json(AuditPage {
        pagination: Pagination::of(page, &found),
        events: found.items,
    }))
}
