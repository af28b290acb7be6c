//! The booking skill's tables: appointments and the slot table that makes double booking
//! impossible (its primary key), with the `appointment.*` webhook events written in the same
//! transaction as the change.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{APPOINTMENT_CANCELLED, APPOINTMENT_CREATED, APPOINTMENT_RESCHEDULED};
use crate::domain::page::{Page, PageRequest};
use crate::domain::{ConversationId, OrgId};
use crate::store::webhooks::record_event;
use crate::store::{Store, StoreError, StoreResult, is_unique_violation, on_pool, on_read};

/// Granularity of the slot table: an appointment occupies every 5-minute slot it overlaps.
pub const SLOT_MINUTES: i64 = 5;

/// An appointment as stored and as the appointments API returns it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Appointment {
    pub id: Uuid,
    #[schema(example = "APPT-7K2M9Q")]
    pub confirmation_number: String,
    #[schema(example = "general-consultation")]
    pub service_id: String,
    #[schema(example = "General Consultation")]
    pub service_name: String,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    #[schema(example = "John Doe")]
    pub customer_name: String,
    #[schema(example = "john@example.com")]
    pub customer_email: String,
    pub customer_phone: Option<String>,
    /// `booked` or `cancelled`.
    #[schema(example = "booked")]
    pub status: String,
    pub end_user: Option<String>,
    pub conversation_id: Option<ConversationId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const APPT_COLUMNS: &str = "id, confirmation_number, service_id, service_name, start_at, end_at, \
    customer_name, customer_email, customer_phone, status, end_user, conversation_id, created_at, updated_at";

/// A booking to make.
#[derive(Debug, Clone)]
pub struct NewAppointment {
    pub confirmation_number: String,
    pub service_id: String,
    pub service_name: String,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub customer_name: String,
    pub customer_email: String,
    pub customer_phone: Option<String>,
    pub end_user: Option<String>,
    pub conversation_id: Option<ConversationId>,
}

/// Why a booking change failed.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error("that time overlaps another booking")]
    SlotTaken,
    #[error("no appointment {0}")]
    NotFound(String),
    #[error("appointment {0} is cancelled")]
    Cancelled(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for BookingError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The 5-minute slots covering `[start, end)`.
fn slots(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let step = Duration::minutes(SLOT_MINUTES);
    let mut out = Vec::new();
    let mut t = start;
    while t < end {
        out.push(t);
        t += step;
    }
    out
}

/// Whose appointments a chat may act on.
#[derive(Debug, Clone, Copy)]
pub enum AppointmentScope<'a> {
    /// An end user (token caller): their own bookings, whichever conversation made them.
    EndUser(&'a str),
    /// An API-key session: bookings made in this conversation.
    Conversation(ConversationId),
}

/// Filters for listing appointments.
#[derive(Debug, Default)]
pub struct AppointmentFilter<'a> {
    pub status: Option<&'a str>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

// The slot table's rows for one appointment, through a transaction of either backend.
macro_rules! insert_slots {
    ($tx:expr, $org:expr, $id:expr, $start:expr, $end:expr) => {{
        let mut qb = sqlx::QueryBuilder::new(
            "INSERT INTO appointment_slots (org_id, slot_at, appointment_id) ",
        );
        qb.push_values(slots($start, $end), |mut b, slot| {
            b.push_bind($org.as_str()).push_bind(slot).push_bind($id);
        });
        match qb.build().execute($tx).await {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(BookingError::SlotTaken),
            Err(e) => Err(BookingError::from(e)),
        }
    }};
}

/// The booking skill's queries, on the shared store.
#[derive(Clone, Copy)]
pub struct Bookings<'a>(pub &'a Store);

impl Bookings<'_> {
    /// Books an appointment: the row and its slots in one transaction. `SlotTaken` when any
    /// slot is already booked (enforced by the database, so concurrent bookings cannot both win).
    pub async fn create_appointment(
        &self,
        org: &OrgId,
        a: &NewAppointment,
        now: DateTime<Utc>,
    ) -> Result<Appointment, BookingError> {
        let id = Uuid::now_v7();
        let sql = format!(
            "INSERT INTO appointments (id, org_id, confirmation_number, service_id, service_name, start_at, end_at, \
             customer_name, customer_email, customer_phone, status, end_user, conversation_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'booked', $11, $12, $13, $13) RETURNING {APPT_COLUMNS}"
        );
        on_pool!(self.0, pool => {
            let mut tx = pool.begin().await?;
            let appt: Appointment = sqlx::query_as(&sql)
                .bind(id).bind(org.as_str()).bind(&a.confirmation_number).bind(&a.service_id)
                .bind(&a.service_name).bind(a.start_at).bind(a.end_at).bind(&a.customer_name)
                .bind(&a.customer_email).bind(&a.customer_phone).bind(&a.end_user)
                .bind(a.conversation_id).bind(now)
                .fetch_one(&mut *tx).await?;
            insert_slots!(&mut *tx, org, id, a.start_at, a.end_at)?;
            record_event!(&mut *tx, org, APPOINTMENT_CREATED, &appt, now)?;
            tx.commit().await?;
            Ok(appt)
        })
    }

    /// An appointment as a chat may see it: an end user's own bookings, or for API-key
    /// sessions (anonymous visitors) those made in the same conversation. Anything else is
    /// `None`, exactly like an unknown number, so numbers cannot be probed.
    pub async fn get_appointment_scoped(
        &self,
        org: &OrgId,
        confirmation: &str,
        scope: &AppointmentScope<'_>,
    ) -> StoreResult<Option<Appointment>> {
        let (user, conversation) = match scope {
            AppointmentScope::EndUser(u) => (Some(*u), None),
            AppointmentScope::Conversation(c) => (None, Some(*c)),
        };
        let sql = format!(
            "SELECT {APPT_COLUMNS} FROM appointments WHERE org_id = $1 AND confirmation_number = $2 \
             AND (end_user = $3 OR conversation_id = $4)"
        );
        Ok(on_read!(self.0, pool => sqlx::query_as(&sql)
            .bind(org.as_str()).bind(confirmation).bind(user).bind(conversation)
            .fetch_optional(pool).await)?)
    }

    pub async fn get_appointment(
        &self,
        org: &OrgId,
        confirmation: &str,
    ) -> StoreResult<Option<Appointment>> {
        let sql = format!(
            "SELECT {APPT_COLUMNS} FROM appointments WHERE org_id = $1 AND confirmation_number = $2"
        );
        Ok(on_read!(self.0, pool => sqlx::query_as(&sql)
            .bind(org.as_str()).bind(confirmation)
            .fetch_optional(pool).await)?)
    }

    pub async fn get_appointment_by_id(
        &self,
        org: &OrgId,
        id: Uuid,
    ) -> StoreResult<Option<Appointment>> {
        let sql = format!("SELECT {APPT_COLUMNS} FROM appointments WHERE org_id = $1 AND id = $2");
        Ok(on_read!(self.0, pool => sqlx::query_as(&sql)
            .bind(org.as_str()).bind(id)
            .fetch_optional(pool).await)?)
    }

    /// Appointments of `org` by start time.
    pub async fn list_appointments(
        &self,
        org: &OrgId,
        f: &AppointmentFilter<'_>,
        page: PageRequest,
    ) -> StoreResult<Page<Appointment>> {
        let cond = "org_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR start_at >= $3) \
                    AND ($4 IS NULL OR start_at < $4)";
        // The cursor `after` is an appointment of the org, placed by (start_at, id); one row
        // more tells whether more follow.
        let sql = format!(
            "SELECT {APPT_COLUMNS} FROM appointments WHERE {cond} \
             AND ($7 IS NULL OR (start_at, id) > \
                  (SELECT a.start_at, a.id FROM appointments a WHERE a.org_id = $1 AND a.id = $7)) \
             ORDER BY start_at, id LIMIT $5 OFFSET $6"
        );
        let count = format!("SELECT COUNT(*) FROM appointments WHERE {cond}");
        let (items, total) = on_read!(self.0, pool => {
            if let Some(after) = page.after {
                let known: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM appointments WHERE org_id = $1 AND id = $2")
                    .bind(org.as_str()).bind(after).fetch_one(pool).await?;
                if known == 0 {
                    return Err(StoreError::UnknownCursor(after));
                }
            }
            let items: Vec<Appointment> = sqlx::query_as(&sql)
                .bind(org.as_str()).bind(f.status).bind(f.from).bind(f.to).bind(page.limit + 1).bind(page.offset)
                .bind(page.after)
                .fetch_all(pool).await?;
            let total: i64 = sqlx::query_scalar(&count)
                .bind(org.as_str()).bind(f.status).bind(f.from).bind(f.to)
                .fetch_one(pool).await?;
            (items, total)
        });
        Ok(Page::by_peek(items, total, page))
    }

    /// Start times of booked slots in `[from, to)`, for availability.
    pub async fn booked_slots(
        &self,
        org: &OrgId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        Ok(on_read!(self.0, pool => sqlx::query_scalar(
            "SELECT slot_at FROM appointment_slots WHERE org_id = $1 AND slot_at >= $2 AND slot_at < $3 ORDER BY slot_at")
            .bind(org.as_str()).bind(from).bind(to)
            .fetch_all(pool).await)?)
    }

    /// Cancels a booked appointment and frees its slots.
    pub async fn cancel_appointment(
        &self,
        org: &OrgId,
        confirmation: &str,
        now: DateTime<Utc>,
    ) -> Result<Appointment, BookingError> {
        let sql = format!(
            "UPDATE appointments SET status = 'cancelled', updated_at = $3 \
             WHERE org_id = $1 AND confirmation_number = $2 AND status = 'booked' RETURNING {APPT_COLUMNS}"
        );
        let updated: Option<Appointment> = on_pool!(self.0, pool => {
            let mut tx = pool.begin().await?;
            let appt: Option<Appointment> = sqlx::query_as(&sql)
                .bind(org.as_str()).bind(confirmation).bind(now)
                .fetch_optional(&mut *tx).await?;
            if let Some(a) = &appt {
                sqlx::query("DELETE FROM appointment_slots WHERE appointment_id = $1")
                    .bind(a.id).execute(&mut *tx).await?;
                record_event!(&mut *tx, org, APPOINTMENT_CANCELLED, a, now)?;
            }
            tx.commit().await?;
            appt
        });
        match updated {
            Some(a) => Ok(a),
            None => Err(self.why_not_booked(org, confirmation).await),
        }
    }

    /// Moves a booked appointment; `SlotTaken` leaves it where it was.
    pub async fn reschedule_appointment(
        &self,
        org: &OrgId,
        confirmation: &str,
        start_at: DateTime<Utc>,
        end_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Appointment, BookingError> {
        let sql = format!(
            "UPDATE appointments SET start_at = $3, end_at = $4, updated_at = $5 \
             WHERE org_id = $1 AND confirmation_number = $2 AND status = 'booked' RETURNING {APPT_COLUMNS}"
        );
        let result: Result<Option<Appointment>, BookingError> = on_pool!(self.0, pool => {
            let mut tx = pool.begin().await?;
            let appt: Option<Appointment> = sqlx::query_as(&sql)
                .bind(org.as_str()).bind(confirmation).bind(start_at).bind(end_at).bind(now)
                .fetch_optional(&mut *tx).await?;
            match &appt {
                Some(a) => {
                    sqlx::query("DELETE FROM appointment_slots WHERE appointment_id = $1")
                        .bind(a.id).execute(&mut *tx).await?;
                    insert_slots!(&mut *tx, org, a.id, start_at, end_at)?;
                    record_event!(&mut *tx, org, APPOINTMENT_RESCHEDULED, a, now)?;
                    tx.commit().await?;
                    Ok(appt)
                }
                None => Ok(None),
            }
        });
        match result? {
            Some(a) => Ok(a),
            None => Err(self.why_not_booked(org, confirmation).await),
        }
    }

    async fn why_not_booked(&self, org: &OrgId, confirmation: &str) -> BookingError {
        match self.get_appointment(org, confirmation).await {
            Ok(Some(_)) => BookingError::Cancelled(confirmation.to_owned()),
            Ok(None) => BookingError::NotFound(confirmation.to_owned()),
            Err(e) => BookingError::Store(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn slots_cover_the_interval_in_five_minute_steps() {
        let start = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let s = slots(start, start + Duration::minutes(30));
        assert_eq!(s.len(), 6);
        assert_eq!(s[5], start + Duration::minutes(25));
        assert_eq!(slots(start, start + Duration::minutes(7)).len(), 2);
    }
}
