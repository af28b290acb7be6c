//! Operator actions on organisations and keys, shared by the admin API and the CLI so both
//! validate and behave the same. Cache eviction is the caller's business (the CLI has none).
//! Which tools an organisation may enable is the tool registry's list, passed in.

pub mod agents;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::api_keys;
use crate::domain::org::{BusinessHours, Org, OrgPatch, OrgSettings, demo_services};
use crate::domain::{FieldError, OrgId, RateLimit, Tier};
use crate::store::keys::{ApiKey, NewKeyRecord};
use crate::store::{Store, StoreError};

/// Why an operator action was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("no organisation {0}")]
    NotFound(OrgId),
    #[error("{0}")]
    Conflict(String),
    /// The caller named a version (`If-Match` or `version`) that is no longer current.
    #[error("{0}")]
    StaleVersion(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("could not hash the key: {0}")]
    Hashing(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::Conflict(what),
            other => Self::Store(other),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// Body of `POST /api/v1/admin/orgs/{org}/keys`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// What the key is for, to tell keys apart later.
    #[schema(example = "WordPress plugin")]
    pub name: String,
    /// When the key stops working; never, when absent.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key just created: the only time its plaintext is ever shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The whole key. Store it now: it cannot be shown again.
    #[schema(example = "ak_Xk3v9QmZp2Lb_0Wq1e2R3t4Y5u6I7o8P9a0S1d2F3g4H5j6K7l8Z9")]
    pub api_key: String,
}

/// Creates an organisation; `known_tools` are the tool registry's names (all enabled by
/// default).
pub async fn create_org(
    store: &Store,
    known_tools: &[&str],
    id: &str,
    patch: OrgPatch,
) -> AdminResult<Org> {
    let (id, draft) = patch
        .into_new_draft(id, known_tools)
        .map_err(AdminError::Validation)?;
    Ok(store.create_org(&id, &draft, crate::domain::now()).await?)
}

pub async fn get_org(store: &Store, id: &OrgId) -> AdminResult<Org> {
    store
        .get_org(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(id.clone()))
}

/// Applies `patch` to the organisation. With `expected_version`, the change is refused
/// (`StaleVersion`) when the organisation has moved on, even if it moves on between this read
/// and the write; without, it applies to the version just read.
pub async fn update_org(
    store: &Store,
    known_tools: &[&str],
    id: &OrgId,
    patch: OrgPatch,
    expected_version: Option<i64>,
) -> AdminResult<Org> {
    let current = get_org(store, id).await?;
    if let Some(v) = expected_version {
        if v != current.version {
            return Err(AdminError::StaleVersion(format!(
                "organisation {id} is at version {}, not {v}; re-read it and retry",
                current.version
            )));
        }
    }
    let draft = patch
        .apply_to(&current, known_tools)
        .map_err(AdminError::Validation)?;
    if draft == current.draft() {
        // Nothing changes: no write, and the version (and so the ETag) stays.
        return Ok(current);
    }
    match store
        .update_org(id, current.version, &draft, crate::domain::now())
        .await
    {
        Err(StoreError::Conflict(what)) if expected_version.is_some() => {
            Err(AdminError::StaleVersion(what))
        }
        other => Ok(other?),
    }
}

pub async fn create_key(store: &Store, org: &OrgId, req: &NewApiKey) -> AdminResult<CreatedApiKey> {
    let mut errors = Vec::new();
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "must be 1 to 100 characters"));
    }
    let now = crate::domain::now();
    if req.expires_at.is_some_and(|e| e <= now) {
        errors.push(FieldError::new("expires_at", "must be in the future"));
    }
    if !errors.is_empty() {
        return Err(AdminError::Validation(errors));
    }
    // Fail with 404 rather than a foreign-key error when the org does not exist.
    get_org(store, org).await?;
    let generated = api_keys::generate();
    let plaintext = generated.plaintext.clone();
    let hash = tokio::task::spawn_blocking(move || api_keys::hash(&plaintext))
        .await
        .map_err(|e| AdminError::Hashing(e.to_string()))?
        .map_err(|e| AdminError::Hashing(e.to_string()))?;
    let key = store
        .create_key(
            org,
            &NewKeyRecord {
                id: uuid::Uuid::now_v7(),
                name,
                prefix: &generated.prefix,
                secret_hash: &hash,
                fingerprint: Some(&crate::auth::fingerprint_hex(&api_keys::fingerprint(
                    &generated.plaintext,
                ))),
                created_at: now,
                expires_at: req.expires_at,
            },
        )
        .await?;
    Ok(CreatedApiKey {
        key,
        api_key: generated.plaintext,
    })
}

/// The first-run `demo` organisation's quota: generous enough to explore the README, the
/// plugin guide and the playground in one sitting (a free tier's 100 an hour ran out during
/// them, issue 11.9); an end user still gets RATE_LIMIT_END_USER_SHARE of it.
pub const DEMO_RATE_LIMIT: RateLimit = RateLimit {
    requests: 10_000,
    window_seconds: 3600,
};

/// On an empty database, creates org `demo` with sample services and a key for it; returns
/// the key's plaintext, or `None` when there already is an organisation.
pub async fn bootstrap_demo(store: &Store, known_tools: &[&str]) -> AdminResult<Option<String>> {
    if store.count_orgs().await? > 0 {
        return Ok(None);
    }
    let patch = OrgPatch {
        name: Some("Demo Clinic".to_owned()),
        tier: Some(Tier::Custom),
        rate_limit: Some(DEMO_RATE_LIMIT),
        services: Some(demo_services()),
        business_hours: Some(BusinessHours::every_day()),
        system_prompt: Some(format!(
            "You are the booking assistant of Demo Clinic. {}",
            OrgSettings::default().system_prompt
        )),
        ..OrgPatch::default()
    };
    let org = match create_org(store, known_tools, "demo", patch).await {
        Ok(org) => org,
        // Another instance bootstrapped at the same moment: theirs stands.
        Err(AdminError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let key = create_key(
        store,
        &org.id,
        &NewApiKey {
            name: "first-run demo key".to_owned(),
            expires_at: None,
        },
    )
    .await?;
    Ok(Some(key.api_key))
}
