//! The offline model: a deterministic, rule-based stand-in for an LLM, so agentd works (and
//! its tests run) without a provider key. It plays one step of the agent loop at a time: reads
//! the latest user message, or the tool results of the step before, and answers with text or
//! one tool call, keeping the booking flow's progress in the agent state.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::{Map, Value, json};

use crate::agent::model::{
    ChatMessage, ModelError, ModelRequest, ModelResponse, Role, ToolCall, Usage,
};
use crate::agent::nlu::{self, Contact, Intent, TaskStatus};
use crate::agent::state::{AgentState, Stage};
use crate::orgs::Service;

/// The name the offline model reports in responses.
pub const MODEL_NAME: &str = "offline";

/// The loop stops after 8 steps; leaving one for a reply means a chain never ends mid-way.
const MAX_CALL_STEPS: usize = 7;

const START_FORMAT: &str = "%Y-%m-%dT%H:%M";

// Our own questions, recognised when the user answers them with just a confirmation number.
// The agent state has no slot for "what did I just ask", and the wording is ours to keep stable.
const ASK_CANCEL_NUMBER: &str = "Which appointment should I cancel? Please tell me its confirmation number (it looks like APPT-XXXXXX).";
const ASK_RESCHEDULE_NUMBER: &str = "Which appointment should I move? Please tell me its confirmation number (it looks like APPT-XXXXXX).";
const ASK_WHAT_TO_CHANGE: &str = "No problem. What would you like to change: the service, the date and time, or your contact details?";
const ASK_SHOW_NUMBER: &str =
    "Please tell me the confirmation number of your appointment (it looks like APPT-XXXXXX).";

/// The rule-based model. Stateless itself: everything it remembers is in the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineModel;

impl OfflineModel {
    /// One step of the agent loop: a reply, or one tool call to run before the next step.
    pub fn complete(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let mut step = Step::new(req);
        let action = step.decide();
        Ok(step.respond(action))
    }
}

enum Action {
    Reply(String),
    Call {
        tool: &'static str,
        arguments: Value,
    },
}

fn reply(text: impl Into<String>) -> Action {
    Action::Reply(text.into())
}

/// A tool's answer from earlier in this turn, with the arguments it was called with.
struct ToolOutput {
    name: String,
    value: Value,
    arguments: Value,
}

impl ToolOutput {
    fn error(&self) -> Option<String> {
        match &self.value {
            Value::Object(map) => map.get("error").map(|e| match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            // Not JSON: the tool said something we cannot read, which is as good as an error.
            Value::String(raw) => Some(raw.clone()),
            _ => None,
        }
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.value.get(key).and_then(Value::as_str)
    }
}

struct Step<'a> {
    req: &'a ModelRequest,
    state: AgentState,
    /// Index of the latest user message in `req.messages`.
    user: Option<usize>,
    text: &'a str,
}

impl<'a> Step<'a> {
    fn new(req: &'a ModelRequest) -> Self {
        let user = req.messages.iter().rposition(|m| m.role == Role::User);
        let text = user.map_or("", |i| req.messages[i].content.as_str());
        Self {
            req,
            state: req.state.clone(),
            user,
            text,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Reading the request
    // -----------------------------------------------------------------------------------------

    fn has_tool(&self, name: &str) -> bool {
        self.req.tools.iter().any(|t| t.name == name)
    }

    fn services(&self) -> &'a [Service] {
        &self.req.context.services
    }

    fn service(&self, id: &str) -> Option<&'a Service> {
        self.services().iter().find(|s| s.id == id)
    }

    fn service_name(&self, id: Option<&str>) -> String {
        id.map(|id| {
            self.service(id)
                .map_or_else(|| id.to_owned(), |s| s.name.clone())
        })
        .unwrap_or_else(|| "appointment".to_owned())
    }

    fn now_local(&self) -> NaiveDateTime {
        self.req
            .context
            .now
            .with_timezone(&self.req.context.time_zone)
            .naive_local()
    }

    /// Messages after the latest user message: this turn's earlier steps.
    fn this_turn(&self) -> &'a [ChatMessage] {
        let from = self.user.map_or(self.req.messages.len(), |i| i + 1);
        self.req.messages.get(from..).unwrap_or(&[])
    }

    /// How many tool-calling steps this turn has taken.
    fn steps_taken(&self) -> usize {
        self.this_turn()
            .iter()
            .filter(|m| m.role == Role::Assistant && !m.tool_calls.is_empty())
            .count()
    }

    fn outputs(&self) -> Vec<ToolOutput> {
        let turn = self.this_turn();
        turn.iter()
            .filter(|m| m.role == Role::Tool)
            .map(|m| {
                let call = turn
                    .iter()
                    .flat_map(|a| &a.tool_calls)
                    .find(|c| Some(&c.id) == m.tool_call_id.as_ref());
                let name = m
                    .name
                    .clone()
                    .or_else(|| call.map(|c| c.name.clone()))
                    .unwrap_or_default();
                let arguments = call
                    .and_then(|c| serde_json::from_str(&c.arguments).ok())
                    .unwrap_or(Value::Null);
                let value = serde_json::from_str(&m.content)
                    .unwrap_or_else(|_| Value::String(m.content.clone()));
                ToolOutput {
                    name,
                    value,
                    arguments,
                }
            })
            .collect()
    }

    /// What we said last before the user's message.
    fn previous_reply(&self) -> &'a str {
        let end = self.user.unwrap_or(0);
        self.req.messages[..end]
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant && !m.content.is_empty())
            .map_or("", |m| m.content.as_str())
    }

    /// The user's message before this one, for answers given in two halves ("tomorrow" …
    /// "at 3pm").
    fn previous_user_text(&self) -> Option<&'a str> {
        let end = self.user?;
        self.req.messages[..end]
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.as_str())
    }

    fn date_hint(&self) -> Option<NaiveDate> {
        let ctx = &self.req.context;
        nlu::parse_date(self.previous_user_text()?, ctx.now, ctx.time_zone)
    }

    fn time_hint(&self) -> Option<NaiveTime> {
        let previous = self.previous_user_text()?;
        let ctx = &self.req.context;
        // Only a time said on its own: a full date and time was handled back then.
        match nlu::parse_date(previous, ctx.now, ctx.time_zone) {
            Some(_) => None,
            None => nlu::parse_time(previous),
        }
    }

    /// The day of the last availability check in the conversation: "3pm" after we offered
    /// slots means 3pm on that day.
    fn last_checked_date(&self) -> Option<NaiveDate> {
        self.req
            .messages
            .iter()
            .rev()
            .flat_map(|m| m.tool_calls.iter().rev())
            .filter(|c| c.name == "check_availability")
            .find_map(|c| {
                let args: Value = serde_json::from_str(&c.arguments).ok()?;
                NaiveDate::parse_from_str(args.get("date")?.as_str()?, "%Y-%m-%d").ok()
            })
    }

    // -----------------------------------------------------------------------------------------
    // Deciding
    // -----------------------------------------------------------------------------------------

    fn decide(&mut self) -> Action {
        if self.user.is_none() {
            return reply(format!("Hello! {}", self.help()));
        }
        let ends_with_results = matches!(self.req.messages.last(), Some(m) if m.role == Role::Tool);
        if ends_with_results {
            let outputs = self.outputs();
            if let Some((last, earlier)) = outputs.split_last() {
                return self.follow_up(last, earlier);
            }
        }
        self.interpret()
    }

    fn interpret(&mut self) -> Action {
        let intent = nlu::classify(self.text);
        let number = nlu::confirmation_number(self.text);
        let asked = self.previous_reply();
        if let Some(number) = &number {
            if asked == ASK_CANCEL_NUMBER {
                return self.cancel(Some(number.clone()));
            }
            if asked == ASK_RESCHEDULE_NUMBER {
                return self.reschedule(Some(number.clone()));
            }
        }
        match intent {
            Intent::AddTask { title, description } => self.add_task(title, description),
            Intent::ListTasks { status } => self.list_tasks(status),
            Intent::CompleteTask { .. } => self.find_task_for("complete_task"),
            Intent::UpdateTask { .. } => self.find_task_for("update_task"),
            Intent::DeleteTask { .. } => self.find_task_for("delete_task"),
            Intent::Cancel { confirmation } => self.cancel_intent(confirmation),
            Intent::Reschedule { confirmation } => {
                // "Can I reschedule to 4pm?" while still booking changes the draft.
                if confirmation.is_none() && self.in_booking_flow() {
                    self.converse(Intent::Unknown)
                } else {
                    let number = confirmation.or_else(|| self.state.last_confirmation.clone());
                    self.reschedule(number)
                }
            }
            Intent::ShowAppointment { confirmation } => self.show_appointment(confirmation),
            Intent::ListServices => self.list_services(),
            other => self.converse(other),
        }
    }

    fn in_booking_flow(&self) -> bool {
        matches!(
            self.state.stage,
            Stage::CollectService | Stage::CollectDatetime | Stage::CollectContact | Stage::Confirm
        )
    }

    fn rescheduling(&self) -> Option<String> {
        if self.state.stage == Stage::CollectDatetime {
            self.state.booking.reschedule_of.clone()
        } else {
            None
        }
    }

    fn help(&self) -> String {
        let mut can = Vec::new();
        if self.has_tool("create_appointment") {
            can.push("book an appointment".to_owned());
        }
        if self.has_tool("reschedule_appointment") {
            can.push("reschedule one".to_owned());
        }
        if self.has_tool("cancel_appointment") {
            can.push("cancel one".to_owned());
        }
        if self.has_tool("get_appointment") {
            can.push("look one up by its confirmation number".to_owned());
        }
        if [
            "add_task",
            "list_tasks",
            "complete_task",
            "update_task",
            "delete_task",
        ]
        .iter()
        .any(|t| self.has_tool(t))
        {
            can.push("manage your tasks (add, list, complete, rename or delete them)".to_owned());
        }
        if can.is_empty() {
            return "I'm afraid there is nothing I can do for you here.".to_owned();
        }
        let mut text = format!("I can {}.", join(&can, "or"));
        if self.has_tool("create_appointment") && !self.services().is_empty() {
            text.push_str(&format!(" We offer {}.", self.service_names("and")));
        }
        text.push_str(" How can I help?");
        text
    }

    fn service_names(&self, conjunction: &str) -> String {
        let names: Vec<String> = self.services().iter().map(|s| s.name.clone()).collect();
        join(&names, conjunction)
    }

    fn ask_service(&self) -> String {
        if self.services().is_empty() {
            "Which service would you like to book?".to_owned()
        } else {
            format!(
                "Which service would you like? We offer {}.",
                self.service_names("and")
            )
        }
    }

    /// The question for the stage we are at, to repeat after something we did not follow.
    fn current_question(&self) -> String {
        let booking = &self.state.booking;
        match self.state.stage {
            Stage::CollectService => self.ask_service(),
            Stage::CollectDatetime => match &booking.reschedule_of {
                Some(number) => format!(
                    "When would you like to move {number} to? For example \"Friday at 3pm\"."
                ),
                None => format!(
                    "When would you like to come for your {}? For example \"tomorrow at 2pm\".",
                    self.service_name(booking.service_id.as_deref())
                ),
            },
            Stage::CollectContact => self.ask_contact(false),
            Stage::Confirm => self.summary(),
            Stage::Idle | Stage::Complete => self.help(),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Booking
    // -----------------------------------------------------------------------------------------

    fn converse(&mut self, intent: Intent) -> Action {
        let stage = self.state.stage;
        let ctx = &self.req.context;
        let contact =
            if matches!(stage, Stage::CollectContact | Stage::Confirm) || self.text.contains('@') {
                nlu::parse_contact(self.text)
            } else {
                Contact::default()
            };
        // An email like "jo@extended-care.com" must not pick a service, nor a phone number a
        // time, so they are taken out before looking for those.
        let mut rest = self.text.to_owned();
        for part in [&contact.email, &contact.phone].into_iter().flatten() {
            rest = rest.replacen(part.as_str(), " ", 1);
        }
        let service = nlu::match_service(&rest, self.services());
        let date = nlu::parse_date(&rest, ctx.now, ctx.time_zone);
        let time = nlu::parse_time(&rest);

        if let Some(number) = self.rescheduling() {
            return self.reschedule_when(number, date, time, &intent);
        }
        if service.is_none() && date.is_none() && time.is_none() && contact.is_empty() {
            return self.converse_without_details(intent);
        }
        if !self.has_tool("create_appointment") {
            return reply("Sorry, I can't book appointments here.");
        }
        if !self.in_booking_flow() {
            self.start_new_booking();
        }

        let booking_start = self.state.booking.start.as_deref().and_then(parse_start);
        let start_verified =
            matches!(stage, Stage::CollectContact | Stage::Confirm) && booking_start.is_some();
        let mut ack = String::new();
        let mut service_changed = false;
        if let Some(service) = service {
            if self.state.booking.service_id.as_deref() != Some(service.id.as_str()) {
                self.state.booking.service_id = Some(service.id.clone());
                service_changed = true;
                ack.push_str(&format!("{} it is. ", service.name));
            }
        }
        if let Some(name) = contact.name {
            ack.push_str(&format!("Thanks, {name}. "));
            self.state.booking.name = Some(name);
        }
        if let Some(email) = contact.email {
            self.state.booking.email = Some(email);
        }
        if let Some(phone) = contact.phone {
            self.state.booking.phone = Some(phone);
        }

        let requested = match (date, time) {
            (Some(d), Some(t)) => Some((d, Some(t))),
            // A new day keeps the time already chosen ("actually, make it Friday").
            (Some(d), None) => Some((
                d,
                booking_start.map(|s| s.time()).or_else(|| self.time_hint()),
            )),
            (None, Some(t)) => booking_start
                .map(|s| s.date())
                .or_else(|| self.last_checked_date())
                .or_else(|| self.date_hint())
                .map(|d| (d, Some(t))),
            (None, None) => None,
        };

        let Some(service_id) = self.state.booking.service_id.clone() else {
            // Keep a full date and time to check once the service is known.
            if let Some((d, Some(t))) = requested {
                self.state.booking.start = Some(format_start(NaiveDateTime::new(d, t)));
                ack.push_str(&format!("Noted: {}. ", when(NaiveDateTime::new(d, t))));
            }
            self.state.stage = Stage::CollectService;
            return reply(format!("{ack}{}", self.ask_service()));
        };
        match requested {
            Some((d, t)) => self.check_slot(&service_id, d, t, ack),
            None if time.is_some() => {
                self.state.stage = Stage::CollectDatetime;
                let t = time
                    .map(|t| t.format("%H:%M").to_string())
                    .unwrap_or_default();
                reply(format!("{ack}Which day would you like to come at {t}?"))
            }
            None if start_verified && !service_changed => self.contact_step(ack),
            None => match booking_start {
                // A time noted before the service was known, or one to re-check because a
                // different service may not fit it.
                Some(start) => self.check_slot(&service_id, start.date(), Some(start.time()), ack),
                None => {
                    self.state.stage = Stage::CollectDatetime;
                    reply(format!("{ack}{}", self.current_question()))
                }
            },
        }
    }

    fn start_new_booking(&mut self) {
        let booking = &mut self.state.booking;
        booking.service_id = None;
        booking.start = None;
        booking.reschedule_of = None;
        // Name, email and phone stay: the same customer booking again need not repeat them,
        // and the summary shows them before anything is booked.
    }

    fn converse_without_details(&mut self, intent: Intent) -> Action {
        let stage = self.state.stage;
        let greeting = starts_with_greeting(self.text);
        match intent {
            Intent::Confirm if stage == Stage::Confirm => self.book(),
            // A second "no" after we asked what to change: they don't want it after all.
            Intent::Deny
                if stage == Stage::Confirm && self.previous_reply() == ASK_WHAT_TO_CHANGE =>
            {
                self.state.stage = Stage::Idle;
                self.start_new_booking();
                reply("All right, I won't book it. Is there anything else I can help with?")
            }
            Intent::Deny if stage == Stage::Confirm => reply(ASK_WHAT_TO_CHANGE),
            _ if asks_for_help(self.text) => {
                let help = self.help();
                if self.in_booking_flow() {
                    let help = help.trim_end_matches(" How can I help?");
                    reply(format!("{help} {}", self.current_question()))
                } else {
                    reply(help)
                }
            }
            Intent::Deny if self.in_booking_flow() => {
                self.state.stage = Stage::Idle;
                self.start_new_booking();
                reply(
                    "All right, I've stopped the booking. Is there anything else I can help with?",
                )
            }
            Intent::Book | Intent::Greeting if !self.in_booking_flow() => {
                if !self.has_tool("create_appointment") {
                    let hello = if greeting { "Hello! " } else { "" };
                    return reply(format!(
                        "{hello}Sorry, I can't book appointments here. {}",
                        self.help()
                    ));
                }
                self.state.stage = Stage::CollectService;
                self.start_new_booking();
                let text = if intent == Intent::Book {
                    let hello = if greeting { "Hello! " } else { "" };
                    format!(
                        "{hello}I'd be happy to help you book an appointment. {}",
                        self.ask_service()
                    )
                } else {
                    format!("Hello! {}", self.help())
                };
                reply(text)
            }
            Intent::Greeting => reply(format!("Hello again! {}", self.current_question())),
            Intent::Book => reply(format!("Sure. {}", self.current_question())),
            Intent::Confirm if stage == Stage::Complete => {
                reply("Great, you're all set. Is there anything else I can help with?")
            }
            _ if self.in_booking_flow() => reply(format!(
                "Sorry, I didn't catch that. {}",
                self.current_question()
            )),
            _ if says_thanks(self.text) => {
                reply("You're welcome! Is there anything else I can help with?")
            }
            Intent::Confirm | Intent::Deny => reply(format!("OK. {}", self.help())),
            _ => reply(format!("Sorry, I didn't understand that. {}", self.help())),
        }
    }

    /// Asks the availability tool about a day (and time); the answer comes back next step.
    fn check_slot(
        &mut self,
        service_id: &str,
        date: NaiveDate,
        time: Option<NaiveTime>,
        ack: String,
    ) -> Action {
        let now = self.now_local();
        let past = match time {
            Some(t) => NaiveDateTime::new(date, t) <= now,
            None => date < now.date(),
        };
        if past {
            self.state.stage = Stage::CollectDatetime;
            self.state.booking.start = None;
            let said = time.map_or_else(|| day(date), |t| when(NaiveDateTime::new(date, t)));
            return reply(format!(
                "{ack}{said} is already in the past. When else would you like to come?"
            ));
        }
        if !self.has_tool("check_availability") {
            // Nothing to check with; the booking tool itself refuses a taken slot.
            return match time {
                Some(t) => {
                    let start = NaiveDateTime::new(date, t);
                    self.state.booking.start = Some(format_start(start));
                    self.contact_step(format!("{ack}Noted: {}. ", when(start)))
                }
                None => {
                    self.state.stage = Stage::CollectDatetime;
                    reply(format!("{ack}What time on {} would you like?", day(date)))
                }
            };
        }
        let mut arguments = json!({
            "service_id": service_id,
            "date": date.format("%Y-%m-%d").to_string(),
        });
        if let (Some(t), Value::Object(map)) = (time, &mut arguments) {
            map.insert("time".into(), Value::String(t.format("%H:%M").to_string()));
        }
        Action::Call {
            tool: "check_availability",
            arguments,
        }
    }

    fn missing_contact(&self) -> Vec<&'static str> {
        let booking = &self.state.booking;
        let mut missing = Vec::new();
        if booking.name.is_none() {
            missing.push("name");
        }
        if booking.email.is_none() {
            missing.push("email address");
        }
        missing
    }

    /// Asks for what is missing. The phone number is optional, so it is asked for only the
    /// first time round.
    fn ask_contact(&self, first_time: bool) -> String {
        let mut wanted: Vec<String> = self
            .missing_contact()
            .into_iter()
            .map(str::to_owned)
            .collect();
        if first_time && self.state.booking.phone.is_none() {
            wanted.push("phone number".to_owned());
        }
        format!("May I have your {}?", join(&wanted, "and"))
    }

    /// With service and time settled: ask for missing contact details or sum up.
    fn contact_step(&mut self, ack: String) -> Action {
        if self.missing_contact().is_empty() {
            self.state.stage = Stage::Confirm;
            return reply(format!("{ack}{}", self.summary()));
        }
        let first_time = self.state.stage != Stage::CollectContact;
        self.state.stage = Stage::CollectContact;
        reply(format!("{ack}{}", self.ask_contact(first_time)))
    }

    fn summary(&self) -> String {
        let booking = &self.state.booking;
        let service = self.service_name(booking.service_id.as_deref());
        let start = booking
            .start
            .as_deref()
            .and_then(parse_start)
            .map_or_else(String::new, |s| format!(" on {}", when(s)));
        let name = booking.name.as_deref().unwrap_or("you");
        let details: Vec<&str> = [booking.email.as_deref(), booking.phone.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let details = if details.is_empty() {
            String::new()
        } else {
            format!(" ({})", details.join(", "))
        };
        let phone_hint = if booking.phone.is_none() {
            " (If you'd like to add a phone number, just tell me.)"
        } else {
            ""
        };
        format!("{service}{start} for {name}{details}. Shall I book it?{phone_hint}")
    }

    fn book(&mut self) -> Action {
        if !self.has_tool("create_appointment") {
            return reply("Sorry, I can't book appointments here.");
        }
        let booking = &self.state.booking;
        let (Some(service_id), Some(start), Some(name), Some(email)) = (
            booking.service_id.clone(),
            booking.start.clone(),
            booking.name.clone(),
            booking.email.clone(),
        ) else {
            // Should not happen at CONFIRM; ask for whatever is missing rather than guess.
            self.state.stage = if booking.service_id.is_none() {
                Stage::CollectService
            } else if booking.start.is_none() {
                Stage::CollectDatetime
            } else {
                Stage::CollectContact
            };
            return reply(self.current_question());
        };
        let mut arguments = json!({
            "service_id": service_id,
            "start": start,
            "customer_name": name,
            "customer_email": email,
        });
        if let (Some(phone), Value::Object(map)) = (booking.phone.clone(), &mut arguments) {
            map.insert("customer_phone".into(), Value::String(phone));
        }
        Action::Call {
            tool: "create_appointment",
            arguments,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Appointments
    // -----------------------------------------------------------------------------------------

    fn cancel_intent(&mut self, confirmation: Option<String>) -> Action {
        if confirmation.is_some() {
            return self.cancel(confirmation);
        }
        if let Some(number) = self.rescheduling() {
            self.state.stage = Stage::Idle;
            self.state.booking.reschedule_of = None;
            return reply(format!(
                "OK, I'll leave {number} as it is. Is there anything else I can help with?"
            ));
        }
        if self.in_booking_flow() {
            // "Cancel" half-way through a booking drops the draft; nothing was booked yet.
            self.state.stage = Stage::Idle;
            self.start_new_booking();
            return reply(
                "All right, I won't book anything. Is there anything else I can help with?",
            );
        }
        let number = self.state.last_confirmation.clone();
        self.cancel(number)
    }

    fn cancel(&mut self, number: Option<String>) -> Action {
        if !self.has_tool("cancel_appointment") {
            return reply("Sorry, I can't cancel appointments here.");
        }
        match number {
            Some(number) => Action::Call {
                tool: "cancel_appointment",
                arguments: json!({ "confirmation_number": number }),
            },
            None => reply(ASK_CANCEL_NUMBER),
        }
    }

    fn reschedule(&mut self, number: Option<String>) -> Action {
        if !self.has_tool("reschedule_appointment") {
            return reply("Sorry, I can't reschedule appointments here.");
        }
        let Some(number) = number else {
            return reply(ASK_RESCHEDULE_NUMBER);
        };
        let ctx = &self.req.context;
        let date = nlu::parse_date(self.text, ctx.now, ctx.time_zone);
        let time = nlu::parse_time(self.text);
        self.state.booking.reschedule_of = Some(number.clone());
        self.state.stage = Stage::CollectDatetime;
        self.reschedule_when(number, date, time, &Intent::Unknown)
    }

    /// The new time for an appointment being moved, possibly given in two messages.
    fn reschedule_when(
        &mut self,
        number: String,
        date: Option<NaiveDate>,
        time: Option<NaiveTime>,
        intent: &Intent,
    ) -> Action {
        let date = date.or_else(|| time.and_then(|_| self.date_hint()));
        let time = time.or_else(|| date.and_then(|_| self.time_hint()));
        match (date, time) {
            (Some(d), Some(t)) => {
                let start = NaiveDateTime::new(d, t);
                if start <= self.now_local() {
                    return reply(format!(
                        "{} is already in the past. When would you like to move {number} to?",
                        when(start)
                    ));
                }
                Action::Call {
                    tool: "reschedule_appointment",
                    arguments: json!({ "confirmation_number": number, "start": format_start(start) }),
                }
            }
            (Some(d), None) => reply(format!("At what time on {}?", day(d))),
            (None, Some(t)) => reply(format!(
                "Which day would you like to move {number} to, at {}?",
                t.format("%H:%M")
            )),
            (None, None) if *intent == Intent::Deny => {
                self.state.stage = Stage::Idle;
                self.state.booking.reschedule_of = None;
                reply(format!(
                    "OK, I'll leave {number} as it is. Is there anything else I can help with?"
                ))
            }
            (None, None) => reply(format!(
                "When would you like to move {number} to? For example \"Friday at 3pm\"."
            )),
        }
    }

    fn show_appointment(&mut self, confirmation: Option<String>) -> Action {
        if !self.has_tool("get_appointment") {
            return reply("Sorry, I can't look up appointments here.");
        }
        match confirmation.or_else(|| self.state.last_confirmation.clone()) {
            Some(number) => Action::Call {
                tool: "get_appointment",
                arguments: json!({ "confirmation_number": number }),
            },
            None => reply(ASK_SHOW_NUMBER),
        }
    }

    fn list_services(&mut self) -> Action {
        if self.services().is_empty() {
            if self.has_tool("list_services") {
                return Action::Call {
                    tool: "list_services",
                    arguments: json!({}),
                };
            }
            return reply("Sorry, I don't have a list of services here.");
        }
        let described: Vec<String> = self.services().iter().map(describe_service).collect();
        if matches!(self.state.stage, Stage::Idle | Stage::Complete)
            && self.has_tool("create_appointment")
        {
            self.state.stage = Stage::CollectService;
            self.start_new_booking();
        }
        reply(format!(
            "We offer {}. Which one would you like to book?",
            join(&described, "and")
        ))
    }

    // -----------------------------------------------------------------------------------------
    // Tasks
    // -----------------------------------------------------------------------------------------

    fn add_task(&mut self, title: String, description: Option<String>) -> Action {
        if !self.has_tool("add_task") {
            return reply("Sorry, I can't manage tasks here.");
        }
        let mut arguments = json!({ "title": title });
        if let (Some(description), Value::Object(map)) = (description, &mut arguments) {
            map.insert("description".into(), Value::String(description));
        }
        Action::Call {
            tool: "add_task",
            arguments,
        }
    }

    fn list_tasks(&mut self, status: TaskStatus) -> Action {
        if !self.has_tool("list_tasks") {
            return reply("Sorry, I can't list tasks here.");
        }
        Action::Call {
            tool: "list_tasks",
            arguments: json!({ "status": status.as_str() }),
        }
    }

    /// The task tools take ids and people say titles: list the tasks first, pick the match in
    /// the next step.
    fn find_task_for(&mut self, tool: &'static str) -> Action {
        if !self.has_tool(tool) || !self.has_tool("list_tasks") {
            let what = match tool {
                "complete_task" => "complete tasks",
                "update_task" => "change tasks",
                _ => "delete tasks",
            };
            return reply(format!("Sorry, I can't {what} here."));
        }
        Action::Call {
            tool: "list_tasks",
            arguments: json!({ "status": "all" }),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Follow-up steps: reading tool results
    // -----------------------------------------------------------------------------------------

    fn follow_up(&mut self, out: &ToolOutput, earlier: &[ToolOutput]) -> Action {
        let action = match out.name.as_str() {
            "check_availability" => self.after_availability(out, earlier),
            "create_appointment" => self.after_create(out),
            "cancel_appointment" => self.after_cancel(out),
            "reschedule_appointment" => self.after_reschedule(out),
            "get_appointment" => self.after_get(out),
            "list_services" => after_list_services(out),
            "add_task" => after_add_task(out),
            "list_tasks" => self.after_list_tasks(out),
            "complete_task" | "update_task" | "delete_task" => after_task_change(out, earlier),
            _ => match out.error() {
                Some(error) => reply(format!("Sorry, that didn't work: {error}")),
                None => reply("Done."),
            },
        };
        if matches!(action, Action::Call { .. }) && self.steps_taken() >= MAX_CALL_STEPS {
            return reply("Sorry, that took more steps than I'm allowed. Please try again.");
        }
        action
    }

    fn after_availability(&mut self, out: &ToolOutput, earlier: &[ToolOutput]) -> Action {
        let mut prefix = String::new();
        // After a failed booking we checked the whole day; offer times near the one lost.
        let lost = earlier
            .iter()
            .filter(|e| e.name == "create_appointment" && e.error().is_some())
            .find_map(|e| e.arguments.get("start")?.as_str().and_then(parse_start));
        if lost.is_some() {
            prefix.push_str("Sorry, that time has just been taken. ");
        }
        self.state.stage = Stage::CollectDatetime;
        if let Some(error) = out.error() {
            self.state.booking.start = None;
            return reply(format!(
                "{prefix}Sorry, I couldn't check availability ({error}). Could you give me another date or time?"
            ));
        }
        let date = out
            .str("date")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .or_else(|| out.arguments.get("date")?.as_str()?.parse().ok());
        let Some(date) = date else {
            return reply(format!("{prefix}{}", self.current_question()));
        };
        let time = out
            .str("time")
            .and_then(|t| NaiveTime::parse_from_str(t, "%H:%M").ok());
        let slots: Vec<NaiveTime> = out
            .value
            .get("slots")
            .and_then(Value::as_array)
            .map(|slots| {
                slots
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(|s| NaiveTime::parse_from_str(s, "%H:%M").ok())
                    .collect()
            })
            .unwrap_or_default();
        let available = out.value.get("available").and_then(Value::as_bool);
        if let (Some(true), Some(t)) = (available, time) {
            let start = NaiveDateTime::new(date, t);
            self.state.booking.start = Some(format_start(start));
            if self.state.booking.service_id.is_none() {
                self.state.booking.service_id = out.str("service_id").map(str::to_owned);
            }
            let service = self.service_name(self.state.booking.service_id.as_deref());
            return self.contact_step(format!(
                "{prefix}Good news: {} is available for your {service}. ",
                when(start)
            ));
        }
        self.state.booking.start = None;
        if slots.is_empty() {
            return reply(format!(
                "{prefix}Sorry, there are no free times on {}. Which other day would suit you?",
                day(date)
            ));
        }
        match time.or(lost.map(|l| l.time())) {
            Some(t) => {
                let offered = nearest(&slots, t, 3);
                if time.is_none() {
                    return reply(format!(
                        "{prefix}I could offer {} on {}, or another day if you prefer. Which would you like?",
                        join(&offered, "or"),
                        day(date)
                    ));
                }
                reply(format!(
                    "{prefix}Sorry, {} on {} is not available. I could offer {} that day. Which would you like, or would another day suit you better?",
                    t.format("%H:%M"),
                    day(date),
                    join(&offered, "or")
                ))
            }
            None => {
                let shown: Vec<String> = slots
                    .iter()
                    .take(6)
                    .map(|s| s.format("%H:%M").to_string())
                    .collect();
                let more = if slots.len() > shown.len() {
                    " (and later)"
                } else {
                    ""
                };
                reply(format!(
                    "{prefix}On {} I have {}{more} free. Which time would you like?",
                    day(date),
                    join(&shown, "and")
                ))
            }
        }
    }

    fn after_create(&mut self, out: &ToolOutput) -> Action {
        if let Some(error) = out.error() {
            self.state.stage = Stage::CollectDatetime;
            let taken = self
                .state
                .booking
                .start
                .take()
                .as_deref()
                .and_then(parse_start);
            // Offer other times on the same day rather than leave the customer guessing.
            if let (Some(taken), Some(service_id)) = (taken, self.state.booking.service_id.clone())
            {
                if self.has_tool("check_availability") {
                    return Action::Call {
                        tool: "check_availability",
                        arguments: json!({
                            "service_id": service_id,
                            "date": taken.date().format("%Y-%m-%d").to_string(),
                        }),
                    };
                }
            }
            return reply(format!(
                "Sorry, I couldn't book that ({error}). Which other time would suit you?"
            ));
        }
        let Some(number) = out.str("confirmation_number").map(str::to_owned) else {
            return reply(
                "Sorry, the booking system gave an answer I couldn't read. Please try again.",
            );
        };
        self.state.stage = Stage::Complete;
        self.state.last_confirmation = Some(number.clone());
        self.start_new_booking();
        let email = out
            .str("customer_email")
            .map(|e| format!(" We'll use {e} if we need to reach you."))
            .unwrap_or_default();
        reply(format!(
            "Your appointment is booked. Confirmation number: {number}. {}.{email} Is there anything else I can help with?",
            describe_appointment(out)
        ))
    }

    fn number_of(&self, out: &ToolOutput) -> String {
        out.str("confirmation_number")
            .or_else(|| out.arguments.get("confirmation_number")?.as_str())
            .map_or_else(|| "your appointment".to_owned(), str::to_owned)
    }

    fn after_cancel(&mut self, out: &ToolOutput) -> Action {
        let number = self.number_of(out);
        if let Some(error) = out.error() {
            return reply(format!("Sorry, I couldn't cancel {number}: {error}."));
        }
        self.state.stage = Stage::Complete;
        self.state.last_confirmation = Some(number.clone());
        reply(format!(
            "Your appointment {number} ({}) has been cancelled. Is there anything else I can help with?",
            describe_appointment(out)
        ))
    }

    fn after_reschedule(&mut self, out: &ToolOutput) -> Action {
        let number = self.number_of(out);
        if let Some(error) = out.error() {
            if error.to_lowercase().contains("not found") {
                self.state.stage = Stage::Idle;
                self.state.booking.reschedule_of = None;
                return reply(format!(
                    "Sorry, I couldn't find {number} ({error}). Please check the confirmation number."
                ));
            }
            self.state.stage = Stage::CollectDatetime;
            self.state.booking.reschedule_of = Some(number.clone());
            return reply(format!(
                "Sorry, I couldn't move {number} to that time ({error}). Which other time would suit you?"
            ));
        }
        self.state.stage = Stage::Complete;
        self.state.booking.reschedule_of = None;
        self.state.last_confirmation = Some(number.clone());
        reply(format!(
            "Done: {number} is now {}. Is there anything else I can help with?",
            describe_appointment(out)
        ))
    }

    fn after_get(&mut self, out: &ToolOutput) -> Action {
        let number = self.number_of(out);
        if let Some(error) = out.error() {
            return reply(format!("Sorry, I couldn't find {number}: {error}."));
        }
        self.state.last_confirmation = Some(number.clone());
        let status = out.str("status").unwrap_or("booked");
        let customer = out
            .str("customer_name")
            .map(|n| format!(" for {n}"))
            .unwrap_or_default();
        reply(format!(
            "Appointment {number}: {}{customer}, status: {status}.",
            describe_appointment(out)
        ))
    }

    fn after_list_tasks(&mut self, out: &ToolOutput) -> Action {
        if let Some(error) = out.error() {
            return reply(format!("Sorry, I couldn't get your tasks: {error}."));
        }
        let tasks: Vec<&Value> = out
            .value
            .get("tasks")
            .and_then(Value::as_array)
            .map(|t| t.iter().collect())
            .unwrap_or_default();
        let title_of = |t: &Value| {
            t.get("title")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let (wanted, tool) = match nlu::classify(self.text) {
            Intent::CompleteTask { title } => (title, "complete_task"),
            Intent::UpdateTask { title, .. } => (title, "update_task"),
            Intent::DeleteTask { title } => (title, "delete_task"),
            _ => {
                let status = out.arguments.get("status").and_then(Value::as_str);
                return reply(format_task_list(&tasks, status));
            }
        };
        let titles: Vec<String> = tasks.iter().map(|t| title_of(t)).collect();
        let title_refs: Vec<&str> = titles.iter().map(String::as_str).collect();
        let Some(task) = nlu::match_title(&wanted, &title_refs).and_then(|i| tasks.get(i)) else {
            let known = if titles.is_empty() {
                "You have no tasks yet.".to_owned()
            } else {
                let quoted: Vec<String> = titles.iter().map(|t| quote(t)).collect();
                format!("Your tasks are: {}.", join(&quoted, "and"))
            };
            return reply(format!(
                "I couldn't find a task called {}. {known}",
                quote(&wanted)
            ));
        };
        let id = task.get("id").cloned().unwrap_or(Value::Null);
        let title = title_of(task);
        match (tool, nlu::classify(self.text)) {
            ("complete_task", _)
                if task.get("status").and_then(Value::as_str) == Some("completed") =>
            {
                reply(format!("{} is already done.", quote(&title)))
            }
            (
                "update_task",
                Intent::UpdateTask {
                    new_title,
                    description,
                    ..
                },
            ) => {
                let mut arguments = Map::new();
                arguments.insert("task_id".into(), id);
                if let Some(new_title) = new_title {
                    arguments.insert("title".into(), Value::String(new_title));
                }
                if let Some(description) = description {
                    arguments.insert("description".into(), Value::String(description));
                }
                Action::Call {
                    tool: "update_task",
                    arguments: Value::Object(arguments),
                }
            }
            (tool, _) => Action::Call {
                tool,
                arguments: json!({ "task_id": id }),
            },
        }
    }

    // -----------------------------------------------------------------------------------------
    // The response
    // -----------------------------------------------------------------------------------------

    /// Ids are derived from the whole conversation so far, the step and the call: the same
    /// step retried gets the same id (tools run at most once per id), while a new turn never
    /// repeats an old one even when a sliding window keeps the message count constant.
    fn call_id(&self, tool: &str, arguments: &str) -> String {
        let mut hash = Fnv1a::new();
        hash.write(&self.req.messages.len().to_le_bytes());
        hash.write(&self.user.unwrap_or(usize::MAX).to_le_bytes());
        hash.write(&self.steps_taken().to_le_bytes());
        for message in &self.req.messages {
            hash.write(message.role.as_str().as_bytes());
            hash.write(message.content.as_bytes());
            for call in &message.tool_calls {
                hash.write(call.id.as_bytes());
            }
            if let Some(id) = &message.tool_call_id {
                hash.write(id.as_bytes());
            }
            hash.write(&[0]);
        }
        hash.write(tool.as_bytes());
        hash.write(arguments.as_bytes());
        format!("call_{:016x}", hash.finish())
    }

    fn respond(self, action: Action) -> ModelResponse {
        let (content, tool_calls) = match action {
            Action::Reply(text) => (text, Vec::new()),
            Action::Call { tool, arguments } => {
                let arguments = arguments.to_string();
                let id = self.call_id(tool, &arguments);
                (
                    String::new(),
                    vec![ToolCall {
                        id,
                        name: tool.to_owned(),
                        arguments,
                    }],
                )
            }
        };
        let prompt: usize = self
            .req
            .messages
            .iter()
            .map(|m| {
                word_count(&m.content)
                    + m.tool_calls
                        .iter()
                        .map(|c| word_count(&c.arguments))
                        .sum::<usize>()
            })
            .sum();
        let completion = word_count(&content)
            + tool_calls
                .iter()
                .map(|c| word_count(&c.arguments))
                .sum::<usize>();
        let prompt_tokens = u32::try_from(prompt).unwrap_or(u32::MAX);
        let completion_tokens = u32::try_from(completion).unwrap_or(u32::MAX);
        ModelResponse {
            content,
            tool_calls,
            usage: Usage {
                prompt_tokens,
                completion_tokens,
                total_tokens: prompt_tokens.saturating_add(completion_tokens),
            },
            model: MODEL_NAME.to_owned(),
            state: Some(self.state),
        }
    }
}

fn after_list_services(out: &ToolOutput) -> Action {
    if let Some(error) = out.error() {
        return reply(format!(
            "Sorry, I couldn't get the list of services: {error}."
        ));
    }
    let services: Vec<Service> = out
        .value
        .get("services")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    if services.is_empty() {
        return reply("There are no services to book at the moment.");
    }
    let described: Vec<String> = services.iter().map(describe_service).collect();
    reply(format!(
        "We offer {}. Which one would you like to book?",
        join(&described, "and")
    ))
}

fn after_add_task(out: &ToolOutput) -> Action {
    if let Some(error) = out.error() {
        return reply(format!("Sorry, I couldn't add that task: {error}."));
    }
    let title = out
        .value
        .pointer("/task/title")
        .and_then(Value::as_str)
        .or_else(|| out.arguments.get("title")?.as_str())
        .unwrap_or("your task");
    reply(format!("Added the task {}.", quote(title)))
}

fn after_task_change(out: &ToolOutput, earlier: &[ToolOutput]) -> Action {
    if let Some(error) = out.error() {
        return reply(format!("Sorry, that didn't work: {error}."));
    }
    // delete_task answers with the id only; the title is in the listing fetched just before.
    let task_id = out.arguments.get("task_id");
    let listed_title = earlier
        .iter()
        .filter(|e| e.name == "list_tasks")
        .filter_map(|e| e.value.get("tasks")?.as_array())
        .flatten()
        .find(|t| t.get("id") == task_id)
        .and_then(|t| t.get("title")?.as_str());
    let title = out
        .value
        .pointer("/task/title")
        .and_then(Value::as_str)
        .or(listed_title)
        .unwrap_or("the task");
    let text = match out.name.as_str() {
        "complete_task" => format!("Marked {} as done.", quote(title)),
        "update_task" => {
            let description = out
                .value
                .pointer("/task/description")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .map(|d| format!(" (description: {d})"))
                .unwrap_or_default();
            format!("Updated the task: {}{description}.", quote(title))
        }
        _ => format!("Deleted the task {}.", quote(title)),
    };
    reply(text)
}

fn format_task_list(tasks: &[&Value], status: Option<&str>) -> String {
    let kind = match status {
        Some("pending") => "pending ",
        Some("completed") => "completed ",
        _ => "",
    };
    if tasks.is_empty() {
        return format!("You have no {kind}tasks.");
    }
    let lines: Vec<String> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let title = t
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("(untitled)");
            let done = t.get("status").and_then(Value::as_str) == Some("completed");
            let mark = if done { " (done)" } else { "" };
            let description = t
                .get("description")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            format!("{}. {title}{description}{mark}", i + 1)
        })
        .collect();
    format!("Your {kind}tasks:\n{}", lines.join("\n"))
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// 64-bit FNV-1a: tiny and stable across Rust releases, unlike `DefaultHasher`, so ids stay
/// the same when the server is rebuilt between a step and its retry.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

fn parse_start(start: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(start, START_FORMAT).ok()
}

fn format_start(start: NaiveDateTime) -> String {
    start.format(START_FORMAT).to_string()
}

/// "Tuesday 24 November 2026 at 14:00"
fn when(start: NaiveDateTime) -> String {
    start.format("%A %-d %B %Y at %H:%M").to_string()
}

/// "Tuesday 24 November 2026"
fn day(date: NaiveDate) -> String {
    date.format("%A %-d %B %Y").to_string()
}

/// "a", "a or b", "a, b or c".
fn join(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

fn quote(text: &str) -> String {
    format!("\u{201c}{text}\u{201d}")
}

/// Up to `count` slots closest to the wanted time, in time order.
fn nearest(slots: &[NaiveTime], wanted: NaiveTime, count: usize) -> Vec<String> {
    let mut by_distance: Vec<NaiveTime> = slots.to_vec();
    by_distance.sort_by_key(|s| ((*s - wanted).num_minutes().abs(), *s));
    by_distance.truncate(count);
    by_distance.sort();
    by_distance
        .iter()
        .map(|s| s.format("%H:%M").to_string())
        .collect()
}

fn describe_service(service: &Service) -> String {
    let price = if service.price_cents > 0 {
        format!(
            ", {}.{:02} {}",
            service.price_cents / 100,
            service.price_cents % 100,
            service.currency
        )
    } else {
        String::new()
    };
    format!("{} ({} min{price})", service.name, service.duration_minutes)
}

/// "General Consultation on Tuesday 24 November 2026 at 14:00" from an appointment object.
fn describe_appointment(out: &ToolOutput) -> String {
    let service = out
        .str("service_name")
        .or_else(|| out.str("service_id"))
        .unwrap_or("Appointment");
    match out.str("start").and_then(parse_start) {
        Some(start) => format!("{service} on {}", when(start)),
        None => service.to_owned(),
    }
}

fn starts_with_greeting(text: &str) -> bool {
    let first = text
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .map(str::to_lowercase);
    matches!(
        first.as_deref(),
        Some("hi" | "hello" | "hey" | "hiya" | "howdy" | "greetings" | "good" | "hallo" | "moin")
    )
}

fn asks_for_help(text: &str) -> bool {
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

fn says_thanks(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains("thank") || lower.contains("cheers")
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use chrono::{DateTime, TimeZone, Utc};

    use super::*;
    use crate::agent::model::{ToolSpec, TurnContext};

    const ALL_TOOLS: &[&str] = crate::orgs::KNOWN_TOOLS;

    /// Monday 23 November 2026, 10:00 UTC (11:00 in Berlin).
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
    }

    fn services() -> Vec<Service> {
        crate::orgs::demo_services()
    }

    /// In-memory tools answering in the real tools' shapes.
    #[derive(Default)]
    struct FakeTools {
        calls: Vec<(String, Value)>,
        /// Starts (`YYYY-MM-DDTHH:MM`) already booked by someone else.
        taken: HashSet<String>,
        /// Starts that look free but are taken the moment we try to book them.
        snatched: HashSet<String>,
        appointments: BTreeMap<String, Value>,
        tasks: Vec<Value>,
        numbers: Vec<&'static str>,
    }

    impl FakeTools {
        fn run(&mut self, call: &ToolCall) -> String {
            let args: Value = serde_json::from_str(&call.arguments).unwrap();
            self.calls.push((call.name.clone(), args.clone()));
            let s = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let result = match call.name.as_str() {
                "list_services" => json!({ "services": services() }),
                "check_availability" => {
                    let date = s("date");
                    let slots: Vec<String> = (18..34)
                        .map(|half| format!("{:02}:{:02}", half / 2, (half % 2) * 30))
                        .filter(|t| !self.taken.contains(&format!("{date}T{t}")))
                        .collect();
                    let time = args.get("time").and_then(Value::as_str);
                    let available = time.map(|t| slots.iter().any(|s| s == t));
                    json!({
                        "service_id": s("service_id"), "date": date, "time_zone": "Europe/Berlin",
                        "time": time, "available": available, "slots": slots,
                    })
                }
                "create_appointment" => {
                    let start = s("start");
                    if self.taken.contains(&start) || self.snatched.contains(&start) {
                        self.taken.insert(start);
                        json!({ "error": "that time is no longer available" })
                    } else {
                        let number = self.numbers.pop().unwrap_or("APPT-7K2M9Q");
                        let service = services().into_iter().find(|x| x.id == s("service_id"));
                        let appointment = json!({
                            "confirmation_number": number, "service_id": s("service_id"),
                            "service_name": service.map(|x| x.name), "start": start,
                            "end": start, "time_zone": "Europe/Berlin", "status": "booked",
                            "customer_name": s("customer_name"),
                            "customer_email": s("customer_email"),
                            "customer_phone": args.get("customer_phone"),
                        });
                        self.appointments
                            .insert(number.to_owned(), appointment.clone());
                        appointment
                    }
                }
                "get_appointment" | "cancel_appointment" | "reschedule_appointment" => {
                    match self.appointments.get_mut(&s("confirmation_number")) {
                        None => json!({ "error": "appointment not found" }),
                        Some(appointment) => {
                            if call.name == "cancel_appointment" {
                                appointment["status"] = json!("cancelled");
                            }
                            if call.name == "reschedule_appointment" {
                                appointment["start"] = json!(s("start"));
                            }
                            appointment.clone()
                        }
                    }
                }
                "add_task" => {
                    let task = json!({
                        "id": format!("t{}", self.tasks.len() + 1), "title": s("title"),
                        "description": args.get("description"), "status": "pending",
                        "created_at": "2026-11-23T10:00:00Z", "completed_at": null,
                    });
                    self.tasks.push(task.clone());
                    json!({ "task": task })
                }
                "list_tasks" => {
                    let status = s("status");
                    let tasks: Vec<&Value> = self
                        .tasks
                        .iter()
                        .filter(|t| status == "all" || status.is_empty() || t["status"] == status)
                        .collect();
                    json!({ "tasks": tasks })
                }
                "complete_task" | "update_task" | "delete_task" => {
                    let id = args["task_id"].clone();
                    match self.tasks.iter().position(|t| t["id"] == id) {
                        None => json!({ "error": "task not found" }),
                        Some(i) if call.name == "delete_task" => {
                            self.tasks.remove(i);
                            json!({ "deleted": id })
                        }
                        Some(i) => {
                            let task = &mut self.tasks[i];
                            if call.name == "complete_task" {
                                task["status"] = json!("completed");
                            }
                            for key in ["title", "description"] {
                                if let Some(v) = args.get(key) {
                                    task[key] = v.clone();
                                }
                            }
                            json!({ "task": task.clone() })
                        }
                    }
                }
                other => json!({ "error": format!("unknown tool {other}") }),
            };
            result.to_string()
        }

        fn calls_to(&self, name: &str) -> Vec<&Value> {
            self.calls
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, a)| a)
                .collect()
        }
    }

    /// A conversation driven through the agent loop as the server runs it.
    struct Chat {
        messages: Vec<ChatMessage>,
        state: AgentState,
        tools: Vec<String>,
        services: Vec<Service>,
        fake: FakeTools,
        ids: HashSet<String>,
        usage: Vec<Usage>,
    }

    impl Chat {
        fn new() -> Self {
            Self::with_tools(ALL_TOOLS)
        }

        fn with_tools(tools: &[&str]) -> Self {
            Self {
                messages: vec![ChatMessage::system("You are a helpful assistant.")],
                state: AgentState::default(),
                tools: tools.iter().map(|t| (*t).to_owned()).collect(),
                services: services(),
                fake: FakeTools::default(),
                ids: HashSet::new(),
                usage: Vec::new(),
            }
        }

        fn request(&self) -> ModelRequest {
            ModelRequest {
                model: "offline".into(),
                messages: self.messages.clone(),
                tools: self
                    .tools
                    .iter()
                    .map(|name| ToolSpec {
                        name: name.clone(),
                        description: String::new(),
                        parameters: json!({ "type": "object" }),
                    })
                    .collect(),
                temperature: None,
                max_tokens: None,
                state: self.state.clone(),
                context: TurnContext {
                    now: now(),
                    time_zone: chrono_tz::Europe::Berlin,
                    services: self.services.clone(),
                },
            }
        }

        fn say(&mut self, text: &str) -> String {
            self.messages.push(ChatMessage::user(text));
            for _ in 0..8 {
                let response = OfflineModel.complete(&self.request()).unwrap();
                assert_eq!(response.model, "offline");
                self.usage.push(response.usage);
                if let Some(state) = response.state {
                    self.state = state;
                }
                if response.tool_calls.is_empty() {
                    assert!(!response.content.is_empty(), "empty reply to {text:?}");
                    self.messages
                        .push(ChatMessage::assistant(response.content.clone()));
                    return response.content;
                }
                let mut assistant = ChatMessage::assistant(response.content.clone());
                assistant.tool_calls = response.tool_calls.clone();
                self.messages.push(assistant);
                for call in &response.tool_calls {
                    assert!(self.ids.insert(call.id.clone()), "id {} reused", call.id);
                    assert!(call.id.starts_with("call_"));
                    assert!(
                        self.tools.contains(&call.name),
                        "disabled tool {} called",
                        call.name
                    );
                    let result = self.fake.run(call);
                    self.messages.push(ChatMessage::tool_result(call, result));
                }
            }
            panic!("no reply within 8 steps to {text:?}");
        }

        fn stage(&self) -> Stage {
            self.state.stage
        }

        fn book_seed_appointment(&mut self) -> String {
            self.say("I'd like a general consultation tomorrow at 2pm");
            self.say("John Doe, john@example.com, 555-1234");
            self.say("yes")
        }
    }

    #[test]
    fn seed_flow_books_an_appointment() {
        let mut chat = Chat::new();

        let r = chat.say("Hello, I need to book an appointment");
        assert_eq!(chat.stage(), Stage::CollectService);
        for name in [
            "General Consultation",
            "Follow-up Visit",
            "Extended Session",
        ] {
            assert!(r.contains(name), "{r}");
        }

        let r = chat.say("I need a general consultation");
        assert_eq!(chat.stage(), Stage::CollectDatetime);
        assert_eq!(
            chat.state.booking.service_id.as_deref(),
            Some("general-consultation")
        );
        assert!(r.contains("When"), "{r}");

        let r = chat.say("Tomorrow at 2 PM");
        assert_eq!(chat.stage(), Stage::CollectContact);
        assert_eq!(
            chat.state.booking.start.as_deref(),
            Some("2026-11-24T14:00")
        );
        assert_eq!(
            chat.fake.calls_to("check_availability"),
            vec![
                &json!({"service_id": "general-consultation", "date": "2026-11-24", "time": "14:00"})
            ]
        );
        assert!(
            r.contains("name") && r.contains("email") && r.contains("phone"),
            "{r}"
        );

        let r = chat.say("John Doe, john@example.com, 555-1234");
        assert_eq!(chat.stage(), Stage::Confirm);
        assert_eq!(
            r,
            "Thanks, John Doe. General Consultation on Tuesday 24 November 2026 at 14:00 for John Doe (john@example.com, 555-1234). Shall I book it?"
        );

        let r = chat.say("yes");
        assert_eq!(chat.stage(), Stage::Complete);
        assert!(r.contains("APPT-7K2M9Q"), "{r}");
        assert!(r.contains("Confirmation number"), "{r}");
        assert_eq!(
            chat.fake.calls_to("create_appointment"),
            vec![&json!({
                "service_id": "general-consultation",
                "start": "2026-11-24T14:00",
                "customer_name": "John Doe",
                "customer_email": "john@example.com",
                "customer_phone": "555-1234",
            })]
        );
        assert_eq!(chat.state.last_confirmation.as_deref(), Some("APPT-7K2M9Q"));
    }

    #[test]
    fn contact_details_can_come_in_two_messages() {
        let mut chat = Chat::new();
        chat.say("I'd like a general consultation tomorrow at 2pm");
        assert_eq!(chat.stage(), Stage::CollectContact);

        let r = chat.say("My name is Jane Roe");
        assert_eq!(chat.stage(), Stage::CollectContact);
        assert!(r.contains("email"), "{r}");
        // The phone is optional and was asked for once already.
        assert!(!r.contains("phone"), "{r}");
        assert!(!r.contains("name?"), "{r}");

        let r = chat.say("jane@example.org");
        assert_eq!(chat.stage(), Stage::Confirm);
        assert!(r.contains("Jane Roe (jane@example.org)"), "{r}");

        chat.say("sounds good");
        let create = chat.fake.calls_to("create_appointment");
        assert_eq!(create.len(), 1);
        assert_eq!(create[0]["customer_name"], "Jane Roe");
        assert!(create[0].get("customer_phone").is_none());
        assert_eq!(chat.stage(), Stage::Complete);
    }

    #[test]
    fn an_unavailable_time_offers_nearby_slots_and_another_time_works() {
        let mut chat = Chat::new();
        for t in ["14:00", "13:30"] {
            chat.fake.taken.insert(format!("2026-11-24T{t}"));
        }
        chat.say("Hi, I need an appointment");
        chat.say("follow up");
        let r = chat.say("tomorrow at 2pm");
        assert_eq!(chat.stage(), Stage::CollectDatetime);
        assert_eq!(chat.state.booking.start, None);
        assert!(r.contains("not available"), "{r}");
        assert!(r.contains("13:00, 14:30 or 15:00"), "{r}");

        // A time alone refers to the day just checked.
        let r = chat.say("14:30 then");
        assert_eq!(chat.stage(), Stage::CollectContact, "{r}");
        assert_eq!(
            chat.state.booking.start.as_deref(),
            Some("2026-11-24T14:30")
        );
        assert_eq!(chat.fake.calls_to("check_availability").len(), 2);
    }

    #[test]
    fn a_slot_taken_while_confirming_goes_back_to_choosing_a_time() {
        let mut chat = Chat::new();
        chat.fake.snatched.insert("2026-11-24T14:00".into());
        chat.say("I'd like a general consultation tomorrow at 2pm");
        chat.say("John Doe, john@example.com");
        let r = chat.say("yes");
        assert_eq!(chat.stage(), Stage::CollectDatetime);
        assert!(r.contains("just been taken"), "{r}");
        assert!(r.contains("13:30"), "{r}");
        assert!(!r.contains("APPT-"), "{r}");

        chat.say("13:30");
        assert_eq!(chat.stage(), Stage::Confirm);
        let r = chat.say("yes");
        assert!(r.contains("APPT-"), "{r}");
        assert_eq!(
            chat.fake.calls_to("create_appointment")[1]["start"],
            "2026-11-24T13:30"
        );
    }

    #[test]
    fn everything_in_one_message_goes_straight_to_confirmation() {
        let mut chat = Chat::new();
        let r = chat.say(
            "Book an extended session on Dec 3 at 3pm for Ana Silva, ana@example.com, +49 30 1234567",
        );
        assert_eq!(chat.stage(), Stage::Confirm, "{r}");
        assert!(
            r.contains("Extended Session on Thursday 3 December 2026 at 15:00"),
            "{r}"
        );
        assert!(
            r.contains("Ana Silva (ana@example.com, +49 30 1234567)"),
            "{r}"
        );
    }

    #[test]
    fn no_at_confirmation_asks_what_to_change_and_a_new_time_is_rechecked() {
        let mut chat = Chat::new();
        chat.say("I'd like a general consultation tomorrow at 2pm");
        chat.say("John Doe, john@example.com, 555-1234");
        let r = chat.say("no");
        assert_eq!(chat.stage(), Stage::Confirm);
        assert!(r.contains("change"), "{r}");
        let r = chat.say("make it 4pm");
        assert_eq!(chat.stage(), Stage::Confirm);
        assert!(r.contains("at 16:00"), "{r}");
        assert_eq!(
            chat.state.booking.start.as_deref(),
            Some("2026-11-24T16:00")
        );
    }

    #[test]
    fn a_second_no_at_confirmation_drops_the_booking() {
        let mut chat = Chat::new();
        chat.say("I'd like a general consultation tomorrow at 2pm");
        chat.say("John Doe, john@example.com");
        chat.say("no");
        let r = chat.say("cancel that");
        assert_eq!(chat.stage(), Stage::Idle);
        assert!(r.contains("won't book"), "{r}");
        assert!(chat.fake.calls_to("create_appointment").is_empty());
    }

    #[test]
    fn help_mid_booking_repeats_the_question() {
        let mut chat = Chat::new();
        chat.say("general consultation");
        let r = chat.say("what can you do?");
        assert!(
            r.contains("manage your tasks") && r.contains("When would you like"),
            "{r}"
        );
        assert_eq!(chat.stage(), Stage::CollectDatetime);
    }

    #[test]
    fn a_time_before_the_service_is_kept_until_the_service_is_known() {
        let mut chat = Chat::new();
        chat.say("hello, can I book something?");
        let r = chat.say("Friday at 10am");
        assert_eq!(chat.stage(), Stage::CollectService);
        assert!(r.contains("Friday 27 November 2026 at 10:00"), "{r}");
        chat.say("the extended one");
        assert_eq!(chat.stage(), Stage::CollectContact);
        assert_eq!(
            chat.state.booking.start.as_deref(),
            Some("2026-11-27T10:00")
        );
    }

    #[test]
    fn a_day_alone_lists_free_times() {
        let mut chat = Chat::new();
        chat.say("general consultation");
        let r = chat.say("next Monday");
        assert_eq!(chat.stage(), Stage::CollectDatetime);
        assert!(r.contains("Monday 30 November 2026"), "{r}");
        assert!(r.contains("09:00"), "{r}");
        chat.say("at 11");
        assert_eq!(
            chat.state.booking.start.as_deref(),
            Some("2026-11-30T11:00")
        );
    }

    #[test]
    fn a_time_in_the_past_is_refused() {
        let mut chat = Chat::new();
        chat.say("general consultation");
        let r = chat.say("today at 9am");
        assert!(r.contains("past"), "{r}");
        assert!(chat.fake.calls_to("check_availability").is_empty());
    }

    #[test]
    fn cancel_by_confirmation_number() {
        let mut chat = Chat::new();
        chat.book_seed_appointment();
        let mut fresh = Chat::new();
        fresh.fake = std::mem::take(&mut chat.fake);
        let r = fresh.say("Please cancel my appointment appt-7k2m9q");
        assert!(r.contains("APPT-7K2M9Q") && r.contains("cancelled"), "{r}");
        assert_eq!(
            fresh.fake.calls_to("cancel_appointment"),
            vec![&json!({"confirmation_number": "APPT-7K2M9Q"})]
        );
        assert_eq!(fresh.stage(), Stage::Complete);
    }

    #[test]
    fn cancel_it_right_after_booking_uses_the_last_confirmation() {
        let mut chat = Chat::new();
        chat.book_seed_appointment();
        let r = chat.say("actually, cancel it");
        assert!(r.contains("cancelled"), "{r}");
        assert_eq!(chat.fake.appointments["APPT-7K2M9Q"]["status"], "cancelled");
    }

    #[test]
    fn cancel_without_a_number_asks_for_it() {
        let mut chat = Chat::new();
        chat.fake.numbers.push("APPT-ABC123");
        chat.book_seed_appointment();
        let mut fresh = Chat::new();
        fresh.fake = std::mem::take(&mut chat.fake);
        let r = fresh.say("I want to cancel my appointment");
        assert_eq!(r, ASK_CANCEL_NUMBER);
        let r = fresh.say("APPT-ABC123");
        assert!(r.contains("cancelled"), "{r}");
        let r = fresh.say("APPT-NOPE00 please cancel");
        assert!(r.contains("couldn't cancel APPT-NOPE00"), "{r}");
    }

    #[test]
    fn cancel_half_way_through_a_booking_drops_the_draft() {
        let mut chat = Chat::new();
        chat.say("general consultation tomorrow at 2pm");
        let r = chat.say("cancel");
        assert_eq!(chat.stage(), Stage::Idle);
        assert!(r.contains("won't book"), "{r}");
        assert!(chat.fake.calls_to("cancel_appointment").is_empty());
        assert_eq!(chat.state.booking.start, None);
    }

    #[test]
    fn reschedule_asks_when_and_moves_the_appointment() {
        let mut chat = Chat::new();
        chat.book_seed_appointment();
        let mut fresh = Chat::new();
        fresh.fake = std::mem::take(&mut chat.fake);
        let r = fresh.say("I need to reschedule APPT-7K2M9Q");
        assert_eq!(fresh.stage(), Stage::CollectDatetime);
        assert!(r.contains("When would you like to move APPT-7K2M9Q"), "{r}");
        let r = fresh.say("Friday at 3pm");
        assert_eq!(
            fresh.fake.calls_to("reschedule_appointment"),
            vec![&json!({"confirmation_number": "APPT-7K2M9Q", "start": "2026-11-27T15:00"})]
        );
        assert!(r.contains("Friday 27 November 2026 at 15:00"), "{r}");
        assert_eq!(fresh.stage(), Stage::Complete);
        assert_eq!(fresh.state.booking.reschedule_of, None);
    }

    #[test]
    fn reschedule_in_one_message_and_lookup() {
        let mut chat = Chat::new();
        chat.book_seed_appointment();
        let r = chat.say("please move it to Dec 3 at 3pm");
        assert!(r.contains("Thursday 3 December 2026 at 15:00"), "{r}");
        let r = chat.say("what's my appointment APPT-7K2M9Q?");
        assert!(
            r.contains("General Consultation") && r.contains("John Doe"),
            "{r}"
        );
        assert_eq!(chat.fake.calls_to("get_appointment").len(), 1);
    }

    #[test]
    fn tasks_are_added_listed_completed_renamed_and_deleted_by_title() {
        let mut chat = Chat::new();
        let r = chat.say("add a task to buy milk");
        assert_eq!(r, "Added the task \u{201c}buy milk\u{201d}.");
        chat.say("remind me to call Bob");
        chat.say("add task: renew passport");

        let r = chat.say("mark buy milk as done");
        assert!(r.contains("buy milk") && r.contains("done"), "{r}");
        let names: Vec<&str> = chat.fake.calls.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(&names[3..], ["list_tasks", "complete_task"]);
        assert_eq!(chat.fake.calls[3].1, json!({"status": "all"}));
        assert_eq!(chat.fake.calls[4].1, json!({"task_id": "t1"}));

        let r = chat.say("what's pending");
        assert_eq!(
            chat.fake.calls.last().unwrap().1,
            json!({"status": "pending"})
        );
        assert!(r.contains("call Bob") && !r.contains("buy milk"), "{r}");

        let r = chat.say("rename call bob to call Bob back");
        assert_eq!(
            chat.fake.calls.last().unwrap(),
            &(
                "update_task".to_owned(),
                json!({"task_id": "t2", "title": "call Bob back"})
            )
        );
        assert!(r.contains("call Bob back"), "{r}");

        let r = chat.say("delete the task renew pasport");
        assert_eq!(r, "Deleted the task \u{201c}renew passport\u{201d}.");

        let r = chat.say("complete the task water plants");
        assert!(
            r.contains("couldn't find") && r.contains("call Bob back"),
            "{r}"
        );

        let r = chat.say("list completed tasks");
        assert!(r.contains("buy milk"), "{r}");
    }

    #[test]
    fn disabled_tools_are_never_called() {
        let mut chat = Chat::with_tools(&["list_tasks", "check_availability"]);
        let r = chat.say("Hello, I need to book an appointment");
        assert!(r.contains("can't book"), "{r}");
        let r = chat.say("add a task to buy milk");
        assert_eq!(r, "Sorry, I can't manage tasks here.");
        let r = chat.say("mark buy milk as done");
        assert_eq!(r, "Sorry, I can't complete tasks here.");
        let r = chat.say("cancel APPT-ABC123");
        assert_eq!(r, "Sorry, I can't cancel appointments here.");
        let r = chat.say("show my tasks");
        assert!(r.contains("no tasks"), "{r}");
        // The harness fails on any call to a tool not offered.
        assert_eq!(chat.fake.calls.len(), 1);
    }

    #[test]
    fn greetings_unknown_input_and_services() {
        let mut chat = Chat::new();
        let r = chat.say("hi");
        assert!(
            r.starts_with("Hello!") && r.contains("book") && r.contains("tasks"),
            "{r}"
        );
        let mut chat = Chat::new();
        let r = chat.say("blorp");
        assert!(
            r.contains("book an appointment") && r.contains("tasks"),
            "{r}"
        );
        assert_eq!(chat.stage(), Stage::Idle);
        let r = chat.say("What services do you offer?");
        assert!(
            r.contains("General Consultation (30 min, 50.00 USD)"),
            "{r}"
        );
        assert!(chat.fake.calls.is_empty());

        let mut chat = Chat::new();
        chat.services.clear();
        let r = chat.say("what services do you have");
        assert_eq!(chat.fake.calls_to("list_services").len(), 1);
        assert!(r.contains("Extended Session"), "{r}");
    }

    #[test]
    fn call_ids_differ_across_identical_turns_and_repeat_for_a_retried_step() {
        let mut chat = Chat::new();
        chat.say("add a task to buy milk");
        chat.say("add a task to buy milk");
        assert_eq!(chat.fake.calls_to("add_task").len(), 2);
        // The harness has already checked every id is new; a retry of one step is identical.
        chat.messages
            .push(ChatMessage::user("add a task to buy bread"));
        let first = OfflineModel.complete(&chat.request()).unwrap();
        let again = OfflineModel.complete(&chat.request()).unwrap();
        assert_eq!(first, again);
        assert_eq!(first.tool_calls.len(), 1);
    }

    #[test]
    fn usage_counts_words() {
        let chat = Chat::new();
        let mut req = chat.request();
        req.messages.push(ChatMessage::user("blorp blorp"));
        let response = OfflineModel.complete(&req).unwrap();
        let words = response.content.split_whitespace().count() as u32;
        // System prompt (5 words) + the user's two.
        assert_eq!(response.usage.prompt_tokens, 7);
        assert_eq!(response.usage.completion_tokens, words);
        assert_eq!(response.usage.total_tokens, 7 + words);
    }
}
