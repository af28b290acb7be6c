//! Task tools: a to-do list per end user (per session for API-key callers).

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::store::{Task, Tasks};
use crate::agent::tools::{Tool, ToolContext, ToolError, ToolResult, define_tool};
use crate::domain::ConversationId;

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(AddTask),
        Arc::new(ListTasks),
        Arc::new(CompleteTask),
        Arc::new(DeleteTask),
        Arc::new(UpdateTask),
    ]
}

const MAX_TITLE: usize = 200;
const MAX_DESCRIPTION: usize = 2000;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddArgs {
    /// At most 200 characters.
    pub title: String,
    /// At most 2000 characters.
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    #[default]
    All,
    Pending,
    Completed,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// all (default), pending or completed.
    #[serde(default)]
    pub status: StatusFilter,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskIdArgs {
    /// The task's id, from list_tasks or add_task.
    pub task_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateArgs {
    /// The task's id, from list_tasks or add_task.
    pub task_id: String,
    /// New title, at most 200 characters.
    pub title: Option<String>,
    /// New description, at most 2000 characters.
    pub description: Option<String>,
}

define_tool!(AddTask, "add_task", side_effect: true, AddArgs, add_task,
    "Add a task to the user's to-do list.");
define_tool!(ListTasks, "list_tasks", side_effect: false, ListArgs, list_tasks,
    "List the user's tasks: all, pending or completed.");
define_tool!(CompleteTask, "complete_task", side_effect: true, TaskIdArgs, complete_task,
    "Mark a task as completed. Needs the task id: call list_tasks first if you only know the title.");
define_tool!(DeleteTask, "delete_task", side_effect: true, TaskIdArgs, delete_task,
    "Delete a task. Needs the task id: call list_tasks first if you only know the title.");
define_tool!(UpdateTask, "update_task", side_effect: true, UpdateArgs, update_task,
    "Change a task's title and/or description. Needs the task id.");

fn task_json(t: &Task) -> serde_json::Value {
    json!({
        "id": t.id,
        "title": t.title,
        "description": t.description,
        "status": t.status,
        "created_at": t.created_at,
        "completed_at": t.completed_at,
    })
}

fn title(raw: &str) -> Result<String, ToolError> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > MAX_TITLE {
        return Err(ToolError(format!(
            "title must be 1 to {MAX_TITLE} characters"
        )));
    }
    Ok(t.to_owned())
}

fn description(raw: Option<&str>) -> Result<Option<String>, ToolError> {
    match raw.map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(ToolError(format!(
            "description must be at most {MAX_DESCRIPTION} characters"
        ))),
        other => Ok(other.map(str::to_owned)),
    }
}

fn task_id(raw: &str) -> Result<Uuid, ToolError> {
    Uuid::try_parse(raw.trim()).map_err(|_| {
        ToolError(format!(
            "task_id {raw:?} is not a task id; call list_tasks to find it"
        ))
    })
}

/// Whose tasks these are: the end user's, or the session's for API-key callers (anonymous
/// visitors of a plugin).
fn owner(ctx: &ToolContext) -> String {
    match &ctx.end_user {
        Some(u) => u.as_str().to_owned(),
        None => format!("session:{}", ctx.conversation_id),
    }
}

/// The session that owns an API-key caller's tasks: they are erased with it.
fn session_of(ctx: &ToolContext) -> Option<ConversationId> {
    ctx.end_user.is_none().then_some(ctx.conversation_id)
}

fn not_found(id: Uuid) -> ToolError {
    ToolError(format!("no task {id}; call list_tasks to see the tasks"))
}

async fn add_task(ctx: &ToolContext, a: AddArgs) -> ToolResult {
    let (t, d) = (title(&a.title)?, description(a.description.as_deref())?);
    let task = Tasks(&ctx.store)
        .add_task(
            &ctx.org.id,
            &owner(ctx),
            session_of(ctx),
            &t,
            d.as_deref(),
            ctx.now,
        )
        .await?;
    Ok(json!({ "task": task_json(&task) }))
}

async fn list_tasks(ctx: &ToolContext, a: ListArgs) -> ToolResult {
    let status = match a.status {
        StatusFilter::All => None,
        StatusFilter::Pending => Some("pending"),
        StatusFilter::Completed => Some("completed"),
    };
    let tasks = Tasks(&ctx.store)
        .list_tasks(&ctx.org.id, &owner(ctx), status)
        .await?;
    Ok(json!({ "tasks": tasks.iter().map(task_json).collect::<Vec<_>>() }))
}

async fn complete_task(ctx: &ToolContext, a: TaskIdArgs) -> ToolResult {
    let id = task_id(&a.task_id)?;
    let task = Tasks(&ctx.store)
        .update_task(&ctx.org.id, &owner(ctx), id, None, None, Some(ctx.now))
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(json!({ "task": task_json(&task) }))
}

async fn delete_task(ctx: &ToolContext, a: TaskIdArgs) -> ToolResult {
    let id = task_id(&a.task_id)?;
    if Tasks(&ctx.store)
        .delete_task(&ctx.org.id, &owner(ctx), id)
        .await?
    {
        Ok(json!({ "deleted": id }))
    } else {
        Err(not_found(id))
    }
}

async fn update_task(ctx: &ToolContext, a: UpdateArgs) -> ToolResult {
    let id = task_id(&a.task_id)?;
    let t = a.title.as_deref().map(title).transpose()?;
    let d = description(a.description.as_deref())?;
    if t.is_none() && d.is_none() {
        return Err(ToolError("give a new title or description".into()));
    }
    let task = Tasks(&ctx.store)
        .update_task(
            &ctx.org.id,
            &owner(ctx),
            id,
            t.as_deref(),
            d.as_deref(),
            None,
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(json!({ "task": task_json(&task) }))
}
