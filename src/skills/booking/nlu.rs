//! The booking skill's vocabulary for the offline model: contact details, service names,
//! confirmation numbers and the requests that concern appointments.

use crate::agent::offline::nlu::{name_tokens, normalize, pattern, word_score, words};
use crate::domain::Service;

// ---------------------------------------------------------------------------------------------
// Contact details
// ---------------------------------------------------------------------------------------------

/// Contact details found in a message; each part is independent, so they can arrive in pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub name: Option<String>,
    /// The name was introduced ("I'm …", "name: …", "it's …"), not just written.
    pub name_labelled: bool,
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
    r"(?i)[\n,;|]|[.!?]\s+|\band\b|\s[-\u{2013}\u{2014}]\s"
);
pattern!(
    NAME_LABEL,
    r"(?i)^(?:(?:my|the|full|your)\s+)?(?:full\s+)?name(?:'s|\s+is|\s+should\s+be|\s+to)?\b[\s:\-]*|^i'm\s+|^im\s+|^i\s+am\s+|^this\s+is\s+|^it's\s+|^its\s+|^it\s+is\s+|^(?:you\s+can\s+)?call\s+me\s+|^(?:please\s+)?(?:change|update|set|make)\s+(?:my|the)\s+name\s+(?:to\s+)?|^(?:book|put)\s+it\s+(?:under|for)\s+(?:the\s+name\s+)?"
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
    "ah",
    "bye",
    "cheers",
    "eh",
    "er",
    "erm",
    "goodbye",
    "hm",
    "hmm",
    "hmmm",
    "huh",
    "lol",
    "nah",
    "over",
    "restart",
    "start",
    "stop",
    "uh",
    "um",
    "umm",
    "wait",
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
    let (name, name_labelled) = match find_name(&rest) {
        Some((name, labelled)) => (Some(name), labelled),
        None => (None, false),
    };
    Contact {
        name,
        name_labelled,
        // Addresses are compared and stored as people expect: "MIKE@EXAMPLE.COM" is mike's.
        email: email.map(|e| e.to_lowercase()),
        phone,
    }
}

fn find_name(text: &str) -> Option<(String, bool)> {
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
            return Some((name, true));
        }
        unlabelled.get_or_insert((name, false));
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
    // "john doe" typed in a hurry (or "JOHN DOE" in capitals) reads better as "John Doe";
    // mixed case is left as typed.
    let all_caps = name.chars().filter(|c| c.is_alphabetic()).count() > 1
        && !name.chars().any(char::is_lowercase);
    if all_caps {
        return Some(title_case(&name.to_lowercase()));
    }
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
// Services
// ---------------------------------------------------------------------------------------------

/// Words that say nothing about which service is meant.
const SERVICE_STOP_WORDS: &[&str] = &[
    "a", "an", "the", "one", "i", "i'd", "id", "need", "want", "like", "book", "booking", "please",
    "would", "to", "for", "me", "my", "with", "at", "on", "in", "of", "and", "or", "get", "have",
    "do", "can", "could", "some", "this", "that", "is", "it",
];

/// Service-name words too generic to pick a service on their own ("a session").
const GENERIC_SERVICE_WORDS: &[&str] = &["session", "visit", "appointment", "service", "meeting"];

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
// Requests
// ---------------------------------------------------------------------------------------------

/// A request about appointments, as far as the words alone tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Cancel {
        confirmation: Option<String>,
    },
    Reschedule {
        confirmation: Option<String>,
    },
    /// "What's my appointment APPT-…", "when is my appointment".
    Show {
        confirmation: Option<String>,
    },
    ListServices,
}

pattern!(
    RESCHEDULE,
    r"\b(?:re-?schedule|postpone|move\s+(?:my|the|it|this|that|appointment|booking|appt-[a-z0-9]{6})|change\s+(?:my|the)\s+(?:appointment|booking|reservation)|push\s+(?:back|it))\b"
);
pattern!(
    CANCEL,
    r"\b(?:cancel|call\s+(?:it\s+|that\s+|this\s+)?off|(?:delete|remove)\s+(?:my|the|this|that)\s+(?:appointment|booking|reservation))\b"
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
    BOOK_VERB,
    r"\b(?:book|make|schedule|reserve|need|want|like|get)\b"
);

/// A request about appointments in the text, if any.
pub fn request(text: &str) -> Option<Request> {
    let lower = normalize(text);
    let confirmation = confirmation_number(text);
    if RESCHEDULE.is_match(&lower) {
        return Some(Request::Reschedule { confirmation });
    }
    if CANCEL.is_match(&lower) {
        return Some(Request::Cancel { confirmation });
    }
    if (SHOW_APPOINTMENT.is_match(&lower) && !BOOK_VERB.is_match(&lower)) || confirmation.is_some()
    {
        return Some(Request::Show { confirmation });
    }
    if LIST_SERVICES.is_match(&lower) {
        return Some(Request::ListServices);
    }
    None
}

pattern!(
    DAY_LATER,
    r"\b(?:(?:the\s+)?day\s+after|(?:the\s+)?next\s+day|(?:the\s+)?following\s+day|a\s+day\s+later|one\s+day\s+later)\b"
);
pattern!(
    DAY_EARLIER,
    r"\b(?:(?:the\s+)?day\s+before|(?:the\s+)?previous\s+day|a\s+day\s+earlier|one\s+day\s+earlier)\b"
);

/// "The day after" (+1) or "the day before" (-1) the day already chosen.
pub fn day_offset(text: &str) -> Option<i64> {
    let s = normalize(text);
    if DAY_LATER.is_match(&s) {
        Some(1)
    } else if DAY_EARLIER.is_match(&s) {
        Some(-1)
    } else {
        None
    }
}

pattern!(
    CONFIRM_BOOKING,
    r"^(?:(?:yes|yeah|yep|ok|okay|sure|please)[\s,!.]*)*(?:confirm|make|complete|finali[sz]e)\s+(?:the\s+|my\s+|this\s+|that\s+)?(?:booking|appointment|reservation)(?:[\s,!.]*(?:please|thanks|thank\s+you))*[\s!.]*$"
);

/// "Confirm booking", "yes, confirm the appointment": a yes in the booking's own words.
pub fn confirms_booking(text: &str) -> bool {
    CONFIRM_BOOKING.is_match(&normalize(text))
}

pattern!(REFERS_BACK, r"\b(?:one|it|that|this|them)\b");

/// "Book me one", "I'll take it": a booking that refers back to the service talked about.
pub fn refers_back(text: &str) -> bool {
    let s = normalize(text);
    REFERS_BACK.is_match(&s) && (BOOK.is_match(&s) || BOOK_VERB.is_match(&s))
}

/// True when the text asks to book ("I need an appointment", "can I come in").
pub fn wants_booking(text: &str) -> bool {
    BOOK.is_match(&normalize(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Vec<Service> {
        crate::domain::org::demo_services()
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
    fn labelled_names_are_told_apart_and_capitals_tidied() {
        let c = parse_contact("its mary jones mary@example.com");
        assert_eq!(c.name.as_deref(), Some("Mary Jones"));
        assert!(c.name_labelled);
        let c = parse_contact("Peter Parker");
        assert_eq!(c.name.as_deref(), Some("Peter Parker"));
        assert!(!c.name_labelled);
        let c = parse_contact("MIKE ROSS, MIKE@EXAMPLE.COM");
        assert_eq!(c.name.as_deref(), Some("Mike Ross"));
        assert_eq!(c.email.as_deref(), Some("mike@example.com"));
        let c = parse_contact("I'd like it on Friday at 3pm. I'm Tom Baker, tom@example.com");
        assert_eq!(c.name.as_deref(), Some("Tom Baker"));
        for text in ["hmm", "nah", "start over", "thanks, bye"] {
            assert_eq!(parse_contact(text).name, None, "{text}");
        }
        assert_eq!(day_offset("actually the day after"), Some(1));
        assert_eq!(day_offset("the day before please"), Some(-1));
        assert!(refers_back("ok, book me one tomorrow at 10"));
        assert!(confirms_booking("confirm booking"));
        assert!(confirms_booking("Yes, confirm the appointment please"));
        assert!(!confirms_booking("confirm booking for friday"));
        assert!(!refers_back("tomorrow at 10"));
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
    fn booking_openers_are_recognised() {
        assert!(!wants_booking("Hello"));
        assert!(wants_booking("Hello, I need to book an appointment"));
        assert!(wants_booking("Can I make an appointment?"));
        assert_eq!(
            request("What services do you offer?"),
            Some(Request::ListServices)
        );
        assert_eq!(request("what do you offer"), Some(Request::ListServices));
        assert_eq!(request("blorp"), None);
        assert_eq!(request("Tomorrow at 2 PM"), None);
    }

    #[test]
    fn appointment_intents_carry_the_number() {
        assert_eq!(
            request("Please cancel my appointment APPT-7K2M9Q"),
            Some(Request::Cancel {
                confirmation: Some("APPT-7K2M9Q".into())
            })
        );
        assert_eq!(
            request("cancel it"),
            Some(Request::Cancel { confirmation: None })
        );
        assert_eq!(
            request("I want to reschedule appt-abc123 to Friday at 3pm"),
            Some(Request::Reschedule {
                confirmation: Some("APPT-ABC123".into())
            })
        );
        assert_eq!(
            request("can i move appt-abc234 to friday at 3pm"),
            Some(Request::Reschedule {
                confirmation: Some("APPT-ABC234".into())
            })
        );
        assert_eq!(
            request("can I move my appointment?"),
            Some(Request::Reschedule { confirmation: None })
        );
        assert_eq!(
            request("what's my appointment APPT-ABC123"),
            Some(Request::Show {
                confirmation: Some("APPT-ABC123".into())
            })
        );
        assert_eq!(
            request("when is my appointment?"),
            Some(Request::Show { confirmation: None })
        );
        assert_eq!(
            request("APPT-ABC123"),
            Some(Request::Show {
                confirmation: Some("APPT-ABC123".into())
            })
        );
    }

    #[test]
    fn bookings_phrased_like_tasks_are_still_bookings() {
        assert_eq!(
            request("delete my appointment APPT-ABC123"),
            Some(Request::Cancel {
                confirmation: Some("APPT-ABC123".into())
            })
        );
        assert_eq!(
            request("change my appointment"),
            Some(Request::Reschedule { confirmation: None })
        );
    }
}
