//! Persistence of organisations.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{Store, StoreError, StoreResult, is_unique_violation, on_pool, on_read};
use crate::domain::org::{Org, OrgDraft, OrgSettings};
use crate::domain::page::{Page, PageRequest};
use crate::domain::{OrgId, RateLimit, Tier};

#[derive(sqlx::FromRow)]
struct OrgRow {
    id: String,
    name: String,
    active: bool,
    tier: String,
    rate_limit_requests: i64,
    rate_limit_window_seconds: i64,
    settings: Json<OrgSettings>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<OrgRow> for Org {
    type Error = StoreError;

    fn try_from(r: OrgRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("org {}: {what}", r.id));
        Ok(Org {
            id: OrgId::parse(&r.id).map_err(|_| corrupt("id"))?,
            tier: Tier::parse(&r.tier).map_err(|_| corrupt("tier"))?,
            rate_limit: RateLimit {
                requests: u32::try_from(r.rate_limit_requests)
                    .map_err(|_| corrupt("rate_limit_requests"))?,
                window_seconds: u32::try_from(r.rate_limit_window_seconds)
                    .map_err(|_| corrupt("rate_limit_window_seconds"))?,
            },
            name: r.name,
            active: r.active,
            settings: r.settings.0,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLUMNS: &str = "id, name, active, tier, rate_limit_requests, rate_limit_window_seconds, \
                       settings, version, created_at, updated_at";

impl Store {
    /// Inserts a new organisation; `Conflict` when the id is taken.
    pub async fn create_org(
        &self,
        id: &OrgId,
        d: &OrgDraft,
        now: DateTime<Utc>,
    ) -> StoreResult<Org> {
        let sql = "INSERT INTO orgs (id, name, active, tier, rate_limit_requests, \
                   rate_limit_window_seconds, settings, version, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)";
        let res = on_pool!(self, pool => sqlx::query(sql)
            .bind(id.as_str())
            .bind(&d.name)
            .bind(d.active)
            .bind(d.tier.as_str())
            .bind(i64::from(d.rate_limit.requests))
            .bind(i64::from(d.rate_limit.window_seconds))
            .bind(Json(&d.settings))
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()));
        match res {
            Ok(_) => Ok(Org {
                id: id.clone(),
                name: d.name.clone(),
                active: d.active,
                tier: d.tier,
                rate_limit: d.rate_limit,
                settings: d.settings.clone(),
                version: 1,
                created_at: now,
                updated_at: now,
            }),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "organisation {id} already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_org(&self, id: &OrgId) -> StoreResult<Option<Org>> {
        let sql = format!("SELECT {COLUMNS} FROM orgs WHERE id = $1");
        let row: Option<OrgRow> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(id.as_str())
            .fetch_optional(pool)
            .await)?;
        row.map(Org::try_from).transpose()
    }

    /// Organisations newest first.
    pub async fn list_orgs(&self, page: PageRequest) -> StoreResult<Page<Org>> {
        let sql =
            format!("SELECT {COLUMNS} FROM orgs ORDER BY created_at DESC, id LIMIT $1 OFFSET $2");
        let (rows, total): (Vec<OrgRow>, i64) = on_read!(self, pool => {
            let rows = sqlx::query_as(&sql).bind(page.limit).bind(page.offset).fetch_all(pool).await?;
            let total = sqlx::query_scalar("SELECT COUNT(*) FROM orgs").fetch_one(pool).await?;
            (rows, total)
        });
        let items = rows
            .into_iter()
            .map(Org::try_from)
            .collect::<StoreResult<_>>()?;
        Ok(Page::by_offset(items, total, page))
    }

    pub async fn count_orgs(&self) -> StoreResult<i64> {
        Ok(
            on_read!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM orgs")
            .fetch_one(pool)
            .await)?,
        )
    }

    /// Writes `d` over organisation `id` if it is still at `expected_version`; `Conflict` when
    /// someone changed it since, `NotFound` when it does not exist.
    pub async fn update_org(
        &self,
        id: &OrgId,
        expected_version: i64,
        d: &OrgDraft,
        now: DateTime<Utc>,
    ) -> StoreResult<Org> {
        let sql = format!(
            "UPDATE orgs SET name = $3, active = $4, tier = $5, rate_limit_requests = $6, \
             rate_limit_window_seconds = $7, settings = $8, updated_at = $9, version = version + 1 \
             WHERE id = $1 AND version = $2 RETURNING {COLUMNS}"
        );
        let row: Option<OrgRow> = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let row: Option<OrgRow> = sqlx::query_as(&sql)
                .bind(id.as_str())
                .bind(expected_version)
                .bind(&d.name)
                .bind(d.active)
                .bind(d.tier.as_str())
                .bind(i64::from(d.rate_limit.requests))
                .bind(i64::from(d.rate_limit.window_seconds))
                .bind(Json(&d.settings))
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            if row.is_some() {
                // Every instance drops its cached copy within a second (auth_changes).
                sqlx::query("INSERT INTO auth_changes (kind, org_id, created_at) VALUES ('org', $1, $2)")
                    .bind(id.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            row
        });
        match row {
            Some(row) => row.try_into(),
            None => match self.get_org(id).await? {
                Some(current) => Err(StoreError::Conflict(format!(
                    "organisation {id} is at version {}, not {expected_version}; re-read it and retry",
                    current.version
                ))),
                None => Err(StoreError::NotFound(format!("no organisation {id}"))),
            },
        }
    }

    /// Browser origins of every active organisation (for the CORS allow-list).
    pub async fn active_org_origins(&self) -> StoreResult<Vec<String>> {
        let docs: Vec<Json<OrgSettings>> = on_read!(self, pool => sqlx::query_scalar(
            "SELECT settings FROM orgs WHERE active = $1")
            .bind(true)
            .fetch_all(pool)
            .await)?;
        Ok(docs.into_iter().flat_map(|s| s.0.allowed_origins).collect())
    }
}
