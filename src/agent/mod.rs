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
use crate::domain::turn::{TurnEvent, TurnOutcome};
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
    /// How long a turn lease lasts without renewal; running turns renew theirs every third of
    /// it, so a dead instance's leases free their conversations within this time.
    pub lease_ttl: Duration,
    /// This instance's name on the leases it holds; stable across restarts when it can be,
    /// so a restarted instance frees what its previous life held.
    pub instance_id: String,
}

impl AgentSettings {
    pub fn lease_ttl(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.lease_ttl).unwrap_or_else(|_| chrono::Duration::seconds(10))
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

impl Target {
    pub fn id(self) -> ConversationId {
        match self {
            Self::Session(id) | Self::Conversation(id) => id,
        }
    }
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
    /// The conversation's id.
    pub conversation_id: ConversationId,
    /// The events, for [`Delivery::Stream`].
    pub log: Option<Arc<RunLog>>,
    /// A streamed turn whose Idempotency-Key already has a stored reply: the stream replays
    /// it (known before the stream starts, so it can be a response header).
    pub replayed: bool,
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
            runs: RunHub::new(),
            settings,
            tasks,
            locks: moka::sync::Cache::builder()
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }

    /// Starts a turn and returns at once with its handle; the turn runs as a tracked task, so
    /// a caller that goes away (a closed connection) does not cut it short.
    ///
    /// A plain turn ([`Delivery::Reply`]) reaches the database only inside the task: the
    /// session is created and the caller's ownership checked together with taking the lease,
    /// and a reused Idempotency-Key is refused there. A streamed turn first resolves the
    /// conversation (its first event names it, and a refusal is an HTTP error before the
    /// stream starts). A panic ends the run as INTERNAL_ERROR; a streamed run always gets its
    /// final event.
    pub async fn start(
        &self,
        req: TurnRequest,
        delivery: Delivery,
    ) -> Result<RunHandle, TurnError> {
        let run_id = RunId::new();
        let conversation_id = req.target.id();
        let (log, replayed) = match delivery {
            Delivery::Reply => (None, false),
            Delivery::Stream => {
                let (log, replayed) = self.open_stream(&req, run_id).await?;
                (Some(log), replayed)
            }
        };
        let turn = turn::Turn {
            org: req.org,
            end_user: req.end_user,
            target: req.target,
            message: req.message,
            idempotency: req.idempotency,
            run_id,
            events: log.clone(),
        };
        let (tx, rx) = oneshot::channel();
        let agent = self.clone();
        self.tasks.spawn(async move {
            let events = turn.events.clone();
            let outcome = std::panic::AssertUnwindSafe(agent.run_turn(turn))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(TurnError::Crashed("the turn panicked".into())));
            if let Some(log) = events {
                finish_stream(&log, &outcome);
                // Live runs only: a finished run's events are replayed from the database.
                agent.runs.remove(log.run_id);
            }
            // The caller may have gone away; the turn is persisted either way.
            let _ = tx.send(outcome);
        });
        Ok(RunHandle {
            run_id,
            conversation_id,
            log,
            replayed,
            outcome: rx,
        })
    }

    /// Resolves a streamed turn's conversation, refuses a reused Idempotency-Key, and opens
    /// the run's log with its first event; true when the key has a stored reply to replay.
    async fn open_stream(
        &self,
        req: &TurnRequest,
        run_id: RunId,
    ) -> Result<(Arc<RunLog>, bool), TurnError> {
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
        let replayed = match &req.idempotency {
            Some(idem) => self.replay(&req.org, idem).await?.is_some(),
            None => false,
        };
        let log = self
            .runs
            .start(run_id, req.org.id.clone(), req.end_user.clone(), conv.id);
        log.push(TurnEvent::State {
            session_id: Some(conv.id),
            current_state: conv.state.0.stage.clone(),
        });
        Ok((log, replayed))
    }
}

/// Ends a streamed run with its final event (the same the turn stored with its record).
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
            log.finish(turn::done_event(outcome));
        }
        Err(e) => log.finish(turn::error_event(e)),
    }
}
