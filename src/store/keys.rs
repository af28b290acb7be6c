//! Persistence of API keys — only the prefix, the key's SHA-256 fingerprint and an argon2id
//! hash are stored, never the key — and of `auth_changes`, the log of revocations and
//! organisation changes every instance follows to drop what it cached.

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
    pub prefix: String,
    pub secret_hash: String,
    /// SHA-256 of the whole key (hex); `None` for keys made before fingerprints, until their
    /// first successful argon2 verification.
    pub fingerprint: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One revocation or organisation change, as instances read them to drop cached state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuthChange {
    pub seq: i64,
    /// `key` or `org`.
    pub kind: String,
    pub org_id: String,
    pub key_id: Option<Uuid>,
    pub key_prefix: Option<String>,
}

/// A key to insert; the caller generated the id, prefix and hash.
#[derive(Debug)]
pub struct NewKeyRecord<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub prefix: &'a str,
    pub secret_hash: &'a str,
    /// SHA-256 of the key (hex); `None` only for keys imported from before fingerprints.
    pub fingerprint: Option<&'a str>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, prefix, created_at, last_used_at, expires_at, revoked_at";
const CREDENTIAL_COLUMNS: &str =
    "id, org_id, prefix, secret_hash, fingerprint, expires_at, revoked_at";

impl Store {
    pub async fn create_key(&self, org: &OrgId, k: &NewKeyRecord<'_>) -> StoreResult<ApiKey> {
        let sql = "INSERT INTO api_keys (id, org_id, name, prefix, secret_hash, fingerprint, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4, $5, $8, $6, $7)";
        let res = on_pool!(self, pool => sqlx::query(sql)
            .bind(k.id)
            .bind(org.as_str())
            .bind(k.name)
            .bind(k.prefix)
            .bind(k.secret_hash)
            .bind(k.created_at)
            .bind(k.expires_at)
            .bind(k.fingerprint)
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
        let row: Option<ApiKey> = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let row: Option<ApiKey> = sqlx::query_as(&sql)
                .bind(org.as_str())
                .bind(key_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(key) = &row {
                sqlx::query(
                    "INSERT INTO auth_changes (kind, org_id, key_id, key_prefix, created_at) \
                     VALUES ('key', $1, $2, $3, $4)")
                    .bind(org.as_str())
                    .bind(key.id)
                    .bind(&key.prefix)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            row
        });
        row.ok_or_else(|| StoreError::NotFound(format!("organisation {org} has no key {key_id}")))
    }

    /// Looks a key up by its public prefix. Not tenant-scoped on purpose: this is how a request
    /// finds out which tenant it belongs to.
    pub async fn find_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<KeyCredential>> {
        let sql = format!("SELECT {CREDENTIAL_COLUMNS} FROM api_keys WHERE prefix = $1");
        Ok(on_read!(self, pool => sqlx::query_as(&sql)
            .bind(prefix)
            .fetch_optional(pool)
            .await)?)
    }

    /// A key by id (for tokens, which name the key that minted them).
    pub async fn find_key_by_id(&self, id: Uuid) -> StoreResult<Option<KeyCredential>> {
        let sql = format!("SELECT {CREDENTIAL_COLUMNS} FROM api_keys WHERE id = $1");
        Ok(on_read!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// Stores the fingerprint of a key verified the slow way, so it is never argon2'd again.
    pub async fn set_key_fingerprint(&self, id: Uuid, fingerprint: &str) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE api_keys SET fingerprint = $2 WHERE id = $1 AND fingerprint IS NULL")
            .bind(id)
            .bind(fingerprint)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Changes with `seq > after`, oldest first (at most 1000).
    pub async fn auth_changes_after(&self, after: i64) -> StoreResult<Vec<AuthChange>> {
        Ok(on_read!(self, pool => sqlx::query_as(
            "SELECT seq, kind, org_id, key_id, key_prefix FROM auth_changes WHERE seq > $1 ORDER BY seq LIMIT 1000")
            .bind(after)
            .fetch_all(pool)
            .await)?)
    }

    /// The newest change's number (0 when there is none).
    pub async fn last_auth_change(&self) -> StoreResult<i64> {
        let n: Option<i64> = on_read!(self, pool => sqlx::query_scalar(
            "SELECT MAX(seq) FROM auth_changes")
            .fetch_one(pool)
            .await)?;
        Ok(n.unwrap_or(0))
    }

    /// Forgets changes older than `before`.
    pub async fn prune_auth_changes(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(
            on_pool!(self, pool => sqlx::query("DELETE FROM auth_changes WHERE created_at < $1")
            .bind(before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?,
        )
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
