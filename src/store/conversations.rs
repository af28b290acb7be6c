//! Persistence of conversations (sessions included), their messages, checkpoints, runs, turn
//! leases and idempotency keys. A turn touches the database three times: take the lease (which
//! also returns the conversation row with its state), read the history window, and commit
//! everything the turn produced in one transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::webhooks::record_event;
use super::{Store, StoreError, StoreResult, on_pool};
use crate::domain::chat::{Role, ToolCall, Usage};
use crate::domain::conversation::{
    Conversation, ConversationKind, ConversationState, Message, Run, RunStatus,
};
use crate::domain::events::{ConversationCreatedData, EventType, SessionDeletedData};
use crate::domain::page::{Page, PageRequest};
use crate::domain::turn::IDEMPOTENCY_WINDOW;
use crate::domain::{ConversationId, MessageId, OrgId, RunId};

/// Inserts a run record through any executor (pool or transaction) of either backend.
macro_rules! insert_run {
    ($exec:expr, $org:expr, $run:expr) => {{
        let run: &RunRecord = $run;
        sqlx::query(
            "INSERT INTO runs (id, org_id, conversation_id, status, model, steps, prompt_tokens, \
             completion_tokens, total_tokens, error, started_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        .bind(run.started_at)
        .bind(run.finished_at)
        .execute($exec)
        .await
        .map(|r| r.rows_affected())
    }};
}

/// The `data` of a conversation's `conversation.created` event.
fn created_data(c: &Conversation) -> ConversationCreatedData {
    ConversationCreatedData {
        conversation_id: c.id,
        kind: c.kind,
        end_user: c.end_user.clone(),
        title: c.title.clone(),
        created_at: c.created_at,
    }
}

const CONV_COLUMNS: &str = "id, org_id, kind, end_user, title, metadata, archived, last_seq, \
    message_count, last_message_at, state, checkpoint_version, created_at, updated_at";

const MSG_COLUMNS: &str = "id, seq, role, content, tool_calls, tool_call_id, tool_name, run_id, \
    model, usage, created_at";

/// A message a turn produced, to be written by [`Store::commit_turn`].
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
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

/// Filters for listing conversations.
#[derive(Debug, Default)]
pub struct ConversationFilter<'a> {
    /// Only this end user's (for end-user callers).
    pub end_user: Option<&'a str>,
    pub archived: Option<bool>,
}

impl Store {
    /// Creates the session `id` for `org` if it does not exist. `NotFound` if the id belongs to
    /// another organisation (an id in use elsewhere looks like any unknown id).
    pub async fn ensure_session(
        &self,
        org: &OrgId,
        id: ConversationId,
        end_user: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Conversation> {
        // Most calls find the session: read first, so the common case is one round trip and
        // the insert (with its conversation.created event) runs in a transaction only once.
        if let Some(conv) = self.get_conversation(org, id).await? {
            return Ok(conv);
        }
        let insert = format!(
            "INSERT INTO conversations (id, org_id, kind, end_user, title, created_at, updated_at) \
             VALUES ($1, $2, $6, $3, $4, $5, $5) ON CONFLICT (id) DO NOTHING RETURNING {CONV_COLUMNS}"
        );
        let title = format!("Chat {}", now.format("%Y-%m-%d %H:%M"));
        let created: Option<Conversation> = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let conv: Option<Conversation> = sqlx::query_as(&insert)
                .bind(id)
                .bind(org.as_str())
                .bind(end_user)
                .bind(&title)
                .bind(now)
                .bind(ConversationKind::Session.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(c) = &conv {
                record_event!(&mut *tx, org, EventType::CONVERSATION_CREATED, created_data(c), now)?;
            }
            tx.commit().await?;
            conv
        });
        match created {
            Some(conv) => Ok(conv),
            // Created meanwhile by a concurrent first message, or an id of another org.
            None => self
                .get_conversation(org, id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no session {id}"))),
        }
    }

    pub async fn create_conversation(
        &self,
        org: &OrgId,
        end_user: Option<&str>,
        title: &str,
        metadata: &Value,
        now: DateTime<Utc>,
    ) -> StoreResult<Conversation> {
        let sql = format!(
            "INSERT INTO conversations (id, org_id, kind, end_user, title, metadata, created_at, updated_at) \
             VALUES ($1, $2, $7, $3, $4, $5, $6, $6) RETURNING {CONV_COLUMNS}"
        );
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let conv: Conversation = sqlx::query_as(&sql)
                .bind(ConversationId::new())
                .bind(org.as_str())
                .bind(end_user)
                .bind(title)
                .bind(Json(metadata))
                .bind(now)
                .bind(ConversationKind::Conversation.as_str())
                .fetch_one(&mut *tx)
                .await?;
            record_event!(&mut *tx, org, EventType::CONVERSATION_CREATED, created_data(&conv), now)?;
            tx.commit().await?;
            conv
        }))
    }

    /// A live (not deleted) conversation of `org`.
    pub async fn get_conversation(
        &self,
        org: &OrgId,
        id: ConversationId,
    ) -> StoreResult<Option<Conversation>> {
        let sql = format!(
            "SELECT {CONV_COLUMNS} FROM conversations WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .bind(org.as_str())
            .fetch_optional(pool)
            .await)?)
    }

    /// Live conversations of `org`, newest first.
    pub async fn list_conversations(
        &self,
        org: &OrgId,
        filter: &ConversationFilter<'_>,
        page: PageRequest,
    ) -> StoreResult<Page<Conversation>> {
        // Optional filters as `($n IS NULL OR col = $n)`: one statement, both backends.
        let cond = "org_id = $1 AND deleted_at IS NULL AND ($2 IS NULL OR end_user = $2) \
                    AND ($3 IS NULL OR archived = $3)";
        let sql = format!(
            "SELECT {CONV_COLUMNS} FROM conversations WHERE {cond} \
             ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
        );
        let count = format!("SELECT COUNT(*) FROM conversations WHERE {cond}");
        let (items, total) = on_pool!(self, pool => {
            let items: Vec<Conversation> = sqlx::query_as(&sql)
                .bind(org.as_str())
                .bind(filter.end_user)
                .bind(filter.archived)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(&count)
                .bind(org.as_str())
                .bind(filter.end_user)
                .bind(filter.archived)
                .fetch_one(pool)
                .await?;
            (items, total)
        });
        Ok(Page { items, total })
    }

    /// Changes title, metadata and/or archived; `None` when there is no such conversation.
    pub async fn update_conversation(
        &self,
        org: &OrgId,
        id: ConversationId,
        title: Option<&str>,
        metadata: Option<&Value>,
        archived: Option<bool>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>> {
        let sql = format!(
            "UPDATE conversations SET title = COALESCE($3, title), metadata = COALESCE($4, metadata), \
             archived = COALESCE($5, archived), updated_at = $6 \
             WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL RETURNING {CONV_COLUMNS}"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .bind(org.as_str())
            .bind(title)
            .bind(metadata.map(Json))
            .bind(archived)
            .bind(now)
            .fetch_optional(pool)
            .await)?)
    }

    /// Soft-deletes a conversation and its messages; false when there was none.
    pub async fn soft_delete_conversation(
        &self,
        org: &OrgId,
        id: ConversationId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (n, exists) = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE conversations SET deleted_at = $3, updated_at = $3 \
                 WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL \
                 AND (lease_token IS NULL OR lease_expires_at < $3)")
                .bind(id).bind(org.as_str()).bind(now)
                .execute(&mut *tx).await?.rows_affected();
            let exists = if n > 0 {
                sqlx::query("UPDATE messages SET deleted_at = $2 WHERE conversation_id = $1 AND deleted_at IS NULL")
                    .bind(id).bind(now)
                    .execute(&mut *tx).await?;
                false
            } else {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM conversations WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL")
                    .bind(id).bind(org.as_str())
                    .fetch_one(&mut *tx).await? > 0
            };
            tx.commit().await?;
            (n, exists)
        });
        if exists {
            // Deleting under a running turn would let it commit into a deleted conversation.
            return Err(StoreError::Conflict(
                "a turn of this conversation is running".to_owned(),
            ));
        }
        Ok(n > 0)
    }

    /// Erases a conversation with its messages, checkpoints, runs and tool effects (GDPR);
    /// false when there was none.
    /// Soft-deleted conversations are erased too. `Conflict` while a turn holds the lease
    /// (erasing under a running turn would break its commit). Records `session.deleted`.
    pub async fn erase_conversation(
        &self,
        org: &OrgId,
        id: ConversationId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (erased, exists) = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let row: Option<(String, Option<String>)> = sqlx::query_as(
                "DELETE FROM conversations WHERE id = $1 AND org_id = $2 \
                 AND (lease_token IS NULL OR lease_expires_at < $3) RETURNING kind, end_user")
                .bind(id).bind(org.as_str()).bind(now)
                .fetch_optional(&mut *tx).await?;
            let exists = match &row {
                None => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM conversations WHERE id = $1 AND org_id = $2")
                    .bind(id).bind(org.as_str())
                    .fetch_one(&mut *tx).await? > 0,
                Some((kind, end_user)) => {
                    // Stored idempotent replies quote the conversation. Skills' own rows that
                    // belong to it (a session's tasks, a booking's link) are handled by their
                    // tables' triggers, in this same transaction.
                    sqlx::query("DELETE FROM idempotency_keys WHERE org_id = $1 AND conversation_id = $2")
                        .bind(org.as_str()).bind(id)
                        .execute(&mut *tx).await?;
                    let data = SessionDeletedData {
                        session_id: id,
                        kind: ConversationKind::try_from(kind.clone()).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                        end_user: end_user.clone(),
                        deleted_at: now,
                    };
                    record_event!(&mut *tx, org, EventType::SESSION_DELETED, &data, now)?;
                    false
                }
            };
            tx.commit().await?;
            (row.is_some(), exists)
        });
        if exists {
            return Err(StoreError::Conflict(
                "a turn of this conversation is running".to_owned(),
            ));
        }
        Ok(erased)
    }

    /// The owner (end user) of a conversation, soft-deleted ones included: `None` when there
    /// is no such conversation, `Some(None)` when it belongs to the organisation.
    pub async fn conversation_owner(
        &self,
        org: &OrgId,
        id: ConversationId,
    ) -> StoreResult<Option<Option<String>>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT end_user FROM conversations WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(org.as_str())
            .fetch_optional(pool)
            .await)?)
    }

    /// Takes the turn lease of a live conversation unless someone else holds an unexpired one.
    /// Returns the conversation (with its state) on success, `None` when the lease is held.
    pub async fn acquire_lease(
        &self,
        org: &OrgId,
        id: ConversationId,
        token: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>> {
        let sql = format!(
            "UPDATE conversations SET lease_token = $3, lease_expires_at = $4 \
             WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL \
             AND (lease_token IS NULL OR lease_expires_at < $5) RETURNING {CONV_COLUMNS}"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .bind(org.as_str())
            .bind(token)
            .bind(expires_at)
            .bind(now)
            .fetch_optional(pool)
            .await)?)
    }

    /// Gives the lease back (after a failed turn; a committed turn releases it in its commit).
    pub async fn release_lease(
        &self,
        org: &OrgId,
        id: ConversationId,
        token: Uuid,
    ) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE conversations SET lease_token = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND org_id = $2 AND lease_token = $3")
            .bind(id)
            .bind(org.as_str())
            .bind(token)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Live messages with `seq > after_seq`, oldest first: the history window.
    pub async fn messages_after(
        &self,
        org: &OrgId,
        conversation: ConversationId,
        after_seq: i64,
    ) -> StoreResult<Vec<Message>> {
        let sql = format!(
            "SELECT {MSG_COLUMNS} FROM messages WHERE conversation_id = $1 AND org_id = $2 \
             AND seq > $3 AND deleted_at IS NULL ORDER BY seq"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(conversation)
            .bind(org.as_str())
            .bind(after_seq)
            .fetch_all(pool)
            .await)?)
    }

    /// A page of live messages; `newest_first` orders by sequence descending.
    pub async fn list_messages(
        &self,
        org: &OrgId,
        conversation: ConversationId,
        newest_first: bool,
        page: PageRequest,
    ) -> StoreResult<Page<Message>> {
        let order = if newest_first { "DESC" } else { "ASC" };
        let cond = "conversation_id = $1 AND org_id = $2 AND deleted_at IS NULL";
        let sql = format!(
            "SELECT {MSG_COLUMNS} FROM messages WHERE {cond} ORDER BY seq {order} LIMIT $3 OFFSET $4"
        );
        let count = format!("SELECT COUNT(*) FROM messages WHERE {cond}");
        let (items, total) = on_pool!(self, pool => {
            let items: Vec<Message> = sqlx::query_as(&sql)
                .bind(conversation).bind(org.as_str()).bind(page.limit).bind(page.offset)
                .fetch_all(pool).await?;
            let total: i64 = sqlx::query_scalar(&count)
                .bind(conversation).bind(org.as_str())
                .fetch_one(pool).await?;
            (items, total)
        });
        Ok(Page { items, total })
    }

    /// Soft-deletes one message; false when there is no such live message.
    pub async fn soft_delete_message(
        &self,
        org: &OrgId,
        conversation: ConversationId,
        message: MessageId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let n = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE messages SET deleted_at = $4 WHERE id = $1 AND conversation_id = $2 \
                 AND org_id = $3 AND deleted_at IS NULL")
                .bind(message).bind(conversation).bind(org.as_str()).bind(now)
                .execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                sqlx::query("UPDATE conversations SET message_count = message_count - 1, updated_at = $2 WHERE id = $1")
                    .bind(conversation).bind(now)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// Writes a finished turn: its messages, checkpoints, run record, the new state, the
    /// idempotency record, and releases the lease — all or nothing.
    pub async fn commit_turn(&self, t: &TurnCommit<'_>) -> StoreResult<()> {
        let count = i64::try_from(t.messages.len()).unwrap_or(i64::MAX);
        let last_version = t.checkpoints.last().map(|c| c.version);
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if !t.messages.is_empty() {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO messages (id, conversation_id, org_id, seq, role, content, tool_calls, \
                     tool_call_id, tool_name, run_id, model, usage, created_at) ");
                qb.push_values(t.messages.iter().enumerate(), |mut b, (i, m)| {
                    b.push_bind(m.id)
                        .push_bind(t.conversation_id)
                        .push_bind(t.org.as_str())
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
                    "INSERT INTO checkpoints (conversation_id, version, parent_version, run_id, step, state, created_at) ");
                qb.push_values(&t.checkpoints, |mut b, c| {
                    b.push_bind(t.conversation_id)
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
            let updated = sqlx::query(
                "UPDATE conversations SET last_seq = $3, message_count = message_count + $4, \
                 last_message_at = $5, state = $6, checkpoint_version = COALESCE($7, checkpoint_version), \
                 updated_at = $5, lease_token = NULL, lease_expires_at = NULL \
                 WHERE id = $1 AND org_id = $2 AND lease_token = $8")
                .bind(t.conversation_id)
                .bind(t.org.as_str())
                .bind(t.base_seq + count)
                .bind(count)
                .bind(t.now)
                .bind(Json(t.state))
                .bind(last_version)
                .bind(t.lease_token)
                .execute(&mut *tx).await?.rows_affected();
            if updated == 0 {
                // The lease expired and someone else took the conversation: writing now would
                // interleave two turns. Roll back; the caller reports a timeout.
                return Err(StoreError::Conflict("the turn lease was lost".to_owned()));
            }
            if let Some((key, hash, response)) = t.idempotency {
                sqlx::query(
                    "INSERT INTO idempotency_keys (org_id, key, request_hash, response, conversation_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, key) DO UPDATE \
                     SET request_hash = excluded.request_hash, response = excluded.response, \
                     conversation_id = excluded.conversation_id, created_at = excluded.created_at \
                     WHERE idempotency_keys.created_at < $7")
                    .bind(t.org.as_str()).bind(key).bind(hash).bind(Json(response)).bind(t.conversation_id)
                    .bind(t.now).bind(t.now - IDEMPOTENCY_WINDOW)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records a failed turn's run (its messages are not written).
    pub async fn record_failed_run(&self, org: &OrgId, run: &RunRecord) -> StoreResult<()> {
        on_pool!(self, pool => insert_run!(pool, org, run))?;
        Ok(())
    }

    /// The stored response of an idempotency key used within `since`: `(request hash, response)`.
    pub async fn idempotent_response(
        &self,
        org: &OrgId,
        key: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<Option<(String, Value)>> {
        let row: Option<(String, Json<Value>)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT request_hash, response FROM idempotency_keys WHERE org_id = $1 AND key = $2 AND created_at > $3")
            .bind(org.as_str())
            .bind(key)
            .bind(since)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(|(h, r)| (h, r.0)))
    }

    /// Erases up to `batch` sessions of `org` idle since before `idle_before` — each through
    /// [`Store::erase_conversation`], so what they left behind goes too and `session.deleted`
    /// is recorded — and idempotency records older than `keys_before`. Returns the number of
    /// sessions erased; a session whose turn is running is left for the next sweep.
    pub async fn sweep(
        &self,
        org: &OrgId,
        idle_before: DateTime<Utc>,
        keys_before: DateTime<Utc>,
        now: DateTime<Utc>,
        batch: i64,
    ) -> StoreResult<u64> {
        let idle: Vec<ConversationId> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM conversations WHERE org_id = $1 AND kind = $4 AND updated_at < $2 \
             ORDER BY updated_at LIMIT $3")
            .bind(org.as_str()).bind(idle_before).bind(batch).bind(ConversationKind::Session.as_str())
            .fetch_all(pool).await)?;
        let mut erased = 0;
        for id in idle {
            match self.erase_conversation(org, id, now).await {
                Ok(true) => erased += 1,
                Ok(false) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        on_pool!(self, pool => sqlx::query("DELETE FROM idempotency_keys WHERE org_id = $1 AND created_at < $2")
            .bind(org.as_str()).bind(keys_before)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(erased)
    }

    pub async fn get_run(&self, org: &OrgId, id: RunId) -> StoreResult<Option<Run>> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT id, conversation_id, status, model, steps, prompt_tokens, completion_tokens, total_tokens, \
             error, started_at, finished_at FROM runs WHERE org_id = $1 AND id = $2")
            .bind(org.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// Runs of a conversation, oldest first (for tests and diagnostics).
    pub async fn list_runs(
        &self,
        org: &OrgId,
        conversation: ConversationId,
    ) -> StoreResult<Vec<(RunId, String, Option<String>)>> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT id, status, error FROM runs WHERE org_id = $1 AND conversation_id = $2 ORDER BY started_at, id")
            .bind(org.as_str())
            .bind(conversation)
            .fetch_all(pool)
            .await)?)
    }

    /// Checkpoints of a conversation: `(version, parent_version, step, state)`, oldest first.
    pub async fn list_checkpoints(
        &self,
        conversation: ConversationId,
    ) -> StoreResult<Vec<(i64, Option<i64>, i64, Json<ConversationState>)>> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT version, parent_version, step, state FROM checkpoints WHERE conversation_id = $1 ORDER BY version")
            .bind(conversation)
            .fetch_all(pool)
            .await)?)
    }
}
