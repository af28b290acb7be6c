//! Webhook events: the catalogue of event types and the payloads of the core's own events.
//! The catalogue is open: a skill declares its event types (`appointment.created`…) next to
//! the code that emits them, and the server assembles every type it emits into an
//! [`EventCatalog`] at start, which is what subscriptions are checked against.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::conversation::ConversationKind;
use super::ids::ConversationId;

/// An event type: its wire name (`conversation.created`) is what endpoints subscribe to and
/// what the payload's `type` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventType(&'static str);

impl EventType {
    /// A conversation (or a chat session, at its first message) was created.
    pub const CONVERSATION_CREATED: Self = Self("conversation.created");
    /// A session was erased (`DELETE /sessions/{id}` or the idle sweeper).
    pub const SESSION_DELETED: Self = Self("session.deleted");
    /// Sent on request by `POST /webhooks/{id}/test`.
    pub const WEBHOOK_TEST: Self = Self("webhook.test");

    /// The core's own events; skills add theirs.
    pub const CORE: [Self; 3] = [
        Self::CONVERSATION_CREATED,
        Self::SESSION_DELETED,
        Self::WEBHOOK_TEST,
    ];

    /// Declares an event type (skills do this for their own events).
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// Every event type this server emits, in a stable order.
#[derive(Debug, Clone, Default)]
pub struct EventCatalog(Vec<EventType>);

impl EventCatalog {
    pub fn new(types: impl IntoIterator<Item = EventType>) -> Self {
        let mut all: Vec<EventType> = Vec::new();
        for t in types {
            if !all.contains(&t) {
                all.push(t);
            }
        }
        Self(all)
    }

    pub fn parse(&self, raw: &str) -> Option<EventType> {
        let raw = raw.trim();
        self.0.iter().copied().find(|t| t.as_str() == raw)
    }

    pub fn all(&self) -> &[EventType] {
        &self.0
    }

    /// The known names, comma-separated, for error messages.
    pub fn known(&self) -> String {
        self.0
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The body of every delivery (`Content-Type: application/json`). `id` is also the
/// `webhook-id` header and stays the same across retries and restarts: deduplicate on it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a11",
    "type": "appointment.created",
    "created_at": "2026-11-23T10:15:00.123456Z",
    "org_id": "clinic",
    "data": {
        "id": "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a12",
        "confirmation_number": "APPT-7K2M9Q",
        "service_id": "general-consultation",
        "service_name": "General Consultation",
        "start_at": "2026-11-24T13:00:00Z",
        "end_at": "2026-11-24T13:30:00Z",
        "customer_name": "John Doe",
        "customer_email": "john@example.com",
        "customer_phone": "555-1234",
        "status": "booked",
        "end_user": null,
        "conversation_id": "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a13",
        "created_at": "2026-11-23T10:15:00.123456Z",
        "updated_at": "2026-11-23T10:15:00.123456Z"
    }
}))]
pub struct WebhookEvent {
    /// Event id (UUID); the `webhook-id` header carries the same value.
    pub id: Uuid,
    /// The event type, e.g. `appointment.created`.
    #[serde(rename = "type")]
    #[schema(example = "appointment.created")]
    pub kind: String,
    /// When the change happened (committed with it).
    pub created_at: DateTime<Utc>,
    /// The organisation the event belongs to.
    #[schema(example = "clinic")]
    pub org_id: String,
    /// Depends on `type`: an `Appointment` for `appointment.*`, `ConversationCreatedData`,
    /// `SessionDeletedData`, or `WebhookTestData` (docs/webhooks.md lists every type).
    #[schema(value_type = Object)]
    pub data: Value,
}

/// `data` of `conversation.created`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationCreatedData {
    pub conversation_id: ConversationId,
    /// `session` (created by /chat with a client-chosen id) or `conversation`.
    pub kind: ConversationKind,
    /// The end user, when created with an end-user token.
    pub end_user: Option<String>,
    #[schema(example = "Chat 2026-11-23 10:15")]
    pub title: String,
    pub created_at: DateTime<Utc>,
}

/// `data` of `session.deleted` (erased for good: GDPR erasure).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionDeletedData {
    pub session_id: ConversationId,
    /// `session` or `conversation`.
    pub kind: ConversationKind,
    pub end_user: Option<String>,
    pub deleted_at: DateTime<Utc>,
}

/// `data` of `webhook.test`, sent by `POST /api/v1/webhooks/{id}/test`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookTestData {
    pub webhook_id: Uuid,
    #[schema(example = "This is a test event from agentd.")]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_parses_known_names_only_and_keeps_its_order() {
        let booked = EventType::new("thing.booked");
        let c = EventCatalog::new([booked].into_iter().chain(EventType::CORE).chain([booked]));
        assert_eq!(c.parse(" thing.booked "), Some(booked));
        assert_eq!(c.parse("thing.unknown"), None);
        assert_eq!(
            c.known(),
            "thing.booked, conversation.created, session.deleted, webhook.test"
        );
    }
}
