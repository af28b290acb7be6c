//! The agent state kept in checkpoints: the conversation's stage and what the booking flow has
//! collected so far. Reported to clients as `metadata.current_state`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where the conversation stands.
// Ordered as the booking flow proceeds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Stage {
    /// Nothing in progress.
    #[default]
    Idle,
    /// Booking: which service?
    CollectService,
    /// Booking: when?
    CollectDatetime,
    /// Booking: name, email, phone.
    CollectContact,
    /// Booking: everything known, waiting for the customer's yes.
    Confirm,
    /// Booking made (or changed, or cancelled).
    Complete,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "IDLE",
            Self::CollectService => "COLLECT_SERVICE",
            Self::CollectDatetime => "COLLECT_DATETIME",
            Self::CollectContact => "COLLECT_CONTACT",
            Self::Confirm => "CONFIRM",
            Self::Complete => "COMPLETE",
        }
    }
}

/// What the booking flow has collected. Times are local to the org's time zone,
/// `YYYY-MM-DDTHH:MM`, exactly as the booking tools take them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingDraft {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Set when the flow reschedules an existing appointment instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_of: Option<String>,
}

/// The state saved with every checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    #[serde(default)]
    pub stage: Stage,
    #[serde(default)]
    pub booking: BookingDraft,
    /// The last confirmation number this conversation produced or talked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_confirmation: Option<String>,
}
