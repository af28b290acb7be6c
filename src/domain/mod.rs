//! The bottom layer: the types every other module speaks in, and nothing else of the crate.
//! A value of one of the validated types here exists only if it is valid ("parse, don't
//! validate"); wire DTOs are converted into them with `parse`/`TryFrom` at the edge.
//!
//! - [`agents`]: the mailbox's agent handles;
//! - [`ids`]: identifiers as newtypes (organisation, conversation, run, message, end user);
//! - [`text`]: validated free text (chat messages);
//! - [`org`]: an organisation, its settings and the rules for changing them;
//! - [`chat`]: what the model sees (roles, messages, tool calls, usage);
//! - [`conversation`]: conversations, messages and runs as stored, and their state;
//! - [`turn`]: what a turn produces, and the typed events a run emits;
//! - [`events`]: webhook event types and payloads;
//! - [`page`](mod@page): pagination.

pub mod agents;
pub mod chat;
pub mod conversation;
pub mod events;
pub mod ids;
pub mod org;
pub mod page;
pub mod text;
pub mod turn;

use serde::Serialize;
use utoipa::ToSchema;

pub use ids::{ConversationId, EndUserId, MessageId, OrgId, RunId, parse_uuid};
pub use org::{Org, OrgSettings, RateLimit, Service, Tier};
pub use text::MessageText;

/// Why a raw value was refused; becomes a field error at the HTTP boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

pub(crate) fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON path of the field (`services[0].name`), or the name of a path/query parameter.
    #[schema(example = "name")]
    pub field: String,
    /// What is wrong with it, written for a person.
    #[schema(example = "must not be empty")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The current time at the precision both backends store (PostgreSQL keeps microseconds), so
/// a value returned at creation equals the value read back later.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

/// Which edge of a plain date a time bound in a query stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayEdge {
    /// `from=2026-12-01`: from the start of that day.
    Start,
    /// `to=2026-12-01`: up to the end of that day (the start of the next one, exclusive).
    End,
}

/// What a date in a query may look like, for error messages.
pub const QUERY_TIME_FORMATS: &str =
    "a date like 2026-12-01 or an RFC 3339 date-time like 2026-12-01T09:00:00Z";

/// A time bound given in a query string (issue 11.8): an RFC 3339 date-time, or a plain date
/// (`2026-12-01`) read in `tz`, the organisation's time zone, at the `edge` of that day.
pub fn parse_query_time(
    raw: &str,
    tz: chrono_tz::Tz,
    edge: DayEdge,
) -> Result<chrono::DateTime<chrono::Utc>, Invalid> {
    use chrono::{NaiveDate, TimeZone, Utc};
    let raw = raw.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad = || invalid(format!("expected {QUERY_TIME_FORMATS}, got {raw:?}"));
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| bad())?;
    let day = match edge {
        DayEdge::Start => date,
        DayEdge::End => date.succ_opt().ok_or_else(bad)?,
    };
    // Midnight can fall in a DST gap in a few zones: take the first instant of the day.
    let midnight = day.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
    tz.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(bad)
}

#[cfg(test)]
mod query_time_tests {
    use super::*;

    #[test]
    fn plain_dates_and_date_times_are_accepted_and_others_named() {
        let berlin = chrono_tz::Europe::Berlin;
        let from = parse_query_time("2026-12-01", berlin, DayEdge::Start).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-11-30T23:00:00+00:00");
        let to = parse_query_time("2026-12-01", berlin, DayEdge::End).unwrap();
        assert_eq!(to.to_rfc3339(), "2026-12-01T23:00:00+00:00");
        let exact = parse_query_time("2026-12-01T09:30:00+01:00", berlin, DayEdge::End).unwrap();
        assert_eq!(exact.to_rfc3339(), "2026-12-01T08:30:00+00:00");
        for bad in [
            "2026-12",
            "01/12/2026",
            "2026-13-01",
            "",
            "2026-12-01T09:00",
        ] {
            let e = parse_query_time(bad, berlin, DayEdge::Start).unwrap_err();
            assert!(
                e.0.contains("2026-12-01") && e.0.contains("RFC 3339"),
                "{bad}: {e}"
            );
        }
    }
}
