//! The tool registry: each tool has a name, a description, a JSON Schema of its arguments
//! (derived from its Rust argument type) and an async `call`. Arguments are validated before
//! the call; an unknown or disabled tool, malformed arguments or a failed call become a tool
//! error the model sees (`{"error": "…"}`) and can recover from — never an HTTP error.
//! Side-effecting tools run at most once per effect key: their result is recorded and a
//! repeated call (a retried turn) gets the recorded result. The key is the tool-call id, or,
//! for a turn sent with an Idempotency-Key, the key plus the call's place in the turn — an LLM
//! gives a retried turn new call ids, but the same key and place mean the same action.
//!
//! The registry is filled by the skills (`agent::skill`); it is the only list of tool names.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::domain::chat::{ToolCall, ToolSpec};
use crate::domain::{ConversationId, EndUserId, Org};
use crate::store::Store;

/// What a tool may know about the call. Owned (cheap clones), so a call can run as a task of
/// its own that a turn's timeout cannot cut between the side effect and its record.
#[derive(Clone)]
pub struct ToolContext {
    pub store: Store,
    pub org: Arc<Org>,
    pub end_user: Option<EndUserId>,
    pub conversation_id: ConversationId,
    pub now: DateTime<Utc>,
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
        tracing::warn!(error = %crate::telemetry::cause_chain(&e), "tool storage failure");
        Self("this service is unavailable right now; please try again".to_owned())
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

/// One registered tool with its spec, built once (JSON schemas are not cheap to derive).
struct Registered {
    tool: Arc<dyn Tool>,
    spec: Arc<ToolSpec>,
}

/// Every registered tool, by name; cheap to clone.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: Arc<HashMap<&'static str, Registered>>,
}

impl ToolRegistry {
    /// A registry of `tools`. A name registered twice is a programming error the registry
    /// refuses (the later one is dropped, and the skill tests catch it).
    pub fn new(tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Self {
        let mut map = HashMap::new();
        for tool in tools {
            let spec = Arc::new(ToolSpec {
                name: tool.name().to_owned(),
                description: tool.description().to_owned(),
                parameters: tool.parameters(),
            });
            map.entry(tool.name()).or_insert(Registered { tool, spec });
        }
        Self {
            tools: Arc::new(map),
        }
    }

    /// Every tool name, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut n: Vec<_> = self.tools.keys().copied().collect();
        n.sort_unstable();
        n
    }

    /// Specs of the tools `enabled` names, in that order.
    /// Shared, not copied: a turn passes them to every model call.
    pub fn specs(&self, enabled: &[String]) -> Vec<Arc<ToolSpec>> {
        enabled
            .iter()
            .filter_map(|n| self.tools.get(n.as_str()))
            .map(|r| Arc::clone(&r.spec))
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
            .map(|r| &r.tool)
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
                .tool_effect(&ctx.org.id, ctx.conversation_id, effect_key)
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
                    &ctx.org.id,
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
                        .tool_effect(&ctx.org.id, ctx.conversation_id, effect_key)
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

    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    struct EchoArgs {
        /// Anything.
        text: String,
    }

    async fn echo(_ctx: &ToolContext, a: EchoArgs) -> ToolResult {
        Ok(json!({ "echo": a.text }))
    }

    define_tool!(Echo, "echo", side_effect: false, EchoArgs, echo, "Echo the text.");

    #[test]
    fn specs_follow_the_enabled_order_and_skip_unknown_names() {
        let reg = ToolRegistry::new([Arc::new(Echo) as Arc<dyn Tool>]);
        assert_eq!(reg.names(), ["echo"]);
        let specs = reg.specs(&["nope".to_owned(), "echo".to_owned()]);
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].parameters["type"], "object");
        assert_eq!(specs[0].parameters["required"][0], "text");
    }
}
