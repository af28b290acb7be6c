//! Deterministic text understanding for the offline model: dates and times, contact details,
//! service names, confirmation numbers and the user's intent. Pure functions, no I/O, so the
//! offline model answers the same way every time (what its tests and the demo rely on).

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};
use regex::Regex;

use crate::orgs::Service;

/// Compiles one of this module's constant patterns.
#[expect(
    clippy::expect_used,
    reason = "constant patterns, each exercised by the unit tests below"
)]
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid constant pattern")
}

macro_rules! pattern {
    ($name:ident, $pattern:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| re(&$pattern));
    };
}

// ---------------------------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------------------------

pattern!(AM_PM_DOTS, r"\b([ap])\.\s?m\b\.?");
pattern!(DIGIT_T_DIGIT, r"(\d)t(\d)");
pattern!(SPACES, r"\s+");

/// Lower case, typographic apostrophes made plain, "p.m." made "pm" and ISO's `T` between date
/// and time made a space, so the patterns below need to know only one spelling.
fn normalize(text: &str) -> String {
    let lower = text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'");
    let lower = AM_PM_DOTS.replace_all(&lower, "${1}m");
    let lower = DIGIT_T_DIGIT.replace_all(&lower, "$1 $2");
    SPACES.replace_all(lower.trim(), " ").into_owned()
}

/// The words of a text: lower case, letters, digits and apostrophes only.
fn words(text: &str) -> Vec<String> {
    normalize(text)
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Times
// ---------------------------------------------------------------------------------------------

pattern!(TIME_AM_PM, r"\b(\d{1,2})(?::(\d{2}))?\s*(am|pm)\b");
pattern!(TIME_COLON, r"(?:^|[^\d:])(\d{1,2}):(\d{2})(?:[^\d:]|$)");
pattern!(TIME_H, r"\b(\d{1,2})h(\d{2})?\b");
pattern!(TIME_OCLOCK, r"\b(\d{1,2})\s*o'?\s*clock\b");
pattern!(TIME_AT_HOUR, r"\b(?:at|around|about|@)\s+(\d{1,2})\b");
pattern!(NOON, r"\b(?:noon|midday|lunchtime)\b");
pattern!(MIDNIGHT, r"\bmidnight\b");

/// A time of day in the text ("2 PM", "14:00", "3:30pm", "noon", "at 4"), if any. A bare hour
/// from 1 to 6 without am/pm is read as afternoon: businesses are rarely open at 3 at night,
/// and people who say "at 3" mean 15:00.
pub fn parse_time(text: &str) -> Option<NaiveTime> {
    time_in(&normalize(text))
}

fn afternoon_if_ambiguous(hour: u32, digits: &str) -> u32 {
    // "03:30" is explicit 24-hour time; "3:30" is not.
    if digits.len() == 1 && (1..=6).contains(&hour) {
        hour + 12
    } else {
        hour
    }
}

fn time_in(s: &str) -> Option<NaiveTime> {
    if let Some(c) = TIME_AM_PM.captures(s) {
        let hour: u32 = c[1].parse().ok()?;
        let minute: u32 = c.get(2).map_or(Some(0), |m| m.as_str().parse().ok())?;
        let pm = &c[3] == "pm";
        let hour = match (hour, pm) {
            (12, false) => 0,
            (h, true) if (1..12).contains(&h) => h + 12,
            (h, _) if (1..=23).contains(&h) => h,
            _ => return None,
        };
        return NaiveTime::from_hms_opt(hour, minute, 0);
    }
    if let Some(c) = TIME_COLON.captures(s) {
        let hour: u32 = c[1].parse().ok()?;
        let minute: u32 = c[2].parse().ok()?;
        return NaiveTime::from_hms_opt(afternoon_if_ambiguous(hour, &c[1]), minute, 0);
    }
    if NOON.is_match(s) {
        return NaiveTime::from_hms_opt(12, 0, 0);
    }
    if MIDNIGHT.is_match(s) {
        return NaiveTime::from_hms_opt(0, 0, 0);
    }
    if let Some(c) = TIME_H.captures(s) {
        let hour: u32 = c[1].parse().ok()?;
        let minute: u32 = c.get(2).map_or(Some(0), |m| m.as_str().parse().ok())?;
        return NaiveTime::from_hms_opt(hour, minute, 0);
    }
    if let Some(c) = TIME_OCLOCK.captures(s) {
        let hour: u32 = c[1].parse().ok()?;
        return NaiveTime::from_hms_opt(afternoon_if_ambiguous(hour, &c[1]), 0, 0);
    }
    for c in TIME_AT_HOUR.captures_iter(s) {
        let Some(whole) = c.get(0) else { continue };
        // "at 3 December" names a day, not an hour.
        let rest = s[whole.end()..].trim_start();
        if MONTH_AT_START.is_match(rest) || rest.starts_with(['/', '.', '-']) {
            continue;
        }
        let hour: u32 = c[1].parse().ok()?;
        if hour <= 23 {
            return NaiveTime::from_hms_opt(afternoon_if_ambiguous(hour, &c[1]), 0, 0);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------------

const MONTHS: &str = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?";

pattern!(MONTH_AT_START, format!(r"^(?:{MONTHS})\b"));
pattern!(ISO_DATE, r"\b(\d{4})[-/](\d{1,2})[-/](\d{1,2})\b");
pattern!(
    DAY_MONTH,
    format!(r"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({MONTHS})\b\.?(?:,?\s+(\d{{4}})\b)?")
);
pattern!(
    MONTH_DAY,
    format!(r"\b({MONTHS})\.?\s+(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?")
);
pattern!(THE_NTH, r"\b(?:the|on)\s+(\d{1,2})(?:st|nd|rd|th)\b");
pattern!(DAY_AFTER_TOMORROW, r"\bday after tomorrow\b");
pattern!(
    TOMORROW,
    r"\b(?:tomorrow|tmrw|tmr|tomorow|tommorow|tommorrow)\b"
);
pattern!(
    TODAY,
    r"\b(?:today|tonight|this (?:morning|afternoon|evening))\b"
);
pattern!(
    IN_DAYS,
    r"\bin\s+(\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten)\s+(days?|weeks?)\b"
);
pattern!(
    WEEKDAY,
    r"\b(?:(next|this|coming)\s+)?(monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues?|wed|thu(?:rs?)?|fri)\b"
);
pattern!(NEXT_WEEK, r"\bnext week\b");

/// A calendar date in the text, relative ones ("tomorrow", "Friday") counted from today in
/// `tz` — near midnight UTC and the business's day differ.
pub fn parse_date(text: &str, now: DateTime<Utc>, tz: chrono_tz::Tz) -> Option<NaiveDate> {
    date_in(&normalize(text), today_in(now, tz))
}

/// The business's calendar day at `now`.
pub fn today_in(now: DateTime<Utc>, tz: chrono_tz::Tz) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

/// A date and a time in the text, as wall-clock time in `tz`. `None` unless both are there:
/// use [`parse_date`] and [`parse_time`] to combine a part with one collected earlier.
pub fn parse_datetime(text: &str, now: DateTime<Utc>, tz: chrono_tz::Tz) -> Option<NaiveDateTime> {
    let s = normalize(text);
    let date = date_in(&s, today_in(now, tz))?;
    let time = time_in(&s)?;
    Some(NaiveDateTime::new(date, time))
}

fn month_number(name: &str) -> Option<u32> {
    let key: String = name.chars().take(3).collect();
    let n = match key.as_str() {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    Some(n)
}

/// A day and month without a year mean the next time that date comes round.
fn with_year(today: NaiveDate, year: Option<&str>, month: u32, day: u32) -> Option<NaiveDate> {
    if let Some(year) = year {
        return NaiveDate::from_ymd_opt(year.parse().ok()?, month, day);
    }
    match NaiveDate::from_ymd_opt(today.year(), month, day) {
        Some(date) if date >= today => Some(date),
        _ => NaiveDate::from_ymd_opt(today.year() + 1, month, day),
    }
}

fn add_days(date: NaiveDate, days: u64) -> Option<NaiveDate> {
    date.checked_add_days(Days::new(days))
}

fn weekday_from(name: &str) -> Option<Weekday> {
    let key: String = name.chars().take(3).collect();
    let day = match key.as_str() {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    };
    Some(day)
}

fn small_number(word: &str) -> Option<u64> {
    let n = match word {
        "a" | "an" | "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        digits => digits.parse().ok()?,
    };
    Some(n)
}

fn date_in(s: &str, today: NaiveDate) -> Option<NaiveDate> {
    if let Some(c) = ISO_DATE.captures(s) {
        return NaiveDate::from_ymd_opt(c[1].parse().ok()?, c[2].parse().ok()?, c[3].parse().ok()?);
    }
    if let Some(c) = DAY_MONTH.captures(s) {
        let month = month_number(&c[2])?;
        return with_year(
            today,
            c.get(3).map(|m| m.as_str()),
            month,
            c[1].parse().ok()?,
        );
    }
    for c in MONTH_DAY.captures_iter(s) {
        let Some(day) = c.get(2) else { continue };
        // "December 15:00" is a month followed by a time, not the 15th.
        if s[day.end()..].starts_with(':') {
            continue;
        }
        let month = month_number(&c[1])?;
        return with_year(
            today,
            c.get(3).map(|m| m.as_str()),
            month,
            day.as_str().parse().ok()?,
        );
    }
    if let Some(c) = THE_NTH.captures(s) {
        let day: u32 = c[1].parse().ok()?;
        return match NaiveDate::from_ymd_opt(today.year(), today.month(), day) {
            Some(date) if date >= today => Some(date),
            _ => {
                let next_month = today.checked_add_months(chrono::Months::new(1))?;
                NaiveDate::from_ymd_opt(next_month.year(), next_month.month(), day)
            }
        };
    }
    if DAY_AFTER_TOMORROW.is_match(s) {
        return add_days(today, 2);
    }
    if TOMORROW.is_match(s) {
        return add_days(today, 1);
    }
    if TODAY.is_match(s) {
        return Some(today);
    }
    if let Some(c) = IN_DAYS.captures(s) {
        let n = small_number(&c[1])?;
        let per = if c[2].starts_with("week") { 7 } else { 1 };
        return add_days(today, n * per);
    }
    if let Some(c) = WEEKDAY.captures(s) {
        let wanted = weekday_from(&c[2])?;
        let offset = |from: Weekday| {
            u64::from((7 + wanted.num_days_from_monday() - from.num_days_from_monday()) % 7)
        };
        if NEXT_WEEK.is_match(s) {
            // "Tuesday next week": that weekday in the week after this one.
            let monday = add_days(today, 7 - u64::from(today.weekday().num_days_from_monday()))?;
            return add_days(monday, offset(Weekday::Mon));
        }
        let days = offset(today.weekday());
        // "this Friday" on a Friday is today; a bare or "next" Friday is the next one after
        // today.
        let days = match (days, c.get(1).map(|m| m.as_str())) {
            (0, Some("this")) => 0,
            (0, _) => 7,
            (d, _) => d,
        };
        return add_days(today, days);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Contact details
// ---------------------------------------------------------------------------------------------

/// Contact details found in a message; each part is independent, so they can arrive in pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl Contact {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.email.is_none() && self.phone.is_none()
    }
}

pattern!(
    EMAIL,
    r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
);
pattern!(PHONE, r"(?:\+|\(\+?)?\d[\d \t\-()./]{4,}\d");
pattern!(DATE_LIKE, r"\d{4}-\d{1,2}-\d{1,2}");
pattern!(
    NAME_SEPARATORS,
    r"(?i)[\n,;|]|\band\b|\s[-\u{2013}\u{2014}]\s"
);
pattern!(
    NAME_LABEL,
    r"(?i)^(?:(?:my|the|full|your)\s+)?(?:full\s+)?name(?:'s|\s+is|\s+should\s+be|\s+to)?\b[\s:\-]*|^i'm\s+|^im\s+|^i\s+am\s+|^this\s+is\s+|^it's\s+|^it\s+is\s+|^(?:you\s+can\s+)?call\s+me\s+|^(?:please\s+)?(?:change|update|set|make)\s+(?:my|the)\s+name\s+(?:to\s+)?|^(?:book|put)\s+it\s+(?:under|for)\s+(?:the\s+name\s+)?"
);
pattern!(
    NAME_FILLER,
    r"(?i)^(?:hi|hello|hey|ok|okay|sure|yes|yeah|yep|well|so|also|oh|great|perfect|thanks|thank\s+you)\b[\s,!.:]*"
);
pattern!(
    NAME_AFTER_FOR,
    r"(?i)\b(?:for|under)\s+(?:the\s+name\s+(?:of\s+)?)?(.+)$"
);
pattern!(NAME_WORD, r"^\p{L}[\p{L}'\-]*\.?$");

/// Words that never make up a name, so "yes", "tomorrow instead" or "my email is" are not
/// taken for one.
const NAME_STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "actually",
    "address",
    "afternoon",
    "again",
    "all",
    "am",
    "an",
    "and",
    "any",
    "appointment",
    "appointments",
    "are",
    "as",
    "at",
    "be",
    "book",
    "booking",
    "but",
    "by",
    "can",
    "cancel",
    "cell",
    "change",
    "confirm",
    "consultation",
    "correct",
    "could",
    "date",
    "day",
    "did",
    "do",
    "does",
    "done",
    "email",
    "e-mail",
    "evening",
    "fine",
    "for",
    "friday",
    "from",
    "good",
    "great",
    "had",
    "has",
    "have",
    "hello",
    "help",
    "here",
    "hey",
    "hi",
    "how",
    "i",
    "i'd",
    "i'll",
    "i'm",
    "in",
    "instead",
    "is",
    "it",
    "it's",
    "its",
    "just",
    "later",
    "like",
    "mail",
    "maybe",
    "me",
    "midnight",
    "mobile",
    "monday",
    "morning",
    "my",
    "name",
    "need",
    "next",
    "no",
    "noon",
    "nope",
    "not",
    "now",
    "number",
    "of",
    "ok",
    "okay",
    "on",
    "or",
    "our",
    "phone",
    "please",
    "pm",
    "reschedule",
    "right",
    "saturday",
    "service",
    "services",
    "session",
    "should",
    "some",
    "soon",
    "sorry",
    "sunday",
    "sure",
    "task",
    "tasks",
    "tel",
    "telephone",
    "thank",
    "thanks",
    "that",
    "the",
    "then",
    "there",
    "these",
    "this",
    "those",
    "thursday",
    "time",
    "to",
    "today",
    "tomorrow",
    "tonight",
    "tuesday",
    "visit",
    "want",
    "was",
    "we",
    "wednesday",
    "week",
    "what",
    "when",
    "where",
    "which",
    "who",
    "why",
    "with",
    "would",
    "wrong",
    "yeah",
    "yep",
    "yes",
    "you",
    "your",
];

/// Label words left behind when the value they introduced was taken out ("my email is").
const CONTACT_LABEL_WORDS: &[&str] = &[
    "and",
    "my",
    "email",
    "e-mail",
    "mail",
    "phone",
    "number",
    "is",
    "tel",
    "telephone",
    "mobile",
    "cell",
    "address",
    "at",
    "or",
    "the",
    "your",
    "here",
    "its",
    "it's",
    ":",
];

/// Name, email and phone in any order: on one line with commas, on several lines, labelled
/// ("Name: …", "my email is …", "phone …") or not.
pub fn parse_contact(text: &str) -> Contact {
    let mut rest = text.replace(['\u{2019}', '\u{2018}'], "'");
    let email = EMAIL.find(&rest).map(|m| m.as_str().to_owned());
    if let Some(email) = &email {
        // Taken out so the local part's digits are not read as a phone number.
        rest = rest.replacen(email.as_str(), "\n", 1);
    }
    let phone = PHONE
        .find_iter(&rest)
        .map(|m| m.as_str().trim().to_owned())
        .find(|p| {
            let digits = p.chars().filter(char::is_ascii_digit).count();
            (7..=15).contains(&digits) && !DATE_LIKE.is_match(p)
        });
    if let Some(phone) = &phone {
        rest = rest.replacen(phone.as_str(), "\n", 1);
    }
    Contact {
        name: find_name(&rest),
        email,
        phone,
    }
}

fn find_name(text: &str) -> Option<String> {
    let mut unlabelled = None;
    for segment in NAME_SEPARATORS.split(text) {
        let mut segment = segment.trim();
        let mut labelled = false;
        loop {
            let before = segment;
            if let Some(m) = NAME_FILLER.find(segment) {
                segment = segment[m.end()..].trim_start();
            }
            if let Some(m) = NAME_LABEL.find(segment) {
                labelled = true;
                segment = segment[m.end()..].trim_start();
            }
            if segment == before {
                break;
            }
        }
        // "… at 3pm for Ana Silva": a name at the end of a longer request.
        let trailing = || {
            let c = NAME_AFTER_FOR.captures(segment)?;
            clean_name(c.get(1)?.as_str())
        };
        let Some(name) = clean_name(segment).or_else(trailing) else {
            continue;
        };
        if labelled {
            return Some(name);
        }
        unlabelled.get_or_insert(name);
    }
    unlabelled
}

fn clean_name(segment: &str) -> Option<String> {
    let mut words: Vec<&str> = segment
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| matches!(c, ',' | ':' | ';' | '!' | '?' | '"')))
        .filter(|w| !w.is_empty())
        .collect();
    while let Some(last) = words.last() {
        let bare = last.trim_end_matches('.').to_lowercase();
        if CONTACT_LABEL_WORDS.contains(&bare.as_str()) || bare.is_empty() {
            words.pop();
        } else {
            break;
        }
    }
    if words.is_empty() || words.len() > 5 {
        return None;
    }
    let acceptable = words.iter().all(|w| {
        let bare = w.trim_end_matches('.').to_lowercase();
        NAME_WORD.is_match(w) && !NAME_STOP_WORDS.contains(&bare.as_str())
    });
    if !acceptable {
        return None;
    }
    let name = words.join(" ");
    let name = name.trim_end_matches('.').to_owned();
    // "john doe" typed in a hurry reads better as "John Doe"; mixed case is left as typed.
    if name.chars().any(char::is_uppercase) {
        Some(name)
    } else {
        Some(title_case(&name))
    }
}

fn title_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut start = true;
    for c in text.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c == ' ' || c == '-';
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Services and titles
// ---------------------------------------------------------------------------------------------

/// Words that say nothing about which service is meant.
const SERVICE_STOP_WORDS: &[&str] = &[
    "a", "an", "the", "one", "i", "i'd", "id", "need", "want", "like", "book", "booking", "please",
    "would", "to", "for", "me", "my", "with", "at", "on", "in", "of", "and", "or", "get", "have",
    "do", "can", "could", "some", "this", "that", "is", "it",
];

/// Service-name words too generic to pick a service on their own ("a session").
const GENERIC_SERVICE_WORDS: &[&str] = &["session", "visit", "appointment", "service", "meeting"];

fn name_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// How well one word the user wrote stands for one word of a name, weighted by length so a
/// long distinctive word outweighs a short one ("up" in "Follow-up").
fn word_score(said: &str, name_word: &str) -> f64 {
    let (sl, nl) = (said.chars().count(), name_word.chars().count());
    if said == name_word {
        return nl as f64;
    }
    if sl >= 4 && name_word.starts_with(said) {
        return sl as f64;
    }
    if nl >= 4 && said.starts_with(name_word) {
        return nl as f64;
    }
    if sl >= 4 && nl >= 4 {
        let similarity = strsim::normalized_levenshtein(said, name_word);
        if similarity >= 0.75 {
            return nl as f64 * similarity;
        }
    }
    0.0
}

/// How well `text` names `name` (a service name or title); 0 when it does not.
fn name_score(text_words: &[String], name: &str) -> f64 {
    name_tokens(name)
        .iter()
        .map(|name_word| {
            let best = text_words
                .iter()
                .filter(|w| !SERVICE_STOP_WORDS.contains(&w.as_str()))
                .map(|w| word_score(w, name_word))
                .fold(0.0, f64::max);
            if GENERIC_SERVICE_WORDS.contains(&name_word.as_str()) {
                best / 2.0
            } else {
                best
            }
        })
        .sum()
}

/// The service the text names, by id or name, tolerant of case, typos and partial words.
/// `None` when nothing is close, or when two services fit equally well (better to ask).
pub fn match_service<'a>(text: &str, services: &'a [Service]) -> Option<&'a Service> {
    let s = normalize(text);
    let spaced = s.replace('-', " ");
    if let Some(exact) = services.iter().find(|svc| {
        let name = svc.name.to_lowercase();
        let id = svc.id.to_lowercase();
        s.contains(&id)
            || spaced.contains(&id.replace('-', " "))
            || s.contains(&name)
            || spaced.contains(&name.replace('-', " "))
    }) {
        return Some(exact);
    }
    let text_words = words(text);
    let mut scored: Vec<(f64, &Service)> = services
        .iter()
        .map(|svc| {
            let by_name = name_score(&text_words, &svc.name);
            let by_id = name_score(&text_words, &svc.id);
            (by_name.max(by_id), svc)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    match scored.as_slice() {
        [(best, svc), rest @ ..]
            if *best >= 4.0 && rest.first().is_none_or(|(second, _)| *best - *second > 0.5) =>
        {
            Some(svc)
        }
        _ => None,
    }
}

/// Index of the title best matching `wanted`: equal ignoring case, then containing or contained,
/// then a close spelling. `None` when nothing is close.
pub fn match_title(wanted: &str, titles: &[&str]) -> Option<usize> {
    let wanted = normalize(wanted.trim_matches(|c: char| c == '"' || c == '\'' || c == '.'));
    if wanted.is_empty() {
        return None;
    }
    let lowered: Vec<String> = titles.iter().map(|t| normalize(t)).collect();
    if let Some(i) = lowered.iter().position(|t| *t == wanted) {
        return Some(i);
    }
    if let Some(i) = lowered
        .iter()
        .position(|t| wanted.len() >= 3 && (t.contains(&wanted) || wanted.contains(t.as_str())))
    {
        return Some(i);
    }
    lowered
        .iter()
        .enumerate()
        .map(|(i, t)| (strsim::normalized_levenshtein(t, &wanted), i))
        .filter(|(similarity, _)| *similarity >= 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, i)| i)
}

// ---------------------------------------------------------------------------------------------
// Confirmation numbers
// ---------------------------------------------------------------------------------------------

pattern!(CONFIRMATION, r"(?i)\bappt-([a-z0-9]{6})\b");

/// An appointment's confirmation number (`APPT-` and six letters or digits), upper-cased.
pub fn confirmation_number(text: &str) -> Option<String> {
    CONFIRMATION
        .captures(text)
        .map(|c| format!("APPT-{}", c[1].to_uppercase()))
}

// ---------------------------------------------------------------------------------------------
// Intents
// ---------------------------------------------------------------------------------------------

/// Which tasks to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    All,
    Pending,
    Completed,
}

impl TaskStatus {
    /// As the `list_tasks` tool takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Pending => "pending",
            Self::Completed => "completed",
        }
    }
}

/// What the user wants, as far as the words alone tell. Dates, services and contact details
/// are extracted separately, since one message often carries several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    Greeting,
    Book,
    Confirm,
    Deny,
    Cancel {
        confirmation: Option<String>,
    },
    Reschedule {
        confirmation: Option<String>,
    },
    /// "What's my appointment APPT-…", "when is my appointment".
    ShowAppointment {
        confirmation: Option<String>,
    },
    ListServices,
    AddTask {
        title: String,
        description: Option<String>,
    },
    ListTasks {
        status: TaskStatus,
    },
    CompleteTask {
        title: String,
    },
    UpdateTask {
        title: String,
        new_title: Option<String>,
        description: Option<String>,
    },
    DeleteTask {
        title: String,
    },
    Unknown,
}

/// Phrases that say yes; a message made only of these (and polite filler) confirms.
const YES_PHRASES: &[&str] = &[
    "yes",
    "yep",
    "yeah",
    "yup",
    "ya",
    "y",
    "sure",
    "ok",
    "okay",
    "k",
    "confirm",
    "confirmed",
    "correct",
    "sounds good",
    "sounds great",
    "sounds perfect",
    "looks good",
    "looks great",
    "please do",
    "go ahead",
    "go for it",
    "book it",
    "do it",
    "let's do it",
    "lets do it",
    "that's right",
    "thats right",
    "that is right",
    "that's correct",
    "perfect",
    "absolutely",
    "definitely",
    "alright",
    "all right",
    "of course",
    "exactly",
    "right",
    "great",
    "fine",
    "i confirm",
    "yes please",
];
const NO_PHRASES: &[&str] = &[
    "no",
    "nope",
    "nah",
    "not now",
    "not yet",
    "cancel that",
    "never mind",
    "nevermind",
    "forget it",
    "don't",
    "dont",
    "do not",
    "wrong",
    "incorrect",
    "not right",
    "that's wrong",
    "thats wrong",
    "that's not right",
    "hold on",
    "wait",
    "stop",
    "no way",
    "not really",
];
const POLITE_FILLER: &[&str] = &[
    "please",
    "thanks",
    "thank",
    "you",
    "thank you",
    "very",
    "much",
    "so",
    "oh",
    "and",
    "that",
    "that's",
    "thats",
    "is",
    "it",
    "sounds",
    "looks",
    "good",
    "actually",
    "sorry",
    "then",
];

/// True when `words` is made up entirely of `phrases` and filler, with at least one phrase.
fn only_phrases(words: &[String], phrases: &[&str]) -> bool {
    let mut i = 0;
    let mut strong = false;
    'outer: while i < words.len() {
        for (list, is_strong) in [(phrases, true), (POLITE_FILLER, false)] {
            // Longest phrase first, so "sounds good" wins over "sounds" as filler.
            let mut best = 0;
            for phrase in list.iter() {
                let parts: Vec<&str> = phrase.split(' ').collect();
                if parts.len() > best
                    && words.len() >= i + parts.len()
                    && parts.iter().zip(&words[i..]).all(|(p, w)| p == w)
                {
                    best = parts.len();
                }
            }
            if best > 0 {
                strong |= is_strong;
                i += best;
                continue 'outer;
            }
        }
        return false;
    }
    strong
}

const TASK_PREFIX: &str = r"(?i)^(?:(?:please|pls|can\s+you|could\s+you|would\s+you|kindly)\s+)*";

pattern!(
    ADD_TASK,
    format!(
        r"{TASK_PREFIX}(?:add|create|make|new|put)\s+(?:a\s+|an\s+)?(?:new\s+)?(?:task|todo|to-do|to\s+do|reminder)(?:\s+(?:to|for|called|named|titled))?\s*[:\-\u{{2013}}]?\s*(.+)$"
    )
);
pattern!(
    REMIND_ME,
    format!(r"{TASK_PREFIX}remind\s+me\s+(?:to\s+)?(.+)$")
);
pattern!(
    ADD_TO_LIST,
    format!(
        r"{TASK_PREFIX}(?:add|put)\s+(.+?)\s+(?:to|on)\s+(?:my\s+)?(?:task\s*list|tasks|todo\s*list|to-do\s*list|to\s+do\s+list|list)$"
    )
);
pattern!(
    TASK_COLON,
    r"(?i)^(?:new\s+)?(?:task|todo|to-do)\s*:\s*(.+)$"
);
// "…, description: X", "… with description X", "… (details: X)"; a title that merely
// contains the word ("take notes") is left alone.
pattern!(
    TASK_DESCRIPTION,
    r"(?i)^(.+?)\s*(?:[,;(\-\u{2013}]\s*(?:with\s+)?|\s+with\s+)(?:the\s+|a\s+)?(?:description|details|notes?)\s*(?::|=|is)?\s*(.+?)\)?$|^(.+?)\s+(?:description|details|notes?)\s*:\s*(.+)$"
);
pattern!(
    COMPLETE_MARK,
    format!(
        r"{TASK_PREFIX}(?:mark|set)\s+(?:the\s+)?(?:task\s+)?(.+?)\s+(?:as\s+)?(?:done|complete|completed|finished)$"
    )
);
pattern!(
    COMPLETE_VERB,
    format!(
        r"{TASK_PREFIX}(?:complete|finish|check\s+off|tick\s+off|cross\s+off)\s+(?:the\s+)?(?:task\s+)?(.+)$"
    )
);
pattern!(
    COMPLETE_DONE,
    r"(?i)^(?:i\s+have\s+|i've\s+|i'm\s+|i\s+am\s+|i\s+)?(?:done\s+with|finished|completed)\s+(?:the\s+)?(?:task\s+)?(.+)$"
);
pattern!(
    COMPLETE_IS_DONE,
    r"(?i)^(?:the\s+)?(?:task\s+)?(.+?)\s+is\s+(?:done|completed|finished)$"
);
pattern!(
    UPDATE_DESCRIPTION_OF,
    format!(
        r"{TASK_PREFIX}(?:change|update|edit|set)\s+(?:the\s+)?(?:description|details|notes?)\s+(?:of|for|on)\s+(?:the\s+)?(?:task\s+)?(.+?)\s+to\s+(.+)$"
    )
);
pattern!(
    UPDATE_POSSESSIVE_DESCRIPTION,
    format!(
        r"{TASK_PREFIX}(?:change|update|edit|set)\s+(?:the\s+)?(?:task\s+)?(.+?)(?:'s)?\s+(?:description|details|notes?)\s+to\s+(.+)$"
    )
);
pattern!(
    RENAME,
    format!(r"{TASK_PREFIX}rename\s+(?:the\s+)?(?:task\s+)?(.+?)\s+(?:to|as|into)\s+(.+)$")
);
pattern!(
    CHANGE_TASK,
    format!(r"{TASK_PREFIX}(?:change|update|edit)\s+(?:the\s+|my\s+)?task\s+(.+?)\s+to\s+(.+)$")
);
pattern!(
    DELETE_TASK_EXPLICIT,
    format!(
        r"{TASK_PREFIX}(?:delete|remove|drop|erase|cancel)\s+(?:the\s+|my\s+)?(?:task|todo|to-do)\s+(.+)$"
    )
);
pattern!(
    DELETE_ANY,
    format!(
        r"{TASK_PREFIX}(?:delete|remove|drop|erase)\s+(?:the\s+)?(.+?)(?:\s+from\s+(?:my\s+)?(?:task\s*list|tasks|todo\s*list|to-do\s*list|list))?$"
    )
);
pattern!(
    TASK_WORD,
    r"\b(?:tasks?|todos?|to-dos?|to do list|to-do list|todo list|reminders)\b"
);
pattern!(
    PENDING_QUESTION,
    r"^(?:what's|whats|what is|anything|what)\s+(?:still\s+)?(?:pending|open|left|outstanding|remaining|on my list)\b|^what (?:do|should) i (?:still )?(?:have|need) to do\b"
);
pattern!(
    BOOKING_WORDS,
    r"\b(?:appointments?|bookings?|reservations?|appt-[a-z0-9]+|consultation|session|slot)\b"
);

/// Tidies a title taken from a message: no quotes, no trailing full stop.
fn clean_title(title: &str) -> String {
    title
        .trim()
        .trim_end_matches(['.', '!', '?'])
        .trim_matches(|c: char| matches!(c, '"' | '\'' | '\u{201c}' | '\u{201d}'))
        .trim()
        .to_owned()
}

/// A title is usable when it is not a pronoun or a booking in disguise ("remove my booking").
fn usable_title(title: &str) -> bool {
    let lower = normalize(title);
    !lower.is_empty()
        && !matches!(
            lower.as_str(),
            "it" | "that" | "this" | "them" | "all" | "everything"
        )
        && !BOOKING_WORDS.is_match(&lower)
}

fn task_intent(text: &str) -> Option<Intent> {
    let t = text.trim().trim_end_matches(['.', '!', '?']).trim();
    let lower = normalize(t);

    for pattern in [&*ADD_TASK, &*TASK_COLON, &*REMIND_ME, &*ADD_TO_LIST] {
        if let Some(c) = pattern.captures(t) {
            let rest = clean_title(&c[1]);
            let split = TASK_DESCRIPTION.captures(&rest).and_then(|d| {
                let title = d.get(1).or_else(|| d.get(3))?;
                let description = d.get(2).or_else(|| d.get(4))?;
                Some((
                    clean_title(title.as_str()),
                    Some(clean_title(description.as_str())),
                ))
            });
            let (title, description) = split.unwrap_or((rest, None));
            if !title.is_empty() {
                return Some(Intent::AddTask { title, description });
            }
        }
    }
    for pattern in [&*UPDATE_DESCRIPTION_OF, &*UPDATE_POSSESSIVE_DESCRIPTION] {
        if let Some(c) = pattern.captures(t) {
            let title = clean_title(&c[1]);
            if usable_title(&title) {
                return Some(Intent::UpdateTask {
                    title,
                    new_title: None,
                    description: Some(clean_title(&c[2])),
                });
            }
        }
    }
    for pattern in [&*RENAME, &*CHANGE_TASK] {
        if let Some(c) = pattern.captures(t) {
            let title = clean_title(&c[1]);
            if usable_title(&title) {
                return Some(Intent::UpdateTask {
                    title,
                    new_title: Some(clean_title(&c[2])),
                    description: None,
                });
            }
        }
    }
    for pattern in [
        &*COMPLETE_MARK,
        &*COMPLETE_VERB,
        &*COMPLETE_DONE,
        &*COMPLETE_IS_DONE,
    ] {
        if let Some(c) = pattern.captures(t) {
            let title = clean_title(&c[1]);
            if usable_title(&title) {
                return Some(Intent::CompleteTask { title });
            }
        }
    }
    for pattern in [&*DELETE_TASK_EXPLICIT, &*DELETE_ANY] {
        if let Some(c) = pattern.captures(t) {
            let title = clean_title(&c[1]);
            if usable_title(&title) {
                return Some(Intent::DeleteTask { title });
            }
        }
    }
    if TASK_WORD.is_match(&lower) || PENDING_QUESTION.is_match(&lower) {
        let w = words(t);
        let has = |list: &[&str]| w.iter().any(|x| list.contains(&x.as_str()));
        let status = if has(&[
            "pending",
            "open",
            "outstanding",
            "remaining",
            "left",
            "incomplete",
            "unfinished",
            "undone",
        ]) || lower.contains("not done")
            || lower.contains("have to do")
            || lower.contains("need to do")
        {
            TaskStatus::Pending
        } else if has(&["completed", "done", "finished", "complete", "closed"]) {
            TaskStatus::Completed
        } else {
            TaskStatus::All
        };
        return Some(Intent::ListTasks { status });
    }
    None
}

pattern!(
    RESCHEDULE,
    r"\b(?:re-?schedule|postpone|move\s+(?:my|the|it|this|that|appointment|booking)|change\s+(?:my|the)\s+(?:appointment|booking|reservation)|push\s+(?:back|it))\b"
);
pattern!(
    CANCEL,
    r"\b(?:cancel|call\s+off|(?:delete|remove)\s+(?:my|the|this|that)\s+(?:appointment|booking|reservation))\b"
);
pattern!(
    SHOW_APPOINTMENT,
    r"\b(?:what|what's|whats|when|when's|whens|show|details|check|status|look\s+up|find|where|which)\b.*\b(?:appointment|booking|reservation)\b|\b(?:appointment|booking|reservation)\b.*\b(?:details|status)\b"
);
pattern!(
    LIST_SERVICES,
    r"\b(?:(?:what|which|list|show|your|available|offer|all)\b.*\bservices?|what\s+do\s+you\s+(?:offer|have|do)|what\s+can\s+i\s+book|price\s*list|prices|menu|options)\b"
);
pattern!(
    BOOK,
    r"\b(?:book|booking|appointment|appt|schedule|reserve|reservation|make\s+an?\s+appointment|sign\s+me\s+up|come\s+in|see\s+(?:the|a)\s+(?:doctor|specialist))\b"
);
pattern!(
    GREETING,
    r"^(?:hi|hello|hey|hiya|howdy|greetings|good\s+(?:morning|afternoon|evening|day)|yo|hallo|servus|moin)\b"
);

/// What the user wants. Task phrasings are tried first since they embed free text ("remind me
/// to book a table" is a task, not a booking).
pub fn classify(text: &str) -> Intent {
    let w = words(text);
    if w.is_empty() {
        return Intent::Unknown;
    }
    if only_phrases(&w, YES_PHRASES) {
        return Intent::Confirm;
    }
    if only_phrases(&w, NO_PHRASES) {
        return Intent::Deny;
    }
    if let Some(intent) = task_intent(text) {
        return intent;
    }
    let lower = normalize(text);
    let confirmation = confirmation_number(text);
    if RESCHEDULE.is_match(&lower) {
        return Intent::Reschedule { confirmation };
    }
    if CANCEL.is_match(&lower) {
        return Intent::Cancel { confirmation };
    }
    if (SHOW_APPOINTMENT.is_match(&lower) && !BOOK_VERB.is_match(&lower)) || confirmation.is_some()
    {
        return Intent::ShowAppointment { confirmation };
    }
    if LIST_SERVICES.is_match(&lower) {
        return Intent::ListServices;
    }
    if BOOK.is_match(&lower) {
        return Intent::Book;
    }
    if GREETING.is_match(&lower) {
        return Intent::Greeting;
    }
    match w.first().map(String::as_str) {
        Some("yes" | "yeah" | "yep" | "sure" | "ok" | "okay" | "correct") => Intent::Confirm,
        Some("no" | "nope" | "nah") => Intent::Deny,
        _ => Intent::Unknown,
    }
}

pattern!(
    BOOK_VERB,
    r"\b(?:book|make|schedule|reserve|need|want|like|get)\b"
);

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::Europe::Berlin;

    /// Monday 23 November 2026, 10:00 UTC (11:00 in Berlin).
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
    }

    fn dt(text: &str) -> Option<String> {
        parse_datetime(text, now(), Berlin).map(|d| d.format("%Y-%m-%dT%H:%M").to_string())
    }

    fn date(text: &str) -> Option<String> {
        parse_date(text, now(), Berlin).map(|d| d.to_string())
    }

    fn time(text: &str) -> Option<String> {
        parse_time(text).map(|t| t.format("%H:%M").to_string())
    }

    fn services() -> Vec<Service> {
        crate::orgs::demo_services()
    }

    #[test]
    fn relative_days_with_times_are_understood() {
        assert_eq!(dt("tomorrow at 2 PM").as_deref(), Some("2026-11-24T14:00"));
        assert_eq!(dt("Tomorrow at 2 PM").as_deref(), Some("2026-11-24T14:00"));
        assert_eq!(dt("today 14:00").as_deref(), Some("2026-11-23T14:00"));
        assert_eq!(dt("at noon tomorrow").as_deref(), Some("2026-11-24T12:00"));
        assert_eq!(dt("2pm tomorrow").as_deref(), Some("2026-11-24T14:00"));
        assert_eq!(
            dt("TOMORROW AT 9:30 A.M.").as_deref(),
            Some("2026-11-24T09:30")
        );
        assert_eq!(
            dt("the day after tomorrow at 10am").as_deref(),
            Some("2026-11-25T10:00")
        );
        assert_eq!(
            dt("in 3 days at 11:15").as_deref(),
            Some("2026-11-26T11:15")
        );
        assert_eq!(dt("in a week at 4pm").as_deref(), Some("2026-11-30T16:00"));
    }

    #[test]
    fn weekdays_mean_the_next_such_day_after_today() {
        // Today is Monday 23 November.
        assert_eq!(
            dt("next Monday at 10am").as_deref(),
            Some("2026-11-30T10:00")
        );
        assert_eq!(dt("Monday at 10am").as_deref(), Some("2026-11-30T10:00"));
        assert_eq!(dt("Friday at 3pm").as_deref(), Some("2026-11-27T15:00"));
        assert_eq!(dt("on tue at 9").as_deref(), Some("2026-11-24T09:00"));
        assert_eq!(
            dt("this monday at 5pm").as_deref(),
            Some("2026-11-23T17:00")
        );
        assert_eq!(
            dt("wednesday next week at 2pm").as_deref(),
            Some("2026-12-02T14:00")
        );
    }

    #[test]
    fn absolute_dates_are_understood() {
        assert_eq!(dt("2026-12-03 15:30").as_deref(), Some("2026-12-03T15:30"));
        assert_eq!(dt("2026-12-03T15:30").as_deref(), Some("2026-12-03T15:30"));
        assert_eq!(
            dt("2026-12-03 at 3:30pm").as_deref(),
            Some("2026-12-03T15:30")
        );
        assert_eq!(dt("Dec 3 at 3pm").as_deref(), Some("2026-12-03T15:00"));
        assert_eq!(dt("3 December 15:00").as_deref(), Some("2026-12-03T15:00"));
        assert_eq!(
            dt("December 3rd, 2027 at 9am").as_deref(),
            Some("2027-12-03T09:00")
        );
        assert_eq!(
            dt("the 3rd of december at 10:00").as_deref(),
            Some("2026-12-03T10:00")
        );
        // A day already past this year means next year's.
        assert_eq!(dt("March 5 at 10am").as_deref(), Some("2027-03-05T10:00"));
        assert_eq!(
            dt("on the 28th at 11am").as_deref(),
            Some("2026-11-28T11:00")
        );
    }

    #[test]
    fn month_followed_by_a_time_is_not_a_day() {
        assert_eq!(date("December 15:00"), None);
        assert_eq!(time("December 15:00").as_deref(), Some("15:00"));
    }

    #[test]
    fn relative_days_are_counted_in_the_business_time_zone() {
        // 23:30 UTC on the 23rd is already 00:30 on the 24th in Berlin.
        let late = Utc.with_ymd_and_hms(2026, 11, 23, 23, 30, 0).unwrap();
        let today = parse_date("today", late, Berlin).unwrap();
        let tomorrow = parse_date("tomorrow", late, Berlin).unwrap();
        assert_eq!(today.to_string(), "2026-11-24");
        assert_eq!(tomorrow.to_string(), "2026-11-25");
        let in_utc = parse_date("tomorrow", late, chrono_tz::UTC).unwrap();
        assert_eq!(in_utc.to_string(), "2026-11-24");
    }

    #[test]
    fn date_only_and_time_only_are_told_apart() {
        assert_eq!(date("tomorrow").as_deref(), Some("2026-11-24"));
        assert_eq!(dt("tomorrow"), None);
        assert_eq!(time("at 4pm").as_deref(), Some("16:00"));
        assert_eq!(date("at 4pm"), None);
        assert_eq!(dt("at 4pm"), None);
        assert_eq!(time("at 4").as_deref(), Some("16:00"));
        assert_eq!(time("at 10").as_deref(), Some("10:00"));
        assert_eq!(time("12am").as_deref(), Some("00:00"));
        assert_eq!(time("12 pm").as_deref(), Some("12:00"));
        assert_eq!(time("09:00").as_deref(), Some("09:00"));
        assert_eq!(time("at midnight").as_deref(), Some("00:00"));
        assert_eq!(time("at 3 December"), None);
        assert_eq!(time("I need a general consultation"), None);
        assert_eq!(time("John Doe, john@example.com, 555-1234"), None);
        assert_eq!(date("John Doe, john@example.com, 555-1234"), None);
        assert_eq!(time("25:00"), None);
        assert_eq!(date("2026-02-30"), None);
    }

    #[test]
    fn contact_on_one_line_with_commas() {
        let c = parse_contact("John Doe, john@example.com, 555-1234");
        assert_eq!(c.name.as_deref(), Some("John Doe"));
        assert_eq!(c.email.as_deref(), Some("john@example.com"));
        assert_eq!(c.phone.as_deref(), Some("555-1234"));
    }

    #[test]
    fn contact_in_any_order_and_on_several_lines_with_labels() {
        let c = parse_contact(
            "Phone: +49 30 1234567\nEmail: jane.o@example.de\nName: Jane O'Neil-Smith",
        );
        assert_eq!(c.name.as_deref(), Some("Jane O'Neil-Smith"));
        assert_eq!(c.email.as_deref(), Some("jane.o@example.de"));
        assert_eq!(c.phone.as_deref(), Some("+49 30 1234567"));

        let c = parse_contact("my email is bob@x.org and my name is Bob Stone, phone 555-9876");
        assert_eq!(c.name.as_deref(), Some("Bob Stone"));
        assert_eq!(c.email.as_deref(), Some("bob@x.org"));
        assert_eq!(c.phone.as_deref(), Some("555-9876"));
    }

    #[test]
    fn contact_fillers_are_stripped_and_case_fixed() {
        assert_eq!(
            parse_contact("I'm Anna Berg").name.as_deref(),
            Some("Anna Berg")
        );
        assert_eq!(
            parse_contact("this is john doe").name.as_deref(),
            Some("John Doe")
        );
        assert_eq!(
            parse_contact("Hi, my name is Maria de la Cruz")
                .name
                .as_deref(),
            Some("Maria de la Cruz")
        );
        assert_eq!(parse_contact("call me Al").name.as_deref(), Some("Al"));
    }

    #[test]
    fn contact_in_pieces() {
        let c = parse_contact("John Doe");
        assert_eq!(c.name.as_deref(), Some("John Doe"));
        assert_eq!((c.email, c.phone), (None, None));
        let c = parse_contact("it's john@example.com");
        assert_eq!(c.name, None);
        assert_eq!(c.email.as_deref(), Some("john@example.com"));
        let c = parse_contact("Book an extended session on Dec 3 at 3pm for Ana Silva, ana@x.com");
        assert_eq!(c.name.as_deref(), Some("Ana Silva"));
        assert_eq!(parse_contact("a consultation for tomorrow").name, None);
        let c = parse_contact("(030) 123-4567");
        assert_eq!(c.phone.as_deref(), Some("(030) 123-4567"));
    }

    #[test]
    fn non_names_are_not_taken_for_names() {
        for text in [
            "yes",
            "tomorrow instead",
            "hello",
            "my email is",
            "can we do 3pm",
            "John Doe 2",
            "one two three four five six",
            "2026-12-03 15:30",
        ] {
            assert_eq!(parse_contact(text).name, None, "{text}");
        }
        assert_eq!(parse_contact("2026-12-03 15:30").phone, None);
    }

    #[test]
    fn services_match_by_name_id_and_loosely() {
        let s = services();
        let id = |t: &str| match_service(t, &s).map(|svc| svc.id.as_str());
        assert_eq!(
            id("I need a general consultation"),
            Some("general-consultation")
        );
        assert_eq!(id("general-consultation"), Some("general-consultation"));
        assert_eq!(id("a consult"), Some("general-consultation"));
        assert_eq!(
            id("genral consultaton please"),
            Some("general-consultation")
        );
        assert_eq!(id("follow up"), Some("follow-up"));
        assert_eq!(id("a followup"), Some("follow-up"));
        assert_eq!(id("the extended one"), Some("extended-session"));
        assert_eq!(id("EXTENDED SESSION"), Some("extended-session"));
        assert_eq!(
            id("sign me up for a consultation"),
            Some("general-consultation")
        );
    }

    #[test]
    fn unrelated_text_matches_no_service() {
        let s = services();
        for text in [
            "Hello, I need to book an appointment",
            "Tomorrow at 2 PM",
            "John Doe, john@example.com, 555-1234",
            "yes",
            "a session",
            "haircut",
        ] {
            assert_eq!(match_service(text, &s), None, "{text}");
        }
    }

    #[test]
    fn titles_match_loosely() {
        let titles = ["buy milk", "call Bob", "renew passport"];
        assert_eq!(match_title("Buy Milk", &titles), Some(0));
        assert_eq!(match_title("passport", &titles), Some(2));
        assert_eq!(match_title("cal bob", &titles), Some(1));
        assert_eq!(match_title("water plants", &titles), None);
    }

    #[test]
    fn confirmation_numbers_are_found_and_upper_cased() {
        assert_eq!(
            confirmation_number("cancel appt-7k2m9q please").as_deref(),
            Some("APPT-7K2M9Q")
        );
        assert_eq!(
            confirmation_number("APPT-ABC123.").as_deref(),
            Some("APPT-ABC123")
        );
        assert_eq!(confirmation_number("APPT-ABC12"), None);
        assert_eq!(confirmation_number("APPT-ABC1234"), None);
        assert_eq!(confirmation_number("nothing here"), None);
    }

    #[test]
    fn yes_and_no_are_recognised() {
        for text in [
            "yes",
            "Yes!",
            "confirm",
            "sounds good",
            "ok",
            "sure",
            "yep",
            "please do",
            "correct",
            "Yes please, book it",
            "ok thanks",
        ] {
            assert_eq!(classify(text), Intent::Confirm, "{text}");
        }
        for text in [
            "no",
            "No.",
            "cancel that",
            "not now",
            "nope, thanks",
            "never mind",
        ] {
            assert_eq!(classify(text), Intent::Deny, "{text}");
        }
    }

    #[test]
    fn conversation_openers_are_recognised() {
        assert_eq!(classify("Hello"), Intent::Greeting);
        assert_eq!(classify("good morning!"), Intent::Greeting);
        assert_eq!(
            classify("Hello, I need to book an appointment"),
            Intent::Book
        );
        assert_eq!(classify("Can I make an appointment?"), Intent::Book);
        assert_eq!(
            classify("What services do you offer?"),
            Intent::ListServices
        );
        assert_eq!(classify("what do you offer"), Intent::ListServices);
        assert_eq!(classify("blorp"), Intent::Unknown);
        assert_eq!(classify("Tomorrow at 2 PM"), Intent::Unknown);
    }

    #[test]
    fn appointment_intents_carry_the_number() {
        assert_eq!(
            classify("Please cancel my appointment APPT-7K2M9Q"),
            Intent::Cancel {
                confirmation: Some("APPT-7K2M9Q".into())
            }
        );
        assert_eq!(classify("cancel it"), Intent::Cancel { confirmation: None });
        assert_eq!(
            classify("I want to reschedule appt-abc123 to Friday at 3pm"),
            Intent::Reschedule {
                confirmation: Some("APPT-ABC123".into())
            }
        );
        assert_eq!(
            classify("can I move my appointment?"),
            Intent::Reschedule { confirmation: None }
        );
        assert_eq!(
            classify("what's my appointment APPT-ABC123"),
            Intent::ShowAppointment {
                confirmation: Some("APPT-ABC123".into())
            }
        );
        assert_eq!(
            classify("when is my appointment?"),
            Intent::ShowAppointment { confirmation: None }
        );
        assert_eq!(
            classify("APPT-ABC123"),
            Intent::ShowAppointment {
                confirmation: Some("APPT-ABC123".into())
            }
        );
    }

    fn add(title: &str, description: Option<&str>) -> Intent {
        Intent::AddTask {
            title: title.into(),
            description: description.map(Into::into),
        }
    }

    #[test]
    fn task_additions_are_recognised() {
        assert_eq!(classify("add a task to buy milk"), add("buy milk", None));
        assert_eq!(classify("remind me to call Bob"), add("call Bob", None));
        assert_eq!(
            classify("add task: renew passport"),
            add("renew passport", None)
        );
        assert_eq!(
            classify("Please create a new task called \"water plants\""),
            add("water plants", None)
        );
        assert_eq!(
            classify("add pay rent to my todo list"),
            add("pay rent", None)
        );
        assert_eq!(
            classify("add a task to renew passport with description before the trip"),
            add("renew passport", Some("before the trip"))
        );
        assert_eq!(
            classify("remind me to book a table"),
            add("book a table", None)
        );
    }

    #[test]
    fn task_listings_are_recognised() {
        let list = |status| Intent::ListTasks { status };
        assert_eq!(classify("show my tasks"), list(TaskStatus::All));
        assert_eq!(classify("what's pending"), list(TaskStatus::Pending));
        assert_eq!(classify("What’s pending?"), list(TaskStatus::Pending));
        assert_eq!(
            classify("list completed tasks"),
            list(TaskStatus::Completed)
        );
        assert_eq!(
            classify("which tasks are done?"),
            list(TaskStatus::Completed)
        );
        assert_eq!(classify("my to-do list"), list(TaskStatus::All));
    }

    #[test]
    fn task_changes_are_recognised() {
        let complete = |t: &str| Intent::CompleteTask { title: t.into() };
        let delete = |t: &str| Intent::DeleteTask { title: t.into() };
        assert_eq!(classify("mark buy milk as done"), complete("buy milk"));
        assert_eq!(classify("complete the task call Bob"), complete("call Bob"));
        assert_eq!(
            classify("I finished renew passport"),
            complete("renew passport")
        );
        assert_eq!(classify("buy milk is done"), complete("buy milk"));
        assert_eq!(
            classify("rename buy milk to buy oat milk"),
            Intent::UpdateTask {
                title: "buy milk".into(),
                new_title: Some("buy oat milk".into()),
                description: None
            }
        );
        assert_eq!(
            classify("change the description of call Bob to about the party"),
            Intent::UpdateTask {
                title: "call Bob".into(),
                new_title: None,
                description: Some("about the party".into())
            }
        );
        assert_eq!(
            classify("delete the task renew passport"),
            delete("renew passport")
        );
        assert_eq!(classify("remove buy milk"), delete("buy milk"));
        assert_eq!(classify("remove buy milk from my list"), delete("buy milk"));
    }

    #[test]
    fn bookings_are_not_mistaken_for_tasks() {
        assert_eq!(
            classify("delete my appointment APPT-ABC123"),
            Intent::Cancel {
                confirmation: Some("APPT-ABC123".into())
            }
        );
        assert_eq!(
            classify("change my appointment"),
            Intent::Reschedule { confirmation: None }
        );
        assert_ne!(
            classify("complete the booking"),
            Intent::CompleteTask {
                title: "booking".into()
            }
        );
    }
}
