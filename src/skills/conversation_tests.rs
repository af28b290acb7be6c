//! Whole conversations with the offline model and every built-in skill, played through the
//! agent loop as the server runs it, with in-memory tools answering in the real tools' shapes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use crate::agent::model::{ModelRequest, TurnContext};
use crate::agent::offline::OfflineModel;
use crate::domain::chat::{ChatMessage, ToolCall, ToolSpec, Usage};
use crate::domain::conversation::ConversationState;
use crate::domain::{Org, Service};
use crate::skills::booking::state::{BookingState, Stage};

fn all_tools() -> Vec<&'static str> {
    crate::skills::builtin().tools().names()
}

/// Monday 23 November 2026, 10:00 UTC (11:00 in Berlin).
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

fn services() -> Vec<Service> {
    crate::domain::org::demo_services()
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
    state: ConversationState,
    tools: Vec<String>,
    org: Arc<Org>,
    model: OfflineModel,
    fake: FakeTools,
    ids: HashSet<String>,
    usage: Vec<Usage>,
}

impl Chat {
    fn new() -> Self {
        Self::with_tools(&all_tools())
    }

    fn with_tools(tools: &[&str]) -> Self {
        Self::with_services(tools, services())
    }

    fn with_services(tools: &[&str], services: Vec<Service>) -> Self {
        let mut org = crate::domain::org::test_org();
        org.settings.services = services;
        Self {
            messages: vec![ChatMessage::system("You are a helpful assistant.")],
            state: ConversationState::default(),
            tools: tools.iter().map(|t| (*t).to_owned()).collect(),
            org: Arc::new(org),
            model: OfflineModel::new(crate::skills::builtin().offline()),
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
                .map(|name| {
                    std::sync::Arc::new(ToolSpec {
                        name: name.clone(),
                        description: String::new(),
                        parameters: json!({ "type": "object" }),
                    })
                })
                .collect(),
            temperature: None,
            max_tokens: None,
            state: self.state.clone(),
            context: TurnContext::new(Arc::clone(&self.org), now()),
        }
    }

    fn say(&mut self, text: &str) -> String {
        self.messages.push(ChatMessage::user(text));
        for _ in 0..8 {
            let response = self.model.complete(&self.request()).unwrap();
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
        Stage::from_label(&self.state.stage)
    }

    fn booking(&self) -> BookingState {
        BookingState::load(&self.state).1
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
        chat.booking().draft.service_id.as_deref(),
        Some("general-consultation")
    );
    assert!(r.contains("When"), "{r}");

    let r = chat.say("Tomorrow at 2 PM");
    assert_eq!(chat.stage(), Stage::CollectContact);
    assert_eq!(
        chat.booking().draft.start.as_deref(),
        Some("2026-11-24T14:00")
    );
    assert_eq!(
        chat.fake.calls_to("check_availability"),
        vec![&json!({"service_id": "general-consultation", "date": "2026-11-24", "time": "14:00"})]
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
    assert_eq!(
        chat.booking().last_confirmation.as_deref(),
        Some("APPT-7K2M9Q")
    );
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
    assert_eq!(chat.booking().draft.start, None);
    assert!(r.contains("not available"), "{r}");
    assert!(r.contains("13:00, 14:30 or 15:00"), "{r}");

    // A time alone refers to the day just checked.
    let r = chat.say("14:30 then");
    assert_eq!(chat.stage(), Stage::CollectContact, "{r}");
    assert_eq!(
        chat.booking().draft.start.as_deref(),
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
        chat.booking().draft.start.as_deref(),
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
        chat.booking().draft.start.as_deref(),
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
        chat.booking().draft.start.as_deref(),
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
    assert!(r.starts_with("Which appointment should I cancel?"), "{r}");
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
    assert_eq!(chat.booking().draft.start, None);
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
    assert_eq!(fresh.booking().draft.reschedule_of, None);
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

    let mut chat = Chat::with_services(&all_tools(), Vec::new());
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
    let first = chat.model.complete(&chat.request()).unwrap();
    let again = chat.model.complete(&chat.request()).unwrap();
    assert_eq!(first, again);
    assert_eq!(first.tool_calls.len(), 1);
}

#[test]
fn usage_counts_words() {
    let chat = Chat::new();
    let mut req = chat.request();
    req.messages.push(ChatMessage::user("blorp blorp"));
    let response = chat.model.complete(&req).unwrap();
    let words = response.content.split_whitespace().count() as u32;
    // System prompt (5 words) + the user's two.
    assert_eq!(response.usage.prompt_tokens, 7);
    assert_eq!(response.usage.completion_tokens, words);
    assert_eq!(response.usage.total_tokens, 7 + words);
}
