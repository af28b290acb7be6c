//! The booking skill's routes, for plugins to show bookings: `GET /api/v1/appointments` and
//! `/{id}`. API-key callers only (an end user's bookings are the business's records).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{Appointment, AppointmentFilter, Bookings};
use crate::auth::Principal;
use crate::domain::page::PageRequest;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{Path, Query};
use crate::http::page::Paged;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_appointments))
        .routes(routes!(get_appointment))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppointmentQuery {
    /// booked or cancelled.
    pub status: Option<String>,
    /// Appointments starting at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Appointments starting before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
}

/// A page of appointments, by start time.
pub type AppointmentPage = Paged<Appointment>;

fn key_callers_only(p: &Principal) -> Result<(), ApiError> {
    Ok(p.require_api_key("Appointments")?)
}

/// List the organisation's appointments by start time.
#[utoipa::path(get, path = "/api/v1/appointments", tag = "appointments", security(("api_key" = [])),
    params(AppointmentQuery),
    responses((status = 200, description = "A page of appointments", body = AppointmentPage)))]
async fn list_appointments(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<AppointmentQuery>,
) -> Result<axum::Json<AppointmentPage>, ApiError> {
    key_callers_only(&principal)?;
    let req = PageRequest::new(q.limit, q.offset).map_err(ApiError::Validation)?;
    if q.status
        .as_deref()
        .is_some_and(|s| s != "booked" && s != "cancelled")
    {
        return Err(ApiError::validation(
            "status",
            "must be booked or cancelled",
        ));
    }
    let filter = AppointmentFilter {
        status: q.status.as_deref(),
        from: q.from,
        to: q.to,
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
    let found = match uuid::Uuid::try_parse(&id) {
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
    found
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound(format!("no appointment {id}")))
}
