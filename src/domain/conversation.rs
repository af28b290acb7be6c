//! Conversations, their messages and runs as the store returns them, the conversation's state,
//! and who may see a conversation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use utoipa::ToSchema;

use super::chat::{Role, ToolCall, Usage};
use super::ids::{ConversationId, EndUserId, MessageId, RunId};
use super::{Invalid, invalid};

/// How a conversation came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationKind {
    /// Started by `POST /chat` with an id the client chose.
    Session,
    /// Created through `POST /conversations`.
    Conversation,
}

impl ConversationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Conversation => "conversation",
        }
    }
}

impl TryFrom<String> for ConversationKind {
    type Error = Invalid;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        match raw.as_str() {
            "session" => Ok(Self::Session),
            "conversation" => Ok(Self::Conversation),
            _ => Err(invalid(format!("unknown conversation kind {raw:?}"))),
        }
    }
}

/// The label of a conversation in which nothing is in progress.
pub const IDLE: &str = "IDLE";

fn idle() -> String {
    IDLE.to_owned()
}

/// What the latest checkpoint holds: where the conversation stands, and each skill's own
/// state. The agent core treats skill states as opaque JSON, keyed by skill name; a skill
/// reads and writes only its own entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationState {
    /// Where the conversation stands as the skill in charge names it (`COLLECT_SERVICE`…),
    /// `IDLE` when nothing is in progress: reported to clients as `current_state`.
    #[serde(default = "idle")]
    pub stage: String,
    /// Each skill's state, by skill name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skills: BTreeMap<String, Value>,
}

impl Default for ConversationState {
    fn default() -> Self {
        Self {
            stage: idle(),
            skills: BTreeMap::new(),
        }
    }
}

impl ConversationState {
    /// A skill's state, or its default when it has none yet (or an unreadable one).
    pub fn skill<T: serde::de::DeserializeOwned + Default>(&self, name: &str) -> T {
        self.skills
            .get(name)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// Replaces a skill's state.
    pub fn set_skill<T: Serialize>(&mut self, name: &str, state: &T) {
        match serde_json::to_value(state) {
            Ok(v) if !v.is_null() => {
                self.skills.insert(name.to_owned(), v);
            }
            _ => {
                self.skills.remove(name);
            }
        }
    }
}

/// A conversation as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Conversation {
    pub id: ConversationId,
    pub org_id: String,
    #[sqlx(try_from = "String")]
    pub kind: ConversationKind,
    /// The end user who owns it; `None` for the organisation's own (API-key) conversations.
    pub end_user: Option<String>,
    pub title: String,
    pub metadata: Json<Value>,
    pub archived: bool,
    /// Sequence number of the last message (messages are numbered 1, 2, …).
    pub last_seq: i64,
    /// Visible (not deleted) messages.
    pub message_count: i64,
    pub last_message_at: Option<DateTime<Utc>>,
    pub state: Json<ConversationState>,
    pub checkpoint_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Who asks: an organisation, and within it an end user or the organisation itself.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub org: &'a super::OrgId,
    /// `None` for API-key callers (the business), who act for the whole organisation.
    pub end_user: Option<&'a EndUserId>,
}

/// Why a caller may not use a conversation that exists in its organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this conversation belongs to another user")]
pub struct NotOwner;

/// The one ownership rule: an end user may use only their own conversations; the organisation
/// (an API-key caller, `end_user` = `None`) may use all of its own.
pub fn check_owner(owner: Option<&str>, caller: Option<&EndUserId>) -> Result<(), NotOwner> {
    match caller {
        Some(user) if owner != Some(user.as_str()) => Err(NotOwner),
        _ => Ok(()),
    }
}

impl Conversation {
    pub fn check_owner(&self, caller: Option<&EndUserId>) -> Result<(), NotOwner> {
        check_owner(self.end_user.as_deref(), caller)
    }
}

/// A stored message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub id: MessageId,
    pub seq: i64,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub content: String,
    pub tool_calls: Option<Json<Vec<ToolCall>>>,
    pub tool_call_id: Option<String>,
    pub tool_name: Option<String>,
    pub run_id: Option<RunId>,
    pub model: Option<String>,
    pub usage: Option<Json<Usage>>,
    pub created_at: DateTime<Utc>,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Still answering (only ever seen while a streamed run is live).
    Running,
    Completed,
    Failed,
    /// Stopped by `POST /api/v1/runs/{id}/cancel`: nothing of the turn was stored.
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl TryFrom<String> for RunStatus {
    type Error = Invalid;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        match raw.as_str() {
            "running" => Ok(Self::Running),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            "cancelled" => Ok(Self::Cancelled),
            _ => Err(invalid(format!("unknown run status {raw:?}"))),
        }
    }
}

/// A finished run as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Run {
    pub id: RunId,
    pub conversation_id: ConversationId,
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    pub model: Option<String>,
    pub steps: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    /// For failed runs: `CODE: cause`.
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skill_states_round_trip_and_default_when_absent() {
        #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
        struct Draft {
            n: u32,
        }
        let mut s = ConversationState::default();
        assert_eq!(s.stage, IDLE);
        assert_eq!(s.skill::<Draft>("x"), Draft::default());
        s.set_skill("x", &Draft { n: 3 });
        let back: ConversationState =
            serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back.skill::<Draft>("x"), Draft { n: 3 });
        // An empty document (a conversation without any checkpoint yet) is the default.
        let empty: ConversationState = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, ConversationState::default());
    }

    #[test]
    fn end_users_own_only_their_conversations() {
        let alice = EndUserId::parse("alice").unwrap();
        assert!(check_owner(Some("alice"), Some(&alice)).is_ok());
        assert!(check_owner(Some("bob"), Some(&alice)).is_err());
        assert!(check_owner(None, Some(&alice)).is_err());
        assert!(check_owner(Some("bob"), None).is_ok());
    }
}
