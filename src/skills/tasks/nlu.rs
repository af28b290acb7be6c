//! The tasks skill's vocabulary for the offline model: adding, listing, completing, renaming
//! and deleting to-do items by title.

use crate::agent::offline::nlu::{normalize, pattern, words};

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

/// A request about tasks, as far as the words alone tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Add {
        title: String,
        description: Option<String>,
    },
    List {
        status: TaskStatus,
    },
    Complete {
        title: String,
    },
    Update {
        title: String,
        new_title: Option<String>,
        description: Option<String>,
    },
    Delete {
        title: String,
    },
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
// "I paid it, tick off pay the rent": the request after a first clause.
pattern!(
    COMPLETE_AFTER_CLAUSE,
    r"(?i)^[^,;]+[,;]\s*(?:so\s+|please\s+|pls\s+)?(?:tick|check|cross|mark)\s+off\s+(?:the\s+)?(?:task\s+)?(.+)$"
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
// Titles that name a booking are not tasks ("remove my booking" is for the booking skill).
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

/// A request about tasks in the text, if any. Task phrasings embed free text ("remind me to
/// book a table"), so the offline model tries them before other skills' requests.
pub fn request(text: &str) -> Option<Request> {
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
                return Some(Request::Add { title, description });
            }
        }
    }
    for pattern in [&*UPDATE_DESCRIPTION_OF, &*UPDATE_POSSESSIVE_DESCRIPTION] {
        if let Some(c) = pattern.captures(t) {
            let title = clean_title(&c[1]);
            if usable_title(&title) {
                return Some(Request::Update {
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
                return Some(Request::Update {
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
        &*COMPLETE_AFTER_CLAUSE,
        &*COMPLETE_IS_DONE,
    ] {
        if let Some(c) = pattern.captures(t) {
            let title = clean_title(&c[1]);
            if usable_title(&title) {
                return Some(Request::Complete { title });
            }
        }
    }
    for pattern in [&*DELETE_TASK_EXPLICIT, &*DELETE_ANY] {
        if let Some(c) = pattern.captures(t) {
            let title = clean_title(&c[1]);
            if usable_title(&title) {
                return Some(Request::Delete { title });
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
        return Some(Request::List { status });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(title: &str, description: Option<&str>) -> Request {
        Request::Add {
            title: title.into(),
            description: description.map(Into::into),
        }
    }

    #[test]
    fn task_additions_are_recognised() {
        assert_eq!(
            request("add a task to buy milk"),
            Some(add("buy milk", None))
        );
        assert_eq!(
            request("remind me to call Bob"),
            Some(add("call Bob", None))
        );
        assert_eq!(
            request("add task: renew passport"),
            Some(add("renew passport", None))
        );
        assert_eq!(
            request("Please create a new task called \"water plants\""),
            Some(add("water plants", None))
        );
        assert_eq!(
            request("add pay rent to my todo list"),
            Some(add("pay rent", None))
        );
        assert_eq!(
            request("add a task to renew passport with description before the trip"),
            Some(add("renew passport", Some("before the trip")))
        );
        assert_eq!(
            request("remind me to book a table"),
            Some(add("book a table", None))
        );
    }

    #[test]
    fn task_listings_are_recognised() {
        let list = |status| Request::List { status };
        assert_eq!(request("show my tasks"), Some(list(TaskStatus::All)));
        assert_eq!(request("what's pending"), Some(list(TaskStatus::Pending)));
        assert_eq!(request("What’s pending?"), Some(list(TaskStatus::Pending)));
        assert_eq!(
            request("list completed tasks"),
            Some(list(TaskStatus::Completed))
        );
        assert_eq!(
            request("which tasks are done?"),
            Some(list(TaskStatus::Completed))
        );
        assert_eq!(request("my to-do list"), Some(list(TaskStatus::All)));
    }

    #[test]
    fn task_changes_are_recognised() {
        let complete = |t: &str| Request::Complete { title: t.into() };
        let delete = |t: &str| Request::Delete { title: t.into() };
        assert_eq!(request("mark buy milk as done"), Some(complete("buy milk")));
        assert_eq!(
            request("complete the task call Bob"),
            Some(complete("call Bob"))
        );
        assert_eq!(
            request("I finished renew passport"),
            Some(complete("renew passport"))
        );
        assert_eq!(request("buy milk is done"), Some(complete("buy milk")));
        assert_eq!(
            request("rename buy milk to buy oat milk"),
            Some(Request::Update {
                title: "buy milk".into(),
                new_title: Some("buy oat milk".into()),
                description: None
            })
        );
        assert_eq!(
            request("change the description of call Bob to about the party"),
            Some(Request::Update {
                title: "call Bob".into(),
                new_title: None,
                description: Some("about the party".into())
            })
        );
        assert_eq!(
            request("delete the task renew passport"),
            Some(delete("renew passport"))
        );
        assert_eq!(request("remove buy milk"), Some(delete("buy milk")));
        assert_eq!(
            request("remove buy milk from my list"),
            Some(delete("buy milk"))
        );
    }

    #[test]
    fn bookings_are_not_mistaken_for_tasks() {
        assert_eq!(request("delete my appointment APPT-ABC123"), None);
        assert_eq!(request("change my appointment"), None);
        assert_eq!(request("complete the booking"), None);
    }
}
