//! The mailbox's tables (migration `20261202000001_mailbox`): threads, their participants,
//! messages, each agent's view of them (`mailbox_message_agents`) and the full-text index
//! (FTS5 on SQLite, a weighted `tsvector` with a GIN index on PostgreSQL). Every query takes
//! the organisation and, where it reads, the agent whose view it is.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::OrgId;
use crate::domain::agents::AgentHandle;
use crate::domain::page::{Page, PageRequest};
use crate::store::agents::{NewAudit, record_audit};
use crate::store::{Store, StoreResult, on_pool, on_read};

/// A message as stored and as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Message {
    /// UUIDv7: ids sort by creation.
    pub id: Uuid,
    pub thread_id: Uuid,
    #[schema(example = "planner")]
    pub from_handle: String,
    #[schema(value_type = Vec<String>, example = json!(["billing-bot"]))]
    pub to_handles: Json<Vec<String>>,
    #[schema(example = "Invoice 2291")]
    pub subject: String,
    #[schema(example = "Can you check why invoice 2291 was charged twice?")]
    pub body: String,
    #[schema(value_type = Vec<String>, example = json!(["billing"]))]
    pub tags: Json<Vec<String>>,
    /// The message this one answers, for replies.
    pub in_reply_to: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// A thread as one participant sees it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Thread {
    pub id: Uuid,
    #[schema(example = "Invoice 2291")]
    pub subject: String,
    #[schema(example = "planner")]
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// When the latest message was sent: threads are listed by it.
    pub last_message_at: DateTime<Utc>,
    pub message_count: i64,
    /// Key → JSON value, shared by the participants.
    #[schema(value_type = crate::domain::chat::JsonObject)]
    pub metadata: Json<serde_json::Map<String, serde_json::Value>>,
    /// Whether the caller archived it (archiving is per participant).
    pub archived: bool,
    /// Everyone in the thread, by handle (filled in after the read).
    #[sqlx(skip)]
    pub participant_handles: Vec<String>,
}

const THREAD_COLUMNS: &str = "t.id, t.subject, t.created_by, t.created_at, t.last_message_at, \
    t.message_count, t.metadata, p.archived";

const MESSAGE_COLUMNS: &str = "m.id, m.thread_id, m.from_handle, m.to_handles, m.subject, m.body, \
    m.tags, m.in_reply_to, m.created_at";

/// Where an outgoing message goes: a new thread, or one that exists.
#[derive(Debug, Clone)]
pub enum ThreadTarget {
    New { id: Uuid },
    Existing { id: Uuid },
}

impl ThreadTarget {
    fn id(&self) -> Uuid {
        match self {
            Self::New { id } | Self::Existing { id } => *id,
        }
    }
}

/// A message to store, already validated.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub thread: ThreadTarget,
    pub id: Uuid,
    pub from: AgentHandle,
    /// Distinct, active agents of the organisation.
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub tags: Vec<String>,
    pub in_reply_to: Option<Uuid>,
    /// The audit event recorded per recipient: `message.sent`, `message.replied` or
    /// `message.broadcast`.
    pub audit_type: &'static str,
}

/// The audit events of a message: one per recipient.
fn message_events(m: &Outgoing) -> Vec<NewAudit> {
    m.to.iter()
        .map(|to| NewAudit {
            event_type: m.audit_type,
            actor: m.from.to_string(),
            target: Some(to.clone()),
            details: serde_json::json!({"message_id": m.id, "thread_id": m.thread.id()}),
        })
        .collect()
}

/// A full-text search, already validated.
#[derive(Debug, Clone)]
pub struct Search {
    /// The words to find (all of them), lower-case letters and digits only.
    pub words: Vec<String>,
    pub in_subject: bool,
    pub in_body: bool,
    pub from_handle: Option<AgentHandle>,
    pub to_handle: Option<AgentHandle>,
    pub limit: i64,
}

impl Search {
    /// FTS5 query: every word as a quoted string (so no word is read as an operator), with a
    /// column filter when only one column is searched.
    fn fts5_query(&self) -> String {
        let filter = match (self.in_subject, self.in_body) {
            (true, false) => "{subject} : ",
            (false, true) => "{body} : ",
            _ => "",
        };
        self.words
            .iter()
            .map(|w| format!("{filter}\"{w}\""))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// tsquery text: every word quoted, all required, restricted to the subject's (A) or the
    /// body's (B) weight when only one column is searched.
    fn tsquery(&self) -> String {
        let weight = match (self.in_subject, self.in_body) {
            (true, false) => ":A",
            (false, true) => ":B",
            _ => "",
        };
        self.words
            .iter()
            .map(|w| format!("'{w}'{weight}"))
            .collect::<Vec<_>>()
            .join(" & ")
    }
}

/// The mailbox's queries on the shared store.
pub struct Mailbox<'a>(pub &'a Store);

/// `($a, $b, …), (…)` for `rows` rows of `width` parameters numbered from `first`.
fn values(rows: usize, width: usize, first: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols = (0..width)
                .map(|c| format!("${}", first + r * width + c))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({cols})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Mailbox<'_> {
    /// Stores `messages` (each starting a thread or joining one) in one transaction: the
    /// message, its thread's participants and counters, and a view row for the sender and
    /// every recipient.
    pub async fn send(
        &self,
        org: &OrgId,
        messages: &[Outgoing],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Message>> {
        on_pool!(self.0, pool => {
            let mut tx = pool.begin().await?;
            for m in messages {
                let thread = m.thread.id();
                match &m.thread {
                    ThreadTarget::New { id } => {
                        sqlx::query(
                            "INSERT INTO mailbox_threads (id, org_id, subject, created_by, created_at, \
                             last_message_at, message_count) VALUES ($1, $2, $3, $4, $5, $5, 1)")
                            .bind(id)
                            .bind(org.as_str())
                            .bind(&m.subject)
                            .bind(m.from.as_str())
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                    ThreadTarget::Existing { id } => {
                        sqlx::query(
                            "UPDATE mailbox_threads SET last_message_at = $3, \
                             message_count = message_count + 1 WHERE org_id = $1 AND id = $2")
                            .bind(org.as_str())
                            .bind(id)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                // The sender first, then the recipients; each agent once.
                let mut agents: Vec<(&str, bool, bool)> = vec![(m.from.as_str(), true, m.to.iter().any(|t| t == m.from.as_str()))];
                agents.extend(m.to.iter().filter(|t| *t != m.from.as_str()).map(|t| (t.as_str(), false, true)));

                let sql = format!(
                    "INSERT INTO mailbox_thread_participants (thread_id, org_id, handle) VALUES {} \
                     ON CONFLICT (thread_id, handle) DO NOTHING",
                    values(agents.len(), 3, 1)
                );
                let mut q = sqlx::query(&sql);
                for (handle, _, _) in &agents {
                    q = q.bind(thread).bind(org.as_str()).bind(*handle);
                }
                q.execute(&mut *tx).await?;

                sqlx::query(
                    "INSERT INTO mailbox_messages (id, org_id, thread_id, from_handle, to_handles, \
                     subject, body, tags, in_reply_to, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                    .bind(m.id)
                    .bind(org.as_str())
                    .bind(thread)
                    .bind(m.from.as_str())
                    .bind(Json(&m.to))
                    .bind(&m.subject)
                    .bind(&m.body)
                    .bind(Json(&m.tags))
                    .bind(m.in_reply_to)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;

                let sql = format!(
                    "INSERT INTO mailbox_message_agents (org_id, handle, message_id, thread_id, sent, received) \
                     VALUES {}",
                    values(agents.len(), 6, 1)
                );
                let mut q = sqlx::query(&sql);
                for (handle, sent, received) in &agents {
                    q = q.bind(org.as_str()).bind(*handle).bind(m.id).bind(thread).bind(*sent).bind(*received);
                }
                q.execute(&mut *tx).await?;
                record_audit!(tx, org, now, &message_events(m));
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(messages
            .iter()
            .map(|m| Message {
                id: m.id,
                thread_id: m.thread.id(),
                from_handle: m.from.to_string(),
                to_handles: Json(m.to.clone()),
                subject: m.subject.clone(),
                body: m.body.clone(),
                tags: Json(m.tags.clone()),
                in_reply_to: m.in_reply_to,
                created_at: now,
            })
            .collect())
    }

    /// Message `id`, if `agent` sent or received it.
    pub async fn visible_message(
        &self,
        org: &OrgId,
        agent: &AgentHandle,
        id: Uuid,
    ) -> StoreResult<Option<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM mailbox_message_agents a \
             JOIN mailbox_messages m ON m.id = a.message_id \
             WHERE a.org_id = $1 AND a.handle = $2 AND a.message_id = $3"
        );
        Ok(on_read!(self.0, pool => sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(agent.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// Whether `agent` takes part in thread `id`.
    pub async fn is_participant(
        &self,
        org: &OrgId,
        agent: &AgentHandle,
        thread: Uuid,
    ) -> StoreResult<bool> {
        let found: Option<i32> = on_read!(self.0, pool => sqlx::query_scalar(
            "SELECT 1 FROM mailbox_thread_participants WHERE org_id = $1 AND handle = $2 AND thread_id = $3")
            .bind(org.as_str())
            .bind(agent.as_str())
            .bind(thread)
            .fetch_optional(pool)
            .await)?;
        Ok(found.is_some())
    }

    /// The participants of thread `id`, by handle.
    pub async fn participants(&self, org: &OrgId, thread: Uuid) -> StoreResult<Vec<String>> {
        Ok(on_read!(self.0, pool => sqlx::query_scalar(
            "SELECT handle FROM mailbox_thread_participants WHERE org_id = $1 AND thread_id = $2 ORDER BY handle")
            .bind(org.as_str())
            .bind(thread)
            .fetch_all(pool)
            .await)?)
    }

    /// The messages `agent` sent or received, newest first; only thread `thread`'s when given.
    pub async fn list_messages(
        &self,
        org: &OrgId,
        agent: &AgentHandle,
        thread: Option<Uuid>,
        page: PageRequest,
    ) -> StoreResult<Page<Message>> {
        self.message_page(org, agent, thread, "DESC", page).await
    }

    /// A page of the messages `agent` sent or received (of one thread when given), by id
    /// (time) in `order` (`ASC` or `DESC`), with their count.
    async fn message_page(
        &self,
        org: &OrgId,
        agent: &AgentHandle,
        thread: Option<Uuid>,
        order: &'static str,
        page: PageRequest,
    ) -> StoreResult<Page<Message>> {
        let filter = if thread.is_some() {
            "AND a.thread_id = $3"
        } else {
            "AND $3 IS NULL"
        };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM mailbox_message_agents a \
             JOIN mailbox_messages m ON m.id = a.message_id \
             WHERE a.org_id = $1 AND a.handle = $2 {filter} \
             ORDER BY a.message_id {order} LIMIT $4 OFFSET $5"
        );
        let count = format!(
            "SELECT COUNT(*) FROM mailbox_message_agents a WHERE a.org_id = $1 AND a.handle = $2 {filter}"
        );
        let (items, total) = on_read!(self.0, pool => {
            let items: Vec<Message> = sqlx::query_as(&sql)
                .bind(org.as_str())
                .bind(agent.as_str())
                .bind(thread)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(&count)
                .bind(org.as_str())
                .bind(agent.as_str())
                .bind(thread)
                .fetch_one(pool)
                .await?;
            Ok::<_, sqlx::Error>((items, total))
        })?;
        Ok(Page::by_offset(items, total, page))
    }

    /// The messages `agent` sent or received that hold every word, best match first (the
    /// subject weighs more than the body; ties newest first).
    pub async fn search(
        &self,
        org: &OrgId,
        agent: &AgentHandle,
        search: &Search,
    ) -> StoreResult<Vec<Message>> {
        // Both filters are always in the statement (one plan whichever are used).
        let to_filter = |cast: &str| {
            format!(
                "AND ($5{cast} IS NULL OR EXISTS (SELECT 1 FROM mailbox_message_agents r \
                 WHERE r.org_id = $1 AND r.handle = $5 AND r.message_id = m.id AND r.received))"
            )
        };
        let from = search.from_handle.as_ref().map(AgentHandle::as_str);
        let to = search.to_handle.as_ref().map(AgentHandle::as_str);
        Ok(match self.0 {
            Store::Sqlite(pools) => {
                // bm25: lower is better; the subject weighs ten times the body.
                let sql = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM mailbox_messages_fts f \
                     JOIN mailbox_messages m ON m.rowid = f.rowid \
                     JOIN mailbox_message_agents a ON a.message_id = m.id \
                     WHERE mailbox_messages_fts MATCH $3 AND a.org_id = $1 AND a.handle = $2 \
                     AND ($4 IS NULL OR m.from_handle = $4) {} \
                     ORDER BY bm25(mailbox_messages_fts, 10.0, 1.0), m.id DESC LIMIT $6",
                    to_filter("")
                );
                sqlx::query_as(&sql)
                    .bind(org.as_str())
                    .bind(agent.as_str())
                    .bind(search.fts5_query())
                    .bind(from)
                    .bind(to)
                    .bind(search.limit)
                    .fetch_all(&pools.read)
                    .await?
            }
            Store::Postgres(pool) => {
                // ts_rank_cd with the subject (A) weighing ten times the body (B), as on
                // SQLite: a subject match outranks a few body matches on both backends.
                let sql = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM mailbox_message_agents a \
                     JOIN mailbox_messages m ON m.id = a.message_id \
                     WHERE a.org_id = $1 AND a.handle = $2 AND m.search @@ to_tsquery('simple', $3) \
                     AND ($4::text IS NULL OR m.from_handle = $4) {} \
                     ORDER BY ts_rank_cd('{{0.01, 0.02, 0.1, 1.0}}', m.search, to_tsquery('simple', $3)) DESC, m.id DESC LIMIT $6",
                    to_filter("::text")
                );
                sqlx::query_as(&sql)
                    .bind(org.as_str())
                    .bind(agent.as_str())
                    .bind(search.tsquery())
                    .bind(from)
                    .bind(to)
                    .bind(search.limit)
                    .fetch_all(pool)
                    .await?
            }
        })
    }
}

impl Mailbox<'_> {
    /// Fills in the participants of `threads` (one query).
    async fn with_participants(
        &self,
        org: &OrgId,
        mut threads: Vec<Thread>,
    ) -> StoreResult<Vec<Thread>> {
        if threads.is_empty() {
            return Ok(threads);
        }
        let list = (0..threads.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT thread_id, handle FROM mailbox_thread_participants \
             WHERE org_id = $1 AND thread_id IN ({list}) ORDER BY handle"
        );
        let rows: Vec<(Uuid, String)> = on_read!(self.0, pool => {
            let mut q = sqlx::query_as(&sql).bind(org.as_str());
            for t in &threads {
                q = q.bind(t.id);
            }
            q.fetch_all(pool).await
        })?;
        for (thread, handle) in rows {
            if let Some(t) = threads.iter_mut().find(|t| t.id == thread) {
                t.participant_handles.push(handle);
            }
        }
        Ok(threads)
    }

    /// The threads `agent` takes part in, most recently active first; only archived (or only
    /// not archived) ones when `archived` is given.
    pub async fn list_threads(
        &self,
        org: &OrgId,
        agent: &AgentHandle,
        archived: Option<bool>,
        page: PageRequest,
    ) -> StoreResult<Page<Thread>> {
        let sql = format!(
            "SELECT {THREAD_COLUMNS} FROM mailbox_thread_participants p \
             JOIN mailbox_threads t ON t.id = p.thread_id \
             WHERE p.org_id = $1 AND p.handle = $2 AND ($3 IS NULL OR p.archived = $3) \
             ORDER BY t.last_message_at DESC, t.id DESC LIMIT $4 OFFSET $5"
        );
        let (items, total) = on_read!(self.0, pool => {
            let items: Vec<Thread> = sqlx::query_as(&sql)
                .bind(org.as_str())
                .bind(agent.as_str())
                .bind(archived)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM mailbox_thread_participants p \
                 WHERE p.org_id = $1 AND p.handle = $2 AND ($3 IS NULL OR p.archived = $3)")
                .bind(org.as_str())
                .bind(agent.as_str())
                .bind(archived)
                .fetch_one(pool)
                .await?;
            Ok::<_, sqlx::Error>((items, total))
        })?;
        Ok(Page::by_offset(
            self.with_participants(org, items).await?,
            total,
            page,
        ))
    }

    /// Thread `id` as `agent` sees it, if it takes part.
    pub async fn visible_thread(
        &self,
        org: &OrgId,
        agent: &AgentHandle,
        id: Uuid,
    ) -> StoreResult<Option<Thread>> {
        let sql = format!(
            "SELECT {THREAD_COLUMNS} FROM mailbox_thread_participants p \
             JOIN mailbox_threads t ON t.id = p.thread_id \
             WHERE p.org_id = $1 AND p.handle = $2 AND p.thread_id = $3"
        );
        let found: Option<Thread> = on_read!(self.0, pool => sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(agent.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        Ok(match found {
            Some(t) => self.with_participants(org, vec![t]).await?.pop(),
            None => None,
        })
    }

    /// The messages of thread `id` that `agent` sent or received, oldest first.
    pub async fn thread_messages(
        &self,
        org: &OrgId,
        agent: &AgentHandle,
        thread: Uuid,
        page: PageRequest,
    ) -> StoreResult<Page<Message>> {
        self.message_page(org, agent, Some(thread), "ASC", page)
            .await
    }

    /// The newest message of thread `id` that `agent` sent or received.
    pub async fn latest_message(
        &self,
        org: &OrgId,
        agent: &AgentHandle,
        thread: Uuid,
    ) -> StoreResult<Option<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM mailbox_message_agents a \
             JOIN mailbox_messages m ON m.id = a.message_id \
             WHERE a.org_id = $1 AND a.handle = $2 AND a.thread_id = $3 \
             ORDER BY a.message_id DESC LIMIT 1"
        );
        Ok(on_read!(self.0, pool => sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(agent.as_str())
            .bind(thread)
            .fetch_optional(pool)
            .await)?)
    }

    /// Sets (`Some`) or removes (`None`) one key of thread `id`'s metadata, atomically (the
    /// row is locked on PostgreSQL; SQLite has one writer). Returns the whole metadata.
    pub async fn set_thread_metadata(
        &self,
        org: &OrgId,
        actor: &AgentHandle,
        thread: Uuid,
        key: &str,
        value: Option<&serde_json::Value>,
    ) -> StoreResult<serde_json::Map<String, serde_json::Value>> {
        let lock = match self.0.backend() {
            crate::store::Backend::Postgres => " FOR UPDATE",
            crate::store::Backend::Sqlite => "",
        };
        let select =
            format!("SELECT metadata FROM mailbox_threads WHERE org_id = $1 AND id = $2{lock}");
        let metadata = on_pool!(self.0, pool => {
            let mut tx = pool.begin().await?;
            let current: Option<Json<serde_json::Map<String, serde_json::Value>>> = sqlx::query_scalar(&select)
                .bind(org.as_str())
                .bind(thread)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(Json(mut metadata)) = current else {
                return Err(crate::store::StoreError::NotFound(format!("no thread {thread}")));
            };
            match value {
                Some(v) => {
                    metadata.insert(key.to_owned(), v.clone());
                }
                None => {
                    metadata.remove(key);
                }
            }
            sqlx::query("UPDATE mailbox_threads SET metadata = $3 WHERE org_id = $1 AND id = $2")
                .bind(org.as_str())
                .bind(thread)
                .bind(Json(&metadata))
                .execute(&mut *tx)
                .await?;
            let event = NewAudit {
                event_type: if value.is_some() { "thread.metadata_set" } else { "thread.metadata_removed" },
                actor: actor.to_string(),
                target: None,
                details: serde_json::json!({"thread_id": thread, "key": key}),
            };
            record_audit!(tx, org, crate::domain::now(), &[event]);
            tx.commit().await?;
            Ok::<_, crate::store::StoreError>(metadata)
        })?;
        Ok(metadata)
    }

    /// Archives or unarchives thread `id` for `agent`; false when it is no participant.
    pub async fn set_archived(
        &self,
        org: &OrgId,
        agent: &AgentHandle,
        thread: Uuid,
        archived: bool,
    ) -> StoreResult<bool> {
        let event = NewAudit {
            event_type: if archived {
                "thread.archived"
            } else {
                "thread.unarchived"
            },
            actor: agent.to_string(),
            target: None,
            details: serde_json::json!({"thread_id": thread}),
        };
        let n = on_pool!(self.0, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE mailbox_thread_participants SET archived = $4 \
                 WHERE org_id = $1 AND handle = $2 AND thread_id = $3")
                .bind(org.as_str())
                .bind(agent.as_str())
                .bind(thread)
                .bind(archived)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                record_audit!(tx, org, crate::domain::now(), &[event]);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(n)
        })?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(words: &[&str], in_subject: bool, in_body: bool) -> Search {
        Search {
            words: words.iter().map(|w| (*w).to_owned()).collect(),
            in_subject,
            in_body,
            from_handle: None,
            to_handle: None,
            limit: 20,
        }
    }

    #[test]
    fn queries_quote_every_word_and_filter_columns() {
        let s = search(&["invoice", "and"], true, true);
        assert_eq!(s.fts5_query(), r#""invoice" AND "and""#);
        assert_eq!(s.tsquery(), "'invoice' & 'and'");
        let s = search(&["invoice"], true, false);
        assert_eq!(s.fts5_query(), r#"{subject} : "invoice""#);
        assert_eq!(s.tsquery(), "'invoice':A");
        let s = search(&["invoice"], false, true);
        assert_eq!(s.tsquery(), "'invoice':B");
    }

    #[test]
    fn values_number_rows_of_parameters() {
        assert_eq!(values(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
    }
}
