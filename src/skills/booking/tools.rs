//! Booking tools: services, availability from business hours and existing bookings, and
//! appointments (create, get, cancel, reschedule). Times the model sees are local to the
//! organisation's time zone, `YYYY-MM-DDTHH:MM`; storage is UTC.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
    Weekday,
};
use chrono_tz::Tz;
use rand::Rng;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{
    Appointment, AppointmentScope, BookingError, Bookings, NewAppointment, SLOT_MINUTES,
};
use crate::agent::tools::{Tool, ToolContext, ToolError, ToolResult, define_tool};
use crate::domain::org::{OpeningHours, Service};

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(ListServices),
        Arc::new(CheckAvailability),
        Arc::new(CreateAppointment),
        Arc::new(GetAppointment),
        Arc::new(CancelAppointment),
        Arc::new(RescheduleAppointment),
    ]
}

/// Minutes between the start times offered by `check_availability`.
const OFFER_STEP_MINUTES: i64 = 30;
const LOCAL_FORMAT: &str = "%Y-%m-%dT%H:%M";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityArgs {
    /// Service id from list_services.
    pub service_id: String,
    /// Day to check, YYYY-MM-DD (business's local date).
    pub date: String,
    /// Optional start time to check, HH:MM (24-hour, local).
    pub time: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// Service id from list_services.
    pub service_id: String,
    /// Local start, YYYY-MM-DDTHH:MM, on a 5-minute boundary.
    pub start: String,
    pub customer_name: String,
    pub customer_email: String,
    pub customer_phone: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmationArgs {
    /// The confirmation number, APPT-XXXXXX.
    pub confirmation_number: String,
    /// The email address or phone number the appointment was booked with: needed for an
    /// appointment booked in another conversation (a returning customer).
    pub customer_contact: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleArgs {
    /// The confirmation number, APPT-XXXXXX.
    pub confirmation_number: String,
    /// The email address or phone number the appointment was booked with: needed for an
    /// appointment booked in another conversation (a returning customer).
    pub customer_contact: Option<String>,
    /// New local start, YYYY-MM-DDTHH:MM.
    pub start: String,
}

define_tool!(ListServices, "list_services", side_effect: false, NoArgs, list_services,
    "List the services that can be booked, with duration and price.");
define_tool!(CheckAvailability, "check_availability", side_effect: false, AvailabilityArgs, check_availability,
    "List free start times for a service on a date, or check whether one start time is free.");
define_tool!(CreateAppointment, "create_appointment", side_effect: true, CreateArgs, create_appointment,
    "Book an appointment once the customer has confirmed. Returns the confirmation number.");
define_tool!(GetAppointment, "get_appointment", side_effect: false, ConfirmationArgs, get_appointment,
    "Look up an appointment by its confirmation number.");
define_tool!(CancelAppointment, "cancel_appointment", side_effect: true, ConfirmationArgs, cancel_appointment,
    "Cancel an appointment by its confirmation number.");
define_tool!(RescheduleAppointment, "reschedule_appointment", side_effect: true, RescheduleArgs, reschedule_appointment,
    "Move an appointment to a new start time.");

fn tz(ctx: &ToolContext) -> Tz {
    ctx.org.settings.tz()
}

fn service<'a>(ctx: &'a ToolContext, id: &str) -> Result<&'a Service, ToolError> {
    let services = &ctx.org.settings.services;
    services
        .iter()
        .find(|s| s.id == id || s.name.eq_ignore_ascii_case(id))
        .ok_or_else(|| {
            let ids: Vec<&str> = services.iter().map(|s| s.id.as_str()).collect();
            ToolError(format!(
                "unknown service {id:?}; services: {}",
                ids.join(", ")
            ))
        })
}

fn parse_local(raw: &str, tz: Tz) -> Result<DateTime<Utc>, ToolError> {
    let raw = raw.trim().replace(' ', "T");
    let naive = NaiveDateTime::parse_from_str(&raw, LOCAL_FORMAT)
        .or_else(|_| NaiveDateTime::parse_from_str(&raw, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| ToolError(format!("start must be YYYY-MM-DDTHH:MM, got {raw:?}")))?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| ToolError(format!("{raw} does not exist in {tz} (clock change)")))
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format(LOCAL_FORMAT).to_string()
}

fn opening_hours(ctx: &ToolContext, day: Weekday) -> Vec<(NaiveTime, NaiveTime)> {
    let h = &ctx.org.settings.business_hours;
    let intervals: &[OpeningHours] = match day {
        Weekday::Mon => &h.mon,
        Weekday::Tue => &h.tue,
        Weekday::Wed => &h.wed,
        Weekday::Thu => &h.thu,
        Weekday::Fri => &h.fri,
        Weekday::Sat => &h.sat,
        Weekday::Sun => &h.sun,
    };
    intervals
        .iter()
        .filter_map(|i| {
            let o = NaiveTime::parse_from_str(&i.open, "%H:%M").ok()?;
            let c = NaiveTime::parse_from_str(&i.close, "%H:%M").ok()?;
            Some((o, c))
        })
        .collect()
}

/// Checks that `[start, start + minutes)` is bookable: future, on the slot grid, inside one
/// opening interval of its local day.
fn check_bookable(
    ctx: &ToolContext,
    start: DateTime<Utc>,
    minutes: i64,
) -> Result<DateTime<Utc>, ToolError> {
    let tz = tz(ctx);
    if start <= ctx.now {
        return Err(ToolError(
            "that time has already passed; choose a future time".into(),
        ));
    }
    let local_start = start.with_timezone(&tz);
    if i64::from(local_start.minute()) % SLOT_MINUTES != 0 || local_start.second() != 0 {
        return Err(ToolError(format!(
            "start times are on {SLOT_MINUTES}-minute boundaries"
        )));
    }
    let end = start + Duration::minutes(minutes);
    let local_end = end.with_timezone(&tz);
    let inside = local_start.date_naive() == local_end.date_naive()
        && opening_hours(ctx, local_start.weekday())
            .iter()
            .any(|(o, c)| *o <= local_start.time() && local_end.time() <= *c);
    if !inside {
        return Err(ToolError(format!(
            "{} is outside business hours",
            local_start.format("%A %Y-%m-%d %H:%M")
        )));
    }
    Ok(end)
}

fn is_free(start: DateTime<Utc>, end: DateTime<Utc>, booked: &BTreeSet<DateTime<Utc>>) -> bool {
    booked.range(start..end).next().is_none()
}

fn appointment_json(a: &Appointment, tz: Tz) -> Value {
    json!({
        "confirmation_number": a.confirmation_number,
        "service_id": a.service_id,
        "service_name": a.service_name,
        "start": local(a.start_at, tz),
        "end": local(a.end_at, tz),
        "time_zone": tz.name(),
        "status": a.status,
        "customer_name": a.customer_name,
        "customer_email": a.customer_email,
        "customer_phone": a.customer_phone,
    })
}

fn booking_error(e: BookingError) -> ToolError {
    match e {
        BookingError::SlotTaken => {
            ToolError("that time is already booked; choose another time".into())
        }
        BookingError::NotFound(c) => {
            ToolError(format!("no appointment with confirmation number {c}"))
        }
        BookingError::Cancelled(c) => ToolError(format!("appointment {c} is cancelled")),
        BookingError::Store(e) => e.into(),
    }
}

/// `APPT-` + 6 characters without look-alikes (no O/0, I/1).
pub fn confirmation_number() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    let code: String = (0..6)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("APPT-{code}")
}

fn normalise_confirmation(raw: &str) -> String {
    raw.trim().to_ascii_uppercase()
}

async fn list_services(ctx: &ToolContext, _: NoArgs) -> ToolResult {
    Ok(json!({ "services": ctx.org.settings.services }))
}

async fn check_availability(ctx: &ToolContext, a: AvailabilityArgs) -> ToolResult {
    let svc = service(ctx, &a.service_id)?;
    let tz = tz(ctx);
    let date = NaiveDate::parse_from_str(a.date.trim(), "%Y-%m-%d")
        .map_err(|_| ToolError(format!("date must be YYYY-MM-DD, got {:?}", a.date)))?;
    let minutes = i64::from(svc.duration_minutes);
    let day_start = parse_local(&format!("{date}T00:00"), tz)?;
    let booked: BTreeSet<DateTime<Utc>> = Bookings(&ctx.store)
        .booked_slots(&ctx.org.id, day_start, day_start + Duration::hours(26))
        .await?
        .into_iter()
        .collect();
    let mut slots = Vec::new();
    for (open, close) in opening_hours(ctx, date.weekday()) {
        let mut t = date.and_time(open);
        while t + Duration::minutes(minutes) <= date.and_time(close) {
            if let Some(start) = tz
                .from_local_datetime(&t)
                .earliest()
                .map(|s| s.with_timezone(&Utc))
            {
                if start > ctx.now && is_free(start, start + Duration::minutes(minutes), &booked) {
                    slots.push(t.format("%H:%M").to_string());
                }
            }
            t += Duration::minutes(OFFER_STEP_MINUTES);
        }
    }
    let available = match &a.time {
        Some(time) => {
            let start = parse_local(&format!("{date}T{}", time.trim()), tz)?;
            Some(check_bookable(ctx, start, minutes).is_ok_and(|end| is_free(start, end, &booked)))
        }
        None => None,
    };
    slots.truncate(16);
    Ok(json!({
        "service_id": svc.id,
        "date": date.to_string(),
        "time_zone": tz.name(),
        "time": a.time,
        "available": available,
        "slots": slots,
    }))
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(char::is_whitespace)
        && e.len() <= 254
}

async fn create_appointment(ctx: &ToolContext, a: CreateArgs) -> ToolResult {
    let svc = service(ctx, &a.service_id)?;
    let tz = tz(ctx);
    let name = a.customer_name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ToolError("customer_name is required".into()));
    }
    let email = a.customer_email.trim();
    if !valid_email(email) {
        return Err(ToolError(format!("{email:?} is not a valid email address")));
    }
    let phone = a
        .customer_phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    if phone.is_some_and(|p| {
        p.len() > 40
            || !p
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    }) {
        return Err(ToolError(
            "customer_phone may hold digits, spaces and + - ( ) . only".into(),
        ));
    }
    let start = parse_local(&a.start, tz)?;
    let end = check_bookable(ctx, start, i64::from(svc.duration_minutes))?;
    let new = NewAppointment {
        confirmation_number: confirmation_number(),
        service_id: svc.id.clone(),
        service_name: svc.name.clone(),
        start_at: start,
        end_at: end,
        customer_name: name.to_owned(),
        customer_email: email.to_owned(),
        customer_phone: phone.map(str::to_owned),
        end_user: ctx.end_user.as_ref().map(|u| u.as_str().to_owned()),
        conversation_id: Some(ctx.conversation_id),
    };
    let appt = Bookings(&ctx.store)
        .create_appointment(&ctx.org.id, &new, ctx.now)
        .await
        .map_err(booking_error)?;
    Ok(appointment_json(&appt, tz))
}

/// Whose bookings this chat may look up or change: see [`AppointmentScope`].
fn scope<'a>(ctx: &'a ToolContext) -> AppointmentScope<'a> {
    match &ctx.end_user {
        Some(u) => AppointmentScope::EndUser(u.as_str()),
        None => AppointmentScope::Conversation(ctx.conversation_id),
    }
}

/// The booking `c`, if this chat may act on it: its own, or one whose email address or phone
/// number is `contact` (a returning customer, like an airline's booking reference plus
/// surname). Otherwise the same error as an unknown number, so nothing is revealed.
async fn own_appointment(
    ctx: &ToolContext,
    c: &str,
    contact: Option<&str>,
) -> Result<Appointment, ToolError> {
    let bookings = Bookings(&ctx.store);
    if let Some(appt) = bookings
        .get_appointment_scoped(&ctx.org.id, c, &scope(ctx))
        .await?
    {
        return Ok(appt);
    }
    if let Some(contact) = contact.map(str::trim).filter(|c| !c.is_empty()) {
        if let Some(appt) = bookings.get_appointment(&ctx.org.id, c).await? {
            if made_with(&appt, contact) {
                return Ok(appt);
            }
        }
    }
    Err(booking_error(BookingError::NotFound(c.to_owned())))
}

/// Whether `contact` is the email address (any case) or the phone number the appointment was
/// booked with. Phone numbers compare by their digits, leading zeros dropped: the same digits
/// (at least seven), or one ending the other when a country or trunk prefix differs (at least
/// nine): "+49 170 1234567", "0049 170 1234567" and "0170 1234567" are the same number.
fn made_with(appt: &Appointment, contact: &str) -> bool {
    if contact.contains('@') {
        return appt.customer_email.trim().eq_ignore_ascii_case(contact);
    }
    let digits = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .trim_start_matches('0')
            .to_owned()
    };
    let given = digits(contact);
    appt.customer_phone.as_deref().is_some_and(|p| {
        let booked = digits(p);
        let (short, long) = if given.len() <= booked.len() {
            (&given, &booked)
        } else {
            (&booked, &given)
        };
        if short.len() == long.len() {
            short.len() >= 7 && short == long
        } else {
            // A country or trunk prefix more or less: the rest must be a whole number.
            short.len() >= 9 && long.ends_with(short.as_str())
        }
    })
}

async fn get_appointment(ctx: &ToolContext, a: ConfirmationArgs) -> ToolResult {
    let c = normalise_confirmation(&a.confirmation_number);
    let appt = own_appointment(ctx, &c, a.customer_contact.as_deref()).await?;
    Ok(appointment_json(&appt, tz(ctx)))
}

async fn cancel_appointment(ctx: &ToolContext, a: ConfirmationArgs) -> ToolResult {
    let c = normalise_confirmation(&a.confirmation_number);
    own_appointment(ctx, &c, a.customer_contact.as_deref()).await?;
    let appt = Bookings(&ctx.store)
        .cancel_appointment(&ctx.org.id, &c, ctx.now)
        .await
        .map_err(booking_error)?;
    Ok(appointment_json(&appt, tz(ctx)))
}

async fn reschedule_appointment(ctx: &ToolContext, a: RescheduleArgs) -> ToolResult {
    let c = normalise_confirmation(&a.confirmation_number);
    let tz = tz(ctx);
    let current = own_appointment(ctx, &c, a.customer_contact.as_deref()).await?;
    let start = parse_local(&a.start, tz)?;
    let end = check_bookable(
        ctx,
        start,
        (current.end_at - current.start_at).num_minutes(),
    )?;
    let appt = Bookings(&ctx.store)
        .reschedule_appointment(&ctx.org.id, &c, start, end, ctx.now)
        .await
        .map_err(booking_error)?;
    Ok(appointment_json(&appt, tz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_numbers_have_the_documented_shape() {
        let c = confirmation_number();
        assert!(c.starts_with("APPT-") && c.len() == 11, "{c}");
        assert!(
            c[5..]
                .chars()
                .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit())
        );
    }

    #[test]
    fn a_returning_customer_is_known_by_email_or_phone() {
        let now = Utc::now();
        let appt = Appointment {
            id: uuid::Uuid::nil(),
            confirmation_number: "APPT-ABC234".into(),
            service_id: "s".into(),
            service_name: "S".into(),
            start_at: now,
            end_at: now,
            customer_name: "Jo".into(),
            customer_email: "Jo@Example.com".into(),
            customer_phone: Some("+49 170 1234567".into()),
            status: "booked".into(),
            end_user: None,
            conversation_id: None,
            created_at: now,
            updated_at: now,
        };
        for yes in [
            "jo@example.com",
            "JO@EXAMPLE.COM",
            "0049 170 1234567",
            "0170-1234567",
            "+49 (170) 123 45 67",
        ] {
            assert!(made_with(&appt, yes), "{yes}");
        }
        for no in ["jo@example.org", "1234567", "0170 7654321", "", "Jo"] {
            assert!(!made_with(&appt, no), "{no}");
        }
    }

    #[test]
    fn emails_are_checked_loosely_but_sanely() {
        assert!(valid_email("john@example.com"));
        assert!(!valid_email("john@example"));
        assert!(!valid_email("john example@x.com"));
        assert!(!valid_email("@x.com"));
    }

    #[test]
    fn local_times_convert_through_the_time_zone() {
        let t = parse_local("2026-07-01T14:00", chrono_tz::Europe::Berlin).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-07-01T12:00:00+00:00");
        assert!(
            parse_local("2026-03-29T02:30", chrono_tz::Europe::Berlin).is_err(),
            "DST gap"
        );
        assert!(parse_local("tomorrow", chrono_tz::UTC).is_err());
    }
}
