//! How the offline model books, moves, cancels and looks up appointments: slot filling for
//! service, time and contact details, then an explicit yes before `create_appointment`.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::{Value, json};

use super::faq;
use super::nlu::{self as booking_nlu, Contact, Request};
use super::state::{BookingState, PendingChange, Stage};
use crate::agent::offline::nlu;
use crate::agent::offline::{Action, OfflineSkill, ToolOutput, Turn, day, join, reply, when};
use crate::domain::Service;

const START_FORMAT: &str = "%Y-%m-%dT%H:%M";

// Our own questions, recognised when the user answers them with just a confirmation number.
// The state has no slot for "what did I just ask", and the wording is ours to keep stable.
const ASK_CANCEL_NUMBER: &str = "Which appointment should I cancel? Please tell me its confirmation number (it looks like APPT-XXXXXX).";
const ASK_RESCHEDULE_NUMBER: &str = "Which appointment should I move? Please tell me its confirmation number (it looks like APPT-XXXXXX).";
const ASK_WHAT_TO_CHANGE: &str = "No problem. What would you like to change: the service, the date and time, or your contact details?";
const ASK_NEW_TIME: &str = "What time would you like instead?";
const ASK_NEW_DAY: &str = "Which day would you like instead?";
const ASK_NEW_EMAIL: &str = "What is the right email address?";
const ASK_NEW_NAME: &str = "What name should I put the booking under?";
const ASK_NEW_PHONE: &str = "What is the right phone number?";
/// How our request for the customer's email or phone number ends (a booking made elsewhere).
const ASK_CONTACT_TAIL: &str =
    "please tell me the email address or phone number it was booked with.";
const ASK_CANCEL_YES: &str = "Shall I cancel it?";
const ASK_MOVE_YES: &str = "Shall I move it?";
const ASK_SHOW_NUMBER: &str =
    "Please tell me the confirmation number of your appointment (it looks like APPT-XXXXXX).";

/// The booking skill's understanding, for the offline model.
#[derive(Debug, Clone, Copy, Default)]
pub struct BookingOffline;

impl OfflineSkill for BookingOffline {
    fn request(&self, turn: &mut Turn<'_>) -> Option<Action> {
        let mut flow = Flow::open(turn);
        let action = flow.request()?;
        Some(flow.close(action))
    }

    fn converse(&self, turn: &mut Turn<'_>) -> Option<Action> {
        let mut flow = Flow::open(turn);
        let said = flow.said();
        let action = flow.converse(said)?;
        Some(flow.close(action))
    }

    fn follow_up(&self, turn: &mut Turn<'_>, last: &ToolOutput, earlier: &[ToolOutput]) -> Action {
        let mut flow = Flow::open(turn);
        let action = flow.follow_up(last, earlier);
        flow.close(action)
    }

    fn capabilities(&self, turn: &Turn<'_>) -> Vec<String> {
        [
            ("create_appointment", "book an appointment"),
            ("reschedule_appointment", "reschedule one"),
            ("cancel_appointment", "cancel one"),
            ("get_appointment", "look one up by its confirmation number"),
        ]
        .into_iter()
        .filter(|(tool, _)| turn.has_tool(tool))
        .map(|(_, can)| can.to_owned())
        .collect()
    }

    fn help_detail(&self, turn: &Turn<'_>) -> Option<String> {
        (turn.has_tool("create_appointment") && !turn.services().is_empty())
            .then(|| format!("We offer {}.", service_names(turn.services(), "and")))
    }

    fn pending_question(&self, turn: &Turn<'_>) -> Option<String> {
        let (stage, st) = BookingState::load(&turn.state);
        if !stage.in_flow() {
            return None;
        }
        // A read-only look: the flow is built on a copy of the turn's view.
        let flow = FlowView {
            turn,
            stage,
            st: &st,
        };
        Some(flow.current_question())
    }
}

/// What a message says to the booking flow when it carries no details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    Confirm,
    Deny,
    /// "Never mind", "forget it": the request is called off.
    CallOff,
    /// "Start over".
    Restart,
    /// "Thanks, bye".
    Bye,
    Book,
    Greeting,
    Other,
}

impl Said {
    /// A message that is only a dialogue act: it carries no details to fill in.
    fn is_bare(self) -> bool {
        matches!(self, Self::CallOff | Self::Restart | Self::Bye)
    }
}

/// The booking flow during one step: the turn, and the flow's stage and state, written back
/// by [`Flow::close`].
struct Flow<'t, 'a> {
    turn: &'t mut Turn<'a>,
    stage: Stage,
    st: BookingState,
}

/// A read-only view of the flow, for the question it waits on.
struct FlowView<'t, 'a> {
    turn: &'t Turn<'a>,
    stage: Stage,
    st: &'t BookingState,
}

impl<'t, 'a> Flow<'t, 'a> {
    fn open(turn: &'t mut Turn<'a>) -> Self {
        let (stage, st) = BookingState::load(&turn.state);
        Self { turn, stage, st }
    }

    fn close(self, action: Action) -> Action {
        self.st.save(self.stage, &mut self.turn.state);
        action
    }

    fn view(&self) -> FlowView<'_, 'a> {
        FlowView {
            turn: self.turn,
            stage: self.stage,
            st: &self.st,
        }
    }

    fn said(&self) -> Said {
        let text = self.turn.text;
        if nlu::restarts(text) {
            return Said::Restart;
        }
        if nlu::says_bye(text) {
            return Said::Bye;
        }
        if nlu::calls_off(text) {
            return Said::CallOff;
        }
        if booking_nlu::confirms_booking(text) {
            return Said::Confirm;
        }
        match nlu::yes_no(text) {
            Some(nlu::Act::Confirm) => return Said::Confirm,
            Some(nlu::Act::Deny) => return Said::Deny,
            _ => {}
        }
        if booking_nlu::wants_booking(text) {
            return Said::Book;
        }
        match nlu::act(text) {
            nlu::Act::Confirm => Said::Confirm,
            nlu::Act::Deny => Said::Deny,
            nlu::Act::Greeting => Said::Greeting,
            nlu::Act::Other => Said::Other,
        }
    }

    /// Requests about appointments, and a confirmation number given in answer to our question.
    fn request(&mut self) -> Option<Action> {
        if let Some(action) = self.pending_step(Said::Other) {
            return Some(action);
        }
        if let Some(action) = self.question() {
            return Some(action);
        }
        let number = booking_nlu::confirmation_number(self.turn.text);
        let asked = self.turn.previous_reply();
        if let Some(number) = &number {
            if asked == ASK_CANCEL_NUMBER {
                return Some(self.cancel(Some(number.clone())));
            }
            if asked == ASK_RESCHEDULE_NUMBER {
                return Some(self.reschedule(Some(number.clone())));
            }
        }
        Some(match booking_nlu::request(self.turn.text)? {
            Request::Cancel { confirmation } => self.cancel_intent(confirmation),
            Request::Reschedule { confirmation } => {
                // "Can I reschedule to 4pm?" while still booking changes the draft.
                if confirmation.is_none() && self.in_booking_flow() {
                    return self.converse(Said::Other);
                }
                let number = confirmation.or_else(|| self.st.last_confirmation.clone());
                self.reschedule(number)
            }
            Request::Show { confirmation } => self.show_appointment(confirmation),
            Request::ListServices => self.list_services(),
        })
    }

    /// A question the organisation's settings answer (hours, prices…), with the question
    /// the flow waits on after it.
    fn question(&mut self) -> Option<Action> {
        let (answer, topic) = faq::answer(self.turn, self.st.draft.service_id.as_deref())?;
        if topic.is_some() {
            self.st.topic = topic;
        }
        let pending = self
            .in_booking_flow()
            .then(|| self.current_question())
            .map(|q| format!(" {q}"))
            .unwrap_or_default();
        Some(reply(format!("{answer}{pending}")))
    }

    fn follow_up(&mut self, out: &ToolOutput, earlier: &[ToolOutput]) -> Action {
        match out.name.as_str() {
            "check_availability" => self.after_availability(out, earlier),
            "create_appointment" => self.after_create(out),
            "cancel_appointment" => self.after_cancel(out),
            "reschedule_appointment" => self.after_reschedule(out),
            "get_appointment" => self.after_get(out),
            _ => after_list_services(out),
        }
    }

    fn current_question(&self) -> String {
        self.view().current_question()
    }

    fn ask_service(&self) -> String {
        self.view().ask_service()
    }

    fn ask_contact(&self, first_time: bool) -> String {
        self.view().ask_contact(first_time)
    }

    fn summary(&self) -> String {
        self.view().summary()
    }

    fn service_name(&self, id: Option<&str>) -> String {
        self.view().service_name(id)
    }

    fn missing_contact(&self) -> Vec<&'static str> {
        self.view().missing_contact()
    }

    fn last_checked_date(&self) -> Option<NaiveDate> {
        self.turn
            .messages()
            .iter()
            .rev()
            .flat_map(|m| m.tool_calls.iter().rev())
            .filter(|c| c.name == "check_availability")
            .find_map(|c| {
                let args: Value = serde_json::from_str(&c.arguments).ok()?;
                NaiveDate::parse_from_str(args.get("date")?.as_str()?, "%Y-%m-%d").ok()
            })
    }

    fn in_booking_flow(&self) -> bool {
        self.stage.in_flow()
    }

    fn rescheduling(&self) -> Option<String> {
        if self.stage == Stage::CollectDatetime {
            self.st.draft.reschedule_of.clone()
        } else {
            None
        }
    }

    fn converse(&mut self, said: Said) -> Option<Action> {
        if let Some(action) = self.pending_step(said) {
            return Some(action);
        }
        let stage = self.stage;
        // Dialogue acts come first: "nah", "start over" or "thanks, bye" is never a detail.
        if said.is_bare()
            || nlu::yes_no(self.turn.text).is_some()
            || booking_nlu::confirms_booking(self.turn.text)
        {
            if let Some(number) = self.rescheduling() {
                return Some(self.reschedule_when(number, None, None, said));
            }
            return self.converse_without_details(said);
        }
        let mut contact = if matches!(stage, Stage::CollectContact | Stage::Confirm)
            || self.turn.text.contains('@')
        {
            booking_nlu::parse_contact(self.turn.text)
        } else {
            Contact::default()
        };
        // A name only where one was asked for or is clearly given: labelled ("I'm …"), with
        // an email or phone number, or in answer to our question.
        let asked_name = (stage == Stage::CollectContact && self.st.draft.name.is_none())
            || self.turn.previous_reply().ends_with(ASK_NEW_NAME);
        if !(contact.name_labelled
            || asked_name
            || contact.email.is_some()
            || contact.phone.is_some())
        {
            contact.name = None;
        }
        // An email like "jo@extended-care.com" must not pick a service, nor a phone number a
        // time, so they are taken out before looking for those.
        let mut rest = self.turn.text.to_owned();
        for part in [&contact.email, &contact.phone].into_iter().flatten() {
            rest = rest.replacen(part.as_str(), " ", 1);
        }
        let mut service = booking_nlu::match_service(&rest, self.turn.services());
        if service.is_none() && booking_nlu::refers_back(&rest) {
            // "Book me one" after asking about a service.
            let topic = self.st.topic.clone();
            service = topic.and_then(|id| self.turn.services().iter().find(|s| s.id == id));
        }
        let reading = self.turn.read_date(&rest);
        let mut date = match reading {
            nlu::DateReading::Date(d) => Some(d),
            _ => None,
        };
        let mut time = nlu::parse_time(&rest);
        if time.is_none()
            && date.is_none()
            && matches!(stage, Stage::CollectDatetime | Stage::Confirm)
        {
            time = nlu::bare_hour(&rest);
        }
        if date.is_none() && !self.st.draft.date_choices.is_empty() {
            date = self.chosen_reading(&rest);
            if date.is_some() {
                time = time.or_else(|| {
                    self.st
                        .draft
                        .pending_time
                        .as_deref()
                        .and_then(|t| NaiveTime::parse_from_str(t, "%H:%M").ok())
                });
            }
        }
        if date.is_none() {
            // "The day after", "the next day": counted from the day already chosen.
            let base = self
                .st
                .draft
                .start
                .as_deref()
                .and_then(parse_start)
                .map(|s| s.date())
                .or_else(|| self.draft_day());
            if let (Some(base), Some(offset)) = (base, booking_nlu::day_offset(&rest)) {
                date = base.checked_add_signed(chrono::Duration::days(offset));
            }
        }
        if date.is_some() {
            if time.is_none() && !self.st.draft.date_choices.is_empty() {
                time = self
                    .st
                    .draft
                    .pending_time
                    .as_deref()
                    .and_then(|t| NaiveTime::parse_from_str(t, "%H:%M").ok());
            }
            self.st.draft.date_choices.clear();
            self.st.draft.pending_time = None;
        }
        let period = nlu::part_of_day(&rest);

        if let Some(number) = self.rescheduling() {
            return Some(self.reschedule_when(number, date, time, said));
        }
        let ambiguous = matches!(reading, nlu::DateReading::Ambiguous(..));
        if service.is_none() && date.is_none() && time.is_none() && contact.is_empty() && !ambiguous
        {
            return self.converse_without_details(said);
        }
        if !self.turn.has_tool("create_appointment") {
            return Some(reply("Sorry, I can't book appointments here."));
        }
        if !self.in_booking_flow() {
            self.start_new_booking();
        }
        if let nlu::DateReading::Ambiguous(first, second) = reading {
            if let Some(service) = service {
                self.st.draft.service_id = Some(service.id.clone());
            }
            self.st.draft.date_choices = vec![first.to_string(), second.to_string()];
            self.st.draft.pending_time = time.map(|t| t.format("%H:%M").to_string());
            if self.stage != Stage::Confirm {
                self.stage = Stage::CollectDatetime;
            }
            return Some(reply(self.ask_date_choice()));
        }
        if let Some(p) = period {
            if time.is_none() {
                self.st.draft.period = Some(p.as_str().to_owned());
            }
        }

        let booking_start = self.st.draft.start.as_deref().and_then(parse_start);
        let start_verified =
            matches!(stage, Stage::CollectContact | Stage::Confirm) && booking_start.is_some();
        let mut ack = String::new();
        let mut service_changed = false;
        if let Some(service) = service {
            if self.st.draft.service_id.as_deref() != Some(service.id.as_str()) {
                self.st.draft.service_id = Some(service.id.clone());
                service_changed = true;
                ack.push_str(&format!("{} it is. ", service.name));
            }
        }
        if let Some(name) = contact.name {
            ack.push_str(&format!("Thanks, {name}. "));
            self.st.draft.name = Some(name);
        }
        if let Some(email) = contact.email {
            self.st.draft.email = Some(email);
        }
        if let Some(phone) = contact.phone {
            self.st.draft.phone = Some(phone);
        }

        let requested = match (date, time) {
            (Some(d), Some(t)) => Some((d, Some(t))),
            // A new day keeps the time already chosen ("actually, make it Friday").
            (Some(d), None) => Some((
                d,
                booking_start
                    .map(|s| s.time())
                    .or_else(|| self.turn.time_hint()),
            )),
            (None, Some(t)) => booking_start
                .map(|s| s.date())
                .or_else(|| self.last_checked_date())
                .or_else(|| self.draft_day())
                .or_else(|| self.turn.date_hint())
                .map(|d| (d, Some(t))),
            (None, None) => None,
        };
        if let Some((d, _)) = requested {
            self.st.draft.day = Some(d.to_string());
        }

        let Some(service_id) = self.st.draft.service_id.clone() else {
            // Keep the day (and time) to check once the service is known.
            match requested {
                Some((d, Some(t))) => {
                    self.st.draft.start = Some(format_start(NaiveDateTime::new(d, t)));
                    ack.push_str(&format!("Noted: {}. ", when(NaiveDateTime::new(d, t))));
                }
                Some((d, None)) => ack.push_str(&format!("Noted: {}. ", day(d))),
                None => {}
            }
            self.stage = Stage::CollectService;
            return Some(reply(format!("{ack}{}", self.ask_service())));
        };
        Some(match requested {
            Some((d, t)) => self.check_slot(&service_id, d, t, ack),
            None if time.is_some() => {
                self.stage = Stage::CollectDatetime;
                let t = time
                    .map(|t| t.format("%H:%M").to_string())
                    .unwrap_or_default();
                reply(format!("{ack}Which day would you like to come at {t}?"))
            }
            None if start_verified && !service_changed => self.contact_step(ack),
            None => match (booking_start, self.draft_day()) {
                // A time noted before the service was known, or one to re-check because a
                // different service may not fit it.
                (Some(start), _) => {
                    self.check_slot(&service_id, start.date(), Some(start.time()), ack)
                }
                // A day asked for before the service: its free times.
                (None, Some(d)) => self.check_slot(&service_id, d, None, ack),
                (None, None) => {
                    self.stage = Stage::CollectDatetime;
                    reply(format!("{ack}{}", self.current_question()))
                }
            },
        })
    }

    fn draft_day(&self) -> Option<NaiveDate> {
        self.st.draft.day.as_deref().and_then(|d| d.parse().ok())
    }

    /// Which reading of an ambiguous date the visitor chose: by month ("December"), by
    /// position ("the first one"), or by saying the date again in words.
    fn chosen_reading(&self, text: &str) -> Option<NaiveDate> {
        let choices: Vec<NaiveDate> = self
            .st
            .draft
            .date_choices
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        if let Some(month) = nlu::month_named(text) {
            if let Some(d) = choices.iter().find(|d| d.month() == month) {
                return Some(*d);
            }
        }
        let words = nlu::words(text);
        let has = |w: &str| words.iter().any(|x| x == w);
        if has("first") || has("former") {
            return choices.first().copied();
        }
        if has("second") || has("latter") || has("other") {
            return choices.get(1).copied();
        }
        None
    }

    fn ask_date_choice(&self) -> String {
        self.view().ask_date_choice()
    }

    fn start_new_booking(&mut self) {
        let booking = &mut self.st.draft;
        booking.service_id = None;
        booking.start = None;
        booking.reschedule_of = None;
        booking.day = None;
        booking.period = None;
        booking.date_choices.clear();
        booking.pending_time = None;
        // Name, email and phone stay: the same customer booking again need not repeat them,
        // and the summary shows them before anything is booked.
    }

    /// A message without booking details: yes, no, "book", or nothing for this skill (`None`:
    /// the core answers help, greetings and thanks, with our question when a flow waits).
    fn converse_without_details(&mut self, said: Said) -> Option<Action> {
        let stage = self.stage;
        if nlu::asks_for_help(self.turn.text) {
            return None;
        }
        if stage == Stage::Confirm && !said.is_bare() && said != Said::Confirm {
            if let Some(question) = self.what_to_change() {
                return Some(reply(question));
            }
        }
        Some(match said {
            Said::Restart if self.in_booking_flow() => {
                self.start_new_booking();
                self.stage = Stage::CollectService;
                reply(format!(
                    "All right, let's start over. {}",
                    self.ask_service()
                ))
            }
            Said::CallOff if self.in_booking_flow() => {
                self.stage = Stage::Idle;
                self.start_new_booking();
                reply("All right, I won't book anything. Is there anything else I can help with?")
            }
            Said::Confirm if stage == Stage::Confirm => self.book(),
            // A second "no" after we asked what to change: they don't want it after all.
            Said::Deny
                if stage == Stage::Confirm && self.turn.previous_reply() == ASK_WHAT_TO_CHANGE =>
            {
                self.stage = Stage::Idle;
                self.start_new_booking();
                reply("All right, I won't book it. Is there anything else I can help with?")
            }
            Said::Deny if stage == Stage::Confirm => reply(ASK_WHAT_TO_CHANGE),
            Said::Deny if self.in_booking_flow() => {
                self.stage = Stage::Idle;
                self.start_new_booking();
                reply(
                    "All right, I've stopped the booking. Is there anything else I can help with?",
                )
            }
            Said::Book if !self.in_booking_flow() => {
                let hello = if nlu::starts_with_greeting(self.turn.text) {
                    "Hello! "
                } else {
                    ""
                };
                if !self.turn.has_tool("create_appointment") {
                    return Some(reply(format!(
                        "{hello}Sorry, I can't book appointments here. {}",
                        self.turn.help()
                    )));
                }
                self.stage = Stage::CollectService;
                self.start_new_booking();
                reply(format!(
                    "{hello}I'd be happy to help you book an appointment. {}",
                    self.ask_service()
                ))
            }
            Said::Book => reply(format!("Sure. {}", self.current_question())),
            Said::Confirm if stage == Stage::Complete => {
                reply("Great, you're all set. Is there anything else I can help with?")
            }
            _ => return None,
        })
    }

    /// "The time", "wrong day", "my email": what the visitor wants to change at the
    /// confirmation, asked about.
    fn what_to_change(&mut self) -> Option<String> {
        let words = nlu::words(self.turn.text);
        let has = |list: &[&str]| words.iter().any(|w| list.contains(&w.as_str()));
        if has(&["time", "hour", "clock"]) {
            return Some(ASK_NEW_TIME.to_owned());
        }
        if has(&["day", "date", "days", "dates"]) {
            return Some(ASK_NEW_DAY.to_owned());
        }
        if has(&["service", "treatment", "type", "kind"]) {
            return Some(self.ask_service());
        }
        if has(&["email", "e-mail", "mail", "address"]) {
            return Some(ASK_NEW_EMAIL.to_owned());
        }
        if has(&["name"]) {
            return Some(ASK_NEW_NAME.to_owned());
        }
        if has(&["phone", "number", "mobile"]) {
            return Some(ASK_NEW_PHONE.to_owned());
        }
        None
    }

    /// Asks the availability tool about a day (and time); the answer comes back next step.
    fn check_slot(
        &mut self,
        service_id: &str,
        date: NaiveDate,
        time: Option<NaiveTime>,
        ack: String,
    ) -> Action {
        let now = self.turn.now_local();
        let past = match time {
            Some(t) => NaiveDateTime::new(date, t) <= now,
            None => date < now.date(),
        };
        if past {
            self.stage = Stage::CollectDatetime;
            self.st.draft.start = None;
            let said = time.map_or_else(|| day(date), |t| when(NaiveDateTime::new(date, t)));
            return reply(format!(
                "{ack}{said} is already in the past. When else would you like to come?"
            ));
        }
        if !self.turn.has_tool("check_availability") {
            // Nothing to check with; the booking tool itself refuses a taken slot.
            return match time {
                Some(t) => {
                    let start = NaiveDateTime::new(date, t);
                    self.st.draft.start = Some(format_start(start));
                    self.contact_step(format!("{ack}Noted: {}. ", when(start)))
                }
                None => {
                    self.stage = Stage::CollectDatetime;
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

    /// With service and time settled: ask for missing contact details or sum up.
    fn contact_step(&mut self, ack: String) -> Action {
        if self.missing_contact().is_empty() {
            self.stage = Stage::Confirm;
            return reply(format!("{ack}{}", self.summary()));
        }
        let first_time = self.stage != Stage::CollectContact;
        self.stage = Stage::CollectContact;
        reply(format!("{ack}{}", self.ask_contact(first_time)))
    }

    fn book(&mut self) -> Action {
        if !self.turn.has_tool("create_appointment") {
            return reply("Sorry, I can't book appointments here.");
        }
        let booking = &self.st.draft;
        let (Some(service_id), Some(start), Some(name), Some(email)) = (
            booking.service_id.clone(),
            booking.start.clone(),
            booking.name.clone(),
            booking.email.clone(),
        ) else {
            // Should not happen at CONFIRM; ask for whatever is missing rather than guess.
            self.stage = if booking.service_id.is_none() {
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
            self.stage = Stage::Idle;
            self.st.draft.reschedule_of = None;
            return reply(format!(
                "OK, I'll leave {number} as it is. Is there anything else I can help with?"
            ));
        }
        if self.in_booking_flow() {
            // "Cancel" half-way through a booking drops the draft; nothing was booked yet.
            self.stage = Stage::Idle;
            self.start_new_booking();
            return reply(
                "All right, I won't book anything. Is there anything else I can help with?",
            );
        }
        let number = self.st.last_confirmation.clone();
        self.cancel(number)
    }

    fn cancel(&mut self, number: Option<String>) -> Action {
        if !self.turn.has_tool("cancel_appointment") {
            return reply("Sorry, I can't cancel appointments here.");
        }
        match number {
            Some(number) => self.verify("cancel", number, None),
            None => reply(ASK_CANCEL_NUMBER),
        }
    }

    /// The email address or phone number the customer gave for an appointment: in this
    /// message, or as the contact of a booking made in this conversation.
    fn contact_given(&self, number: &str) -> Option<String> {
        let c = booking_nlu::parse_contact(self.turn.text);
        let proven = self
            .st
            .proof
            .as_ref()
            .filter(|(n, _)| n == number)
            .map(|(_, contact)| contact.clone());
        c.email
            .or(c.phone)
            .or(proven)
            .or_else(|| self.st.draft.email.clone())
    }

    /// Before a change or a look-up: find the appointment (with the customer's email or phone
    /// number when it was booked elsewhere), then ask for their yes.
    fn verify(&mut self, action: &str, number: String, start: Option<String>) -> Action {
        let pending = PendingChange {
            action: action.to_owned(),
            contact: self.contact_given(&number),
            number,
            start,
            asked: false,
        };
        if !self.turn.has_tool("get_appointment") && action != "show" {
            // Nothing to look it up with: the change itself checks the number.
            let question = self.confirm_question(&pending, None);
            self.st.pending = Some(PendingChange {
                asked: true,
                ..pending
            });
            return reply(question);
        }
        let call = lookup(&pending);
        self.st.pending = Some(pending);
        call
    }

    fn confirm_question(&self, pending: &PendingChange, found: Option<&ToolOutput>) -> String {
        let what = found.map_or_else(String::new, |out| {
            let customer = out
                .str("customer_name")
                .map(|n| format!(" for {n}"))
                .unwrap_or_default();
            format!(" ({}{customer})", describe_appointment(out))
        });
        match pending.start.as_deref().and_then(parse_start) {
            Some(start) if pending.action == "reschedule" => format!(
                "{}{what} is to move to {}. {ASK_MOVE_YES}",
                pending.number,
                when(start)
            ),
            _ => format!(
                "{}{what} is to be cancelled. {ASK_CANCEL_YES}",
                pending.number
            ),
        }
    }

    /// The customer's answer while a change waits: their email or phone number, or yes/no.
    /// Only right after we asked, so an old question never takes a later "yes".
    fn pending_step(&mut self, said: Said) -> Option<Action> {
        let pending = self.st.pending.clone()?;
        let asked = self.turn.previous_reply();
        let waiting_contact = !pending.asked && asked.ends_with(ASK_CONTACT_TAIL);
        let waiting_yes =
            pending.asked && (asked.ends_with(ASK_CANCEL_YES) || asked.ends_with(ASK_MOVE_YES));
        if !(waiting_contact || waiting_yes) {
            self.st.pending = None;
            return None;
        }
        let said = match said {
            Said::Other => self.said(),
            other => other,
        };
        if matches!(said, Said::Deny | Said::CallOff) {
            self.st.pending = None;
            return Some(reply(format!(
                "OK, I'll leave {} as it is. Is there anything else I can help with?",
                pending.number
            )));
        }
        if waiting_contact {
            let c = booking_nlu::parse_contact(self.turn.text);
            let contact = c.email.or(c.phone)?;
            let pending = PendingChange {
                contact: Some(contact),
                ..pending
            };
            let call = lookup(&pending);
            self.st.pending = Some(pending);
            return Some(call);
        }
        if said != Said::Confirm {
            return None;
        }
        self.st.pending = None;
        let mut arguments = json!({ "confirmation_number": pending.number });
        if let Value::Object(map) = &mut arguments {
            if let Some(contact) = &pending.contact {
                map.insert("customer_contact".into(), Value::String(contact.clone()));
            }
            if let Some(start) = &pending.start {
                map.insert("start".into(), Value::String(start.clone()));
            }
        }
        Some(Action::Call {
            tool: if pending.action == "reschedule" {
                "reschedule_appointment"
            } else {
                "cancel_appointment"
            },
            arguments,
        })
    }

    fn reschedule(&mut self, number: Option<String>) -> Action {
        if !self.turn.has_tool("reschedule_appointment") {
            return reply("Sorry, I can't reschedule appointments here.");
        }
        let Some(number) = number else {
            return reply(ASK_RESCHEDULE_NUMBER);
        };
        let date = self.turn.date_in(self.turn.text);
        let time = nlu::parse_time(self.turn.text);
        self.st.draft.reschedule_of = Some(number.clone());
        self.stage = Stage::CollectDatetime;
        self.reschedule_when(number, date, time, Said::Other)
    }

    /// The new time for an appointment being moved, possibly given in two messages.
    fn reschedule_when(
        &mut self,
        number: String,
        date: Option<NaiveDate>,
        time: Option<NaiveTime>,
        said: Said,
    ) -> Action {
        let known_day = (self.st.last_confirmation.as_deref() == Some(number.as_str()))
            .then(|| self.st.last_start.as_deref().and_then(parse_start))
            .flatten()
            .map(|s| s.date());
        let date = date.or_else(|| time.and_then(|_| self.turn.date_hint().or(known_day)));
        let time = time.or_else(|| date.and_then(|_| self.turn.time_hint()));
        match (date, time) {
            (Some(d), Some(t)) => {
                let start = NaiveDateTime::new(d, t);
                if start <= self.turn.now_local() {
                    return reply(format!(
                        "{} is already in the past. When would you like to move {number} to?",
                        when(start)
                    ));
                }
                self.stage = Stage::Idle;
                self.st.draft.reschedule_of = None;
                self.verify("reschedule", number, Some(format_start(start)))
            }
            (Some(d), None) => reply(format!("At what time on {}?", day(d))),
            (None, Some(t)) => reply(format!(
                "Which day would you like to move {number} to, at {}?",
                t.format("%H:%M")
            )),
            (None, None) if matches!(said, Said::Deny | Said::CallOff) => {
                self.stage = Stage::Idle;
                self.st.draft.reschedule_of = None;
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
        if !self.turn.has_tool("get_appointment") {
            return reply("Sorry, I can't look up appointments here.");
        }
        match confirmation.or_else(|| self.st.last_confirmation.clone()) {
            Some(number) => self.verify("show", number, None),
            None => reply(ASK_SHOW_NUMBER),
        }
    }

    fn list_services(&mut self) -> Action {
        if self.turn.services().is_empty() {
            if self.turn.has_tool("list_services") {
                return Action::Call {
                    tool: "list_services",
                    arguments: json!({}),
                };
            }
            return reply("Sorry, I don't have a list of services here.");
        }
        let described: Vec<String> = self.turn.services().iter().map(describe_service).collect();
        if matches!(self.stage, Stage::Idle | Stage::Complete)
            && self.turn.has_tool("create_appointment")
        {
            self.stage = Stage::CollectService;
            self.start_new_booking();
        }
        reply(format!(
            "We offer {}. Which one would you like to book?",
            join(&described, "and")
        ))
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
        self.stage = Stage::CollectDatetime;
        if let Some(error) = out.error() {
            self.st.draft.start = None;
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
        let period = self
            .st
            .draft
            .period
            .take()
            .as_deref()
            .and_then(nlu::PartOfDay::parse);
        let available = out.value.get("available").and_then(Value::as_bool);
        if let (Some(true), Some(t)) = (available, time) {
            let start = NaiveDateTime::new(date, t);
            self.st.draft.start = Some(format_start(start));
            if self.st.draft.service_id.is_none() {
                self.st.draft.service_id = out.str("service_id").map(str::to_owned);
            }
            let service = self.service_name(self.st.draft.service_id.as_deref());
            return self.contact_step(format!(
                "{prefix}Good news: {} is available for your {service}. ",
                when(start)
            ));
        }
        self.st.draft.start = None;
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
            None if period.is_some_and(|p| !slots.iter().any(|s| p.contains(*s))) => {
                let p = period.map_or("", nlu::PartOfDay::as_str);
                let shown: Vec<String> = slots
                    .iter()
                    .rev()
                    .take(3)
                    .rev()
                    .map(|s| s.format("%H:%M").to_string())
                    .collect();
                reply(format!(
                    "{prefix}Sorry, there are no free times in the {p} on {}. The latest I have that day are {}. Would one of those suit you, or another day?",
                    day(date),
                    join(&shown, "and")
                ))
            }
            None => {
                let in_period: Vec<NaiveTime> = slots
                    .iter()
                    .copied()
                    .filter(|s| period.is_none_or(|p| p.contains(*s)))
                    .collect();
                let slots = in_period;
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
            self.stage = Stage::CollectDatetime;
            let taken = self.st.draft.start.take().as_deref().and_then(parse_start);
            // Offer other times on the same day rather than leave the customer guessing.
            if let (Some(taken), Some(service_id)) = (taken, self.st.draft.service_id.clone()) {
                if self.turn.has_tool("check_availability") {
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
        self.stage = Stage::Complete;
        self.st.last_confirmation = Some(number.clone());
        self.st.last_start = out.str("start").map(str::to_owned);
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
        self.stage = Stage::Complete;
        self.st.last_confirmation = Some(number.clone());
        reply(format!(
            "Your appointment {number} ({}) has been cancelled. Is there anything else I can help with?",
            describe_appointment(out)
        ))
    }

    fn after_reschedule(&mut self, out: &ToolOutput) -> Action {
        let number = self.number_of(out);
        if let Some(error) = out.error() {
            let lower = error.to_lowercase();
            if lower.contains("not found") || lower.contains("no appointment") {
                self.stage = Stage::Idle;
                self.st.draft.reschedule_of = None;
                return reply(format!(
                    "Sorry, I couldn't find {number} ({error}). Please check the confirmation number."
                ));
            }
            self.stage = Stage::CollectDatetime;
            self.st.draft.reschedule_of = Some(number.clone());
            return reply(format!(
                "Sorry, I couldn't move {number} to that time ({error}). Which other time would suit you?"
            ));
        }
        self.stage = Stage::Complete;
        self.st.draft.reschedule_of = None;
        self.st.last_confirmation = Some(number.clone());
        self.st.last_start = out.str("start").map(str::to_owned);
        reply(format!(
            "Done: {number} is now {}. Is there anything else I can help with?",
            describe_appointment(out)
        ))
    }

    fn after_get(&mut self, out: &ToolOutput) -> Action {
        let number = self.number_of(out);
        let pending = self.st.pending.take().filter(|p| p.number == number);
        if let Some(error) = out.error() {
            return match pending {
                // Not this conversation's: a returning customer proves it is theirs.
                Some(p) if p.contact.is_none() => {
                    let doing = match p.action.as_str() {
                        "cancel" => "cancel it",
                        "reschedule" => "move it",
                        _ => "look it up",
                    };
                    self.st.pending = Some(p);
                    reply(format!(
                        "I can't find {number} in this conversation. To {doing} it, {ASK_CONTACT_TAIL}"
                    ))
                }
                Some(_) => reply(format!(
                    "Sorry, I couldn't find {number} with that email address or phone number. Please check both and try again."
                )),
                None => reply(format!("Sorry, I couldn't find {number}: {error}.")),
            };
        }
        if let Some(contact) = pending.as_ref().and_then(|p| p.contact.clone()) {
            // Proven: a move that fails for its time need not ask again.
            self.st.proof = Some((number.clone(), contact));
        }
        if let Some(p) = pending.filter(|p| p.action != "show") {
            self.st.last_confirmation = Some(number.clone());
            if out.str("status") == Some("cancelled") {
                return reply(format!(
                    "{number} ({}) is already cancelled. Is there anything else I can help with?",
                    describe_appointment(out)
                ));
            }
            let question = self.confirm_question(&p, Some(out));
            self.st.pending = Some(PendingChange { asked: true, ..p });
            return reply(question);
        }
        self.st.last_confirmation = Some(number.clone());
        self.st.last_start = out.str("start").map(str::to_owned);
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
}

impl<'a> FlowView<'_, 'a> {
    fn service(&self, id: &str) -> Option<&'a Service> {
        self.turn.services().iter().find(|s| s.id == id)
    }

    fn service_name(&self, id: Option<&str>) -> String {
        id.map(|id| {
            self.service(id)
                .map_or_else(|| id.to_owned(), |s| s.name.clone())
        })
        .unwrap_or_else(|| "appointment".to_owned())
    }

    fn ask_service(&self) -> String {
        if self.turn.services().is_empty() {
            "Which service would you like to book?".to_owned()
        } else {
            format!(
                "Which service would you like? We offer {}.",
                service_names(self.turn.services(), "and")
            )
        }
    }

    /// The question for the stage we are at, to repeat after something we did not follow.
    fn current_question(&self) -> String {
        let booking = &self.st.draft;
        match self.stage {
            Stage::CollectService => self.ask_service(),
            Stage::CollectDatetime if !booking.date_choices.is_empty() => self.ask_date_choice(),
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
            Stage::Idle | Stage::Complete => self.turn.help(),
        }
    }

    fn ask_date_choice(&self) -> String {
        let choices: Vec<String> = self
            .st
            .draft
            .date_choices
            .iter()
            .filter_map(|d| d.parse::<NaiveDate>().ok())
            .map(day)
            .collect();
        format!("Just to be sure: do you mean {}?", join(&choices, "or"))
    }

    fn missing_contact(&self) -> Vec<&'static str> {
        let booking = &self.st.draft;
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
        if first_time && self.st.draft.phone.is_none() {
            wanted.push("phone number".to_owned());
        }
        format!("May I have your {}?", join(&wanted, "and"))
    }

    fn summary(&self) -> String {
        let booking = &self.st.draft;
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
}

fn service_names(services: &[Service], conjunction: &str) -> String {
    let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    join(&names, conjunction)
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

/// `get_appointment` for a pending change, with the customer's contact when given.
fn lookup(pending: &PendingChange) -> Action {
    let mut arguments = json!({ "confirmation_number": pending.number });
    if let (Some(contact), Value::Object(map)) = (&pending.contact, &mut arguments) {
        map.insert("customer_contact".into(), Value::String(contact.clone()));
    }
    Action::Call {
        tool: "get_appointment",
        arguments,
    }
}

fn parse_start(start: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(start, START_FORMAT).ok()
}

fn format_start(start: NaiveDateTime) -> String {
    start.format(START_FORMAT).to_string()
}

/// "Tuesday 24 November 2026 at 14:00"
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
