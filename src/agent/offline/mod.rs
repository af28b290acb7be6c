//! The offline model: a deterministic, rule-based stand-in for an LLM, so agentd works (and
//! its tests run) without a provider key. It plays one step of the agent loop at a time: reads
//! the latest user message, or the tool results of the step before, and answers with text or
//! one tool call.
//!
//! The core here knows conversation, not business: greetings, help, thanks, yes and no. What
//! a request means for the business is each skill's [`OfflineSkill`], which reads the
//! message through a [`Turn`] and keeps its own progress in its entry of the conversation
//! state. A message goes, in order:
//! 1. to the skill whose tool just answered (a follow-up step);
//! 2. unless it is a bare yes or no, to each skill's [`OfflineSkill::request`], by
//!    [`OfflineSkill::precedence`] (task phrasings embed free text, so they go first);
//! 3. to each skill's [`OfflineSkill::converse`] (a flow in progress, details given);
//! 4. to the core: help, greetings, thanks, or "sorry?" with the question a flow waits on.

pub mod nlu;

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::Value;

use super::model::{ModelError, ModelRequest, ModelResponse};
use crate::domain::Service;
use crate::domain::chat::{ChatMessage, Role, ToolCall, Usage};
use crate::domain::conversation::ConversationState;
use nlu::Act;

/// The name the offline model reports in responses.
pub const MODEL_NAME: &str = "offline";

/// The loop stops after 8 steps; leaving one for a reply means a chain never ends mid-way.
const MAX_CALL_STEPS: usize = 7;

/// What a skill does at one step: answer, or call one of its tools.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Reply(String),
    Call {
        tool: &'static str,
        arguments: Value,
    },
}

pub fn reply(text: impl Into<String>) -> Action {
    Action::Reply(text.into())
}

/// A tool's answer from earlier in this turn, with the arguments it was called with.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    pub name: String,
    pub value: Value,
    pub arguments: Value,
}

impl ToolOutput {
    /// The tool's error, if it failed.
    pub fn error(&self) -> Option<String> {
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

    pub fn str(&self, key: &str) -> Option<&str> {
        self.value.get(key).and_then(Value::as_str)
    }
}

/// How a skill understands requests for the offline model. Every method but `follow_up` has
/// a default that does nothing, so a skill implements what it needs. Results of the skill's
/// own tools (as the tool registry knows them) come back to [`Self::follow_up`].
pub trait OfflineSkill: Send + Sync {
    /// Order in which skills read requests; lower goes first. Skills whose phrasings embed
    /// free text ("remind me to book a table") go before those that look for keywords.
    fn precedence(&self) -> u8 {
        100
    }

    /// An explicit request for this skill ("add a task …", "cancel APPT-…"). Not asked for a
    /// bare yes or no, which answers whatever question is open.
    fn request(&self, _turn: &mut Turn<'_>) -> Option<Action> {
        None
    }

    /// The conversation: answers to the questions of a flow in progress, or details that
    /// start one ("tomorrow at 2pm").
    fn converse(&self, _turn: &mut Turn<'_>) -> Option<Action> {
        None
    }

    /// The next step after one of this skill's tools answered (`last`; `earlier` are this
    /// turn's previous results).
    fn follow_up(&self, turn: &mut Turn<'_>, last: &ToolOutput, earlier: &[ToolOutput]) -> Action;

    /// What the skill can do for the visitor, with the org's enabled tools, for the help text
    /// ("look up an order"). Asked only when at least one of its tools is enabled.
    fn capabilities(&self, _turn: &Turn<'_>) -> Vec<String> {
        Vec::new()
    }

    /// A sentence the help text ends with (before "How can I help?"), e.g. what is offered.
    fn help_detail(&self, _turn: &Turn<'_>) -> Option<String> {
        None
    }

    /// The question this skill's flow waits on, when one is in progress.
    fn pending_question(&self, _turn: &Turn<'_>) -> Option<String> {
        None
    }
}

/// A skill's understanding, with the names of its tools.
#[derive(Clone)]
pub struct SkillEntry {
    pub skill: Arc<dyn OfflineSkill>,
    pub tools: Vec<&'static str>,
}

/// The rule-based model. Stateless itself: everything it remembers is in the request.
#[derive(Clone, Default)]
pub struct OfflineModel {
    skills: Arc<[SkillEntry]>,
}

impl std::fmt::Debug for OfflineModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineModel")
            .field("skills", &self.skills.len())
            .finish()
    }
}

impl OfflineModel {
    /// A model that understands what `skills` offer, asked in this order.
    pub fn new(skills: Vec<SkillEntry>) -> Self {
        Self {
            skills: skills.into(),
        }
    }

    /// One step of the agent loop: a reply, or one tool call to run before the next step.
    pub fn complete(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let mut turn = Turn::new(req, &self.skills);
        let action = turn.decide();
        Ok(turn.respond(action))
    }
}

/// One step of the offline model: the request, the conversation state as it evolves during
/// the step, and the helpers skills read the conversation with.
pub struct Turn<'a> {
    pub req: &'a ModelRequest,
    /// The conversation state; skills change their own entry (and the stage).
    pub state: ConversationState,
    /// The latest user message.
    pub text: &'a str,
    /// Index of the latest user message in `req.messages`.
    user: Option<usize>,
    skills: &'a [SkillEntry],
}

impl<'a> Turn<'a> {
    fn new(req: &'a ModelRequest, skills: &'a [SkillEntry]) -> Self {
        let user = req.messages.iter().rposition(|m| m.role == Role::User);
        let text = user.map_or("", |i| req.messages[i].content.as_str());
        Self {
            req,
            state: req.state.clone(),
            text,
            user,
            skills,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Reading the request
    // -----------------------------------------------------------------------------------------

    /// Whether the organisation enabled `name` (tools offered to the model this turn).
    pub fn has_tool(&self, name: &str) -> bool {
        self.req.tools.iter().any(|t| t.name == name)
    }

    pub fn services(&self) -> &'a [Service] {
        &self.req.context.org.settings.services
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.req.context.now
    }

    pub fn time_zone(&self) -> chrono_tz::Tz {
        self.req.context.time_zone
    }

    pub fn now_local(&self) -> NaiveDateTime {
        self.now().with_timezone(&self.time_zone()).naive_local()
    }

    pub fn messages(&self) -> &'a [ChatMessage] {
        &self.req.messages
    }

    /// Messages after the latest user message: this turn's earlier steps.
    fn this_turn(&self) -> &'a [ChatMessage] {
        let from = self.user.map_or(self.req.messages.len(), |i| i + 1);
        self.req.messages.get(from..).unwrap_or(&[])
    }

    /// How many tool-calling steps this turn has taken.
    pub fn steps_taken(&self) -> usize {
        self.this_turn()
            .iter()
            .filter(|m| m.role == Role::Assistant && !m.tool_calls.is_empty())
            .count()
    }

    /// This turn's tool results, oldest first, with the arguments of their calls.
    pub fn outputs(&self) -> Vec<ToolOutput> {
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
    pub fn previous_reply(&self) -> &'a str {
        let end = self.user.unwrap_or(0);
        self.req.messages[..end]
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant && !m.content.is_empty())
            .map_or("", |m| m.content.as_str())
    }

    /// The user's message before this one, for answers given in two halves ("tomorrow" …
    /// "at 3pm").
    pub fn previous_user_text(&self) -> Option<&'a str> {
        let end = self.user?;
        self.req.messages[..end]
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.as_str())
    }

    /// How the organisation reads numeric dates ("5/12"), if it said.
    pub fn date_order(&self) -> Option<crate::domain::org::DateOrder> {
        self.req.context.org.settings.date_order
    }

    /// The date in `text`, numeric ones read in the organisation's date order.
    pub fn read_date(&self, text: &str) -> nlu::DateReading {
        nlu::read_date(text, self.now(), self.time_zone(), self.date_order())
    }

    /// The date in `text` when it is unambiguous.
    pub fn date_in(&self, text: &str) -> Option<NaiveDate> {
        match self.read_date(text) {
            nlu::DateReading::Date(d) => Some(d),
            _ => None,
        }
    }

    /// A date said in the user's previous message.
    pub fn date_hint(&self) -> Option<NaiveDate> {
        self.date_in(self.previous_user_text()?)
    }

    /// A time said on its own in the user's previous message (a full date and time was
    /// handled back then).
    pub fn time_hint(&self) -> Option<NaiveTime> {
        let previous = self.previous_user_text()?;
        match self.read_date(previous) {
            nlu::DateReading::None => nlu::parse_time(previous),
            _ => None,
        }
    }

    /// What every enabled skill can do, ending with "How can I help?".
    pub fn help(&self) -> String {
        let can: Vec<String> = self
            .skills
            .iter()
            .filter(|e| e.tools.iter().any(|t| self.has_tool(t)))
            .flat_map(|e| e.skill.capabilities(self))
            .collect();
        if can.is_empty() {
            return "I'm afraid there is nothing I can do for you here.".to_owned();
        }
        let mut text = format!("I can {}.", join(&can, "or"));
        for detail in self.skills.iter().filter_map(|e| e.skill.help_detail(self)) {
            text.push(' ');
            text.push_str(&detail);
        }
        text.push_str(" How can I help?");
        text
    }

    /// The question a flow in progress waits on.
    pub fn pending_question(&self) -> Option<String> {
        self.skills
            .iter()
            .find_map(|e| e.skill.pending_question(self))
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

    fn follow_up(&mut self, last: &ToolOutput, earlier: &[ToolOutput]) -> Action {
        let skills = self.skills;
        let owner = skills
            .iter()
            .find(|e| e.tools.iter().any(|t| *t == last.name));
        let action = match owner {
            Some(entry) => entry.skill.follow_up(self, last, earlier),
            None => match last.error() {
                Some(error) => reply(format!("Sorry, that didn't work: {error}")),
                None => reply("Done."),
            },
        };
        if matches!(action, Action::Call { .. }) && self.steps_taken() >= MAX_CALL_STEPS {
            return reply("Sorry, that took more steps than I'm allowed. Please try again.");
        }
        action
    }

    fn interpret(&mut self) -> Action {
        let skills = self.skills;
        if nlu::yes_no(self.text).is_none() {
            let mut by_precedence: Vec<&SkillEntry> = skills.iter().collect();
            by_precedence.sort_by_key(|e| e.skill.precedence());
            for entry in by_precedence {
                if let Some(action) = entry.skill.request(self) {
                    return action;
                }
            }
        }
        for entry in skills {
            if let Some(action) = entry.skill.converse(self) {
                return action;
            }
        }
        self.small_talk()
    }

    /// What is left when no skill took the message: help, greetings, thanks, or a "sorry?"
    /// that repeats the question a flow waits on.
    fn small_talk(&self) -> Action {
        let pending = self.pending_question();
        if nlu::says_bye(self.text) {
            let thanks = if nlu::says_thanks(self.text) {
                "You're welcome. "
            } else {
                ""
            };
            return reply(format!("{thanks}Goodbye, and have a nice day!"));
        }
        if nlu::restarts(self.text) {
            return reply(format!("All right, let's start again. {}", self.help()));
        }
        if nlu::asks_for_help(self.text) {
            let help = self.help();
            return match pending {
                Some(question) => reply(format!(
                    "{} {question}",
                    help.trim_end_matches(" How can I help?")
                )),
                None => reply(help),
            };
        }
        match (nlu::act(self.text), pending) {
            (Act::Greeting, None) => reply(format!("Hello! {}", self.help())),
            (Act::Greeting, Some(question)) => reply(format!("Hello again! {question}")),
            (_, Some(question)) if nlu::says_thanks(self.text) => {
                reply(format!("You're welcome! {question}"))
            }
            (_, Some(question)) => reply(format!("Sorry, I didn't catch that. {question}")),
            _ if nlu::says_thanks(self.text) => {
                reply("You're welcome! Is there anything else I can help with?")
            }
            (Act::Confirm | Act::Deny, None) => reply(format!("OK. {}", self.help())),
            (Act::Other, None) => {
                reply(format!("Sorry, I didn't understand that. {}", self.help()))
            }
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

// ---------------------------------------------------------------------------------------------
// Small helpers, shared with the skills' offline parts
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

/// "Tuesday 24 November 2026 at 14:00"
pub fn when(start: NaiveDateTime) -> String {
    start.format("%A %-d %B %Y at %H:%M").to_string()
}

/// "Tuesday 24 November 2026"
pub fn day(date: NaiveDate) -> String {
    date.format("%A %-d %B %Y").to_string()
}

/// "a", "a or b", "a, b or c".
pub fn join(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

/// Text in typographic quotes.
pub fn quote(text: &str) -> String {
    format!("\u{201c}{text}\u{201d}")
}
