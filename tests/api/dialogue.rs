//! The dialogue corpus (issue 11.5): conversations written the way visitors talk — typos,
//! casing, date and time forms, one-shot requests, corrections, refusals, questions, cancelling
//! and moving, tasks — played through the real API with the built-in offline model, on SQLite
//! and PostgreSQL. Each conversation lives in `tests/dialogues/*.json` and states the tool
//! calls it expects (names in order, arguments where they matter), the conversation's final
//! `current_state` and the organisation's appointments at the end. The test prints the pass
//! rate per file and overall, and fails on any conversation not marked `known_failure`.
//!
//! Format of one conversation (described in docs/offline-model.md, "The dialogue corpus"):
//! `{"name", "org"?: {settings}, "setup"?: [messages], "turns": [message | {"say", "reply"?,
//! "not_reply"?, "state"?}], "tools": [name | {"name", "args"}], "state", "reply"?,
//! "not_reply"?, "appointments"?: [{field: value}], "known_failure"?: "why"}`.
//! Placeholders in expectations: `{+N}` today plus N days, `{fri}` the next Friday after today,
//! `{12-05}` the next 5 December from today (all in the org's time zone), `{APPT}` the
//! confirmation number the setup conversation was given (also usable in messages).

use std::path::Path;

use chrono::{Datelike, Days, NaiveDate, Utc, Weekday};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::backend_test;
use crate::helpers::*;

const TIME_ZONE: chrono_tz::Tz = chrono_tz::Europe::Berlin;

struct Case {
    file: String,
    index: usize,
    conv: Value,
}

fn load_corpus() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dialogues");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = path.file_stem().unwrap().to_string_lossy().into_owned();
        for conv in doc["conversations"].as_array().unwrap() {
            for key in ["name", "turns", "tools", "state"] {
                assert!(
                    conv.get(key).is_some(),
                    "{file}: a conversation lacks {key:?}: {conv}"
                );
            }
            cases.push(Case {
                file: file.clone(),
                index: cases.len(),
                conv: conv.clone(),
            });
        }
    }
    cases
}

/// Replaces the placeholders of an expected string.
fn expand(text: &str, today: NaiveDate, appt: Option<&str>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        let token = &rest[open + 1..open + close];
        let value = placeholder(token, today, appt)
            .unwrap_or_else(|| panic!("unknown placeholder {{{token}}} in {text:?}"));
        out.push_str(&value);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn placeholder(token: &str, today: NaiveDate, appt: Option<&str>) -> Option<String> {
    if token == "APPT" {
        return appt.map(str::to_owned);
    }
    if token == "appt" {
        return appt.map(str::to_lowercase);
    }
    if let Some(days) = token.strip_prefix('+') {
        let days: u64 = days.parse().ok()?;
        return Some(today.checked_add_days(Days::new(days))?.to_string());
    }
    let weekdays = [
        ("mon", Weekday::Mon),
        ("tue", Weekday::Tue),
        ("wed", Weekday::Wed),
        ("thu", Weekday::Thu),
        ("fri", Weekday::Fri),
        ("sat", Weekday::Sat),
        ("sun", Weekday::Sun),
    ];
    if let Some((_, day)) = weekdays.iter().find(|(name, _)| *name == token) {
        let mut date = today.succ_opt()?;
        while date.weekday() != *day {
            date = date.succ_opt()?;
        }
        return Some(date.to_string());
    }
    let (month, day) = token.split_once('-')?;
    let (month, day): (u32, u32) = (month.parse().ok()?, day.parse().ok()?);
    let this_year = NaiveDate::from_ymd_opt(today.year(), month, day)?;
    let date = if this_year >= today {
        this_year
    } else {
        NaiveDate::from_ymd_opt(today.year() + 1, month, day)?
    };
    Some(date.to_string())
}

/// `expected`'s strings expanded; objects compared on the keys `expected` names.
fn matches(expected: &Value, actual: &Value, today: NaiveDate, appt: Option<&str>) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().all(|(k, v)| {
            a.get(k).is_some_and(|av| matches(v, av, today, appt))
                || (v.is_null() && a.get(k).is_none())
        }),
        (Value::String(e), Value::String(a)) => expand(e, today, appt) == *a,
        (e, a) => e == a,
    }
}

fn contains_all(
    reply: &str,
    wanted: Option<&Value>,
    today: NaiveDate,
    appt: Option<&str>,
) -> Result<(), String> {
    let lower = reply.to_lowercase();
    for w in wanted.and_then(Value::as_array).into_iter().flatten() {
        let w = expand(w.as_str().unwrap_or_default(), today, appt).to_lowercase();
        if !lower.contains(&w) {
            return Err(format!("reply lacks {w:?}: {reply:?}"));
        }
    }
    Ok(())
}

fn contains_none(
    reply: &str,
    unwanted: Option<&Value>,
    today: NaiveDate,
    appt: Option<&str>,
) -> Result<(), String> {
    let lower = reply.to_lowercase();
    for w in unwanted.and_then(Value::as_array).into_iter().flatten() {
        let w = expand(w.as_str().unwrap_or_default(), today, appt).to_lowercase();
        if lower.contains(&w) {
            return Err(format!("reply has {w:?}: {reply:?}"));
        }
    }
    Ok(())
}

/// The organisation's appointments, start times shown in its time zone (`YYYY-MM-DDTHH:MM`).
async fn appointments(app: &TestApp, key: &str) -> Vec<Value> {
    let res = app
        .get("/api/v1/appointments?limit=100")
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let start: chrono::DateTime<Utc> = a["start_at"].as_str().unwrap().parse().unwrap();
            let mut a = a.clone();
            a["start"] = json!(
                start
                    .with_timezone(&TIME_ZONE)
                    .format("%Y-%m-%dT%H:%M")
                    .to_string()
            );
            a
        })
        .collect()
}

struct Said {
    reply: String,
    state: String,
    calls: Vec<(String, Value)>,
}

async fn say(
    app: &TestApp,
    key: &str,
    org: &str,
    session: Uuid,
    message: &str,
) -> Result<Said, String> {
    let res = app.chat(key, org, session, message).await;
    let status = res.status();
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    if status != StatusCode::OK {
        return Err(format!("{message:?} answered {status}: {body}"));
    }
    let calls = body["metadata"]["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let args = match &c["arguments"] {
                Value::String(raw) => serde_json::from_str(raw).unwrap_or(Value::Null),
                other => other.clone(),
            };
            (c["name"].as_str().unwrap_or_default().to_owned(), args)
        })
        .collect();
    Ok(Said {
        reply: body["response"].as_str().unwrap_or_default().to_owned(),
        state: body["metadata"]["current_state"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        calls,
    })
}

/// Plays one conversation; `Err` says what went wrong first.
async fn play(app: &TestApp, case: &Case) -> Result<(), String> {
    let conv = &case.conv;
    let org = format!("dialogue{}", case.index);
    let mut body = json!({
        "tier": "custom",
        "rate_limit": {"requests": 100000, "window_seconds": 3600},
    });
    if let (Some(b), Some(extra)) = (
        body.as_object_mut(),
        conv.get("org").and_then(Value::as_object),
    ) {
        b.extend(extra.clone());
    }
    let key = booking_org(app, &org, body).await;
    let today = Utc::now().with_timezone(&TIME_ZONE).date_naive();

    let mut appt: Option<String> = None;
    if let Some(setup) = conv.get("setup").and_then(Value::as_array) {
        let session = Uuid::new_v4();
        let mut last = String::new();
        for message in setup {
            last = say(
                app,
                &key,
                &org,
                session,
                message.as_str().unwrap_or_default(),
            )
            .await?
            .reply;
        }
        appt = last
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .find(|w| w.starts_with("APPT-"))
            .map(str::to_owned);
        if appt.is_none() {
            return Err(format!("setup booked nothing: {last:?}"));
        }
    }
    let appt = appt.as_deref();
    let before = appointments(app, &key).await;

    let session = Uuid::new_v4();
    let mut calls = Vec::new();
    let mut last = None;
    for (i, turn) in conv["turns"].as_array().unwrap().iter().enumerate() {
        let message = turn
            .as_str()
            .or_else(|| turn["say"].as_str())
            .unwrap_or_default();
        let message = expand(message, today, appt);
        let said = say(app, &key, &org, session, &message).await?;
        let at = |e: String| format!("turn {} ({message:?}): {e}", i + 1);
        contains_all(&said.reply, turn.get("reply"), today, appt).map_err(at)?;
        contains_none(&said.reply, turn.get("not_reply"), today, appt).map_err(at)?;
        if let Some(state) = turn.get("state").and_then(Value::as_str) {
            if said.state != state {
                return Err(at(format!(
                    "state {} instead of {state}; reply {:?}",
                    said.state, said.reply
                )));
            }
        }
        calls.extend(said.calls.iter().cloned());
        last = Some(said);
    }
    let last = last.ok_or("no turns")?;
    contains_all(&last.reply, conv.get("reply"), today, appt)?;
    contains_none(&last.reply, conv.get("not_reply"), today, appt)?;

    let expected_tools = conv["tools"].as_array().unwrap();
    let names: Vec<&str> = calls.iter().map(|(n, _)| n.as_str()).collect();
    let expected_names: Vec<&str> = expected_tools
        .iter()
        .map(|t| {
            t.as_str()
                .or_else(|| t["name"].as_str())
                .unwrap_or_default()
        })
        .collect();
    if names != expected_names {
        return Err(format!(
            "tool calls {names:?}, expected {expected_names:?}; last reply {:?}",
            last.reply
        ));
    }
    for (expected, (name, args)) in expected_tools.iter().zip(&calls) {
        if let Some(want) = expected.get("args") {
            if !matches(want, args, today, appt) {
                return Err(format!("{name} called with {args}, expected {want}"));
            }
        }
    }
    let state = conv["state"].as_str().unwrap_or_default();
    if last.state != state {
        return Err(format!(
            "final state {} instead of {state}; last reply {:?}",
            last.state, last.reply
        ));
    }

    let after = appointments(app, &key).await;
    match conv.get("appointments").and_then(Value::as_array) {
        Some(expected) => {
            let ok = expected.len() == after.len()
                && expected
                    .iter()
                    .all(|e| after.iter().any(|a| matches(e, a, today, appt)));
            if !ok {
                let shown: Vec<Value> = after
                    .iter()
                    .map(|a| json!({"service_id": a["service_id"], "start": a["start"], "customer_name": a["customer_name"], "customer_email": a["customer_email"], "customer_phone": a["customer_phone"], "status": a["status"]}))
                    .collect();
                return Err(format!("appointments {shown:?}, expected {expected:?}"));
            }
        }
        None => {
            let key = |a: &Value| {
                (
                    a["confirmation_number"].clone(),
                    a["status"].clone(),
                    a["start"].clone(),
                )
            };
            if before.iter().map(key).collect::<Vec<_>>()
                != after.iter().map(key).collect::<Vec<_>>()
            {
                return Err("appointments changed though the conversation expects none to".into());
            }
        }
    }
    Ok(())
}

backend_test! {
    async fn the_dialogue_corpus_holds(backend: Backend) {
        let cases = load_corpus();
        assert!(cases.len() >= 150, "the corpus has {} conversations", cases.len());
        let app = spawn_app(backend).await;
        let only = std::env::var("DIALOGUE").ok();
        let results: Vec<(usize, Result<(), String>)> = futures_util::stream::iter(cases.iter())
            .filter(|c| {
                let keep = only.as_deref().is_none_or(|o| c.conv["name"].as_str().unwrap_or_default().contains(o));
                async move { keep }
            })
            .map(|case| {
                let app = &app;
                async move { (case.index, play(app, case).await) }
            })
            .buffer_unordered(6)
            .collect()
            .await;

        let mut per_file: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        let mut unexpected = Vec::new();
        let mut now_passing = Vec::new();
        let mut passed = 0;
        for (index, result) in &results {
            let case = &cases[*index];
            let name = case.conv["name"].as_str().unwrap_or_default();
            let known = case.conv.get("known_failure").and_then(Value::as_str);
            let entry = per_file.entry(&case.file).or_default();
            entry.1 += 1;
            match (result, known) {
                (Ok(()), None) => {
                    passed += 1;
                    entry.0 += 1;
                }
                (Ok(()), Some(_)) => {
                    passed += 1;
                    entry.0 += 1;
                    now_passing.push(format!("{}/{name}", case.file));
                }
                (Err(e), Some(why)) => eprintln!("known failure {}/{name} ({why}): {e}", case.file),
                (Err(e), None) => unexpected.push(format!("{}/{name}: {e}", case.file)),
            }
        }
        for (file, (ok, total)) in &per_file {
            eprintln!("dialogue corpus {file}: {ok}/{total}");
        }
        let total = results.len();
        eprintln!(
            "dialogue corpus ({backend:?}): {passed}/{total} conversations pass ({:.1} %)",
            100.0 * passed as f64 / total.max(1) as f64
        );
        for name in &now_passing {
            eprintln!("now passing, drop its known_failure: {name}");
        }
        assert!(unexpected.is_empty(), "{} conversations failed:\n{}", unexpected.len(), unexpected.join("\n"));
    }
}
