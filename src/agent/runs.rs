//! Live and recent runs for streaming: each streamed turn appends its events to a log that any
//! number of readers follow by cursor (the POST that started it, or `GET /runs/{id}/stream`
//! resuming after `Last-Event-ID`). The log is the only buffer: a slow reader costs nothing
//! but its cursor, so memory per run is bounded by the run's own output (capped), never by how
//! far behind a reader is. Only live runs are kept here: a finished run's events are stored
//! with its run record, and readers resuming it are served from the database
//! ([`RunLog::finished`]).
//!
//! Events are typed ([`TurnEvent`]): what the log holds is what the SSE writer writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::domain::conversation::{Run, RunStatus};
use crate::domain::turn::TurnEvent;
use crate::domain::{ConversationId, EndUserId, OrgId, RunId};

/// Most events one run keeps. Past it, text chunks are dropped (not merged): readers of the
/// text rely on the final event's `response`, which always carries the whole reply. Other
/// events and the final one are always kept.
pub const MAX_EVENTS: usize = 4096;

/// One event of a run with its number: 1, 2, 3… within the run (the SSE `id`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    pub seq: u64,
    pub event: TurnEvent,
}

#[derive(Debug)]
struct LogState {
    events: Vec<RunEvent>,
    status: RunStatus,
    finished_at: Option<DateTime<Utc>>,
}

/// The event log of one run.
#[derive(Debug)]
pub struct RunLog {
    pub run_id: RunId,
    pub org_id: OrgId,
    /// The end user who started it (for end-user callers): only they may follow it.
    pub end_user: Option<EndUserId>,
    pub conversation_id: ConversationId,
    pub started_at: DateTime<Utc>,
    state: Mutex<LogState>,
    /// (events so far, run over); readers wait on changes.
    notify: watch::Sender<(u64, bool)>,
    /// Cancelled by `POST /runs/{id}/cancel`; the turn stops at its next safe point.
    cancel: CancellationToken,
}

/// A snapshot of a run for `GET /runs/{id}`.
#[derive(Debug, Clone)]
pub struct RunSnapshot {
    pub status: RunStatus,
    pub finished_at: Option<DateTime<Utc>>,
    /// The final event, once the run is over.
    pub last: Option<TurnEvent>,
}

impl RunLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        // A poisoned log only means a writer panicked mid-push; the data is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends an event. Past [`MAX_EVENTS`], text chunks are dropped (the final event's
    /// `response` still carries the whole text).
    pub fn push(&self, event: TurnEvent) {
        let mut st = self.lock();
        if st.events.len() >= MAX_EVENTS && matches!(event, TurnEvent::Chunk { .. }) {
            return;
        }
        self.append(&mut st, event);
    }

    /// A finished run's log, from its record and stored events (for readers resuming after
    /// the end).
    pub fn finished(
        org_id: OrgId,
        end_user: Option<EndUserId>,
        run: &Run,
        events: Vec<TurnEvent>,
    ) -> Self {
        let events = events
            .into_iter()
            .zip(1..)
            .map(|(event, seq)| RunEvent { seq, event })
            .collect::<Vec<_>>();
        let (notify, _) = watch::channel((events.len() as u64, true));
        Self {
            run_id: run.id,
            org_id,
            end_user,
            conversation_id: run.conversation_id,
            started_at: run.started_at,
            state: Mutex::new(LogState {
                events,
                status: run.status,
                finished_at: Some(run.finished_at),
            }),
            notify,
            cancel: CancellationToken::new(),
        }
    }

    /// Asks the run to stop at its next safe point (see the turn loop).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// What the turn watches for [`Self::cancel`].
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Waits until the run is over.
    pub async fn wait_over(&self) {
        let mut rx = self.notify.subscribe();
        let _ = rx.wait_for(|(_, over)| *over).await;
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<TurnEvent> {
        self.lock().events.iter().map(|e| e.event.clone()).collect()
    }

    /// Whether any text chunk was logged (a replayed turn produced none).
    pub fn has_chunks(&self) -> bool {
        self.lock()
            .events
            .iter()
            .any(|e| matches!(e.event, TurnEvent::Chunk { .. }))
    }

    /// Marks the run finished and appends its final event, atomically: a reader never sees
    /// a finished run without its final event.
    pub fn finish(&self, event: TurnEvent) {
        let mut st = self.lock();
        st.status = match event {
            TurnEvent::Done { .. } => RunStatus::Completed,
            TurnEvent::Cancelled {} => RunStatus::Cancelled,
            _ => RunStatus::Failed,
        };
        st.finished_at = Some(crate::domain::now());
        self.append(&mut st, event);
    }

    fn append(&self, st: &mut LogState, event: TurnEvent) {
        let seq = st.events.len() as u64 + 1;
        st.events.push(RunEvent { seq, event });
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
        let over = st.status != RunStatus::Running;
        RunSnapshot {
            status: st.status,
            finished_at: st.finished_at,
            last: st.events.last().filter(|_| over).map(|e| e.event.clone()),
        }
    }

    /// Waits until there are more than `seen` events or the run is over.
    pub async fn wait_beyond(&self, seen: u64) {
        let mut rx = self.notify.subscribe();
        // `wait_for` checks the current value first, so no wake-up is missed.
        let _ = rx.wait_for(|(n, over)| *n > seen || *over).await;
    }
}

/// The runs streaming now; cheap to clone. A run is removed when it ends (readers already
/// following it keep their handle).
#[derive(Clone, Default)]
pub struct RunHub {
    runs: Arc<Mutex<HashMap<RunId, Arc<RunLog>>>>,
}

impl RunHub {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Arc<RunLog>>> {
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many runs are live.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub fn remove(&self, run_id: RunId) {
        self.lock().remove(&run_id);
    }

    pub fn start(
        &self,
        run_id: RunId,
        org_id: OrgId,
        end_user: Option<EndUserId>,
        conversation_id: ConversationId,
    ) -> Arc<RunLog> {
        let (notify, _) = watch::channel((0, false));
        let log = Arc::new(RunLog {
            run_id,
            org_id,
            end_user,
            conversation_id,
            started_at: crate::domain::now(),
            state: Mutex::new(LogState {
                events: Vec::new(),
                status: RunStatus::Running,
                finished_at: None,
            }),
            notify,
            cancel: CancellationToken::new(),
        });
        self.lock().insert(run_id, Arc::clone(&log));
        log
    }

    pub fn get(&self, run_id: RunId) -> Option<Arc<RunLog>> {
        self.lock().get(&run_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::domain::turn::{FailureCode, RunFailure};

    fn log() -> Arc<RunLog> {
        RunHub::new().start(
            RunId::new(),
            OrgId::parse("a").unwrap(),
            None,
            ConversationId::new(),
        )
    }

    fn chunk(text: &str) -> TurnEvent {
        TurnEvent::Chunk {
            chunk: text.to_owned(),
        }
    }

    fn failed() -> TurnEvent {
        TurnEvent::Error {
            error: RunFailure {
                code: FailureCode::InternalError,
            },
        }
    }

    #[test]
    fn events_are_numbered_in_order() {
        let l = log();
        l.push(chunk("Hi "));
        l.push(TurnEvent::State {
            session_id: None,
            current_state: "IDLE".into(),
        });
        let (events, over) = l.after(0);
        assert!(!over);
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(l.after(1).0.len(), 1);
        assert!(l.after(99).0.is_empty());
        assert!(l.has_chunks());
    }

    #[test]
    fn a_full_log_drops_chunks_but_still_takes_the_final_event() {
        let l = log();
        for _ in 0..MAX_EVENTS + 10 {
            l.push(chunk("a"));
        }
        assert_eq!(l.after(0).0.len(), MAX_EVENTS);
        l.finish(failed());
        let (events, over) = l.after(0);
        assert!(over);
        assert_eq!(events.len(), MAX_EVENTS + 1);
        assert_eq!(events.last().unwrap().event.name(), "error");
        assert_eq!(l.snapshot().status, RunStatus::Failed);
    }

    #[tokio::test]
    async fn a_reader_past_the_end_is_released_when_the_run_ends() {
        let l = log();
        l.push(chunk("x"));
        let waiter = {
            let l = Arc::clone(&l);
            async move { l.wait_beyond(99).await }
        };
        let finish = async { l.finish(failed()) };
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
        let (_, ()) = tokio::join!(waiter, async { l.push(chunk("x")) });
        l.finish(failed());
        assert!(l.after(0).1);
    }
}
