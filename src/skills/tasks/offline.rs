//! How the offline model manages the visitor's to-do list. The task tools take ids and people
//! say titles, so changing a task is two steps: list, then act on the best title match.

use serde_json::{Map, Value, json};

use super::nlu::{self as tasks_nlu, Request, TaskStatus};
use crate::agent::offline::nlu;
use crate::agent::offline::{Action, OfflineSkill, ToolOutput, Turn, join, quote, reply};

/// The tasks skill's understanding, for the offline model.
#[derive(Debug, Clone, Copy, Default)]
pub struct TasksOffline;

impl OfflineSkill for TasksOffline {
    /// Task phrasings embed free text ("remind me to book a table"): read them first.
    fn precedence(&self) -> u8 {
        10
    }

    fn request(&self, turn: &mut Turn<'_>) -> Option<Action> {
        Some(match tasks_nlu::request(turn.text)? {
            Request::Add { title, description } => add_task(turn, title, description),
            Request::List { status } => list_tasks(turn, status),
            Request::Complete { .. } => find_task_for(turn, "complete_task"),
            Request::Update { .. } => find_task_for(turn, "update_task"),
            Request::Delete { .. } => find_task_for(turn, "delete_task"),
        })
    }

    fn follow_up(&self, turn: &mut Turn<'_>, last: &ToolOutput, earlier: &[ToolOutput]) -> Action {
        match last.name.as_str() {
            "add_task" => after_add_task(last),
            "list_tasks" => after_list_tasks(turn, last),
            _ => after_task_change(last, earlier),
        }
    }

    fn capabilities(&self, _turn: &Turn<'_>) -> Vec<String> {
        vec!["manage your tasks (add, list, complete, rename or delete them)".to_owned()]
    }
}

fn add_task(turn: &Turn<'_>, title: String, description: Option<String>) -> Action {
    if !turn.has_tool("add_task") {
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

fn list_tasks(turn: &Turn<'_>, status: TaskStatus) -> Action {
    if !turn.has_tool("list_tasks") {
        return reply("Sorry, I can't list tasks here.");
    }
    Action::Call {
        tool: "list_tasks",
        arguments: json!({ "status": status.as_str() }),
    }
}

/// The task tools take ids and people say titles: list the tasks first, pick the match in
/// the next step.
fn find_task_for(turn: &Turn<'_>, tool: &'static str) -> Action {
    if !turn.has_tool(tool) || !turn.has_tool("list_tasks") {
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

fn after_list_tasks(turn: &Turn<'_>, out: &ToolOutput) -> Action {
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
    let (wanted, tool) = match tasks_nlu::request(turn.text) {
        Some(Request::Complete { title }) => (title, "complete_task"),
        Some(Request::Update { title, .. }) => (title, "update_task"),
        Some(Request::Delete { title }) => (title, "delete_task"),
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
    match (tool, tasks_nlu::request(turn.text)) {
        ("complete_task", _) if task.get("status").and_then(Value::as_str) == Some("completed") => {
            reply(format!("{} is already done.", quote(&title)))
        }
        (
            "update_task",
            Some(Request::Update {
                new_title,
                description,
                ..
            }),
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
