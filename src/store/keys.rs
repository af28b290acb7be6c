//! Persistence of API keys. Only the prefix and an argon2id hash are stored, never the key.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Store, StoreError, StoreResult, is_unique_violation, on_pool, on_read};
use crate::domain::OrgId;

/// An API key as listed to its owner: everything but the secret.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    #[schema(example = "WordPress plugin")]
    pub name: String,
    /// The public part of the key (`ak_<prefix>_…`), to tell keys apart.
    #[schema(example = "Xk3v9QmZp2Lb")]
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What authentication needs to know about a key, found by its prefix.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyCredential {
    pub id: Uuid,
    pub org_id: String,
    pub secret_hash: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key to insert; the caller generated the id, prefix and hash.
#[derive(Debug)]
pub struct NewKeyRecord<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub prefix: &'a str,
    pub secret_hash: &'a str,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, prefix, created_at, last_used_at, expires_at, revoked_at";

impl Store {
    pub async fn create_key(&self, org: &OrgId, k: &NewKeyRecord<'_>) -> StoreResult<ApiKey> {
        let sql = "INSERT INTO api_keys (id, org_id, name, prefix, secret_hash, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        let res = on_pool!(self, pool => sqlx::query(sql)
            .bind(k.id)
            .bind(org.as_str())
            .bind(k.name)
            .bind(k.prefix)
            .bind(k.secret_hash)
            .bind(k.created_at)
            .bind(k.expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()));
        match res {
            Ok(_) => Ok(ApiKey {
                id: k.id,
                name: k.name.to_owned(),
                prefix: k.prefix.to_owned(),
                created_at: k.created_at,
                last_used_at: None,
                expires_at: k.expires_at,
                revoked_at: None,
            }),
            // 72 random bits make a prefix collision practically impossible; report it anyway.
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(
                "key prefix collision; try again".to_owned(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The organisation's keys, newest first, revoked ones included.
    pub async fn list_keys(&self, org: &OrgId) -> StoreResult<Vec<ApiKey>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC, id"
        );
        Ok(on_read!(self, pool => sqlx::query_as(&sql)
            .bind(org.as_str())
            .fetch_all(pool)
            .await)?)
    }

    /// Marks a key revoked (idempotent: an already revoked key keeps its first revocation time).
    /// `NotFound` when the organisation has no such key.
    pub async fn revoke_key(
        &self,
        org: &OrgId,
        key_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKey> {
        let sql = format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) \
             WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
        );
        let row: Option<ApiKey> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(key_id)
            .bind(now)
            .fetch_optional(pool)
            .await)?;
        row.ok_or_else(|| StoreError::NotFound(format!("organisation {org} has no key {key_id}")))
    }

    /// Looks a key up by its public prefix. Not tenant-scoped on purpose: this is how a request
    /// finds out which tenant it belongs to.
    pub async fn find_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<KeyCredential>> {
        let sql = "SELECT id, org_id, secret_hash, expires_at, revoked_at FROM api_keys WHERE prefix = $1";
        Ok(on_read!(self, pool => sqlx::query_as(sql)
            .bind(prefix)
            .fetch_optional(pool)
            .await)?)
    }

    /// Records that a key was used (called at most about once a minute per key).
    pub async fn touch_key(&self, key_id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(key_id)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
