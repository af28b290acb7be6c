//! The booking skill: the organisation's services, availability from its business hours and
//! existing bookings, and appointments (create, look up, cancel, reschedule) with no double
//! booking. Brings six tools, the `appointment.*` webhook events, the `/appointments` routes,
//! the booking flow's state and its offline understanding.

pub mod faq;
pub mod nlu;
pub mod offline;
pub mod routes;
pub mod state;
pub mod store;
pub mod tools;

use std::sync::Arc;

use serde_json::Value;

use super::Module;
use crate::agent::Skill;
use crate::agent::model::TurnContext;
use crate::agent::offline::OfflineSkill;
use crate::agent::tools::Tool;
use crate::domain::chat::ToolCall;
use crate::domain::conversation::ConversationState;
use crate::domain::events::EventType;
use state::{BookingState, Stage};

/// The skill's name: the key of its state in the conversation state.
pub const NAME: &str = "booking";

/// An appointment was booked (`data`: the appointment).
pub const APPOINTMENT_CREATED: EventType = EventType::new("appointment.created");
/// An appointment was cancelled.
pub const APPOINTMENT_CANCELLED: EventType = EventType::new("appointment.cancelled");
/// An appointment moved to another time.
pub const APPOINTMENT_RESCHEDULED: EventType = EventType::new("appointment.rescheduled");

pub fn module() -> Module {
    Module {
        skill: Arc::new(Booking),
        routes: Some(routes::router),
        event_payloads: &["Appointment"],
    }
}

pub struct Booking;

impl Skill for Booking {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tools(&self) -> Vec<Arc<dyn Tool>> {
        tools::tools()
    }

    fn event_types(&self) -> Vec<EventType> {
        vec![
            APPOINTMENT_CREATED,
            APPOINTMENT_CANCELLED,
            APPOINTMENT_RESCHEDULED,
        ]
    }

    fn prompt(&self, ctx: &TurnContext) -> Option<String> {
        let services: Vec<String> = ctx
            .org
            .settings
            .services
            .iter()
            .map(|s| format!("{} (id {}, {} min)", s.name, s.id, s.duration_minutes))
            .collect();
        Some(format!(
            "Services: {}. Times passed to tools are local, formatted YYYY-MM-DDTHH:MM. Collect \
             the customer's name, email and phone and get an explicit yes before booking.",
            if services.is_empty() {
                "none".to_owned()
            } else {
                services.join(", ")
            }
        ))
    }

    /// What the booking tools did tells where the conversation stands.
    fn observe(&self, state: &mut ConversationState, call: &ToolCall, result: &Value) {
        let (mut stage, mut st) = BookingState::load(state);
        let confirmation = result.get("confirmation_number").and_then(Value::as_str);
        match call.name.as_str() {
            "create_appointment" | "reschedule_appointment" | "cancel_appointment" => {
                stage = Stage::Complete;
                st.last_confirmation = confirmation.map(str::to_owned);
                st.draft = Default::default();
            }
            "check_availability" if stage < Stage::CollectContact => {
                stage = Stage::CollectDatetime;
            }
            "list_services" if stage == Stage::Idle => stage = Stage::CollectService,
            _ => return,
        }
        st.save(stage, state);
    }

    fn offline(&self) -> Option<Arc<dyn OfflineSkill>> {
        Some(Arc::new(offline::BookingOffline))
    }
}
