//! Deterministic text understanding shared by every skill of the offline model: normalising,
//! dates and times, yes/no/greeting (dialogue acts), and loose title matching. Skills keep
//! their own vocabulary (services, contact details, task phrasings) beside their code. Pure
//! functions, no I/O, so the offline model answers the same way every time.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};
use regex::Regex;

use crate::domain::org::DateOrder;

/// Compiles one of this module's constant patterns.
#[expect(
    clippy::expect_used,
    reason = "constant patterns, each exercised by the unit tests below"
)]
pub fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid constant pattern")
}

/// Declares a lazily compiled constant pattern (skills use it for their own phrases).
macro_rules! pattern {
    ($name:ident, $pattern:expr) => {
        static $name: std::sync::LazyLock<regex::Regex> =
            std::sync::LazyLock::new(|| $crate::agent::offline::nlu::re(&$pattern));
    };
}
pub(crate) use pattern;

// ---------------------------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------------------------

pattern!(AM_PM_DOTS, r"\b([ap])\.\s?m\b\.?");
pattern!(DIGIT_T_DIGIT, r"(\d)t(\d)");
pattern!(SPACES, r"\s+");

/// Lower case, typographic apostrophes made plain, "p.m." made "pm" and ISO's `T` between date
/// and time made a space, so the patterns below need to know only one spelling.
pub fn normalize(text: &str) -> String {
    let lower = text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'");
    let lower = AM_PM_DOTS.replace_all(&lower, "${1}m");
    let lower = DIGIT_T_DIGIT.replace_all(&lower, "$1 $2");
    SPACES.replace_all(lower.trim(), " ").into_owned()
}

/// The words of a text: lower case, letters, digits and apostrophes only.
pub fn words(text: &str) -> Vec<String> {
    normalize(text)
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Times
// ---------------------------------------------------------------------------------------------

pattern!(TIME_AM_PM, r"\b(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm)\b");
pattern!(
    TIME_DOT,
    r"\b(?:at|around|about|@|by|from)\s+(\d{1,2})\.(\d{2})\b"
);
pattern!(
    TIME_PAST,
    r"\b(half|quarter)\s+past\s+(\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b"
);
pattern!(
    TIME_MAKE_IT,
    r"\b(?:make\s+it|change\s+it\s+to|move\s+it\s+to|how\s+about|what\s+about|rather)\s+(?:at\s+)?(\d{1,2})\b"
);
pattern!(
    TIME_AT_WORD,
    r"\b(?:at|around|about)\s+(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b"
);
pattern!(IN_THE_MORNING, r"\bin\s+the\s+morning\b");
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

/// A number written as a word (one to twelve) or in digits.
fn hour_word(word: &str) -> Option<u32> {
    let n = match word {
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        digits => digits.parse().ok()?,
    };
    Some(n)
}

/// A bare hour read as the afternoon ("at 3") is the morning when the text says so ("at 6 in
/// the morning").
fn time_in(s: &str) -> Option<NaiveTime> {
    use chrono::Timelike;
    let t = time_in_day(s)?;
    if IN_THE_MORNING.is_match(s) && (13..=18).contains(&t.hour()) && !TIME_AM_PM.is_match(s) {
        return NaiveTime::from_hms_opt(t.hour() - 12, t.minute(), 0);
    }
    Some(t)
}

fn time_in_day(s: &str) -> Option<NaiveTime> {
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
    if let Some(c) = TIME_DOT.captures(s) {
        let hour: u32 = c[1].parse().ok()?;
        let minute: u32 = c[2].parse().ok()?;
        return NaiveTime::from_hms_opt(afternoon_if_ambiguous(hour, &c[1]), minute, 0);
    }
    if let Some(c) = TIME_PAST.captures(s) {
        let hour = hour_word(&c[2])?;
        let minute = if &c[1] == "half" { 30 } else { 15 };
        let hour = if hour <= 6 { hour + 12 } else { hour };
        return NaiveTime::from_hms_opt(hour % 24, minute, 0);
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
    for c in TIME_MAKE_IT.captures_iter(s) {
        let Some(whole) = c.get(0) else { continue };
        let rest = s[whole.end()..].trim_start();
        let names_something_else = rest.starts_with(|ch: char| ch.is_ascii_alphabetic())
            && !["instead", "then", "please", "o'clock"]
                .iter()
                .any(|w| rest.starts_with(w));
        if rest.starts_with(['/', '.', '-']) || names_something_else {
            continue;
        }
        let hour: u32 = c[1].parse().ok()?;
        if (1..=23).contains(&hour) {
            return NaiveTime::from_hms_opt(afternoon_if_ambiguous(hour, &c[1]), 0, 0);
        }
    }
    if let Some(c) = TIME_AT_WORD.captures(s) {
        let hour = hour_word(&c[1])?;
        let hour = if hour <= 6 { hour + 12 } else { hour };
        return NaiveTime::from_hms_opt(hour % 24, 0, 0);
    }
    None
}

/// A message that is only an hour ("11", "at 4", "4 please"), as an answer to "what time?".
pub fn bare_hour(text: &str) -> Option<NaiveTime> {
    let w = words(text);
    let digits: Vec<&String> = w
        .iter()
        .filter(|x| x.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let rest_ok = w.iter().all(|x| {
        x.chars().all(|c| c.is_ascii_digit())
            || [
                "at", "around", "about", "please", "then", "instead", "ok", "okay", "maybe",
            ]
            .contains(&x.as_str())
    });
    match digits.as_slice() {
        [hour] if rest_ok && hour.len() <= 2 => {
            let h: u32 = hour.parse().ok()?;
            (1..=23)
                .contains(&h)
                .then(|| NaiveTime::from_hms_opt(afternoon_if_ambiguous(h, hour), 0, 0))
                .flatten()
        }
        _ => None,
    }
}

/// Part of the day a visitor asks for ("friday afternoon").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartOfDay {
    Morning,
    Afternoon,
    Evening,
}

impl PartOfDay {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Morning => "morning",
            Self::Afternoon => "afternoon",
            Self::Evening => "evening",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "morning" => Some(Self::Morning),
            "afternoon" => Some(Self::Afternoon),
            "evening" => Some(Self::Evening),
            _ => None,
        }
    }

    /// Whether a start time falls in this part of the day.
    pub fn contains(self, t: NaiveTime) -> bool {
        use chrono::Timelike;
        match self {
            Self::Morning => t.hour() < 12,
            Self::Afternoon => (12..17).contains(&t.hour()),
            Self::Evening => t.hour() >= 17,
        }
    }
}

pattern!(
    PART_OF_DAY,
    r"\b(morning|afternoon|evening|tonight|after\s+lunch|before\s+lunch|lunchtime)\b"
);

/// The part of the day the text names, if any.
pub fn part_of_day(text: &str) -> Option<PartOfDay> {
    let s = normalize(text);
    let c = PART_OF_DAY.captures(&s)?;
    match &c[1] {
        "morning" | "before lunch" => Some(PartOfDay::Morning),
        "afternoon" | "after lunch" | "lunchtime" => Some(PartOfDay::Afternoon),
        _ => Some(PartOfDay::Evening),
    }
}

// ---------------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------------

const MONTHS: &str = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?";

pattern!(MONTH_AT_START, format!(r"^(?:{MONTHS})\b"));
pattern!(MONTH_WORD, format!(r"^(?:{MONTHS})$"));
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
// "5/12", "5/12/2026", "20.12.2027" (with dots only with a year: "10.30" is a time).
pattern!(
    NUMERIC_DATE,
    r"(?:^|[^\d/.:])(\d{1,2})(?:/(\d{1,2})(?:/(\d{2}|\d{4}))?|\.(\d{1,2})\.(\d{2}|\d{4}))(?:[^\d/.:]|\.?$|\.\s)"
);
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
/// `tz` — near midnight UTC and the business's day differ. A numeric date that reads
/// differently day-first and month-first ("5/12") is not a date here: see [`read_date`].
pub fn parse_date(text: &str, now: DateTime<Utc>, tz: chrono_tz::Tz) -> Option<NaiveDate> {
    match read_date(text, now, tz, None) {
        DateReading::Date(d) => Some(d),
        _ => None,
    }
}

/// What a text says about the date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateReading {
    None,
    Date(NaiveDate),
    /// A numeric date valid both ways, read day-first and month-first, with no order to
    /// settle it.
    Ambiguous(NaiveDate, NaiveDate),
}

/// The date in the text, numeric ones ("5/12") read in `order` (the organisation's locale).
pub fn read_date(
    text: &str,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
    order: Option<DateOrder>,
) -> DateReading {
    let s = normalize(text);
    let today = today_in(now, tz);
    if let Some(c) = NUMERIC_DATE.captures(&s) {
        let first: Option<u32> = c.get(1).and_then(|m| m.as_str().parse().ok());
        let second: Option<u32> = c
            .get(2)
            .or_else(|| c.get(4))
            .and_then(|m| m.as_str().parse().ok());
        let year = c.get(3).or_else(|| c.get(5)).map(|m| {
            let y = m.as_str();
            if y.len() == 2 {
                format!("20{y}")
            } else {
                y.to_owned()
            }
        });
        if let (Some(a), Some(b)) = (first, second) {
            let day_first = with_year(today, year.as_deref(), b, a);
            let month_first = with_year(today, year.as_deref(), a, b);
            let chosen = match (order, day_first, month_first) {
                (_, Some(d), Some(m)) if d == m => Some(d),
                (Some(DateOrder::DayFirst), Some(d), _) => Some(d),
                (Some(DateOrder::MonthFirst), _, Some(m)) => Some(m),
                (_, Some(d), None) => Some(d),
                (_, None, Some(m)) => Some(m),
                (None, Some(d), Some(m)) => return DateReading::Ambiguous(d, m),
                _ => None,
            };
            if let Some(date) = chosen {
                return DateReading::Date(date);
            }
        }
    }
    match date_in(&s, today) {
        Some(d) => DateReading::Date(d),
        None => DateReading::None,
    }
}

/// The month a text names on its own ("december", "in May"), as a number.
pub fn month_named(text: &str) -> Option<u32> {
    words(text)
        .iter()
        .find_map(|w| MONTH_WORD.is_match(w).then(|| month_number(w)).flatten())
}

/// The business's calendar day at `now`.
pub fn today_in(now: DateTime<Utc>, tz: chrono_tz::Tz) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

/// A date and a time in the text, as wall-clock time in `tz`. `None` unless both are there:
/// use [`parse_date`] and [`parse_time`] to combine a part with one collected earlier.
pub fn parse_datetime(text: &str, now: DateTime<Utc>, tz: chrono_tz::Tz) -> Option<NaiveDateTime> {
    let date = parse_date(text, now, tz)?;
    let time = parse_time(text)?;
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

/// A count: "a", "an", or a number as [`hour_word`] reads it.
fn small_number(word: &str) -> Option<u64> {
    match word {
        "a" | "an" => Some(1),
        word => hour_word(word).map(u64::from),
    }
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
// Words and titles
// ---------------------------------------------------------------------------------------------

/// The lower-case words of a name or title, split on anything but letters and digits.
pub fn name_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// How well one word the user wrote stands for one word of a name, weighted by length so a
/// long distinctive word outweighs a short one ("up" in "Follow-up").
pub fn word_score(said: &str, name_word: &str) -> f64 {
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
// Dialogue acts
// ---------------------------------------------------------------------------------------------

/// What a message does in the conversation, whatever it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Confirm,
    Deny,
    Greeting,
    Other,
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
    "yes book it",
    "confirm it",
    "please confirm",
    "yes do it",
    "go on",
    "works for me",
    "that works",
    "that's fine",
    "thats fine",
    "that is fine",
    "fine by me",
    "oui",
    "ja",
    "si",
    "yas",
    "yess",
    "yesss",
    "ye",
    "yea",
    "affirmative",
    "book me in",
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
    "no thanks",
    "no thank you",
    "not quite",
    "actually no",
    "n",
];
/// Phrases that call a request off altogether (a stronger no: "never mind", "forget it").
const CALL_OFF_PHRASES: &[&str] = &[
    "never mind",
    "nevermind",
    "forget it",
    "forget about it",
    "cancel",
    "cancel that",
    "cancel it",
    "don't book it",
    "dont book it",
    "do not book it",
    "don't bother",
    "dont bother",
    "stop",
    "i changed my mind",
    "changed my mind",
    "not interested",
];
/// Phrases that start a conversation's request again from the beginning.
const RESTART_PHRASES: &[&str] = &[
    "start over",
    "start again",
    "start afresh",
    "restart",
    "begin again",
    "start from the beginning",
    "from the beginning",
    "from scratch",
    "start from scratch",
    "reset",
    "let's start over",
    "lets start over",
    "let's start again",
    "lets start again",
    "can we start over",
    "can we start again",
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
    only_phrases_with(words, phrases, &[])
}

/// [`only_phrases`], with `also` allowed as filler too.
fn only_phrases_with(words: &[String], phrases: &[&str], also: &[&str]) -> bool {
    let mut i = 0;
    let mut strong = false;
    'outer: while i < words.len() {
        for (list, is_strong) in [(phrases, true), (POLITE_FILLER, false), (also, false)] {
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

pattern!(
    GREETING,
    r"^(?:hi|hello|hey|hiya|howdy|greetings|good\s+(?:morning|afternoon|evening|day)|yo|hallo|servus|moin)\b"
);

/// A bare yes or no: a message made only of yes (or only of no) phrases and polite filler.
/// It answers the question asked, so it comes before any request a skill might read into it
/// ("cancel that" is a no, not a cancellation).
pub fn yes_no(text: &str) -> Option<Act> {
    let w = words(text);
    if only_phrases(&w, YES_PHRASES) {
        Some(Act::Confirm)
    } else if only_phrases(&w, NO_PHRASES) {
        Some(Act::Deny)
    } else {
        None
    }
}

/// "Never mind", "no, forget it", "don't book it": the visitor calls the request off.
pub fn calls_off(text: &str) -> bool {
    let w = words(text);
    only_phrases_with(&w, CALL_OFF_PHRASES, NO_PHRASES)
}

/// "Start over", "let's start again": back to the beginning.
pub fn restarts(text: &str) -> bool {
    let w = words(text);
    only_phrases_with(
        &w,
        RESTART_PHRASES,
        &[
            "please", "ok", "okay", "just", "i", "want", "to", "no", "let's", "lets",
        ],
    )
}

/// "Bye", "thanks, goodbye", "that's all": the visitor is leaving.
pub fn says_bye(text: &str) -> bool {
    let w = words(text);
    only_phrases_with(
        &w,
        &[
            "bye",
            "goodbye",
            "bye bye",
            "good bye",
            "see you",
            "see ya",
            "cya",
            "that's all",
            "thats all",
            "that is all",
            "have a nice day",
            "have a good day",
        ],
        &[
            "great",
            "cheers",
            "ok",
            "okay",
            "perfect",
            "thx",
            "ty",
            "for",
            "your",
            "help",
            "then",
            "all",
            "for",
            "now",
            "the",
            "and",
            "nice",
            "wonderful",
            "awesome",
        ],
    )
}

/// The act of a message that no skill took as a request: a bare yes/no, a greeting, or a
/// message that starts with yes or no.
pub fn act(text: &str) -> Act {
    if let Some(act) = yes_no(text) {
        return act;
    }
    if GREETING.is_match(&normalize(text)) {
        return Act::Greeting;
    }
    match words(text).first().map(String::as_str) {
        Some("yes" | "yeah" | "yep" | "sure" | "ok" | "okay" | "correct") => Act::Confirm,
        Some("no" | "nope" | "nah") => Act::Deny,
        _ => Act::Other,
    }
}

/// True when the message opens with a greeting word ("Hello, I need…").
pub fn starts_with_greeting(text: &str) -> bool {
    let first = text
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .map(str::to_lowercase);
    matches!(
        first.as_deref(),
        Some("hi" | "hello" | "hey" | "hiya" | "howdy" | "greetings" | "good" | "hallo" | "moin")
    )
}

pub fn asks_for_help(text: &str) -> bool {
    let lower = text.to_lowercase();
    [
        "what can you do",
        "help",
        "how does this work",
        "what do you do",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

pub fn says_thanks(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains("thank") || lower.contains("cheers")
}

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
    fn titles_match_loosely() {
        let titles = ["buy milk", "call Bob", "renew passport"];
        assert_eq!(match_title("Buy Milk", &titles), Some(0));
        assert_eq!(match_title("passport", &titles), Some(2));
        assert_eq!(match_title("cal bob", &titles), Some(1));
        assert_eq!(match_title("water plants", &titles), None);
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
            assert_eq!(yes_no(text), Some(Act::Confirm), "{text}");
        }
        for text in [
            "no",
            "No.",
            "cancel that",
            "not now",
            "nope, thanks",
            "never mind",
        ] {
            assert_eq!(yes_no(text), Some(Act::Deny), "{text}");
        }
    }

    #[test]
    fn more_time_forms_are_understood() {
        assert_eq!(time("Dec 5th at 10.30am").as_deref(), Some("10:30"));
        assert_eq!(time("at 10.30").as_deref(), Some("10:30"));
        assert_eq!(time("14h30").as_deref(), Some("14:30"));
        assert_eq!(time("half past two").as_deref(), Some("14:30"));
        assert_eq!(time("the time, make it 11").as_deref(), Some("11:00"));
        assert_eq!(time("make it 4 instead").as_deref(), Some("16:00"));
        assert_eq!(time("at 6 in the morning").as_deref(), Some("06:00"));
        assert_eq!(time("I am free at 3").as_deref(), Some("15:00"));
        assert_eq!(time("make it friday"), None);
        assert_eq!(
            bare_hour("11").map(|t| t.to_string()).as_deref(),
            Some("11:00:00")
        );
        assert_eq!(
            bare_hour("4 please").map(|t| t.to_string()).as_deref(),
            Some("16:00:00")
        );
        assert_eq!(bare_hour("room 4b"), None);
    }

    fn read(text: &str, order: Option<DateOrder>) -> DateReading {
        read_date(text, now(), Berlin, order)
    }

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn numeric_dates_follow_the_date_order_and_ambiguity_is_reported() {
        let day_first = Some(DateOrder::DayFirst);
        let month_first = Some(DateOrder::MonthFirst);
        assert_eq!(
            read("5/12 at 10", day_first),
            DateReading::Date(ymd(2026, 12, 5))
        );
        assert_eq!(
            read("5/12 at 10", month_first),
            DateReading::Date(ymd(2027, 5, 12))
        );
        assert_eq!(
            read("on 5/12", None),
            DateReading::Ambiguous(ymd(2026, 12, 5), ymd(2027, 5, 12))
        );
        // Valid one way only, or the same both ways: no question.
        assert_eq!(
            read("13/12", month_first),
            DateReading::Date(ymd(2026, 12, 13))
        );
        assert_eq!(read("12/12", None), DateReading::Date(ymd(2026, 12, 12)));
        assert_eq!(
            read("20.12.2027 14:00", day_first),
            DateReading::Date(ymd(2027, 12, 20))
        );
        assert_eq!(read("20/12/27", None), DateReading::Date(ymd(2027, 12, 20)));
        // A dotted time is not a date; an ISO date is never ambiguous.
        assert_eq!(read("at 10.30", None), DateReading::None);
        assert_eq!(
            read("2026-12-05", None),
            DateReading::Date(ymd(2026, 12, 5))
        );
        assert_eq!(parse_date("on 5/12", now(), Berlin), None);
        assert_eq!(month_named("december please"), Some(12));
        assert_eq!(month_named("the first one"), None);
    }

    #[test]
    fn parts_of_the_day() {
        assert_eq!(part_of_day("friday afternoon"), Some(PartOfDay::Afternoon));
        assert_eq!(part_of_day("tomorrow morning"), Some(PartOfDay::Morning));
        assert_eq!(part_of_day("tomorrow"), None);
        let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
        assert!(PartOfDay::Afternoon.contains(t(13)) && !PartOfDay::Afternoon.contains(t(10)));
    }

    #[test]
    fn calling_off_restarting_and_leaving_are_acts() {
        for text in [
            "never mind",
            "no, forget it",
            "don't book it",
            "cancel that",
        ] {
            assert!(calls_off(text), "{text}");
        }
        for text in ["no", "nah", "wrong"] {
            assert!(!calls_off(text), "{text}");
        }
        for text in ["start over", "let's start again", "Restart please"] {
            assert!(restarts(text), "{text}");
        }
        assert!(!restarts("start at 3pm"));
        for text in [
            "thanks, bye",
            "bye!",
            "great thanks, goodbye",
            "that's all, thank you",
        ] {
            assert!(says_bye(text), "{text}");
        }
        assert!(!says_bye("thanks"));
        assert_eq!(yes_no("Y"), Some(Act::Confirm));
        assert_eq!(yes_no("please confirm"), Some(Act::Confirm));
        assert_eq!(yes_no("nah"), Some(Act::Deny));
    }

    #[test]
    fn greetings_and_leading_yes_or_no_are_acts() {
        assert_eq!(act("Hello"), Act::Greeting);
        assert_eq!(act("good morning!"), Act::Greeting);
        assert_eq!(act("yes, but at 3pm"), Act::Confirm);
        assert_eq!(act("no, the 4th"), Act::Deny);
        assert_eq!(yes_no("yes, but at 3pm"), None);
        assert_eq!(act("blorp"), Act::Other);
        assert_eq!(act("Tomorrow at 2 PM"), Act::Other);
    }
}
