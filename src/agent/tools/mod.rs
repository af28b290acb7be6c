//! The tool registry: each tool has a name, a description, a JSON Schema of its arguments
//! (derived from its Rust argument type) and an async `call`. Arguments are validated before
//! the call; an unknown or disabled tool, malformed arguments or a failed call become a tool
//! error the model sees (`{"error": "…"}`) and can recover from — never an HTTP error.
//! Side-effecting tools run at most once per effect key: their result is recorded and a
//! repeated call (a retried turn) gets the recorded result. The key is the tool-call id, or,
//! for a turn sent with an Idempotency-Key, the key plus the call's place in the turn — an LLM
//! gives a retried turn new call ids, but the same key and place mean the same action.

pub mod booking;
pub mod tasks;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::agent::model::{ToolCall, ToolSpec};
use crate::domain::EndUserId;
use crate::orgs::Org;
use crate::store::Store;

/// What a tool may know about the call. Owned (cheap clones), so a call can run as a task of
/// its own that a turn's timeout cannot cut between the side effect and its record.
#[derive(Clone)]
pub struct ToolContext {
    pub store: Store,
    pub org: Arc<Org>,
    pub end_user: Option<EndUserId>,
    pub conversation_id: Uuid,
    pub now: DateTime<Utc>,
}

impl ToolContext {
    /// Whose tasks these are: the end user's, or the session's for API-key callers.
    pub fn owner(&self) -> String {
        match &self.end_user {
            Some(u) => u.as_str().to_owned(),
            None => format!("session:{}", self.conversation_id),
        }
    }
}

/// A failure the model gets to read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

impl ToolError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl From<crate::store::StoreError> for ToolError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::warn!(error = %crate::error::cause_chain(&e), "tool storage failure");
        Self("the booking system is unavailable right now; please try again".to_owned())
    }
}

pub type ToolResult = Result<Value, ToolError>;
pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = ToolResult> + Send + 'a>>;

pub trait Tool: Send + Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// JSON Schema of the arguments.
    fn parameters(&self) -> Value;
    /// True for tools that change something (booked, cancelled, added…): at most once per call id.
    fn side_effect(&self) -> bool;
    fn call<'a>(&'a self, ctx: &'a ToolContext, args: Value) -> ToolFuture<'a>;
}

/// Parses arguments into the tool's type; the error names what is wrong.
pub fn parse_args<A: DeserializeOwned>(args: Value) -> Result<A, ToolError> {
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ToolError(format!("invalid arguments: {inner}"))
        } else {
            ToolError(format!("invalid argument {path}: {inner}"))
        }
    })
}

/// The JSON Schema of an argument type, as providers expect it (an object schema).
pub fn schema_of<A: schemars::JsonSchema>() -> Value {
    let mut v = schemars::SchemaGenerator::default()
        .into_root_schema_for::<A>()
        .to_value();
    if let Some(o) = v.as_object_mut() {
        o.remove("$schema");
        o.remove("title");
    }
    v
}

/// How long one tool call may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(15);

/// Every built-in tool, by name.
#[derive(Clone)]
pub struct ToolRegistry {
    tools: Arc<HashMap<&'static str, Arc<dyn Tool>>>,
}

impl Default for ToolRegistry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl ToolRegistry {
    pub fn builtin() -> Self {
        let list: Vec<Arc<dyn Tool>> = booking::tools().into_iter().chain(tasks::tools()).collect();
        Self {
            tools: Arc::new(list.into_iter().map(|t| (t.name(), t)).collect()),
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut n: Vec<_> = self.tools.keys().copied().collect();
        n.sort_unstable();
        n
    }

    /// Specs of the tools `enabled` names, in that order.
    pub fn specs(&self, enabled: &[String]) -> Vec<ToolSpec> {
        enabled
            .iter()
            .filter_map(|n| self.tools.get(n.as_str()))
            .map(|t| ToolSpec {
                name: t.name().to_owned(),
                description: t.description().to_owned(),
                parameters: t.parameters(),
            })
            .collect()
    }

    /// Runs one call; the result is what the model reads next (`{"error": …}` on failure).
    pub async fn run(&self, ctx: &ToolContext, call: &ToolCall, effect_key: &str) -> Value {
        match self.try_run(ctx, call, effect_key).await {
            Ok(v) => v,
            Err(e) => json!({ "error": e.0 }),
        }
    }

    async fn try_run(&self, ctx: &ToolContext, call: &ToolCall, effect_key: &str) -> ToolResult {
        let enabled = ctx
            .org
            .settings
            .enabled_tools
            .iter()
            .any(|n| n == &call.name);
        let tool = self
            .tools
            .get(call.name.as_str())
            .filter(|_| enabled)
            .ok_or_else(|| {
                ToolError(format!(
                    "unknown tool {:?}; use one of the tools offered",
                    call.name
                ))
            })?;
        let args: Value = if call.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.arguments)
                .map_err(|e| ToolError(format!("arguments are not valid JSON: {e}")))?
        };
        if tool.side_effect() {
            if let Some(done) = ctx
                .store
                .tool_effect(ctx.conversation_id, effect_key)
                .await?
            {
                return Ok(done);
            }
        }
        let result = tokio::time::timeout(TOOL_TIMEOUT, tool.call(ctx, args))
            .await
            .map_err(|_| ToolError(format!("{} timed out", call.name)))??;
        if tool.side_effect() {
            match ctx
                .store
                .record_tool_effect(
                    ctx.conversation_id,
                    effect_key,
                    &call.name,
                    &result,
                    ctx.now,
                )
                .await
            {
                Ok(()) => {}
                // Another run of the same call recorded first: its result is the one that stands.
                Err(crate::store::StoreError::Conflict(_)) => {
                    if let Some(done) = ctx
                        .store
                        .tool_effect(ctx.conversation_id, effect_key)
                        .await?
                    {
                        return Ok(done);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(result)
    }
}

/// Declares a unit struct implementing [`Tool`] with typed arguments `$args` handled by the
/// async function `$fun(ctx, args)`.
macro_rules! define_tool {
    ($ty:ident, $name:literal, side_effect: $side:expr, $args:ty, $fun:path, $desc:literal) => {
        pub struct $ty;

        impl $crate::agent::tools::Tool for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn description(&self) -> &'static str {
                $desc
            }
            fn parameters(&self) -> serde_json::Value {
                $crate::agent::tools::schema_of::<$args>()
            }
            fn side_effect(&self) -> bool {
                $side
            }
            fn call<'a>(
                &'a self,
                ctx: &'a $crate::agent::tools::ToolContext,
                args: serde_json::Value,
            ) -> $crate::agent::tools::ToolFuture<'a> {
                Box::pin(async move {
                    let a: $args = $crate::agent::tools::parse_args(args)?;
                    $fun(ctx, a).await
                })
            }
        }
    };
}
pub(crate) use define_tool;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_offers_exactly_the_tools_orgs_can_enable() {
        let mut known: Vec<&str> = crate::orgs::KNOWN_TOOLS.to_vec();
        known.sort_unstable();
        assert_eq!(ToolRegistry::builtin().names(), known);
    }

    #[test]
    fn every_tool_has_an_object_schema_and_a_description() {
        let reg = ToolRegistry::builtin();
        let all: Vec<String> = reg.names().iter().map(|s| (*s).to_owned()).collect();
        for spec in reg.specs(&all) {
            assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
            assert!(!spec.description.is_empty());
        }
    }
}
