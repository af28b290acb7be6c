//! The agent: model providers, the tool registry the skills fill, and the turn loop that joins
//! them. It owns a turn end to end — [`Agent::start`] checks the conversation and the
//! Idempotency-Key, runs the turn as a tracked task (so a caller that goes away does not cut it
//! short), captures a panic as a failure, replays a stored reply, and emits the final event of
//! a streamed run. Independent of HTTP: a turn can run from a handler, a test or the CLI. It
//! names no skill; `crate::skills` registers them.

pub mod model;
pub mod offline;
pub mod openai;
pub mod runs;
#[cfg(feature = "test-support")]
pub mod scripted;
pub mod skill;
pub mod tools;
pub mod turn;

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use crate::conversations::{self, Caller};
use crate::domain::conversation::Conversation;
use crate::domain::turn::{RunFailure, TurnEvent, TurnMetadata, TurnOutcome};
use crate::domain::{ConversationId, EndUserId, MessageText, Org, RunId};
use crate::store::Store;
pub use model::Model;
use runs::{RunHub, RunLog};
pub use skill::{Skill, Skills};
pub use turn::{IdempotencyKey, TurnError};

/// Limits of the turn loop.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Model calls per turn, at most.
    pub max_steps: u32,
    /// Earlier messages the model sees.
    pub history_window: u32,
    /// Longest a turn may take once it runs.
    pub turn_timeout: Duration,
    /// Longest a turn waits for another turn of the same conversation (policy `enqueue`).
    pub queue_timeout: Duration,
    /// How long a streamed run's events stay replayable after it was last read.
    pub run_retention: Duration,
}

impl AgentSettings {
    /// A lease outlives the longest turn, so only a crashed instance's lease ever expires.
    pub fn lease_duration(&self) -> Duration {
        self.turn_timeout + Duration::from_secs(30)
    }
}

/// Where a turn goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A session: the conversation with this client-chosen id, created at its first message.
    Session(ConversationId),
    /// An existing conversation.
    Conversation(ConversationId),
}

/// A request for one turn: who asks, where, saying what.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub org: Arc<Org>,
    /// The end user asking; `None` for the organisation itself (an API-key caller).
    pub end_user: Option<EndUserId>,
    pub target: Target,
    pub message: MessageText,
    pub idempotency: Option<IdempotencyKey>,
}

/// How the caller follows the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The outcome at the end.
    Reply,
    /// Events as they happen, in a run log readers follow (and resume) by cursor.
    Stream,
}

/// A started turn.
pub struct RunHandle {
    pub run_id: RunId,
    /// The conversation, as it was when the turn was asked for.
    pub conversation: Conversation,
    /// The events, for [`Delivery::Stream`].
    pub log: Option<Arc<RunLog>>,
    outcome: oneshot::Receiver<Result<TurnOutcome, TurnError>>,
}

impl RunHandle {
    /// Waits for the turn to end. Dropping the handle instead leaves the turn running: it
    /// completes and is persisted all the same.
    pub async fn outcome(self) -> Result<TurnOutcome, TurnError> {
        self.outcome
            .await
            .unwrap_or_else(|_| Err(TurnError::Crashed("the turn's task ended early".into())))
    }
}

/// The agent as the HTTP layer uses it; cheap to clone.
#[derive(Clone)]
pub struct Agent {
    pub store: Store,
    pub model: Model,
    pub skills: Skills,
    pub settings: AgentSettings,
    pub tasks: TaskTracker,
    /// Event logs of streamed runs.
    pub runs: RunHub,
    /// One FIFO mutex per recently active conversation: turns queue here before the lease.
    locks: moka::sync::Cache<ConversationId, Arc<tokio::sync::Mutex<()>>>,
}

impl Agent {
    pub fn new(
        store: Store,
        model: Model,
        skills: Skills,
        settings: AgentSettings,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            store,
            model,
            skills,
            runs: RunHub::new(settings.run_retention),
            settings,
            tasks,
            locks: moka::sync::Cache::builder()
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }

    /// Starts a turn: finds (or, for a session, creates) the conversation and checks the
    /// caller may use it, refuses an Idempotency-Key reused with another request, then runs the
    /// turn as a tracked task. Errors before the turn runs are returned here; the turn's own
    /// outcome comes through the handle (and, when streamed, as the log's final event).
    pub async fn start(
        &self,
        req: TurnRequest,
        delivery: Delivery,
    ) -> Result<RunHandle, TurnError> {
        let caller = Caller {
            org: &req.org.id,
            end_user: req.end_user.as_ref(),
        };
        let conv = match req.target {
            Target::Session(id) => {
                conversations::session(&self.store, caller, id, crate::domain::now()).await?
            }
            Target::Conversation(id) => conversations::visible(&self.store, caller, id).await?,
        };
        // Refused before anything starts (a stream would only find out after its 200). A
        // matching key replays under the turn's lease, where a racing original is settled.
        if let Some(idem) = &req.idempotency {
            self.replay(&req.org, idem).await?;
        }
        let run_id = RunId::new();
        let log = (delivery == Delivery::Stream).then(|| {
            let log = self
                .runs
                .start(run_id, req.org.id.clone(), req.end_user.clone(), conv.id);
            log.push(TurnEvent::State {
                session_id: Some(conv.id),
                current_state: conv.state.0.stage.clone(),
            });
            log
        });
        let turn = turn::Turn {
            org: req.org,
            end_user: req.end_user,
            conversation_id: conv.id,
            message: req.message,
            idempotency: req.idempotency,
            run_id,
            events: log.clone(),
        };
        let (tx, rx) = oneshot::channel();
        let agent = self.clone();
        self.tasks.spawn(async move {
            let events = turn.events.clone();
            // A panic must still end the run (as INTERNAL_ERROR), or a stream's readers would
            // wait on keep-alives forever.
            let outcome = std::panic::AssertUnwindSafe(agent.run_turn(turn))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(TurnError::Crashed("the turn panicked".into())));
            if let Some(log) = events {
                finish_stream(&log, &outcome);
            }
            // The caller may have gone away; the turn is persisted either way.
            let _ = tx.send(outcome);
        });
        Ok(RunHandle {
            run_id,
            conversation: conv,
            log,
            outcome: rx,
        })
    }
}

/// Ends a streamed run with its final event.
fn finish_stream(log: &RunLog, outcome: &Result<TurnOutcome, TurnError>) {
    match outcome {
        Ok(outcome) => {
            // A replayed (idempotent) turn produced no deltas: send its text now, so readers
            // of `chunk` alone still get the reply.
            if !log.has_chunks() {
                for piece in model::word_chunks(&outcome.response) {
                    log.push(TurnEvent::Chunk {
                        chunk: piece.to_owned(),
                    });
                }
            }
            log.finish(TurnEvent::Done {
                response: outcome.response.clone(),
                message_id: outcome.message_id,
                metadata: TurnMetadata::of(outcome),
            });
        }
        Err(e) => log.finish(TurnEvent::Error {
            error: RunFailure { code: e.code() },
        }),
    }
}
