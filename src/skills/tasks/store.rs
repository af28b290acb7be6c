//! The tasks skill's table: to-do items per owner (an end user, or `session:<id>` for the
//! anonymous visitor of an API-key session).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{ConversationId, OrgId};
use crate::store::{Store, StoreResult, on_pool, on_read};

/// A task as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Task {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

const TASK_COLUMNS: &str = "id, title, description, status, created_at, completed_at";

/// The tasks skill's queries, on the shared store.
#[derive(Clone, Copy)]
pub struct Tasks<'a>(pub &'a Store);

impl Tasks<'_> {
    pub async fn add_task(
        &self,
        org: &OrgId,
        owner: &str,
        // The session whose erasure takes the task with it (API-key callers' tasks).
        session: Option<ConversationId>,
        title: &str,
        description: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Task> {
        let sql = format!(
            "INSERT INTO tasks (id, org_id, owner, conversation_id, title, description, status, created_at) \
             VALUES ($1, $2, $3, $7, $4, $5, 'pending', $6) RETURNING {TASK_COLUMNS}"
        );
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql)
            .bind(Uuid::now_v7()).bind(org.as_str()).bind(owner).bind(title).bind(description).bind(now).bind(session)
            .fetch_one(pool).await)?)
    }

    /// An owner's tasks, oldest first; `status` filters when given.
    pub async fn list_tasks(
        &self,
        org: &OrgId,
        owner: &str,
        status: Option<&str>,
    ) -> StoreResult<Vec<Task>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE org_id = $1 AND owner = $2 AND ($3 IS NULL OR status = $3) \
             ORDER BY created_at, id LIMIT 500"
        );
        Ok(on_read!(self.0, pool => sqlx::query_as(&sql)
            .bind(org.as_str()).bind(owner).bind(status)
            .fetch_all(pool).await)?)
    }

    /// Changes a task; `None` when the owner has no such task.
    pub async fn update_task(
        &self,
        org: &OrgId,
        owner: &str,
        id: Uuid,
        title: Option<&str>,
        description: Option<&str>,
        complete_at: Option<DateTime<Utc>>,
    ) -> StoreResult<Option<Task>> {
        let sql = format!(
            "UPDATE tasks SET title = COALESCE($4, title), description = COALESCE($5, description), \
             status = CASE WHEN $6 IS NULL THEN status ELSE 'completed' END, \
             completed_at = COALESCE(completed_at, $6) \
             WHERE org_id = $1 AND owner = $2 AND id = $3 RETURNING {TASK_COLUMNS}"
        );
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql)
            .bind(org.as_str()).bind(owner).bind(id).bind(title).bind(description).bind(complete_at)
            .fetch_optional(pool).await)?)
    }

    pub async fn delete_task(&self, org: &OrgId, owner: &str, id: Uuid) -> StoreResult<bool> {
        let n = on_pool!(self.0, pool => sqlx::query("DELETE FROM tasks WHERE org_id = $1 AND owner = $2 AND id = $3")
            .bind(org.as_str()).bind(owner).bind(id)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }
}
