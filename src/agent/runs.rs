//! Live and recent runs for streaming: each streamed turn appends its events to a log that any
//! number of readers follow by cursor (the POST that started it, or `GET /runs/{id}/stream`
//! resuming after `Last-Event-ID`). The log is the only buffer: a slow reader costs nothing
//! but its cursor, so memory per run is bounded by the run's own output (capped), never by how
//! far behind a reader is. Logs are kept for a retention time after the run ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

use crate::domain::OrgId;

/// Most events one run keeps; past it, text chunks are withheld and readers rely on the
/// final event's `response`, which always carries the whole reply.
const MAX_EVENTS: usize = 4096;

/// One server-sent event: `event: name`, `data: json`, `id: seq`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvent {
    /// 1, 2, 3… within the run; the SSE `id`.
    pub seq: u64,
    /// chunk, tool_call, tool_result, state, done or error.
    pub name: &'static str,
    /// Always carries `chunk` (string) and `done` (bool).
    pub data: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
}

#[derive(Debug)]
struct LogState {
    events: Vec<RunEvent>,
    status: RunStatus,
    finished_at: Option<DateTime<Utc>>,
    result: Option<Value>,
}

/// The event log of one run.
#[derive(Debug)]
pub struct RunLog {
    pub run_id: Uuid,
    pub org_id: OrgId,
    /// The end user who started it (for end-user callers): only they may follow it.
    pub end_user: Option<String>,
    pub conversation_id: Uuid,
    pub started_at: DateTime<Utc>,
    state: Mutex<LogState>,
    /// (events so far, run over); readers wait on changes.
    notify: watch::Sender<(u64, bool)>,
}

/// A snapshot of a run for `GET /runs/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSnapshot {
    pub status: RunStatus,
    pub finished_at: Option<DateTime<Utc>>,
    pub result: Option<Value>,
}

impl RunLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        // A poisoned log only means a writer panicked mid-push; the data is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends an event; `data` gets `chunk`/`done`/`run_id` filled in. Past `MAX_EVENTS`,
    /// text chunks are withheld (the final event's `response` still carries the whole text).
    pub fn push(&self, name: &'static str, data: Value) {
        let mut st = self.lock();
        if st.events.len() >= MAX_EVENTS && name == "chunk" {
            return;
        }
        self.append(&mut st, name, data);
    }

    /// Marks the run finished and appends its final event, atomically: a reader never sees
    /// a finished run without its final event.
    pub fn finish(
        &self,
        status: RunStatus,
        name: &'static str,
        data: Value,
        result: Option<Value>,
    ) {
        let mut st = self.lock();
        st.status = status;
        st.finished_at = Some(crate::store::now());
        st.result = result;
        self.append(&mut st, name, data);
    }

    fn append(&self, st: &mut LogState, name: &'static str, mut data: Value) {
        if let Some(o) = data.as_object_mut() {
            o.entry("chunk").or_insert_with(|| json!(""));
            o.entry("done").or_insert(json!(false));
            o.insert("run_id".into(), json!(self.run_id));
        }
        let seq = st.events.len() as u64 + 1;
        st.events.push(RunEvent { seq, name, data });
        self.notify
            .send_replace((st.events.len() as u64, st.status != RunStatus::Running));
    }

    /// Events after `seq` and whether the run is over.
    pub fn after(&self, seq: u64) -> (Vec<RunEvent>, bool) {
        let st = self.lock();
        let from = usize::try_from(seq)
            .unwrap_or(usize::MAX)
            .min(st.events.len());
        (st.events[from..].to_vec(), st.status != RunStatus::Running)
    }

    pub fn snapshot(&self) -> RunSnapshot {
        let st = self.lock();
        RunSnapshot {
            status: st.status,
            finished_at: st.finished_at,
            result: st.result.clone(),
        }
    }

    /// Waits until there are more than `seen` events or the run is over.
    pub async fn wait_beyond(&self, seen: u64) {
        let mut rx = self.notify.subscribe();
        // `wait_for` checks the current value first, so no wake-up is missed.
        let _ = rx.wait_for(|(n, over)| *n > seen || *over).await;
    }
}

/// All runs streamed recently; cheap to clone.
#[derive(Clone)]
pub struct RunHub {
    runs: moka::sync::Cache<Uuid, Arc<RunLog>>,
}

impl RunHub {
    /// Runs are kept `retention` after they were last touched (started or read).
    pub fn new(retention: Duration) -> Self {
        Self {
            runs: moka::sync::Cache::builder()
                // A run keeps up to MAX_EVENTS small events; this bounds the worst case to a
                // few GiB while leaving room for far more concurrent streams than 2 cores serve.
                .max_capacity(5_000)
                .time_to_idle(retention)
                .build(),
        }
    }

    pub fn start(
        &self,
        run_id: Uuid,
        org_id: OrgId,
        end_user: Option<String>,
        conversation_id: Uuid,
    ) -> Arc<RunLog> {
        let (notify, _) = watch::channel((0, false));
        let log = Arc::new(RunLog {
            run_id,
            org_id,
            end_user,
            conversation_id,
            started_at: crate::store::now(),
            state: Mutex::new(LogState {
                events: Vec::new(),
                status: RunStatus::Running,
                finished_at: None,
                result: None,
            }),
            notify,
        });
        self.runs.insert(run_id, Arc::clone(&log));
        log
    }

    pub fn get(&self, run_id: Uuid) -> Option<Arc<RunLog>> {
        self.runs.get(&run_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> Arc<RunLog> {
        RunHub::new(Duration::from_secs(60)).start(
            Uuid::now_v7(),
            OrgId::parse("a").unwrap(),
            None,
            Uuid::now_v7(),
        )
    }

    #[test]
    fn events_are_numbered_and_carry_chunk_and_done() {
        let l = log();
        l.push("chunk", json!({"chunk": "Hi "}));
        l.push("state", json!({"current_state": "IDLE"}));
        let (events, over) = l.after(0);
        assert!(!over);
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(events[1].data["chunk"], "");
        assert_eq!(events[1].data["done"], false);
        assert_eq!(l.after(1).0.len(), 1);
        assert!(l.after(99).0.is_empty());
    }

    #[test]
    fn a_full_log_stops_growing_but_still_takes_the_final_event() {
        let l = log();
        for _ in 0..MAX_EVENTS + 10 {
            l.push("chunk", json!({"chunk": "a"}));
        }
        assert_eq!(l.after(0).0.len(), MAX_EVENTS);
        l.finish(RunStatus::Completed, "done", json!({"done": true}), None);
        let (events, over) = l.after(0);
        assert!(over);
        assert_eq!(events.len(), MAX_EVENTS + 1);
        assert_eq!(events.last().unwrap().name, "done");
    }

    #[tokio::test]
    async fn a_reader_past_the_end_is_released_when_the_run_ends() {
        let l = log();
        l.push("chunk", json!({"chunk": "x"}));
        let waiter = {
            let l = Arc::clone(&l);
            async move { l.wait_beyond(99).await }
        };
        let finish = async { l.finish(RunStatus::Completed, "done", json!({"done": true}), None) };
        tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(waiter, finish)
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn readers_wake_when_events_arrive() {
        let l = log();
        let waiter = {
            let l = Arc::clone(&l);
            async move { l.wait_beyond(0).await }
        };
        let (_, ()) = tokio::join!(waiter, async { l.push("chunk", json!({"chunk": "x"})) });
        l.finish(RunStatus::Completed, "done", json!({"done": true}), None);
        assert!(l.after(0).1);
    }
}
