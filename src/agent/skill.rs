//! Skills: what the agent can do beyond talking. A skill brings its tools, the webhook events
//! it emits, a paragraph for language models' system prompt, how it keeps the conversation's
//! state meaningful when a language model drives the tools, and how the offline model
//! understands requests for it. The core loop names no skill: it asks the [`Skills`] it was
//! given. Skills live in `crate::skills`, one folder each, registered in one list.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::model::TurnContext;
use super::offline::{OfflineSkill, SkillEntry};
use super::tools::{Tool, ToolRegistry};
use crate::domain::chat::ToolCall;
use crate::domain::conversation::ConversationState;
use crate::domain::events::EventType;

pub trait Skill: Send + Sync + 'static {
    /// Stable name: the key of its state in the conversation state.
    fn name(&self) -> &'static str;

    /// Its tools, registered into the agent's tool registry.
    fn tools(&self) -> Vec<Arc<dyn Tool>>;

    /// Webhook event types it emits.
    fn event_types(&self) -> Vec<EventType> {
        Vec::new()
    }

    /// Instructions for language models, added to the system prompt when the organisation
    /// enabled at least one of its tools.
    fn prompt(&self, _ctx: &TurnContext) -> Option<String> {
        None
    }

    /// Keeps the conversation state meaningful for models that do not track it (language
    /// models): called after each successful call of one of its own tools.
    fn observe(&self, _state: &mut ConversationState, _call: &ToolCall, _result: &Value) {}

    /// How the built-in offline model understands requests for this skill.
    fn offline(&self) -> Option<Arc<dyn OfflineSkill>> {
        None
    }
}

/// The skills an agent has, with the tool registry they fill; cheap to clone.
#[derive(Clone, Default)]
pub struct Skills {
    skills: Arc<[Arc<dyn Skill>]>,
    tools: ToolRegistry,
    /// Tool name → index of the skill that owns it.
    owners: Arc<HashMap<&'static str, usize>>,
    /// Per skill, the names of its tools.
    tool_names: Arc<[Vec<&'static str>]>,
}

impl Skills {
    pub fn new(skills: Vec<Arc<dyn Skill>>) -> Self {
        let mut owners = HashMap::new();
        let mut all_tools = Vec::new();
        let mut tool_names = Vec::with_capacity(skills.len());
        for (i, skill) in skills.iter().enumerate() {
            let tools = skill.tools();
            tool_names.push(tools.iter().map(|t| t.name()).collect());
            for tool in tools {
                owners.entry(tool.name()).or_insert(i);
                all_tools.push(tool);
            }
        }
        Self {
            skills: skills.into(),
            tools: ToolRegistry::new(all_tools),
            owners: Arc::new(owners),
            tool_names: tool_names.into(),
        }
    }

    /// Every registered tool.
    pub fn tools(&self) -> &ToolRegistry {
        &self.tools
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Skill>> {
        self.skills.iter()
    }

    /// The skill that owns `tool`.
    pub fn owner_of(&self, tool: &str) -> Option<&Arc<dyn Skill>> {
        self.owners.get(tool).and_then(|i| self.skills.get(*i))
    }

    /// Every event type the skills emit.
    pub fn event_types(&self) -> Vec<EventType> {
        self.skills.iter().flat_map(|s| s.event_types()).collect()
    }

    /// The offline model's understanding, skill by skill, in registration order, with the
    /// tools each owns.
    pub fn offline(&self) -> Vec<SkillEntry> {
        self.skills
            .iter()
            .zip(self.tool_names.iter())
            .filter_map(|(s, tools)| {
                Some(SkillEntry {
                    skill: s.offline()?,
                    tools: tools.clone(),
                })
            })
            .collect()
    }

    /// The system-prompt paragraphs of the skills with at least one tool in `enabled`.
    pub fn prompts(&self, enabled: &[String], ctx: &TurnContext) -> Vec<String> {
        self.skills
            .iter()
            .zip(self.tool_names.iter())
            .filter(|(_, names)| names.iter().any(|n| enabled.iter().any(|e| e == n)))
            .filter_map(|(skill, _)| skill.prompt(ctx))
            .collect()
    }
}
