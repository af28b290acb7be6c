//! Persistence of conversations (sessions included), their messages, checkpoints, runs, turn
//! leases and idempotency keys. A turn touches the database three times: take the lease (which
//! also returns the conversation row with its state), read the history window, and commit
//! everything the turn produced in one transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::webhooks::record_event;
use super::{Store, StoreError, StoreResult, on_pool, on_read};
use crate::domain::conversation::{Conversation, ConversationKind, Message};
use crate::domain::events::{ConversationCreatedData, EventType, SessionDeletedData};
use crate::domain::page::{Page, PageRequest};
use crate::domain::{ConversationId, MessageId, OrgId};

/// The `data` of a conversation's `conversation.created` event.
pub(crate) fn created_data(
    id: ConversationId,
    kind: ConversationKind,
    end_user: Option<&str>,
    title: &str,
    created_at: DateTime<Utc>,
) -> ConversationCreatedData {
    ConversationCreatedData {
        conversation_id: id,
        kind,
        end_user: end_user.map(str::to_owned),
        title: title.to_owned(),
        created_at,
    }
}

pub(crate) const CONV_COLUMNS: &str = "id, org_id, kind, end_user, title, metadata, archived, last_seq, \
    message_count, last_message_at, state, checkpoint_version, created_at, updated_at";

pub(crate) const MSG_COLUMNS: &str = "id, seq, role, content, tool_calls, tool_call_id, tool_name, run_id, \
    model, usage, created_at";

/// Filters for listing conversations.
#[derive(Debug, Default)]
pub struct ConversationFilter<'a> {
    /// Only this end user's (for end-user callers).
    pub end_user: Option<&'a str>,
    pub archived: Option<bool>,
}

impl Store {
    /// The session `id` of `org`, created (with its `conversation.created` event) if it does
    /// not exist; `NotFound` when it was deleted.
    pub async fn ensure_session(
        &self,
        org: &OrgId,
        id: ConversationId,
        end_user: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Conversation> {
        let title = format!("Chat {}", now.format("%Y-%m-%d %H:%M"));
        if let Self::Postgres(pool) = self {
            // One statement: insert unless it exists (with the event), or read what exists.
            let sql = format!(
                "WITH ins AS (\
                    INSERT INTO conversations (id, org_id, kind, end_user, title, created_at, updated_at) \
                    VALUES ($1, $2, 'session', $3, $4, $5, $5) ON CONFLICT (org_id, id) DO NOTHING \
                    RETURNING {CONV_COLUMNS}), \
                 {outbox} \
                 SELECT * FROM ins UNION ALL SELECT {CONV_COLUMNS} FROM conversations \
                 WHERE org_id = $2 AND id = $1 AND deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM ins)",
                outbox = super::webhooks::outbox_ctes("ins", "$2", "$6", "$7", "$8", "$5"),
            );
            let data = created_data(id, ConversationKind::Session, end_user, &title, now);
            let conv: Option<Conversation> = sqlx::query_as(&sql)
                .bind(id)
                .bind(org.as_str())
                .bind(end_user)
                .bind(&title)
                .bind(now)
                .bind(EventType::CONVERSATION_CREATED.as_str())
                .bind(Json(&data))
                .bind(uuid::Uuid::now_v7())
                .fetch_optional(pool)
                .await?;
            return conv.ok_or_else(|| StoreError::NotFound(format!("no session {id}")));
        }
        // SQLite: most calls find the session, so read first; the insert (with its event)
        // runs in a transaction only once.
        if let Some(conv) = self.get_conversation(org, id).await? {
            return Ok(conv);
        }
        let insert = format!(
            "INSERT INTO conversations (id, org_id, kind, end_user, title, created_at, updated_at) \
             VALUES ($1, $2, $6, $3, $4, $5, $5) ON CONFLICT (org_id, id) DO NOTHING RETURNING {CONV_COLUMNS}"
        );
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
            if conv.is_some() {
                let data = created_data(id, ConversationKind::Session, end_user, &title, now);
                record_event!(&mut *tx, org, EventType::CONVERSATION_CREATED, &data, now)?;
            }
            tx.commit().await?;
            conv
        });
        match created {
            Some(conv) => Ok(conv),
            // Created meanwhile by a concurrent first message, or deleted.
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
            let data = created_data(conv.id, conv.kind, conv.end_user.as_deref(), &conv.title, now);
            record_event!(&mut *tx, org, EventType::CONVERSATION_CREATED, &data, now)?;
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
        Ok(on_read!(self, pool => sqlx::query_as(&sql)
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
        // The cursor compares with the stored row itself (deleted ones too, so a page's last
        // item deleted meanwhile still works), in the list's order; one row more tells
        // whether more follow.
        let sql = format!(
            "SELECT {CONV_COLUMNS} FROM conversations WHERE {cond} \
             AND ($6 IS NULL OR (created_at, id) < \
                  (SELECT c.created_at, c.id FROM conversations c WHERE c.org_id = $1 AND c.id = $6)) \
             ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
        );
        let count = format!("SELECT COUNT(*) FROM conversations WHERE {cond}");
        let (items, total) = on_read!(self, pool => {
            if let Some(after) = page.after {
                let known: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM conversations WHERE org_id = $1 AND id = $2")
                    .bind(org.as_str()).bind(after).fetch_one(pool).await?;
                if known == 0 {
                    return Err(StoreError::UnknownCursor(after));
                }
            }
            let items: Vec<Conversation> = sqlx::query_as(&sql)
                .bind(org.as_str())
                .bind(filter.end_user)
                .bind(filter.archived)
                .bind(page.limit + 1)
                .bind(page.offset)
                .bind(page.after)
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
        Ok(Page::by_peek(items, total, page))
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
                sqlx::query("UPDATE messages SET deleted_at = $3 WHERE org_id = $2 AND conversation_id = $1 AND deleted_at IS NULL")
                    .bind(id).bind(org.as_str()).bind(now)
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
        Ok(on_read!(self, pool => sqlx::query_scalar(
            "SELECT end_user FROM conversations WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(org.as_str())
            .fetch_optional(pool)
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
        let (order, beyond) = if newest_first {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        let cond = "conversation_id = $1 AND org_id = $2 AND deleted_at IS NULL";
        // The cursor is a message of this conversation (a deleted one too); its sequence
        // number places it. One row more tells whether more follow.
        let sql = format!(
            "SELECT {MSG_COLUMNS} FROM messages WHERE {cond} \
             AND ($5 IS NULL OR seq {beyond} (SELECT m.seq FROM messages m \
                  WHERE m.conversation_id = $1 AND m.org_id = $2 AND m.id = $5)) \
             ORDER BY seq {order} LIMIT $3 OFFSET $4"
        );
        let count = format!("SELECT COUNT(*) FROM messages WHERE {cond}");
        let (items, total) = on_read!(self, pool => {
            if let Some(after) = page.after {
                let known: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND org_id = $2 AND id = $3")
                    .bind(conversation).bind(org.as_str()).bind(after).fetch_one(pool).await?;
                if known == 0 {
                    return Err(StoreError::UnknownCursor(after));
                }
            }
            let items: Vec<Message> = sqlx::query_as(&sql)
                .bind(conversation).bind(org.as_str()).bind(page.limit + 1).bind(page.offset)
                .bind(page.after)
                .fetch_all(pool).await?;
            let total: i64 = sqlx::query_scalar(&count)
                .bind(conversation).bind(org.as_str())
                .fetch_one(pool).await?;
            (items, total)
        });
        Ok(Page::by_peek(items, total, page))
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
                sqlx::query("UPDATE conversations SET message_count = message_count - 1, updated_at = $3 WHERE org_id = $2 AND id = $1")
                    .bind(conversation).bind(org.as_str()).bind(now)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
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
        // A session idle since `idle_before` was created before it: walk the org's oldest
        // conversations by the creation index (no index on updated_at, which every turn
        // changes: see the migration).
        let idle: Vec<ConversationId> = on_read!(self, pool => sqlx::query_scalar(
            "SELECT id FROM conversations WHERE org_id = $1 AND created_at < $2 AND kind = $4 \
             AND updated_at < $2 ORDER BY created_at, id LIMIT $3")
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
}
