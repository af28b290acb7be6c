//! Persistence of webhooks: endpoints and their subscriptions, the transactional outbox
//! (`webhook_events` + one `webhook_deliveries` row per subscribed endpoint), the worker's
//! claim-with-lease, and the per-attempt delivery log.
//!
//! Events are written by [`record_event!`] on the transaction of the change that causes them,
//! so a booking and its `appointment.created` commit together or not at all.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Backend, Store, StoreError, StoreResult, on_pool, on_read};
use crate::domain::OrgId;
use crate::domain::events::EventType;
use crate::domain::page::{Page, PageRequest};

/// The subscription rows of one endpoint, through a transaction of either backend.
macro_rules! insert_subscriptions {
    ($conn:expr, $org:expr, $webhook:expr, $types:expr) => {{
        let types: &[EventType] = $types;
        if types.is_empty() {
            Ok::<u64, sqlx::Error>(0)
        } else {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO webhook_subscriptions (webhook_id, org_id, event_type) ",
            );
            qb.push_values(types, |mut b, t| {
                b.push_bind($webhook)
                    .push_bind($org.as_str())
                    .push_bind(t.as_str());
            });
            qb.build().execute($conn).await.map(|r| r.rows_affected())
        }
    }};
}

/// Records `$event` with `$data` (anything `Serialize`) for `$org` on `$conn` — a `&mut *tx` of
/// either backend — fanning it out to every active endpoint subscribed to it. Writes nothing
/// but one indexed lookup when no endpoint listens. Evaluates to
/// `Result<Option<event id>, sqlx::Error>`.
macro_rules! record_event {
    ($conn:expr, $org:expr, $event:expr, $data:expr, $now:expr) => {{
        let conn = $conn;
        let org: &$crate::domain::OrgId = $org;
        let event: $crate::domain::events::EventType = $event;
        let now: chrono::DateTime<chrono::Utc> = $now;
        let data = sqlx::types::Json($data);
        async move {
            let hooks: Vec<uuid::Uuid> = sqlx::query_scalar(
                "SELECT s.webhook_id FROM webhook_subscriptions s JOIN webhooks w ON w.id = s.webhook_id \
                 WHERE s.org_id = $1 AND s.event_type = $2 AND w.active",
            )
            .bind(org.as_str())
            .bind(event.as_str())
            .fetch_all(&mut *conn)
            .await?;
            if hooks.is_empty() {
                return Ok::<Option<uuid::Uuid>, sqlx::Error>(None);
            }
            let id = uuid::Uuid::now_v7();
            sqlx::query(
                "INSERT INTO webhook_events (id, org_id, event_type, data, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(org.as_str())
            .bind(event.as_str())
            .bind(data)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO webhook_deliveries (id, webhook_id, event_id, org_id, status, attempts, \
                 next_attempt_at, created_at, updated_at) ",
            );
            qb.push_values(hooks, |mut b, hook| {
                b.push_bind(uuid::Uuid::now_v7())
                    .push_bind(hook)
                    .push_bind(id)
                    .push_bind(org.as_str())
                    .push_bind("pending")
                    .push_bind(0_i32)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(now);
            });
            qb.build().execute(&mut *conn).await?;
            Ok(Some(id))
        }
        .await
    }};
}
pub(crate) use record_event;

/// The outbox write of [`record_event!`] as PostgreSQL common table expressions, for a statement
/// that records an event in the same round trip as the change causing it: `hooks`, `ev` and
/// `dlv`, written only when the CTE `cond` returned a row. The other arguments name the
/// statement's parameters holding the org id, event type, data (jsonb), event id and time.
pub(crate) fn outbox_ctes(
    cond: &str,
    org: &str,
    event_type: &str,
    data: &str,
    event_id: &str,
    now: &str,
) -> String {
    format!(
        "hooks AS (SELECT s.webhook_id FROM webhook_subscriptions s JOIN webhooks w ON w.id = s.webhook_id \
            WHERE s.org_id = {org} AND s.event_type = {event_type} AND w.active \
            AND EXISTS (SELECT 1 FROM {cond})), \
         ev AS (INSERT INTO webhook_events (id, org_id, event_type, data, created_at) \
            SELECT {event_id}, {org}, {event_type}, {data}, {now} WHERE EXISTS (SELECT 1 FROM hooks) \
            RETURNING id), \
         dlv AS (INSERT INTO webhook_deliveries (id, webhook_id, event_id, org_id, status, attempts, \
            next_attempt_at, created_at, updated_at) \
            SELECT gen_random_uuid(), hooks.webhook_id, ev.id, {org}, 'pending', 0, {now}, {now}, {now} \
            FROM hooks, ev)"
    )
}

/// A registered endpoint. Its secret is never read back (it is shown only at registration,
/// and the delivery worker reads it with the delivery).
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: Uuid,
    pub org_id: String,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    pub active: bool,
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: Uuid,
    org_id: String,
    url: String,
    description: Option<String>,
    active: bool,
    failing_since: Option<DateTime<Utc>>,
    disabled_at: Option<DateTime<Utc>>,
    disabled_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const HOOK_COLUMNS: &str = "id, org_id, url, description, active, failing_since, \
    disabled_at, disabled_reason, created_at, updated_at";

impl WebhookRow {
    fn into_webhook(self, event_types: Vec<String>) -> StoreResult<Webhook> {
        Ok(Webhook {
            id: self.id,
            org_id: self.org_id,
            url: self.url,
            description: self.description,
            event_types,
            active: self.active,
            failing_since: self.failing_since,
            disabled_at: self.disabled_at,
            disabled_reason: self.disabled_reason,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Changes to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    pub active: Option<bool>,
}

/// One line of an endpoint's delivery log.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct DeliveryAttempt {
    pub id: Uuid,
    /// The event's id (the `webhook-id` header).
    pub event_id: Uuid,
    #[schema(example = "appointment.created")]
    pub event_type: String,
    /// 1 for the first attempt of this event to this endpoint.
    #[schema(example = 1)]
    pub attempt: i32,
    /// `delivered`, `retry_scheduled`, `failed` (retries exhausted) or `endpoint_disabled`
    /// (the endpoint failed continuously for WEBHOOK_DISABLE_AFTER_SECONDS and was switched off).
    #[schema(example = "delivered")]
    pub outcome: String,
    /// The endpoint's HTTP status, when it answered.
    #[schema(example = 200)]
    pub status_code: Option<i32>,
    /// Time from sending to the response (or the failure).
    #[schema(example = 42)]
    pub latency_ms: Option<i64>,
    /// Why the attempt failed.
    pub error: Option<String>,
    /// When the next attempt is due, for `retry_scheduled`.
    pub next_retry_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const ATTEMPT_COLUMNS: &str = "id, event_id, event_type, attempt, outcome, status_code, \
    latency_ms, error, next_retry_at, created_at";

/// A delivery this worker holds the lease of, with everything needed to send it.
#[derive(sqlx::FromRow)]
pub struct DueDelivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub org_id: String,
    /// Attempts made before this one.
    pub attempts: i32,
    pub lock_token: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub data: Json<Value>,
    pub event_created_at: DateTime<Utc>,
    pub url: String,
    pub secret: String,
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("id", &self.id)
            .field("webhook_id", &self.webhook_id)
            .field("event_id", &self.event_id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

const DUE_SELECT: &str = "SELECT d.id, d.webhook_id, d.org_id, d.attempts, d.lock_token, \
    e.id AS event_id, e.event_type, e.data, e.created_at AS event_created_at, w.url, w.secret \
    FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
    JOIN webhooks w ON w.id = d.webhook_id WHERE d.lock_token = $1";

/// What became of one attempt, as the worker decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    RetryScheduled,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::RetryScheduled => "retry_scheduled",
            Self::Failed => "failed",
        }
    }
}

/// The result of one attempt, to be written by [`Store::finish_delivery`].
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub outcome: Outcome,
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub next_retry_at: Option<DateTime<Utc>>,
}

impl Store {
    /// How many endpoints `org` has (the API caps it).
    pub async fn count_webhooks(&self, org: &OrgId) -> StoreResult<i64> {
        Ok(
            on_read!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE org_id = $1")
            .bind(org.as_str()).fetch_one(pool).await)?,
        )
    }

    /// Registers an endpoint with its subscriptions, atomically.
    pub async fn create_webhook(
        &self,
        org: &OrgId,
        url: &str,
        // The signing secret as registered (the webhooks module checked its form).
        secret: &str,
        description: Option<&str>,
        event_types: &[EventType],
        now: DateTime<Utc>,
    ) -> StoreResult<Webhook> {
        let id = Uuid::now_v7();
        let sql = format!(
            "INSERT INTO webhooks (id, org_id, url, secret, description, active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {HOOK_COLUMNS}"
        );
        let row: WebhookRow = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let row: WebhookRow = sqlx::query_as(&sql)
                .bind(id).bind(org.as_str()).bind(url).bind(secret).bind(description)
                .bind(true).bind(now)
                .fetch_one(&mut *tx).await?;
            insert_subscriptions!(&mut *tx, org, id, event_types)?;
            tx.commit().await?;
            row
        });
        row.into_webhook(event_types.iter().map(|t| t.as_str().to_owned()).collect())
    }

    /// Endpoints of `org`, newest first.
    pub async fn list_webhooks(
        &self,
        org: &OrgId,
        page: PageRequest,
    ) -> StoreResult<Page<Webhook>> {
        let sql = format!(
            "SELECT {HOOK_COLUMNS} FROM webhooks WHERE org_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        let (rows, total, subs) = on_read!(self, pool => {
            let rows: Vec<WebhookRow> = sqlx::query_as(&sql)
                .bind(org.as_str()).bind(page.limit).bind(page.offset).fetch_all(pool).await?;
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE org_id = $1")
                .bind(org.as_str()).fetch_one(pool).await?;
            // Bounded: an org has at most a few dozen endpoints with a handful of types each.
            let subs: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT webhook_id, event_type FROM webhook_subscriptions WHERE org_id = $1 ORDER BY event_type")
                .bind(org.as_str()).fetch_all(pool).await?;
            (rows, total, subs)
        });
        let items = rows
            .into_iter()
            .map(|r| {
                let types = subs
                    .iter()
                    .filter(|(w, _)| *w == r.id)
                    .map(|(_, t)| t.clone())
                    .collect();
                r.into_webhook(types)
            })
            .collect::<StoreResult<_>>()?;
        Ok(Page::by_offset(items, total, page))
    }

    /// An endpoint of `org`; another org's id is `None`, like an unknown one.
    pub async fn get_webhook(&self, org: &OrgId, id: Uuid) -> StoreResult<Option<Webhook>> {
        let sql = format!("SELECT {HOOK_COLUMNS} FROM webhooks WHERE id = $1 AND org_id = $2");
        let (row, types) = on_read!(self, pool => {
            let row: Option<WebhookRow> = sqlx::query_as(&sql)
                .bind(id).bind(org.as_str()).fetch_optional(pool).await?;
            let types: Vec<String> = sqlx::query_scalar(
                "SELECT event_type FROM webhook_subscriptions WHERE webhook_id = $1 AND org_id = $2 ORDER BY event_type")
                .bind(id).bind(org.as_str()).fetch_all(pool).await?;
            (row, types)
        });
        row.map(|r| r.into_webhook(types)).transpose()
    }

    /// Applies `patch`; re-activating clears the failure record. `None` when there is no such
    /// endpoint in `org`.
    pub async fn update_webhook(
        &self,
        org: &OrgId,
        id: Uuid,
        patch: &WebhookPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Webhook>> {
        let reactivate = patch.active == Some(true);
        let updated = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE webhooks SET url = COALESCE($3, url), description = COALESCE($4, description), \
                 active = COALESCE($5, active), updated_at = $6, \
                 failing_since = CASE WHEN $7 THEN NULL ELSE failing_since END, \
                 disabled_at = CASE WHEN $7 THEN NULL ELSE disabled_at END, \
                 disabled_reason = CASE WHEN $7 THEN NULL ELSE disabled_reason END \
                 WHERE id = $1 AND org_id = $2")
                .bind(id).bind(org.as_str()).bind(&patch.url).bind(&patch.description)
                .bind(patch.active).bind(now).bind(reactivate)
                .execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                if let Some(types) = &patch.event_types {
                    sqlx::query("DELETE FROM webhook_subscriptions WHERE webhook_id = $1")
                        .bind(id).execute(&mut *tx).await?;
                    insert_subscriptions!(&mut *tx, org, id, types)?;
                }
            }
            tx.commit().await?;
            n > 0
        });
        if updated {
            self.get_webhook(org, id).await
        } else {
            Ok(None)
        }
    }

    /// Deletes an endpoint with its pending deliveries and log; false when there was none.
    pub async fn delete_webhook(&self, org: &OrgId, id: Uuid) -> StoreResult<bool> {
        let n = on_pool!(self, pool => sqlx::query("DELETE FROM webhooks WHERE id = $1 AND org_id = $2")
            .bind(id).bind(org.as_str()).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// An endpoint's delivery log, newest first.
    pub async fn list_attempts(
        &self,
        org: &OrgId,
        webhook: Uuid,
        page: PageRequest,
    ) -> StoreResult<Page<DeliveryAttempt>> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE webhook_id = $1 AND org_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
        );
        let (items, total) = on_read!(self, pool => {
            let items: Vec<DeliveryAttempt> = sqlx::query_as(&sql)
                .bind(webhook).bind(org.as_str()).bind(page.limit).bind(page.offset).fetch_all(pool).await?;
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM webhook_attempts WHERE webhook_id = $1 AND org_id = $2")
                .bind(webhook).bind(org.as_str()).fetch_one(pool).await?;
            (items, total)
        });
        Ok(Page::by_offset(items, total, page))
    }

    /// Writes a `webhook.test` event for one endpoint (whatever it subscribes to) with its
    /// delivery already leased to the caller, who sends it at once.
    pub async fn create_test_delivery(
        &self,
        org: &OrgId,
        webhook: Uuid,
        data: &Value,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<DueDelivery>> {
        let event = Uuid::now_v7();
        let token = Uuid::now_v7();
        let inserted = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO webhook_events (id, org_id, event_type, data, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(event).bind(org.as_str()).bind(EventType::WEBHOOK_TEST.as_str()).bind(Json(data)).bind(now)
                .execute(&mut *tx).await?;
            // INSERT … SELECT so a webhook of another org (or a deleted one) inserts nothing.
            let n = sqlx::query(
                "INSERT INTO webhook_deliveries (id, webhook_id, event_id, org_id, status, attempts, \
                 next_attempt_at, locked_until, lock_token, created_at, updated_at) \
                 SELECT $1, id, $2, org_id, 'pending', 0, $3, $4, $5, $3, $3 FROM webhooks WHERE id = $6 AND org_id = $7")
                .bind(Uuid::now_v7()).bind(event).bind(now).bind(lease_until).bind(token)
                .bind(webhook).bind(org.as_str())
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                tx.rollback().await?;
                false
            } else {
                tx.commit().await?;
                true
            }
        });
        if !inserted {
            return Ok(None);
        }
        Ok(
            on_pool!(self, pool => sqlx::query_as(DUE_SELECT).bind(token).fetch_optional(pool).await)?,
        )
    }

    /// Leases up to `limit` due deliveries of active endpoints to this worker until
    /// `lease_until`. On PostgreSQL rows another instance is claiming are skipped (`FOR UPDATE
    /// SKIP LOCKED`), and a leased row is not due again until its lease expires, so one attempt
    /// is never sent twice at once; a worker that dies leaves a lease that simply runs out.
    pub async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<DueDelivery>> {
        let token = Uuid::now_v7();
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE OF d SKIP LOCKED",
            // SQLite runs one writer at a time: the UPDATE is atomic on its own.
            Backend::Sqlite => "",
        };
        let claim = format!(
            "UPDATE webhook_deliveries SET locked_until = $1, lock_token = $2 WHERE id IN (\
             SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $3 \
             AND (d.locked_until IS NULL OR d.locked_until < $3) AND w.active \
             ORDER BY d.next_attempt_at LIMIT $4 {lock})"
        );
        Ok(on_pool!(self, pool => {
            let n = sqlx::query(&claim)
                .bind(lease_until).bind(token).bind(now).bind(limit)
                .execute(pool).await?.rows_affected();
            if n == 0 {
                Vec::new()
            } else {
                sqlx::query_as(DUE_SELECT).bind(token).fetch_all(pool).await?
            }
        }))
    }

    /// Writes the result of an attempt: the delivery's new state (only if this worker still
    /// holds its lease), the log line, and the endpoint's failure record — disabling it when it
    /// has failed without a success for `disable_after`. Returns the log line and whether the
    /// endpoint was disabled now.
    pub async fn finish_delivery(
        &self,
        due: &DueDelivery,
        result: &AttemptResult,
        now: DateTime<Utc>,
        disable_after: Duration,
    ) -> StoreResult<(DeliveryAttempt, bool)> {
        let status = match result.outcome {
            Outcome::Delivered => "delivered",
            Outcome::RetryScheduled => "pending",
            Outcome::Failed => "failed",
        };
        let attempt = due.attempts + 1;
        let log = format!(
            "INSERT INTO webhook_attempts (id, webhook_id, delivery_id, org_id, event_id, event_type, attempt, \
             outcome, status_code, latency_ms, error, next_retry_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {ATTEMPT_COLUMNS}"
        );
        let disable_after =
            chrono::Duration::from_std(disable_after).unwrap_or(chrono::Duration::MAX);
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let owned = sqlx::query(
                "UPDATE webhook_deliveries SET status = $3, attempts = $4, \
                 next_attempt_at = COALESCE($5, next_attempt_at), locked_until = NULL, lock_token = NULL, \
                 updated_at = $6 WHERE id = $1 AND lock_token = $2")
                .bind(due.id).bind(due.lock_token).bind(status).bind(attempt)
                .bind(result.next_retry_at).bind(now)
                .execute(&mut *tx).await?.rows_affected();
            if owned == 0 {
                // The lease was lost: what we did must not be recorded as this row's attempt.
                tx.rollback().await?;
                return Err(StoreError::Conflict("delivery lease lost".to_owned()));
            }
            let line: DeliveryAttempt = sqlx::query_as(&log)
                .bind(Uuid::now_v7()).bind(due.webhook_id).bind(due.id).bind(&due.org_id)
                .bind(due.event_id).bind(&due.event_type).bind(attempt).bind(result.outcome.as_str())
                .bind(result.status_code).bind(result.latency_ms).bind(&result.error)
                .bind(result.next_retry_at).bind(now)
                .fetch_one(&mut *tx).await?;
            let mut disabled = false;
            if result.outcome == Outcome::Delivered {
                sqlx::query("UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
                    .bind(due.webhook_id).execute(&mut *tx).await?;
            } else {
                let row: Option<(Option<DateTime<Utc>>, bool)> = sqlx::query_as(
                    "UPDATE webhooks SET failing_since = COALESCE(failing_since, $2) WHERE id = $1 \
                     RETURNING failing_since, active")
                    .bind(due.webhook_id).bind(now)
                    .fetch_optional(&mut *tx).await?;
                if let Some((Some(since), true)) = row {
                    if now.signed_duration_since(since) >= disable_after {
                        let reason = format!(
                            "Disabled at {}: every delivery failed since {} (WEBHOOK_DISABLE_AFTER_SECONDS = {}). \
                             Fix the endpoint, then PATCH active=true to resume.",
                            now.to_rfc3339(), since.to_rfc3339(), disable_after.num_seconds());
                        sqlx::query(
                            "UPDATE webhooks SET active = $2, disabled_at = $3, disabled_reason = $4, updated_at = $3 \
                             WHERE id = $1")
                            .bind(due.webhook_id).bind(false).bind(now).bind(&reason)
                            .execute(&mut *tx).await?;
                        sqlx::query(
                            "INSERT INTO webhook_attempts (id, webhook_id, delivery_id, org_id, event_id, event_type, \
                             attempt, outcome, error, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'endpoint_disabled', $8, $9)")
                            .bind(Uuid::now_v7()).bind(due.webhook_id).bind(due.id).bind(&due.org_id)
                            .bind(due.event_id).bind(&due.event_type).bind(attempt).bind(&reason).bind(now)
                            .execute(&mut *tx).await?;
                        disabled = true;
                    }
                }
            }
            tx.commit().await?;
            Ok((line, disabled))
        })
    }

    /// Deletes events older than `before` that no delivery still waits for (their deliveries
    /// and log lines go with them), at most `limit` per call. Keeps the outbox bounded.
    pub async fn purge_webhook_events(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<u64> {
        Ok(on_pool!(self, pool => sqlx::query(
            "DELETE FROM webhook_events WHERE id IN (SELECT e.id FROM webhook_events e WHERE e.created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending') \
             LIMIT $2)")
            .bind(before).bind(limit)
            .execute(pool).await.map(|r| r.rows_affected()))?)
    }
}
