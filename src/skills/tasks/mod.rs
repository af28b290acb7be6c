//! The tasks skill: a to-do list per end user (per session for API-key callers, erased with
//! it). Brings five tools and their offline understanding; it keeps no conversation state.

pub mod nlu;
pub mod offline;
pub mod store;
pub mod tools;

use std::sync::Arc;

use super::Module;
use crate::agent::Skill;
use crate::agent::offline::OfflineSkill;
use crate::agent::tools::Tool;

pub fn module() -> Module {
    Module {
        skill: Arc::new(TasksSkill),
        routes: None,
        event_payloads: &[],
    }
}

pub struct TasksSkill;

impl Skill for TasksSkill {
    fn name(&self) -> &'static str {
        "tasks"
    }

    fn tools(&self) -> Vec<Arc<dyn Tool>> {
        tools::tools()
    }

    fn offline(&self) -> Option<Arc<dyn OfflineSkill>> {
        Some(Arc::new(offline::TasksOffline))
    }
}
