//! The skills: self-contained capabilities the agent core knows only through the
//! [`Skill`](crate::agent::Skill) trait. Each folder holds a skill's tools, its state in the
//! conversation, its prompt paragraph, its offline understanding, its store queries, its
//! routes and its tests. Adding a skill means adding its folder and one line to [`modules`].

pub mod booking;
pub mod tasks;

#[cfg(test)]
mod conversation_tests;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::agent::{Skill, Skills};
use crate::http::SkillRoutes;
use crate::state::AppState;

/// A skill and the HTTP routes it serves (behind the tenant authentication layer).
pub struct Module {
    pub skill: Arc<dyn Skill>,
    pub routes: Option<fn() -> OpenApiRouter<AppState>>,
    /// Schema names (registered by its routes) of its webhook events' `data`.
    pub event_payloads: &'static [&'static str],
}

/// Every built-in skill, in the order the offline model offers them in its help text.
pub fn modules() -> Vec<Module> {
    vec![booking::module(), tasks::module()]
}

/// The skills the agent gets.
pub fn builtin() -> Skills {
    Skills::new(modules().into_iter().map(|m| m.skill).collect())
}

/// The skills' routes, merged, with their webhook payload schemas.
pub fn routes() -> SkillRoutes {
    modules()
        .into_iter()
        .fold(SkillRoutes::default(), |mut acc, m| {
            if let Some(routes) = m.routes {
                acc.routes = acc.routes.merge(routes());
            }
            acc.event_payloads.extend_from_slice(m.event_payloads);
            acc
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_are_unique_across_skills_and_schemas_are_objects() {
        let skills = builtin();
        let declared: usize = skills.iter().map(|s| s.tools().len()).sum();
        assert_eq!(
            skills.tools().names().len(),
            declared,
            "a tool name is registered twice"
        );
        let all: Vec<String> = skills
            .tools()
            .names()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        for spec in skills.tools().specs(&all) {
            assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
            assert!(!spec.description.is_empty());
        }
    }

    #[test]
    fn skill_names_are_unique() {
        let skills = builtin();
        let mut names: Vec<&str> = skills.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), skills.iter().count());
    }
}
