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
