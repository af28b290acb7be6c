//! The turn path: take a conversation's lease (creating a session at its first message), read
//! the history window, and commit everything a turn produced — in as few round trips as the
//! backend allows. On PostgreSQL a plain turn costs three statements: the lease, the window
//! (skipped for a new session) and the commit, each a single statement (data-modifying CTEs);
//! SQLite runs the same steps as short transactions on its one writer connection, where a
//! round trip is a function call.
//!
//! Leases name the instance holding them (`lease_owner`) and are short: a running turn renews
//! its lease ([`Store::renew_lease`]), so a dead instance's leases expire within seconds, and a
//! restarted instance frees its previous life's leases at once
//! ([`Store::release_owner_leases`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::conversations::{CONV_COLUMNS, MSG_COLUMNS, created_data};
use super::webhooks::record_event;
use super::{Store, StoreError, StoreResult, on_pool, on_read};
use crate::domain::chat::{Role, ToolCall, Usage};
use crate::domain::conversation::{
    Conversation, ConversationKind, ConversationState, Message, Run, RunStatus,
};
use crate::domain::events::EventType;
use crate::domain::turn::{IDEMPOTENCY_WINDOW, TurnEvent};
use crate::domain::{ConversationId, MessageId, OrgId, RunId};

/// A message a turn produced, to be written by [`Store::commit_turn`].
#[derive(Debug, Clone, Serialize)]
pub struct NewMessage {
    pub id: MessageId,
    pub role: Role,
    pub content: String,
    pub tool_calls: Option<Vec<ToolCall>>,
    pub tool_call_id: Option<String>,
    pub tool_name: Option<String>,
    pub model: Option<String>,
    pub usage: Option<Usage>,
    pub created_at: DateTime<Utc>,
}

/// A checkpoint of one step.
#[derive(Debug, Clone, Serialize)]
pub struct NewCheckpoint {
    pub version: i64,
    pub parent_version: Option<i64>,
    pub step: i64,
    pub state: ConversationState,
}

/// The run record of one turn.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub id: RunId,
    pub conversation_id: ConversationId,
    pub status: RunStatus,
    pub model: Option<String>,
    pub steps: i64,
    pub usage: Usage,
    pub error: Option<String>,
    /// A streamed run's events, final event included.
    pub events: Option<Vec<TurnEvent>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// Everything a successful turn writes, atomically.
#[derive(Debug)]
pub struct TurnCommit<'a> {
    pub org: &'a OrgId,
    pub conversation_id: ConversationId,
    pub lease_token: Uuid,
    /// The conversation's `last_seq` when the turn started; messages get the numbers after it.
    pub base_seq: i64,
    pub messages: Vec<NewMessage>,
    pub checkpoints: Vec<NewCheckpoint>,
    pub state: &'a ConversationState,
    pub run: RunRecord,
    /// `(key, request hash, response)` to keep for Idempotency-Key replays.
    pub idempotency: Option<(&'a str, &'a str, &'a Value)>,
    pub now: DateTime<Utc>,
}

/// A session to create when the turn's conversation does not exist yet.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    pub end_user: Option<&'a str>,
    pub title: &'a str,
}

/// Asking for a conversation's turn lease.
#[derive(Debug, Clone, Copy)]
pub struct LeaseRequest<'a> {
    pub org: &'a OrgId,
    pub id: ConversationId,
    /// Create this session when the conversation does not exist.
    pub create: Option<NewSession<'a>>,
    pub token: Uuid,
    /// The instance asking.
    pub owner: &'a str,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What asking for a lease found.
#[derive(Debug)]
pub enum Leased {
    /// The lease is ours; `created` when the session was created by this call.
    Taken {
        conv: Box<Conversation>,
        created: bool,
    },
    /// Another turn holds it.
    Busy,
    /// No such (live) conversation.
    Missing,
}

/// A conversation row as the lease statements return it, with whether it was just created.
#[derive(sqlx::FromRow)]
struct LeasedRow {
    #[sqlx(flatten)]
    conv: Conversation,
    created: bool,
}

/// A message with its number, as the PostgreSQL commit reads it from JSON.
#[derive(Serialize)]
struct SeqMessage<'a> {
    seq: i64,
    #[serde(flatten)]
    message: &'a NewMessage,
}

fn run_events_json(run: &RunRecord) -> Option<Json<&Vec<TurnEvent>>> {
    run.events.as_ref().map(Json)
}

/// Inserts a run record through any executor (pool or transaction) of either backend.
macro_rules! insert_run {
    ($exec:expr, $org:expr, $run:expr) => {{
        let run: &RunRecord = $run;
        sqlx::query(
            "INSERT INTO runs (id, org_id, conversation_id, status, model, steps, prompt_tokens, \
             completion_tokens, total_tokens, error, events, started_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(run.id)
        .bind($org.as_str())
        .bind(run.conversation_id)
        .bind(run.status.as_str())
        .bind(&run.model)
        .bind(run.steps)
        .bind(i64::from(run.usage.prompt_tokens))
        .bind(i64::from(run.usage.completion_tokens))
        .bind(i64::from(run.usage.total_tokens))
        .bind(&run.error)
        .bind(run_events_json(run))
        .bind(run.started_at)
        .bind(run.finished_at)
        .execute($exec)
        .await
        .map(|r| r.rows_affected())
    }};
}

impl Store {
    /// Takes the turn lease of a live conversation unless another turn holds an unexpired one,
    /// creating the session first when asked to (with its `conversation.created` event). One
    /// statement on PostgreSQL; a short transaction on SQLite.
    pub async fn take_lease(&self, r: &LeaseRequest<'_>) -> StoreResult<Leased> {
        let row: Option<LeasedRow> = match self {
            Self::Postgres(pool) => {
                let sql = format!(
                    "WITH upd AS (\
                        UPDATE conversations SET lease_token = $3, lease_owner = $4, lease_expires_at = $5 \
                        WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL \
                        AND (lease_token IS NULL OR lease_expires_at < $6) \
                        RETURNING {CONV_COLUMNS}, FALSE AS created), \
                     ins AS (\
                        INSERT INTO conversations (id, org_id, kind, end_user, title, created_at, updated_at, \
                            lease_token, lease_owner, lease_expires_at) \
                        SELECT $2, $1, 'session', $7, $8, $6, $6, $3, $4, $5 \
                        WHERE $9 AND NOT EXISTS (SELECT 1 FROM upd) \
                        ON CONFLICT (org_id, id) DO NOTHING \
                        RETURNING {CONV_COLUMNS}, TRUE AS created), \
                     {outbox} \
                     SELECT * FROM upd UNION ALL SELECT * FROM ins",
                    outbox = super::webhooks::outbox_ctes("ins", "$1", "$10", "$11", "$12", "$6"),
                );
                let data = r.create.map(|s| {
                    Json(created_data(
                        r.id,
                        ConversationKind::Session,
                        s.end_user,
                        s.title,
                        r.now,
                    ))
                });
                sqlx::query_as(&sql)
                    .bind(r.org.as_str())
                    .bind(r.id)
                    .bind(r.token)
                    .bind(r.owner)
                    .bind(r.expires_at)
                    .bind(r.now)
                    .bind(r.create.and_then(|s| s.end_user))
                    .bind(r.create.map(|s| s.title))
                    .bind(r.create.is_some())
                    .bind(EventType::CONVERSATION_CREATED.as_str())
                    .bind(data)
                    .bind(Uuid::now_v7())
                    .fetch_optional(pool)
                    .await?
            }
            Self::Sqlite(pools) => {
                let sql = format!(
                    "UPDATE conversations SET lease_token = $3, lease_owner = $4, lease_expires_at = $5 \
                     WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL \
                     AND (lease_token IS NULL OR lease_expires_at < $6) \
                     RETURNING {CONV_COLUMNS}, FALSE AS created"
                );
                // The common case is one statement; only a new session needs a transaction
                // (the row and its event together).
                let mut row: Option<LeasedRow> = sqlx::query_as(&sql)
                    .bind(r.org.as_str())
                    .bind(r.id)
                    .bind(r.token)
                    .bind(r.owner)
                    .bind(r.expires_at)
                    .bind(r.now)
                    .fetch_optional(&pools.write)
                    .await?;
                if let (None, Some(session)) = (&row, r.create) {
                    let mut tx = pools.write.begin().await?;
                    let insert = format!(
                        "INSERT INTO conversations (id, org_id, kind, end_user, title, created_at, \
                         updated_at, lease_token, lease_owner, lease_expires_at) \
                         VALUES ($2, $1, 'session', $7, $8, $6, $6, $3, $4, $5) \
                         ON CONFLICT (org_id, id) DO NOTHING RETURNING {CONV_COLUMNS}, TRUE AS created"
                    );
                    row = sqlx::query_as(&insert)
                        .bind(r.org.as_str())
                        .bind(r.id)
                        .bind(r.token)
                        .bind(r.owner)
                        .bind(r.expires_at)
                        .bind(r.now)
                        .bind(session.end_user)
                        .bind(session.title)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if row.is_some() {
                        let data = created_data(
                            r.id,
                            ConversationKind::Session,
                            session.end_user,
                            session.title,
                            r.now,
                        );
                        record_event!(
                            &mut *tx,
                            r.org,
                            EventType::CONVERSATION_CREATED,
                            &data,
                            r.now
                        )?;
                    }
                    tx.commit().await?;
                }
                row
            }
        };
        if let Some(LeasedRow { conv, created }) = row {
            return Ok(Leased::Taken {
                conv: Box::new(conv),
                created,
            });
        }
        // Held elsewhere, or gone: tell the two apart (the rare path).
        Ok(if self.get_conversation(r.org, r.id).await?.is_some() {
            Leased::Busy
        } else {
            Leased::Missing
        })
    }

    /// Gives the lease back (after a failed turn; a committed turn releases it in its commit).
    pub async fn release_lease(
        &self,
        org: &OrgId,
        id: ConversationId,
        token: Uuid,
    ) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE conversations SET lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL \
             WHERE org_id = $1 AND id = $2 AND lease_token = $3")
            .bind(org.as_str())
            .bind(id)
            .bind(token)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Extends a turn's lease until `expires_at`; false when the turn no longer holds it.
    pub async fn renew_lease(
        &self,
        org: &OrgId,
        id: ConversationId,
        token: Uuid,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let n = on_pool!(self, pool => sqlx::query(
            "UPDATE conversations SET lease_expires_at = $4 \
             WHERE org_id = $1 AND id = $2 AND lease_token = $3")
            .bind(org.as_str())
            .bind(id)
            .bind(token)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Frees every lease `owner` holds: what this instance held in a previous life (before a
    /// crash or kill), so its sessions take turns again at once. Once per start; it scans the
    /// table, since no index may cover the lease columns (see the migration).
    pub async fn release_owner_leases(&self, owner: &str) -> StoreResult<u64> {
        Ok(on_pool!(self, pool => sqlx::query(
            "UPDATE conversations SET lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL \
             WHERE lease_owner = $1")
            .bind(owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// Live messages with `seq > after_seq`, oldest first: the history window.
    pub async fn messages_after(
        &self,
        org: &OrgId,
        conversation: ConversationId,
        after_seq: i64,
    ) -> StoreResult<Vec<Message>> {
        let sql = format!(
            "SELECT {MSG_COLUMNS} FROM messages WHERE org_id = $1 AND conversation_id = $2 \
             AND seq > $3 AND deleted_at IS NULL ORDER BY seq"
        );
        Ok(on_read!(self, pool => sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(conversation)
            .bind(after_seq)
            .fetch_all(pool)
            .await)?)
    }

    /// Writes a finished turn: its messages, checkpoints, run record, the new state, the
    /// idempotency record, and releases the lease — all or nothing, and only while the turn
    /// still holds the lease (`Conflict` otherwise). One statement on PostgreSQL.
    pub async fn commit_turn(&self, t: &TurnCommit<'_>) -> StoreResult<()> {
        let count = i64::try_from(t.messages.len()).unwrap_or(i64::MAX);
        let last_version = t.checkpoints.last().map(|c| c.version);
        let idem_before = t.now - IDEMPOTENCY_WINDOW;
        let (idem_key, idem_hash, idem_response) = match t.idempotency {
            Some((k, h, r)) => (Some(k), Some(h), Some(Json(r))),
            None => (None, None, None),
        };
        let updated = match self {
            Self::Postgres(pool) => {
                // Every insert reads `upd`: when the lease is gone, nothing is written.
                let sql = "WITH upd AS (\
                        UPDATE conversations SET last_seq = $3, message_count = message_count + $4, \
                        last_message_at = $5, state = $6, checkpoint_version = COALESCE($7, checkpoint_version), \
                        updated_at = $5, lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL \
                        WHERE org_id = $1 AND id = $2 AND lease_token = $8 RETURNING 1), \
                    msgs AS (\
                        INSERT INTO messages (id, org_id, conversation_id, seq, role, content, tool_calls, \
                            tool_call_id, tool_name, run_id, model, usage, created_at) \
                        SELECT m.id, $1, $2, m.seq, m.role, m.content, m.tool_calls, m.tool_call_id, \
                            m.tool_name, $10, m.model, m.usage, m.created_at \
                        FROM upd, jsonb_to_recordset($11) AS m(id uuid, seq bigint, role text, \
                            content text, tool_calls jsonb, tool_call_id text, tool_name text, model text, \
                            usage jsonb, created_at timestamptz)), \
                    cps AS (\
                        INSERT INTO checkpoints (org_id, conversation_id, version, parent_version, run_id, \
                            step, state, created_at) \
                        SELECT $1, $2, c.version, c.parent_version, $10, c.step, c.state, $5 \
                        FROM upd, jsonb_to_recordset($12) AS c(version bigint, parent_version bigint, \
                            step bigint, state jsonb)), \
                    run AS (\
                        INSERT INTO runs (id, org_id, conversation_id, status, model, steps, prompt_tokens, \
                            completion_tokens, total_tokens, error, events, started_at, finished_at) \
                        SELECT $10, $1, $2, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22 FROM upd), \
                    idem AS (\
                        INSERT INTO idempotency_keys (org_id, key, request_hash, response, conversation_id, created_at) \
                        SELECT $1, $23, $24, $25, $2, $5 FROM upd WHERE $23::text IS NOT NULL \
                        ON CONFLICT (org_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
                        response = excluded.response, conversation_id = excluded.conversation_id, \
                        created_at = excluded.created_at WHERE idempotency_keys.created_at < $26) \
                    SELECT COUNT(*) FROM upd";
                let run = &t.run;
                let rows: Vec<SeqMessage<'_>> = t
                    .messages
                    .iter()
                    .enumerate()
                    .map(|(i, message)| SeqMessage {
                        seq: t.base_seq + 1 + i64::try_from(i).unwrap_or(0),
                        message,
                    })
                    .collect();
                let n: i64 = sqlx::query_scalar(sql)
                    .bind(t.org.as_str())
                    .bind(t.conversation_id)
                    .bind(t.base_seq + count)
                    .bind(count)
                    .bind(t.now)
                    .bind(Json(t.state))
                    .bind(last_version)
                    .bind(t.lease_token)
                    .bind(t.base_seq)
                    .bind(run.id)
                    .bind(Json(&rows))
                    .bind(Json(&t.checkpoints))
                    .bind(run.status.as_str())
                    .bind(&run.model)
                    .bind(run.steps)
                    .bind(i64::from(run.usage.prompt_tokens))
                    .bind(i64::from(run.usage.completion_tokens))
                    .bind(i64::from(run.usage.total_tokens))
                    .bind(&run.error)
                    .bind(run_events_json(run))
                    .bind(run.started_at)
                    .bind(run.finished_at)
                    .bind(idem_key)
                    .bind(idem_hash)
                    .bind(idem_response)
                    .bind(idem_before)
                    .fetch_one(pool)
                    .await?;
                n
            }
            Self::Sqlite(pools) => {
                let mut tx = pools.write.begin().await?;
                let updated = sqlx::query(
                    "UPDATE conversations SET last_seq = $3, message_count = message_count + $4, \
                     last_message_at = $5, state = $6, checkpoint_version = COALESCE($7, checkpoint_version), \
                     updated_at = $5, lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL \
                     WHERE org_id = $1 AND id = $2 AND lease_token = $8",
                )
                .bind(t.org.as_str())
                .bind(t.conversation_id)
                .bind(t.base_seq + count)
                .bind(count)
                .bind(t.now)
                .bind(Json(t.state))
                .bind(last_version)
                .bind(t.lease_token)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    // Rolled back on drop: nothing of this turn is written.
                    return Err(StoreError::Conflict("the turn lease was lost".to_owned()));
                }
                if !t.messages.is_empty() {
                    let mut qb = sqlx::QueryBuilder::new(
                        "INSERT INTO messages (id, org_id, conversation_id, seq, role, content, tool_calls, \
                         tool_call_id, tool_name, run_id, model, usage, created_at) ",
                    );
                    qb.push_values(t.messages.iter().enumerate(), |mut b, (i, m)| {
                        b.push_bind(m.id)
                            .push_bind(t.org.as_str())
                            .push_bind(t.conversation_id)
                            .push_bind(t.base_seq + 1 + i64::try_from(i).unwrap_or(0))
                            .push_bind(m.role.as_str())
                            .push_bind(&m.content)
                            .push_bind(m.tool_calls.as_ref().map(Json))
                            .push_bind(&m.tool_call_id)
                            .push_bind(&m.tool_name)
                            .push_bind(t.run.id)
                            .push_bind(&m.model)
                            .push_bind(m.usage.map(Json))
                            .push_bind(m.created_at);
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                if !t.checkpoints.is_empty() {
                    let mut qb = sqlx::QueryBuilder::new(
                        "INSERT INTO checkpoints (org_id, conversation_id, version, parent_version, run_id, \
                         step, state, created_at) ",
                    );
                    qb.push_values(&t.checkpoints, |mut b, c| {
                        b.push_bind(t.org.as_str())
                            .push_bind(t.conversation_id)
                            .push_bind(c.version)
                            .push_bind(c.parent_version)
                            .push_bind(t.run.id)
                            .push_bind(c.step)
                            .push_bind(Json(&c.state))
                            .push_bind(t.now);
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                insert_run!(&mut *tx, t.org, &t.run)?;
                if let (Some(key), Some(hash), Some(response)) =
                    (idem_key, idem_hash, idem_response)
                {
                    sqlx::query(
                        "INSERT INTO idempotency_keys (org_id, key, request_hash, response, conversation_id, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, key) DO UPDATE \
                         SET request_hash = excluded.request_hash, response = excluded.response, \
                         conversation_id = excluded.conversation_id, created_at = excluded.created_at \
                         WHERE idempotency_keys.created_at < $7",
                    )
                    .bind(t.org.as_str())
                    .bind(key)
                    .bind(hash)
                    .bind(response)
                    .bind(t.conversation_id)
                    .bind(t.now)
                    .bind(idem_before)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                1
            }
        };
        if updated == 0 {
            // The lease expired and someone else took the conversation: writing now would
            // interleave two turns. Nothing was written; the caller reports a timeout.
            return Err(StoreError::Conflict("the turn lease was lost".to_owned()));
        }
        Ok(())
    }

    /// Records a failed (or cancelled) turn's run; its messages are not written.
    pub async fn record_failed_run(&self, org: &OrgId, run: &RunRecord) -> StoreResult<()> {
        on_pool!(self, pool => insert_run!(pool, org, run))?;
        Ok(())
    }

    /// The stored response of an idempotency key used since `since`: `(request hash, response)`.
    pub async fn idempotent_response(
        &self,
        org: &OrgId,
        key: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<Option<(String, Value)>> {
        let row: Option<(String, Json<Value>)> = on_read!(self, pool => sqlx::query_as(
            "SELECT request_hash, response FROM idempotency_keys WHERE org_id = $1 AND key = $2 AND created_at > $3")
            .bind(org.as_str())
            .bind(key)
            .bind(since)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(|(h, r)| (h, r.0)))
    }

    pub async fn get_run(&self, org: &OrgId, id: RunId) -> StoreResult<Option<Run>> {
        Ok(on_read!(self, pool => sqlx::query_as(
            "SELECT id, conversation_id, status, model, steps, prompt_tokens, completion_tokens, total_tokens, \
             error, started_at, finished_at FROM runs WHERE org_id = $1 AND id = $2")
            .bind(org.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// A finished streamed run's events, when they were kept.
    pub async fn run_events(&self, org: &OrgId, id: RunId) -> StoreResult<Option<Vec<TurnEvent>>> {
        let row: Option<Option<Json<Vec<TurnEvent>>>> = on_read!(self, pool => sqlx::query_scalar(
            "SELECT events FROM runs WHERE org_id = $1 AND id = $2")
            .bind(org.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        Ok(row.flatten().map(|j| j.0))
    }

    /// Runs of a conversation, oldest first (for tests and diagnostics).
    pub async fn list_runs(
        &self,
        org: &OrgId,
        conversation: ConversationId,
    ) -> StoreResult<Vec<(RunId, String, Option<String>)>> {
        Ok(on_read!(self, pool => sqlx::query_as(
            "SELECT id, status, error FROM runs WHERE org_id = $1 AND conversation_id = $2 ORDER BY started_at, id")
            .bind(org.as_str())
            .bind(conversation)
            .fetch_all(pool)
            .await)?)
    }

    /// Checkpoints of a conversation: `(version, parent_version, step, state)`, oldest first.
    pub async fn list_checkpoints(
        &self,
        org: &OrgId,
        conversation: ConversationId,
    ) -> StoreResult<Vec<(i64, Option<i64>, i64, Json<ConversationState>)>> {
        Ok(on_read!(self, pool => sqlx::query_as(
            "SELECT version, parent_version, step, state FROM checkpoints \
             WHERE org_id = $1 AND conversation_id = $2 ORDER BY version")
            .bind(org.as_str())
            .bind(conversation)
            .fetch_all(pool)
            .await)?)
    }
}
