//! Persistence of the mailbox's agents (issue 12): handle, names, the argon2id hash of the
//! secret and its version. A change is logged in `auth_changes` (as an organisation change),
//! so every instance drops what it cached about the organisation's agents within a second.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Store, StoreError, StoreResult, is_unique_violation, on_pool, on_read};
use crate::domain::OrgId;
use crate::domain::agents::AgentHandle;

/// An agent as the admin API shows it: everything but the secret.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Agent {
    /// The handle again: every resource carries its identifier as `id` (issue 11.8).
    #[schema(example = "billing-bot")]
    pub id: String,
    #[schema(example = "billing-bot")]
    pub handle: String,
    #[schema(example = "Billing assistant")]
    pub display_name: String,
    #[schema(example = "Answers questions about invoices.")]
    pub description: String,
    pub active: bool,
    /// Grows with every rotation of the secret; tokens of older versions are refused.
    pub secret_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What authentication needs: the agent and its secret's hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentCredential {
    #[sqlx(flatten)]
    pub agent: Agent,
    pub secret_hash: String,
}

/// An agent to register.
#[derive(Debug)]
pub struct NewAgentRecord<'a> {
    pub handle: &'a AgentHandle,
    pub display_name: &'a str,
    pub description: &'a str,
    pub active: bool,
    pub secret_hash: &'a str,
    pub now: DateTime<Utc>,
}

/// Changes to an agent; `None` keeps the value.
#[derive(Debug, Default)]
pub struct AgentChange<'a> {
    pub display_name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub active: Option<bool>,
    /// A new secret's hash: the version grows.
    pub secret_hash: Option<&'a str>,
}

const COLUMNS: &str = "handle AS id, handle, display_name, description, active, secret_version, \
     created_at, updated_at";

impl Store {
    pub async fn create_agent(&self, org: &OrgId, a: &NewAgentRecord<'_>) -> StoreResult<Agent> {
        let sql = format!(
            "INSERT INTO mailbox_agents (org_id, handle, display_name, description, active, \
             secret_hash, secret_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7) RETURNING {COLUMNS}"
        );
        let res: Result<Agent, sqlx::Error> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(a.handle.as_str())
            .bind(a.display_name)
            .bind(a.description)
            .bind(a.active)
            .bind(a.secret_hash)
            .bind(a.now)
            .fetch_one(pool)
            .await);
        match res {
            Ok(agent) => Ok(agent),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "organisation {org} already has an agent {}",
                a.handle
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_agent(&self, org: &OrgId, handle: &AgentHandle) -> StoreResult<Option<Agent>> {
        let sql = format!("SELECT {COLUMNS} FROM mailbox_agents WHERE org_id = $1 AND handle = $2");
        Ok(on_read!(self, pool => sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(handle.as_str())
            .fetch_optional(pool)
            .await)?)
    }

    /// The agent with its secret's hash, for a login.
    pub async fn get_agent_credential(
        &self,
        org: &OrgId,
        handle: &AgentHandle,
    ) -> StoreResult<Option<AgentCredential>> {
        let sql = format!(
            "SELECT {COLUMNS}, secret_hash FROM mailbox_agents WHERE org_id = $1 AND handle = $2"
        );
        Ok(on_read!(self, pool => sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(handle.as_str())
            .fetch_optional(pool)
            .await)?)
    }

    /// The organisation's agents by handle.
    pub async fn list_agents(&self, org: &OrgId) -> StoreResult<Vec<Agent>> {
        let sql = format!("SELECT {COLUMNS} FROM mailbox_agents WHERE org_id = $1 ORDER BY handle");
        Ok(on_read!(self, pool => sqlx::query_as(&sql)
            .bind(org.as_str())
            .fetch_all(pool)
            .await)?)
    }

    /// Of `handles`, those that are active agents of the organisation.
    pub async fn active_agent_handles(
        &self,
        org: &OrgId,
        handles: &[String],
    ) -> StoreResult<Vec<String>> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let list = (0..handles.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT handle FROM mailbox_agents WHERE org_id = $1 AND active AND handle IN ({list})"
        );
        Ok(on_read!(self, pool => {
            let mut q = sqlx::query_scalar(&sql).bind(org.as_str());
            for h in handles {
                q = q.bind(h);
            }
            q.fetch_all(pool).await
        })?)
    }

    /// Applies `change`; `NotFound` when the organisation has no such agent.
    pub async fn update_agent(
        &self,
        org: &OrgId,
        handle: &AgentHandle,
        change: &AgentChange<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<Agent> {
        let sql = format!(
            "UPDATE mailbox_agents SET \
               display_name = COALESCE($3, display_name), \
               description = COALESCE($4, description), \
               active = COALESCE($5, active), \
               secret_hash = COALESCE($6, secret_hash), \
               secret_version = secret_version + (CASE WHEN $6 IS NULL THEN 0 ELSE 1 END), \
               updated_at = $7 \
             WHERE org_id = $1 AND handle = $2 RETURNING {COLUMNS}"
        );
        let row: Option<Agent> = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let row: Option<Agent> = sqlx::query_as(&sql)
                .bind(org.as_str())
                .bind(handle.as_str())
                .bind(change.display_name)
                .bind(change.description)
                .bind(change.active)
                .bind(change.secret_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            if row.is_some() {
                // Other instances drop their cached agents of this organisation.
                sqlx::query("INSERT INTO auth_changes (kind, org_id, created_at) VALUES ('org', $1, $2)")
                    .bind(org.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            row
        });
        row.ok_or_else(|| StoreError::NotFound(format!("organisation {org} has no agent {handle}")))
    }
}

/// An audit event of the mailbox to record (issue 12.5), in the transaction of its change.
#[derive(Debug, Clone)]
pub struct NewAudit {
    /// `message.sent`, `message.replied`, `message.broadcast`, `thread.metadata_set`, …
    pub event_type: &'static str,
    pub actor: String,
    pub target: Option<String>,
    pub details: serde_json::Value,
}

/// `INSERT` of `n` audit events (7 parameters each).
pub fn audit_insert_sql(n: usize) -> String {
    let rows = (0..n)
        .map(|r| {
            let p: Vec<String> = (1..=7).map(|c| format!("${}", r * 7 + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO mailbox_audit_events (event_id, org_id, event_type, actor_handle, \
         target_handle, details, timestamp) VALUES {rows}"
    )
}

/// Records `$events` (a `&[NewAudit]`) of organisation `$org` on `$tx`, a transaction of
/// either backend: expanded inside an `on_pool!` body, so one text serves both.
macro_rules! record_audit {
    ($tx:expr, $org:expr, $now:expr, $events:expr) => {{
        let events: &[$crate::store::agents::NewAudit] = $events;
        if !events.is_empty() {
            let sql = $crate::store::agents::audit_insert_sql(events.len());
            let mut q = sqlx::query(&sql);
            for e in events {
                q = q
                    .bind(uuid::Uuid::now_v7())
                    .bind($org.as_str())
                    .bind(e.event_type)
                    .bind(e.actor.as_str())
                    .bind(e.target.as_deref())
                    .bind(sqlx::types::Json(&e.details))
                    .bind($now);
            }
            q.execute(&mut *$tx).await?;
        }
    }};
}
pub(crate) use record_audit;

impl Store {
    /// Records that an agent token was issued (the login writes nothing else).
    pub async fn record_token_issued(
        &self,
        org: &OrgId,
        handle: &AgentHandle,
        details: serde_json::Value,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let events = [NewAudit {
            event_type: "token.issued",
            actor: handle.to_string(),
            target: Some(handle.to_string()),
            details,
        }];
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            record_audit!(tx, org, now, &events);
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })
    }
}
