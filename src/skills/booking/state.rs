//! The booking flow's own state, kept in the conversation state under the skill's name: the
//! stage (which the conversation reports as `current_state`) and what has been collected.

use serde::{Deserialize, Serialize};

use crate::domain::conversation::ConversationState;

/// Where the booking flow stands. Its label is the conversation's `current_state`.
// Ordered as the booking flow proceeds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Nothing in progress.
    #[default]
    Idle,
    /// Which service?
    CollectService,
    /// When?
    CollectDatetime,
    /// Name, email, phone.
    CollectContact,
    /// Everything known, waiting for the customer's yes.
    Confirm,
    /// Booking made (or changed, or cancelled).
    Complete,
}

impl Stage {
    pub const ALL: [Self; 6] = [
        Self::Idle,
        Self::CollectService,
        Self::CollectDatetime,
        Self::CollectContact,
        Self::Confirm,
        Self::Complete,
    ];

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

    /// The stage a conversation's label names; any other label (another skill's, or none)
    /// means the booking flow is idle.
    pub fn from_label(label: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == label)
            .unwrap_or_default()
    }

    /// True while a booking (or a move) is being put together.
    pub fn in_flow(self) -> bool {
        matches!(
            self,
            Self::CollectService | Self::CollectDatetime | Self::CollectContact | Self::Confirm
        )
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
    /// A day asked for before the service or the time was known (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// Part of the day asked for ("friday afternoon"): morning, afternoon or evening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// The two readings of an ambiguous numeric date, waiting for the visitor to choose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub date_choices: Vec<String>,
    /// The time said with an ambiguous date (`HH:MM`), kept until the date is settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_time: Option<String>,
}

/// A change to an existing appointment waiting on the customer: the email address or phone
/// number it was booked with (when it was booked in another conversation), or their yes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChange {
    /// `cancel`, `reschedule` or `show`.
    pub action: String,
    pub number: String,
    /// The new start of a move (`YYYY-MM-DDTHH:MM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The email address or phone number the customer gave to prove the booking is theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// True once the appointment was found and the customer was asked to confirm.
    #[serde(default)]
    pub asked: bool,
}

/// The booking skill's entry in the conversation state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingState {
    #[serde(default)]
    pub draft: BookingDraft,
    /// The last confirmation number this conversation produced or talked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_confirmation: Option<String>,
    /// The start of that appointment as last seen (`YYYY-MM-DDTHH:MM`), so "move it to 4pm"
    /// keeps its day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_start: Option<String>,
    /// The service a question was last about ("how much is a follow-up?"), for "book me one".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// A cancellation, move or look-up waiting on the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingChange>,
    /// A confirmation number and the email address or phone number that proved it is the
    /// customer's, so a move retried for another time does not ask again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<(String, String)>,
}

impl BookingState {
    /// The booking stage and state of a conversation.
    pub fn load(state: &ConversationState) -> (Stage, Self) {
        (Stage::from_label(&state.stage), state.skill(super::NAME))
    }

    /// Writes the stage and this state back.
    pub fn save(&self, stage: Stage, state: &mut ConversationState) {
        state.stage = stage.as_str().to_owned();
        state.set_skill(super::NAME, self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_round_trip_through_their_labels() {
        for stage in Stage::ALL {
            assert_eq!(Stage::from_label(stage.as_str()), stage);
        }
        assert_eq!(Stage::from_label("SOMETHING_ELSE"), Stage::Idle);
    }

    #[test]
    fn the_state_lives_under_the_skill_name() {
        let mut conv = ConversationState::default();
        let st = BookingState {
            last_confirmation: Some("APPT-ABC123".into()),
            ..BookingState::default()
        };
        st.save(Stage::Complete, &mut conv);
        assert_eq!(conv.stage, "COMPLETE");
        assert_eq!(
            conv.skills[super::super::NAME]["last_confirmation"],
            "APPT-ABC123"
        );
        assert_eq!(BookingState::load(&conv), (Stage::Complete, st));
    }
}
