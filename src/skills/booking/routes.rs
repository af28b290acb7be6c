//! The booking skill's routes, for plugins to show and manage bookings:
//! `GET /api/v1/appointments`, `/{id}`, and `POST /{id}/cancel`. API-key callers only (an end
//! user's bookings are the business's records).

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{Appointment, AppointmentFilter, BookingError, Bookings};
use crate::auth::Principal;
use crate::domain::page::PageRequest;
use crate::domain::{DayEdge, parse_query_time};
use crate::http::error::{ApiError, FieldError, Problem};
use crate::http::extract::{Path, Query};
use crate::http::page::Paged;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_appointments))
        .routes(routes!(get_appointment))
        .routes(routes!(cancel_appointment))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppointmentQuery {
    /// booked or cancelled.
    #[param(example = "booked")]
    pub status: Option<String>,
    /// Appointments starting at or after this time: a date (`2026-12-01`, from the start of
    /// that day in the organisation's time zone) or an RFC 3339 date-time.
    #[param(example = "2026-12-01")]
    pub from: Option<String>,
    /// Appointments starting before this time: a date (`2026-12-07`, up to the end of that
    /// day in the organisation's time zone) or an RFC 3339 date-time (exclusive).
    #[param(example = "2026-12-07")]
    pub to: Option<String>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    /// Items to skip (not with `after`).
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
    /// The `id` of the last appointment of the previous page: the next page starts after it.
    #[param(value_type = Option<String>, format = Uuid)]
    pub after: Option<String>,
}

/// A page of appointments, by start time.
pub type AppointmentPage = Paged<Appointment>;

fn key_callers_only(p: &Principal) -> Result<(), ApiError> {
    Ok(p.require_api_key("Appointments")?)
}

/// List the organisation's appointments by start time. Page on with `after` = the last
/// item's `id`.
#[utoipa::path(get, path = "/api/v1/appointments", tag = "appointments", security(("api_key" = [])),
    params(AppointmentQuery),
    responses((status = 200, description = "A page of appointments", body = AppointmentPage)))]
async fn list_appointments(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<AppointmentQuery>,
) -> Result<axum::Json<AppointmentPage>, ApiError> {
    key_callers_only(&principal)?;
    let mut errors = PageRequest::with_cursor(q.limit, q.offset, q.after.as_deref())
        .err()
        .unwrap_or_default();
    if q.status
        .as_deref()
        .is_some_and(|s| s != "booked" && s != "cancelled")
    {
        errors.push(FieldError::new("status", "must be booked or cancelled"));
    }
    let tz = principal.org.settings.tz();
    let mut time = |field: &str, raw: Option<&str>, edge: DayEdge| {
        raw.and_then(|r| {
            parse_query_time(r, tz, edge)
                .map_err(|e| errors.push(FieldError::new(field, e.0)))
                .ok()
        })
    };
    let from = time("from", q.from.as_deref(), DayEdge::Start);
    let to = time("to", q.to.as_deref(), DayEdge::End);
    let req = match PageRequest::with_cursor(q.limit, q.offset, q.after.as_deref()) {
        Ok(req) if errors.is_empty() => req,
        _ => return Err(ApiError::Validation(errors)),
    };
    let filter = AppointmentFilter {
        status: q.status.as_deref(),
        from,
        to,
    };
    let page = Bookings(&state.store)
        .list_appointments(principal.org_id(), &filter, req)
        .await?;
    Ok(axum::Json(Paged::of(page, req, |a| a)))
}

/// Get an appointment by id or confirmation number (`APPT-…`).
#[utoipa::path(get, path = "/api/v1/appointments/{id}", tag = "appointments", security(("api_key" = [])),
    params(("id" = String, Path, description = "Appointment id (UUID) or confirmation number")),
    responses(
        (status = 200, description = "The appointment", body = Appointment),
        (status = 404, description = "No such appointment", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_appointment(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<Appointment>, ApiError> {
    key_callers_only(&principal)?;
    find(&state, &principal, &id).await.map(axum::Json)
}

/// The appointment `id` names: its UUID or its confirmation number (any case).
async fn find(state: &AppState, principal: &Principal, id: &str) -> Result<Appointment, ApiError> {
    let found = match uuid::Uuid::try_parse(id) {
        Ok(uuid) => {
            Bookings(&state.store)
                .get_appointment_by_id(principal.org_id(), uuid)
                .await?
        }
        Err(_) => {
            Bookings(&state.store)
                .get_appointment(principal.org_id(), &id.to_ascii_uppercase())
                .await?
        }
    };
    found.ok_or_else(|| ApiError::NotFound(format!("no appointment {id}")))
}

/// Cancel an appointment (by id or confirmation number): its time is free again and
/// `appointment.cancelled` is sent to webhooks. Cancelling a cancelled appointment changes
/// nothing and answers it again, so a retry is safe.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/cancel", tag = "appointments", security(("api_key" = [])),
    params(("id" = String, Path, description = "Appointment id (UUID) or confirmation number")),
    responses(
        (status = 200, description = "The appointment, `status: cancelled`", body = Appointment),
        (status = 404, description = "No such appointment (NOT_FOUND)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn cancel_appointment(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<Appointment>, ApiError> {
    key_callers_only(&principal)?;
    let appt = find(&state, &principal, &id).await?;
    let bookings = Bookings(&state.store);
    match bookings
        .cancel_appointment(
            principal.org_id(),
            &appt.confirmation_number,
            crate::domain::now(),
        )
        .await
    {
        Ok(cancelled) => Ok(axum::Json(cancelled)),
        Err(BookingError::Cancelled(_)) => find(&state, &principal, &id).await.map(axum::Json),
        Err(BookingError::NotFound(n)) => Err(ApiError::NotFound(format!("no appointment {n}"))),
        Err(BookingError::Store(e)) => Err(e.into()),
        Err(e @ BookingError::SlotTaken) => Err(ApiError::internal(e)),
    }
}
