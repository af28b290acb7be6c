//! The mailbox's rules: what a valid message is, who may receive it, how a reply is
//! addressed, and what a search means. Handlers parse the wire; this turns it into store
//! calls.

use std::collections::BTreeSet;

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Caller;
use super::store::{Mailbox, Message, Outgoing, Search, ThreadTarget};
use crate::domain::FieldError;
use crate::domain::agents::AgentHandle;
use crate::http::error::ApiError;
use crate::store::Store;

pub const MAX_RECIPIENTS: usize = 50;
pub const MAX_SUBJECT_CHARS: usize = 200;
pub const MAX_BODY_CHARS: usize = 50_000;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 50;
pub const MAX_QUERY_CHARS: usize = 200;
const MAX_QUERY_WORDS: usize = 20;

/// Body of `POST /api/v1/messages` (and `/broadcast`, `/group`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// 1–50 handles of active agents of your organisation.
    #[schema(example = json!(["billing-bot"]))]
    pub to_handles: Vec<String>,
    /// Up to 200 characters.
    #[schema(example = "Invoice 2291")]
    pub subject: String,
    /// 1–50 000 characters.
    #[schema(example = "Can you check why invoice 2291 was charged twice?")]
    pub body: String,
    /// Up to 20 tags of 1–50 characters.
    #[schema(example = json!(["billing"]))]
    pub tags: Option<Vec<String>>,
}

/// Body of `POST /api/v1/messages/{id}/reply`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReply {
    /// 1–50 000 characters.
    #[schema(example = "Refunded; the second charge was a retry.")]
    pub body: String,
    /// Up to 200 characters; `Re: ` and the answered message's subject when absent.
    pub subject: Option<String>,
    /// Up to 20 tags of 1–50 characters.
    pub tags: Option<Vec<String>>,
}

/// The parts every message shares, validated.
struct Content {
    subject: String,
    body: String,
    tags: Vec<String>,
}

fn subject(raw: &str, errors: &mut Vec<FieldError>) -> String {
    let s = raw.trim();
    if s.chars().count() > MAX_SUBJECT_CHARS {
        errors.push(FieldError::new(
            "subject",
            format!("must be at most {MAX_SUBJECT_CHARS} characters"),
        ));
    }
    s.to_owned()
}

fn content(
    subject_raw: &str,
    body: &str,
    tags: Option<&[String]>,
    errors: &mut Vec<FieldError>,
) -> Content {
    let subject = subject(subject_raw, errors);
    let chars = body.chars().count();
    if body.trim().is_empty() {
        errors.push(FieldError::new("body", "must not be empty"));
    } else if chars > MAX_BODY_CHARS {
        errors.push(FieldError::new(
            "body",
            format!("must be at most {MAX_BODY_CHARS} characters"),
        ));
    }
    let tags = tags.unwrap_or_default();
    if tags.len() > MAX_TAGS {
        errors.push(FieldError::new(
            "tags",
            format!("must hold at most {MAX_TAGS} tags"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut kept = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        let t = tag.trim();
        if t.is_empty() || t.chars().count() > MAX_TAG_CHARS {
            errors.push(FieldError::new(
                format!("tags[{i}]"),
                format!("must be 1 to {MAX_TAG_CHARS} characters"),
            ));
        } else if seen.insert(t.to_owned()) {
            kept.push(t.to_owned());
        }
    }
    Content {
        subject,
        body: body.to_owned(),
        tags: kept,
    }
}

/// The recipients: 1–50 distinct handles of active agents of the caller's organisation.
async fn recipients(
    store: &Store,
    caller: &Caller,
    raw: &[String],
    errors: &mut Vec<FieldError>,
) -> Result<Vec<String>, ApiError> {
    if raw.is_empty() || raw.len() > MAX_RECIPIENTS {
        errors.push(FieldError::new(
            "to_handles",
            format!("must name 1 to {MAX_RECIPIENTS} agents"),
        ));
        return Ok(Vec::new());
    }
    let mut handles: Vec<String> = Vec::new();
    let mut bad = false;
    for (i, h) in raw.iter().enumerate() {
        match AgentHandle::parse(h.trim()) {
            Ok(h) => {
                if !handles.iter().any(|x| x == h.as_str()) {
                    handles.push(h.to_string());
                }
            }
            Err(e) => {
                bad = true;
                errors.push(FieldError::new(format!("to_handles[{i}]"), e.0));
            }
        }
    }
    if bad {
        return Ok(Vec::new());
    }
    let active = store
        .active_agent_handles(caller.org_id(), &handles)
        .await?;
    for (i, h) in raw.iter().enumerate() {
        if !active.iter().any(|a| a == h.trim()) {
            errors.push(FieldError::new(
                format!("to_handles[{i}]"),
                format!("{} is not an active agent of this organisation", h.trim()),
            ));
        }
    }
    Ok(handles)
}

/// How new messages are threaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fanout {
    /// One thread for all recipients.
    OneThread,
    /// One thread per recipient.
    ThreadEach,
}

/// Sends a new message: one thread for everyone, or one per recipient (broadcast).
pub async fn send(
    store: &Store,
    caller: &Caller,
    req: &NewMessage,
    fanout: Fanout,
) -> Result<Vec<Message>, ApiError> {
    let mut errors = Vec::new();
    let to = recipients(store, caller, &req.to_handles, &mut errors).await?;
    let c = content(&req.subject, &req.body, req.tags.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let outgoing = |to: Vec<String>| Outgoing {
        thread: ThreadTarget::New { id: Uuid::now_v7() },
        id: Uuid::now_v7(),
        from: caller.handle.clone(),
        to,
        subject: c.subject.clone(),
        body: c.body.clone(),
        tags: c.tags.clone(),
        in_reply_to: None,
        audit_type: match fanout {
            Fanout::OneThread => "message.sent",
            Fanout::ThreadEach => "message.broadcast",
        },
    };
    let messages: Vec<Outgoing> = match fanout {
        Fanout::OneThread => vec![outgoing(to)],
        Fanout::ThreadEach => to.into_iter().map(|h| outgoing(vec![h])).collect(),
    };
    Ok(Mailbox(store)
        .send(caller.org_id(), &messages, crate::domain::now())
        .await?)
}

/// A message the caller sent or received; 404 otherwise (another agent's mail does not exist
/// for it).
pub async fn visible_message(
    store: &Store,
    caller: &Caller,
    id: Uuid,
) -> Result<Message, ApiError> {
    Mailbox(store)
        .visible_message(caller.org_id(), &caller.handle, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no message {id}")))
}

/// Answers `original` in its thread: to every other participant of the thread that is still
/// an active agent (to the caller itself in a thread of its own).
pub async fn reply_to(
    store: &Store,
    caller: &Caller,
    original: &Message,
    req: &NewReply,
) -> Result<Message, ApiError> {
    let mut errors = Vec::new();
    let default_subject = if original.subject.starts_with("Re: ") || original.subject.is_empty() {
        original.subject.clone()
    } else {
        format!("Re: {}", original.subject)
            .chars()
            .take(MAX_SUBJECT_CHARS)
            .collect()
    };
    let c = content(
        req.subject.as_deref().unwrap_or(&default_subject),
        &req.body,
        req.tags.as_deref(),
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mailbox = Mailbox(store);
    let others: Vec<String> = mailbox
        .participants(caller.org_id(), original.thread_id)
        .await?
        .into_iter()
        .filter(|h| h != caller.handle.as_str())
        .collect();
    let to = if others.is_empty() {
        vec![caller.handle.to_string()]
    } else {
        let active = store.active_agent_handles(caller.org_id(), &others).await?;
        if active.is_empty() {
            return Err(ApiError::validation(
                "to_handles",
                "no other participant of this thread is an active agent any more",
            ));
        }
        others.into_iter().filter(|h| active.contains(h)).collect()
    };
    let message = Outgoing {
        thread: ThreadTarget::Existing {
            id: original.thread_id,
        },
        id: Uuid::now_v7(),
        from: caller.handle.clone(),
        to,
        subject: c.subject,
        body: c.body,
        tags: c.tags,
        in_reply_to: Some(original.id),
        audit_type: "message.replied",
    };
    let mut sent = mailbox
        .send(caller.org_id(), &[message], crate::domain::now())
        .await?;
    sent.pop()
        .ok_or_else(|| ApiError::Internal("a reply was stored but not returned".into()))
}

/// The words of a search query: runs of letters and digits, lower-cased, at most 20.
pub fn query_words(raw: &str) -> Result<Vec<String>, ApiError> {
    if raw.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::validation(
            "query",
            format!("must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let mut words: Vec<String> = Vec::new();
    for w in raw
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let w = w.to_lowercase();
        if !words.contains(&w) {
            words.push(w);
        }
    }
    if words.is_empty() {
        return Err(ApiError::validation(
            "query",
            "must contain at least one word (letters or digits)",
        ));
    }
    words.truncate(MAX_QUERY_WORDS);
    Ok(words)
}

/// Runs a search over the caller's messages.
pub async fn search(
    store: &Store,
    caller: &Caller,
    search: &Search,
) -> Result<Vec<Message>, ApiError> {
    Ok(Mailbox(store)
        .search(caller.org_id(), &caller.handle, search)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_words_are_letters_and_digits_lower_cased_and_distinct() {
        assert_eq!(
            query_words("Invoice #2291, invoice; \"OR\" NEAR(x)").unwrap(),
            ["invoice", "2291", "or", "near", "x"]
        );
        assert!(query_words("  *** ").is_err());
        assert!(query_words(&"x".repeat(201)).is_err());
    }
}
