//! What visitors ask besides booking — opening hours, prices, durations, whether a service is
//! offered — answered from the organisation's own settings and nothing else. A question the
//! settings hold no answer to (the address, parking, a price never set) is said to be unknown.

use chrono::{Datelike, NaiveDate, Weekday};

use super::nlu::{self as booking_nlu};
use crate::agent::offline::nlu::{normalize, pattern};
use crate::agent::offline::{Turn, join};
use crate::domain::Service;
use crate::domain::org::{BusinessHours, OpeningHours};

pattern!(
    HOURS,
    r"\b(?:opening\s+(?:hours|times)|business\s+hours|office\s+hours|(?:your|ur|the)\s+(?:hours|times)|hours\s+of\s+(?:operation|business)|when\s+(?:are|r)\s+(?:you|u|ya)\s+open|(?:are|r)\s+(?:you|u|ya)\s+open|(?:what|which|wat)\s+time\s+do\s+(?:you|u|ya)\s+(?:open|close|shut)|when\s+do\s+(?:you|u|ya)\s+(?:open|close|shut)|(?:what|wat)\s+(?:are|r)\s+(?:your|ur)\s+hours|closing\s+time|opening\s+time|(?:do|does)\s+(?:you|u|ya|it)\s+open)\b"
);
pattern!(
    PRICE,
    r"\b(?:how\s+much|price|prices|pricing|priced|cost|costs|charge|charges|fee|fees|rates?)\b"
);
pattern!(DURATION, r"\bhow\s+long\b");
pattern!(
    OFFER,
    r"^(?:so\s+|hi\s+|hey\s+|hello\s+)?(?:do|does|can)\s+(?:you|u|ya)\s+(?:guys\s+|also\s+)?(?:do|offer|have|provide)\s+(?:any\s+|a\s+|an\s+)?(.+?)[?.!]*$"
);
pattern!(
    NOT_A_SERVICE,
    r"\b(?:free|available|availability|appointments?|slots?|anything|something|space|room|time|times|openings?|today|tomorrow|monday|tuesday|wednesday|thursday|friday|saturday|sunday|week)\b"
);
pattern!(
    UNKNOWN_TOPIC,
    r"\b(?:where\s+(?:are|r)\s+(?:you|u)|located|location|address|directions|parking|park\s+(?:my|the)\s+car|insurance|wheelchair|accessible|payment\s+methods?|pay\s+(?:by|with)|credit\s+cards?|cash|website)\b"
);
pattern!(
    QUESTION_START,
    r"^(?:where|what|what's|whats|is|are|do|does|can|how|which|will|would)\b"
);
pattern!(
    FOLLOW_ON,
    r"^(?:and|what\s+about|how\s+about|and\s+what\s+about)\b"
);
pattern!(
    WEEKDAY_NAME,
    r"\b(mon|tue|wed|thu|fri|sat|sun)(?:day|sday|nesday|rsday|urday)?s?\b"
);

/// Opening a price answer, so "and the extended session?" can follow it.
const PRICE_MARK: &str = " costs ";

/// The answer to a question the organisation's settings can answer (or say they cannot), and
/// the service it was about.
pub fn answer(turn: &Turn<'_>, draft_service: Option<&str>) -> Option<(String, Option<String>)> {
    let text = turn.text;
    let s = normalize(text);
    if text.contains('@') {
        return None;
    }
    let services = turn.services();
    let named = booking_nlu::match_service(text, services);
    if HOURS.is_match(&s) {
        return Some((hours_answer(turn, &s), None));
    }
    if PRICE.is_match(&s) {
        let about = named.or_else(|| {
            // "How much is it?" while booking: the service being booked.
            draft_service.and_then(|id| services.iter().find(|svc| svc.id == id))
        });
        return Some(match about {
            Some(service) => (price_answer(service), Some(service.id.clone())),
            None => (all_prices(services), None),
        });
    }
    if DURATION.is_match(&s) {
        if let Some(service) = named {
            return Some((
                format!(
                    "The {} takes {} minutes.",
                    service.name, service.duration_minutes
                ),
                Some(service.id.clone()),
            ));
        }
    }
    // "And the extended session?" right after a price.
    if let Some(service) = named {
        if FOLLOW_ON.is_match(&s) && turn.previous_reply().contains(PRICE_MARK) {
            return Some((price_answer(service), Some(service.id.clone())));
        }
    }
    if let Some(c) = OFFER.captures(&s) {
        let what = c.get(1).map_or("", |m| m.as_str()).trim();
        if !what.is_empty() && !NOT_A_SERVICE.is_match(what) && turn.date_in(what).is_none() {
            return Some(match named {
                Some(service) => (
                    format!("Yes, we offer {}.", describe(service)),
                    Some(service.id.clone()),
                ),
                None if services.is_empty() => (
                    format!(
                        "Sorry, I don't have a list of our services, so I can't tell whether we offer {what}."
                    ),
                    None,
                ),
                None => (
                    format!(
                        "Sorry, {what} is not among our services. We offer {}.",
                        join(&names(services), "and")
                    ),
                    None,
                ),
            });
        }
    }
    let question = text.trim_end().ends_with('?') || QUESTION_START.is_match(&s);
    if question && UNKNOWN_TOPIC.is_match(&s) {
        return Some((
            "Sorry, I don't have that information here, so I'd rather not guess. Please contact us directly for it.".to_owned(),
            None,
        ));
    }
    None
}

fn names(services: &[Service]) -> Vec<String> {
    services.iter().map(|s| s.name.clone()).collect()
}

fn money(service: &Service) -> Option<String> {
    (service.price_cents > 0).then(|| {
        format!(
            "{}.{:02} {}",
            service.price_cents / 100,
            service.price_cents % 100,
            service.currency
        )
    })
}

fn describe(service: &Service) -> String {
    match money(service) {
        Some(price) => format!(
            "{} ({} min, {price})",
            service.name, service.duration_minutes
        ),
        None => format!("{} ({} min)", service.name, service.duration_minutes),
    }
}

fn price_answer(service: &Service) -> String {
    match money(service) {
        Some(price) => format!(
            "The {} ({} min){PRICE_MARK}{price}.",
            service.name, service.duration_minutes
        ),
        None => format!(
            "Sorry, I don't have a price for the {} here. Please ask us directly.",
            service.name
        ),
    }
}

fn all_prices(services: &[Service]) -> String {
    if services.is_empty() {
        return "Sorry, I don't have our services or prices here.".to_owned();
    }
    let listed: Vec<String> = services
        .iter()
        .map(|s| match money(s) {
            Some(price) => format!("{} {price} ({} min)", s.name, s.duration_minutes),
            None => format!("{} (no price listed)", s.name),
        })
        .collect();
    format!("Our prices: {}.", join(&listed, "and"))
}

const DAY_NAMES: [(Weekday, &str); 7] = [
    (Weekday::Mon, "Monday"),
    (Weekday::Tue, "Tuesday"),
    (Weekday::Wed, "Wednesday"),
    (Weekday::Thu, "Thursday"),
    (Weekday::Fri, "Friday"),
    (Weekday::Sat, "Saturday"),
    (Weekday::Sun, "Sunday"),
];

fn day_name(day: Weekday) -> &'static str {
    DAY_NAMES
        .iter()
        .find(|(d, _)| *d == day)
        .map_or("", |(_, n)| n)
}

fn intervals(hours: &BusinessHours, day: Weekday) -> &[OpeningHours] {
    match day {
        Weekday::Mon => &hours.mon,
        Weekday::Tue => &hours.tue,
        Weekday::Wed => &hours.wed,
        Weekday::Thu => &hours.thu,
        Weekday::Fri => &hours.fri,
        Weekday::Sat => &hours.sat,
        Weekday::Sun => &hours.sun,
    }
}

/// "09:00–12:00 and 13:00–17:00"
fn spans(list: &[OpeningHours]) -> String {
    let parts: Vec<String> = list
        .iter()
        .map(|h| format!("{}\u{2013}{}", h.open, h.close))
        .collect();
    join(&parts, "and")
}

fn weekday_of(abbrev: &str) -> Option<Weekday> {
    DAY_NAMES
        .iter()
        .find(|(_, name)| name.to_lowercase().starts_with(abbrev))
        .map(|(d, _)| *d)
}

fn hours_answer(turn: &Turn<'_>, s: &str) -> String {
    let hours = &turn.req.context.org.settings.business_hours;
    if DAY_NAMES
        .iter()
        .all(|(d, _)| intervals(hours, *d).is_empty())
    {
        return "Sorry, I don't have our opening hours here. Please contact us directly."
            .to_owned();
    }
    let asked_date: Option<NaiveDate> = turn.date_in(s);
    let asked_day = WEEKDAY_NAME
        .captures(s)
        .and_then(|c| weekday_of(&c[1]))
        .or_else(|| asked_date.map(|d| d.weekday()));
    if let Some(day) = asked_day {
        let name = day_name(day);
        let when = match asked_date {
            Some(date) if WEEKDAY_NAME.captures(s).is_none() => {
                format!("{name} {}", date.format("%-d %B"))
            }
            _ => format!("{name}s"),
        };
        let list = intervals(hours, day);
        return if list.is_empty() {
            format!("We're closed on {when}. {}", week(hours))
        } else {
            format!("On {when} we're open {}.", spans(list))
        };
    }
    week(hours)
}

/// The week's hours, days with the same hours grouped: "Monday to Friday 09:00–17:00; closed
/// on Saturday and Sunday."
fn week(hours: &BusinessHours) -> String {
    let mut groups: Vec<(Vec<Weekday>, String)> = Vec::new();
    let mut closed = Vec::new();
    for (day, _) in DAY_NAMES {
        let list = intervals(hours, day);
        if list.is_empty() {
            closed.push(day_name(day).to_owned());
            continue;
        }
        let span = spans(list);
        match groups.last_mut() {
            Some((days, last)) if *last == span && days.last().is_some_and(|d| d.succ() == day) => {
                days.push(day);
            }
            _ => groups.push((vec![day], span)),
        }
    }
    let mut parts: Vec<String> = groups
        .iter()
        .map(|(days, span)| match days.as_slice() {
            [one] => format!("{} {span}", day_name(*one)),
            [first, .., last] => format!("{} to {} {span}", day_name(*first), day_name(*last)),
            [] => String::new(),
        })
        .collect();
    if !closed.is_empty() {
        parts.push(format!("closed on {}", join(&closed, "and")));
    }
    format!("Our opening hours: {}.", parts.join("; "))
}
