//! Turning credentials into a [`Principal`]: API keys, end-user JWTs, and the organisation
//! each belongs to.
//!
//! A key is checked against its stored SHA-256 fingerprint (a key is ~238 random bits, so a
//! fast hash is safe), so a right and a wrong secret cost the same — microseconds, and nothing
//! to learn from timing. Keys made before fingerprints are verified with argon2 once, then get
//! one. Key rows and organisations are cached; concurrent misses for one key share one
//! database read; unknown prefixes and failed secrets are remembered for a while. Revocations
//! and organisation changes are logged (`auth_changes`) and every instance follows the log
//! ([`Authenticator::sync_once`], twice a second), so a change made anywhere — another
//! instance, the CLI — applies everywhere within a second; the cache TTL is only a backstop.
//! End-user tokens name the key that minted them (`kid`) and die with it.

pub mod agents;
pub mod api_keys;
pub mod jwt;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex as AsyncMutex;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::domain::agents::AgentHandle;
use crate::domain::conversation::Caller;
use crate::domain::{EndUserId, Org, OrgId, RunId};
use crate::metrics::Metrics;
use crate::store::agents::Agent;
use crate::store::keys::KeyCredential;
use crate::store::{Store, StoreError};

/// How often, at most, a key's `last_used_at` is written.
const TOUCH_INTERVAL_SECONDS: i64 = 60;

/// argon2 verifications (keys made before fingerprints) running at once, at most.
const MAX_CONCURRENT_VERIFICATIONS: usize = 4;

/// How long an unknown prefix, or a wrong secret for a known key, is remembered.
const UNKNOWN_PREFIX_TTL: Duration = Duration::from_secs(60);
const FAILED_SECRET_TTL: Duration = Duration::from_secs(600);

/// Changes re-read behind the newest one seen: on PostgreSQL a change numbered lower can
/// commit after a higher one, and evicting twice is harmless.
const CHANGE_LOOKBACK: i64 = 64;

/// One message for every bad key, so a caller cannot probe which prefixes exist.
const BAD_KEY: &str = "The API key is missing, malformed, unknown, revoked or expired.";

/// Why a credential was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed, unknown, revoked or expired; the text says which, as far as it is
    /// safe to say.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("token expired")]
    TokenExpired,
    /// Authenticated, but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("organisation is inactive")]
    OrgInactive,
    #[error("no organisation {0}")]
    OrgNotFound(OrgId),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database could not be reached to check the credential.
    #[error("database unreachable")]
    Unavailable,
    #[error("credential check failed: {0}")]
    Internal(String),
}

impl AuthError {
    /// A store failure shared by the callers of one coalesced load.
    fn shared(e: &StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable,
            other => Self::Internal(crate::telemetry::cause_chain(other)),
        }
    }
}

/// The SHA-256 of the admin token, compared in constant time (digests hide the length too).
pub fn admin_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// True when `presented` is the admin token whose digest is `expected`.
pub fn is_admin_token(presented: &str, expected: &[u8; 32]) -> bool {
    bool::from(admin_digest(presented).ct_eq(expected))
}

/// Which credential authenticated a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A server-side caller with an API key: acts for the whole organisation.
    ApiKey { key_id: Uuid },
    /// A browser or app with an end-user token: acts for one end user. `key_id` is the API
    /// key that minted the token (none for tokens minted by the CLI).
    EndUserToken { key_id: Option<Uuid> },
    /// A stream token: may only read the events of this run.
    StreamToken { run_id: RunId },
    /// An agent token (the mailbox): speaks for one agent of the organisation, on the
    /// mailbox's routes only. `key_id` is the API key that minted it, if one did.
    AgentToken {
        handle: AgentHandle,
        key_id: Option<Uuid>,
    },
}

/// The authenticated caller, whatever credential it used.
#[derive(Debug, Clone)]
pub struct Principal {
    pub org: Arc<Org>,
    /// Set for end-user tokens; API-key callers act for the organisation.
    pub end_user: Option<EndUserId>,
    pub credential: Credential,
}

impl Principal {
    pub fn org_id(&self) -> &OrgId {
        &self.org.id
    }

    /// The caller as the conversation rules see it.
    pub fn caller(&self) -> Caller<'_> {
        Caller {
            org: &self.org.id,
            end_user: self.end_user.as_ref(),
        }
    }

    /// The API key behind the credential: the key itself, or the one that minted the token.
    /// Tokens minted for this caller die with it.
    pub fn minting_key(&self) -> Option<Uuid> {
        match self.credential {
            Credential::ApiKey { key_id } => Some(key_id),
            Credential::EndUserToken { key_id } | Credential::AgentToken { key_id, .. } => key_id,
            Credential::StreamToken { .. } => None,
        }
    }

    /// 403 unless the caller used an API key (the business, not one of its end users).
    pub fn require_api_key(&self, what: &str) -> Result<(), AuthError> {
        match self.credential {
            Credential::ApiKey { .. } => Ok(()),
            Credential::EndUserToken { .. }
            | Credential::StreamToken { .. }
            | Credential::AgentToken { .. } => Err(AuthError::Forbidden(format!(
                "{what} are available to API-key callers only."
            ))),
        }
    }
}

/// A key's row as authentication needs it.
struct CachedKey {
    key_id: Uuid,
    org_id: OrgId,
    /// The stored fingerprint, or (keys made before fingerprints) the one argon2 verified.
    fingerprint: OnceLock<[u8; 32]>,
    /// argon2id hash, for keys without a fingerprint yet.
    secret_hash: String,
    expires_at: Option<DateTime<Utc>>,
    revoked: bool,
    /// Unix seconds of the last `last_used_at` write from this instance.
    last_touch: AtomicI64,
}

impl CachedKey {
    fn from_row(row: KeyCredential) -> Result<Self, StoreError> {
        let org_id = OrgId::parse(&row.org_id)
            .map_err(|e| StoreError::Corrupt(format!("key {}: org id: {e}", row.id)))?;
        let fingerprint = OnceLock::new();
        if let Some(fp) = row.fingerprint.as_deref().and_then(decode_hex32) {
            let _ = fingerprint.set(fp);
        }
        Ok(Self {
            key_id: row.id,
            org_id,
            fingerprint,
            secret_hash: row.secret_hash,
            expires_at: row.expires_at,
            revoked: row.revoked_at.is_some(),
            last_touch: AtomicI64::new(0),
        })
    }

    fn usable(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && self.expires_at.is_none_or(|e| e > now)
    }
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Lower-case hex of a key's fingerprint, as stored.
pub fn fingerprint_hex(fp: &[u8; 32]) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where this instance is in the change log.
#[derive(Default)]
struct ChangeCursor {
    started: bool,
    newest: i64,
    /// Changes applied just behind `newest` (re-read, not re-applied).
    applied: BTreeSet<i64>,
}

/// Authenticates API keys and tokens; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    /// Key rows by prefix (`None`: no such key); concurrent misses share one read.
    keys: moka::future::Cache<String, Option<Arc<CachedKey>>>,
    /// (prefix, fingerprint) pairs that failed.
    failed: moka::sync::Cache<(String, [u8; 32]), ()>,
    /// Whether the key that minted a token is still good, by key id.
    key_ok: moka::future::Cache<Uuid, bool>,
    orgs: moka::future::Cache<OrgId, Arc<Org>>,
    /// The mailbox's agents by (organisation, handle) (`None`: no such agent).
    agents: moka::future::Cache<(OrgId, AgentHandle), Option<Arc<Agent>>>,
    jwt: Arc<jwt::JwtKeys>,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
    /// Bounds concurrent argon2 verifications (each takes ~19 MiB and tens of ms of CPU).
    verifications: Arc<tokio::sync::Semaphore>,
    changes: Arc<AsyncMutex<ChangeCursor>>,
}

/// Unknown prefixes (`None`) expire sooner than known keys.
struct UnknownSooner(Duration);

impl moka::Expiry<String, Option<Arc<CachedKey>>> for UnknownSooner {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Option<Arc<CachedKey>>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        value.is_none().then_some(self.0)
    }
}

impl Authenticator {
    pub fn new(
        store: Store,
        jwt: jwt::JwtKeys,
        cache_ttl: std::time::Duration,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            store,
            keys: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cache_ttl)
                .expire_after(UnknownSooner(UNKNOWN_PREFIX_TTL.min(cache_ttl)))
                .build(),
            failed: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(FAILED_SECRET_TTL)
                .build(),
            key_ok: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cache_ttl)
                .build(),
            orgs: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cache_ttl)
                .build(),
            agents: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cache_ttl)
                .build(),
            jwt: Arc::new(jwt),
            metrics,
            tasks,
            verifications: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_VERIFICATIONS)),
            changes: Arc::new(AsyncMutex::new(ChangeCursor::default())),
        }
    }

    pub fn jwt(&self) -> &jwt::JwtKeys {
        &self.jwt
    }

    /// Authenticates a presented API key.
    pub async fn authenticate_key(&self, presented: &str) -> Result<Principal, AuthError> {
        let prefix = api_keys::parse_prefix(presented).ok_or(AuthError::Unauthorized(BAD_KEY))?;
        let fingerprint = api_keys::fingerprint(presented);
        let failed = (prefix.to_owned(), fingerprint);
        if self.failed.contains_key(&failed) {
            return Err(AuthError::Unauthorized(BAD_KEY));
        }
        let store = self.store.clone();
        let key = self
            .keys
            .try_get_with_by_ref(prefix, async move {
                match store.find_key_by_prefix(prefix).await? {
                    Some(row) => CachedKey::from_row(row).map(|k| Some(Arc::new(k))),
                    None => Ok(None),
                }
            })
            .await
            .map_err(|e: Arc<StoreError>| AuthError::shared(&e))?
            .ok_or(AuthError::Unauthorized(BAD_KEY))?;
        if !key.usable(Utc::now()) {
            return Err(AuthError::Unauthorized(BAD_KEY));
        }
        let matches = match key.fingerprint.get() {
            Some(known) => bool::from(known.ct_eq(&fingerprint)),
            None => self.verify_legacy(&key, presented, fingerprint).await?,
        };
        if !matches {
            self.failed.insert(failed, ());
            return Err(AuthError::Unauthorized(BAD_KEY));
        }
        self.touch(&key, crate::domain::now());
        let org = self.active_org(&key.org_id).await?;
        Ok(Principal {
            org,
            end_user: None,
            credential: Credential::ApiKey { key_id: key.key_id },
        })
    }

    /// argon2 for a key made before fingerprints; on success its fingerprint is kept (here
    /// and in the database), so the key is never argon2'd again anywhere.
    async fn verify_legacy(
        &self,
        key: &CachedKey,
        presented: &str,
        fingerprint: [u8; 32],
    ) -> Result<bool, AuthError> {
        let _permit = self
            .verifications
            .acquire()
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        self.metrics.api_key_verifications.inc();
        let (plaintext, hash) = (presented.to_owned(), key.secret_hash.clone());
        // argon2 takes tens of milliseconds of CPU: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || api_keys::verify(&plaintext, &hash))
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        if ok {
            let _ = key.fingerprint.set(fingerprint);
            let (store, id, hex) = (
                self.store.clone(),
                key.key_id,
                fingerprint_hex(&fingerprint),
            );
            self.tasks.spawn(async move {
                if let Err(e) = store.set_key_fingerprint(id, &hex).await {
                    tracing::warn!(key_id = %id, error = %crate::telemetry::cause_chain(&e), "could not store a key's fingerprint");
                }
            });
        }
        Ok(ok)
    }

    /// Writes `last_used_at` in the background when this instance has not for a minute.
    fn touch(&self, key: &CachedKey, now: DateTime<Utc>) {
        let now_s = now.timestamp();
        let last = key.last_touch.load(Ordering::Relaxed);
        if now_s - last < TOUCH_INTERVAL_SECONDS
            || key
                .last_touch
                .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let (store, key_id) = (self.store.clone(), key.key_id);
        self.tasks.spawn(async move {
            if let Err(e) = store.touch_key(key_id, now).await {
                tracing::warn!(%key_id, error = %crate::telemetry::cause_chain(&e), "could not record key use");
            }
        });
    }

    /// Authenticates an end-user bearer token.
    pub async fn authenticate_token(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.jwt.verify(token).map_err(|e| match e {
            jwt::TokenError::Expired => AuthError::TokenExpired,
            jwt::TokenError::Invalid => AuthError::Unauthorized("The bearer token is invalid."),
        })?;
        let bad_claims = || AuthError::Unauthorized("The bearer token's claims are invalid.");
        // Stream tokens open one run's event stream and nothing else.
        if claims.run.is_some() {
            return Err(bad_claims());
        }
        let org_id = OrgId::parse(&claims.org).map_err(|_| bad_claims())?;
        if let Some(handle) = &claims.agent_handle {
            let handle = AgentHandle::parse(handle).map_err(|_| bad_claims())?;
            return self.authenticate_agent_token(&claims, org_id, handle).await;
        }
        let end_user = EndUserId::parse(&claims.sub).map_err(|_| bad_claims())?;
        if let Some(kid) = claims.kid {
            self.check_minting_key(kid, &org_id).await?;
        }
        // A token naming an organisation that does not exist is as good as a forged one.
        let org = match self.active_org(&org_id).await {
            Err(AuthError::OrgNotFound(_)) => return Err(bad_claims()),
            other => other?,
        };
        Ok(Principal {
            org,
            end_user: Some(end_user),
            credential: Credential::EndUserToken { key_id: claims.kid },
        })
    }

    /// An agent token: good while the key that minted it (if any) is, the organisation is
    /// active, and the agent is active with the secret version the token was minted under.
    async fn authenticate_agent_token(
        &self,
        claims: &jwt::Claims,
        org_id: OrgId,
        handle: AgentHandle,
    ) -> Result<Principal, AuthError> {
        if let Some(kid) = claims.kid {
            self.check_minting_key(kid, &org_id).await?;
        }
        let org = match self.active_org(&org_id).await {
            Err(AuthError::OrgNotFound(_)) => {
                return Err(AuthError::Unauthorized(
                    "The bearer token's claims are invalid.",
                ));
            }
            other => other?,
        };
        let agent = self.agent(&org_id, &handle).await?;
        match agent {
            Some(a) if a.active && Some(a.secret_version) == claims.asv => Ok(Principal {
                org,
                end_user: None,
                credential: Credential::AgentToken {
                    handle,
                    key_id: claims.kid,
                },
            }),
            _ => Err(AuthError::Unauthorized(
                "The agent is unknown or inactive, or its secret was rotated since this token was minted.",
            )),
        }
    }

    /// The organisation's agent `handle`, from cache or store; `None` when there is none.
    pub async fn agent(
        &self,
        org: &OrgId,
        handle: &AgentHandle,
    ) -> Result<Option<Arc<Agent>>, AuthError> {
        let (store, o, h) = (self.store.clone(), org.clone(), handle.clone());
        self.agents
            .try_get_with((org.clone(), handle.clone()), async move {
                Ok::<_, StoreError>(store.get_agent(&o, &h).await?.map(Arc::new))
            })
            .await
            .map_err(|e: Arc<StoreError>| AuthError::shared(&e))
    }

    /// Checks an agent's secret (argon2, off the async workers, a bounded number at once) and
    /// returns the organisation and the agent. Unknown handles cost the same as wrong secrets.
    pub async fn agent_login(
        &self,
        org_id: &OrgId,
        handle: &AgentHandle,
        secret: &str,
    ) -> Result<(Arc<Org>, Agent), AuthError> {
        const REFUSED: &str = "The agent handle or secret is wrong, or the agent is inactive.";
        let org = match self.active_org(org_id).await {
            Err(AuthError::OrgNotFound(_)) => return Err(AuthError::Unauthorized(REFUSED)),
            other => other?,
        };
        let found = self.store.get_agent_credential(org_id, handle).await?;
        let hash = found.as_ref().map_or_else(
            || agents::decoy_hash().to_owned(),
            |c| c.secret_hash.clone(),
        );
        let _permit = self
            .verifications
            .acquire()
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        let plaintext = secret.to_owned();
        let ok = tokio::task::spawn_blocking(move || agents::verify_secret(&plaintext, &hash))
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        match found {
            Some(c) if ok && c.agent.active => Ok((org, c.agent)),
            _ => Err(AuthError::Unauthorized(REFUSED)),
        }
    }

    /// Forgets every cached agent (after a change through this instance).
    pub async fn evict_agents(&self) {
        self.agents.invalidate_all();
    }

    /// A token dies with the key that minted it: revoked, expired, gone, or another org's.
    async fn check_minting_key(&self, kid: Uuid, org: &OrgId) -> Result<(), AuthError> {
        let (store, org) = (self.store.clone(), org.clone());
        let ok = self
            .key_ok
            .try_get_with(kid, async move {
                Ok::<_, StoreError>(store.find_key_by_id(kid).await?.is_some_and(|k| {
                    k.org_id == org.as_str()
                        && k.revoked_at.is_none()
                        && k.expires_at.is_none_or(|e| e > Utc::now())
                }))
            })
            .await
            .map_err(|e: Arc<StoreError>| AuthError::shared(&e))?;
        if ok {
            Ok(())
        } else {
            Err(AuthError::Unauthorized(
                "The API key that minted this token was revoked or has expired.",
            ))
        }
    }

    /// Authenticates a stream token presented for run `run_id`'s event stream.
    pub async fn authenticate_stream_token(
        &self,
        token: &str,
        run_id: RunId,
    ) -> Result<Principal, AuthError> {
        let claims = self.jwt.verify(token).map_err(|e| match e {
            jwt::TokenError::Expired => AuthError::TokenExpired,
            jwt::TokenError::Invalid => AuthError::Unauthorized("The stream token is invalid."),
        })?;
        if claims.run != Some(run_id) {
            return Err(AuthError::Unauthorized(
                "The stream token is for another run.",
            ));
        }
        let org_id = OrgId::parse(&claims.org)
            .map_err(|_| AuthError::Unauthorized("The stream token is invalid."))?;
        let end_user = match claims.sub.strip_prefix("key:") {
            Some(_) => None,
            None => Some(
                EndUserId::parse(&claims.sub)
                    .map_err(|_| AuthError::Unauthorized("The stream token is invalid."))?,
            ),
        };
        if let Some(kid) = claims.kid {
            self.check_minting_key(kid, &org_id).await?;
        }
        let org = self.active_org(&org_id).await?;
        Ok(Principal {
            org,
            end_user,
            credential: Credential::StreamToken { run_id },
        })
    }

    /// The organisation, from cache or store; 403 `ORG_INACTIVE` when deactivated.
    async fn active_org(&self, id: &OrgId) -> Result<Arc<Org>, AuthError> {
        let org = self.org(id).await?;
        if org.active {
            Ok(org)
        } else {
            Err(AuthError::OrgInactive)
        }
    }

    pub async fn org(&self, id: &OrgId) -> Result<Arc<Org>, AuthError> {
        let (store, key) = (self.store.clone(), id.clone());
        let found = self
            .orgs
            .try_get_with_by_ref(id, async move {
                // A missing org is not cached: it may be created any moment.
                match store.get_org(&key).await? {
                    Some(org) => Ok(Arc::new(org)),
                    None => Err(StoreError::NotFound(key.to_string())),
                }
            })
            .await;
        match found {
            Ok(org) => Ok(org),
            Err(e) => match e.as_ref() {
                StoreError::NotFound(_) => Err(AuthError::OrgNotFound(id.clone())),
                other => Err(AuthError::shared(other)),
            },
        }
    }

    /// Forgets a key at once, and whether its tokens are good (after revocation through this
    /// instance).
    pub async fn evict_key(&self, prefix: &str, id: Uuid) {
        self.keys.invalidate(prefix).await;
        self.key_ok.invalidate(&id).await;
    }

    /// Forgets an organisation's cached settings (after an update through this instance).
    pub async fn evict_org(&self, id: &OrgId) {
        self.orgs.invalidate(id).await;
    }

    /// Applies the revocations and organisation changes logged since the last call (by any
    /// instance or the CLI): drops what this instance cached about them. Returns the
    /// organisations that changed (their browser origins may have too).
    pub async fn sync_once(&self) -> Result<Vec<OrgId>, StoreError> {
        let mut cursor = self.changes.lock().await;
        let first = !cursor.started;
        if first {
            cursor.newest = self.store.last_auth_change().await?;
            cursor.started = true;
        }
        let floor = (cursor.newest - CHANGE_LOOKBACK).max(0);
        let mut orgs = Vec::new();
        for change in self.store.auth_changes_after(floor).await? {
            // Each change applies once; on the first call, what was logged before this
            // instance started concerns nothing it cached: it is marked, not applied.
            if !cursor.applied.insert(change.seq) || (first && change.seq <= cursor.newest) {
                continue;
            }
            cursor.newest = cursor.newest.max(change.seq);
            if let Some(prefix) = &change.key_prefix {
                self.keys.invalidate(prefix.as_str()).await;
            }
            if let Some(id) = change.key_id {
                self.key_ok.invalidate(&id).await;
            }
            if let Ok(org) = OrgId::parse(&change.org_id) {
                if change.kind == "org" {
                    self.orgs.invalidate(&org).await;
                    // Agent changes are logged as changes of their organisation.
                    self.agents.invalidate_all();
                    orgs.push(org);
                }
            }
        }
        let keep_from = cursor.newest - CHANGE_LOOKBACK;
        cursor.applied.retain(|seq| *seq > keep_from);
        Ok(orgs)
    }
}
