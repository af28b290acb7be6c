//! Turning credentials into a [`Principal`]: API keys (argon2id, verified once then cached),
//! end-user JWTs, and the organisation each belongs to (cached too).
//!
//! The hot path after a key's first request is two in-memory cache hits and a SHA-256: no
//! database round trip and no argon2. Revocation and org changes made through this instance
//! evict at once; the cache TTL bounds how long other instances keep serving the old state.

pub mod api_keys;
pub mod jwt;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::domain::conversation::Caller;
use crate::domain::{EndUserId, Org, OrgId, RunId};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// How often, at most, a key's `last_used_at` is written.
const TOUCH_INTERVAL_SECONDS: i64 = 60;

/// argon2 verifications running at once, at most.
const MAX_CONCURRENT_VERIFICATIONS: usize = 4;

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
    #[error("credential check failed: {0}")]
    Internal(String),
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
    /// A browser or app with an end-user token: acts for one end user.
    EndUserToken,
    /// A stream token: may only read the events of this run.
    StreamToken { run_id: RunId },
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

    /// 403 unless the caller used an API key (the business, not one of its end users).
    pub fn require_api_key(&self, what: &str) -> Result<(), AuthError> {
        match self.credential {
            Credential::ApiKey { .. } => Ok(()),
            Credential::EndUserToken | Credential::StreamToken { .. } => Err(AuthError::Forbidden(
                format!("{what} are available to API-key callers only."),
            )),
        }
    }
}

struct CachedKey {
    key_id: Uuid,
    org_id: OrgId,
    fingerprint: [u8; 32],
    expires_at: Option<DateTime<Utc>>,
    /// Unix seconds of the last `last_used_at` write from this instance.
    last_touch: AtomicI64,
}

/// Authenticates API keys and tokens; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    keys: moka::sync::Cache<String, Arc<CachedKey>>,
    orgs: moka::sync::Cache<OrgId, Arc<Org>>,
    jwt: jwt::JwtKeys,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
    /// Bounds concurrent argon2 verifications (each takes ~19 MiB and tens of ms of CPU), so a
    /// burst of uncached or wrong keys queues instead of exhausting memory.
    verifications: Arc<tokio::sync::Semaphore>,
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
            keys: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cache_ttl)
                .build(),
            orgs: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cache_ttl)
                .build(),
            jwt,
            metrics,
            tasks,
            verifications: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_VERIFICATIONS)),
        }
    }

    pub fn jwt(&self) -> &jwt::JwtKeys {
        &self.jwt
    }

    /// Authenticates a presented API key.
    pub async fn authenticate_key(&self, presented: &str) -> Result<Principal, AuthError> {
        let prefix = api_keys::parse_prefix(presented).ok_or(AuthError::Unauthorized(BAD_KEY))?;
        let fingerprint = api_keys::fingerprint(presented);
        let now = Utc::now();

        let cached = match self.keys.get(prefix) {
            Some(c) => c,
            None => self.load_key(prefix, presented, fingerprint).await?,
        };
        // The prefix matched a verified key; the rest of the key must match it too.
        if !bool::from(cached.fingerprint.ct_eq(&fingerprint)) {
            return Err(AuthError::Unauthorized(BAD_KEY));
        }
        if cached.expires_at.is_some_and(|e| e <= now) {
            self.keys.invalidate(prefix);
            return Err(AuthError::Unauthorized(BAD_KEY));
        }
        self.touch(&cached, crate::domain::now());
        let org = self.active_org(&cached.org_id).await?;
        Ok(Principal {
            org,
            end_user: None,
            credential: Credential::ApiKey {
                key_id: cached.key_id,
            },
        })
    }

    async fn load_key(
        &self,
        prefix: &str,
        presented: &str,
        fingerprint: [u8; 32],
    ) -> Result<Arc<CachedKey>, AuthError> {
        let cred = self
            .store
            .find_key_by_prefix(prefix)
            .await?
            .ok_or(AuthError::Unauthorized(BAD_KEY))?;
        let now = Utc::now();
        if cred.revoked_at.is_some() || cred.expires_at.is_some_and(|e| e <= now) {
            return Err(AuthError::Unauthorized(BAD_KEY));
        }
        let _permit = self
            .verifications
            .acquire()
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        self.metrics.api_key_verifications.inc();
        let (plaintext, hash) = (presented.to_owned(), cred.secret_hash);
        // argon2 takes tens of milliseconds of CPU: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || api_keys::verify(&plaintext, &hash))
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        if !ok {
            return Err(AuthError::Unauthorized(BAD_KEY));
        }
        let org_id = OrgId::parse(&cred.org_id)
            .map_err(|e| AuthError::Store(StoreError::Corrupt(format!("key's org id: {e}"))))?;
        let entry = Arc::new(CachedKey {
            key_id: cred.id,
            org_id,
            fingerprint,
            expires_at: cred.expires_at,
            last_touch: AtomicI64::new(0),
        });
        self.keys.insert(prefix.to_owned(), Arc::clone(&entry));
        Ok(entry)
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
        let end_user = EndUserId::parse(&claims.sub).map_err(|_| bad_claims())?;
        // A token naming an organisation that does not exist is as good as a forged one.
        let org = match self.active_org(&org_id).await {
            Err(AuthError::OrgNotFound(_)) => return Err(bad_claims()),
            other => other?,
        };
        Ok(Principal {
            org,
            end_user: Some(end_user),
            credential: Credential::EndUserToken,
        })
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
        if let Some(org) = self.orgs.get(id) {
            return Ok(org);
        }
        let org = Arc::new(
            self.store
                .get_org(id)
                .await?
                .ok_or_else(|| AuthError::OrgNotFound(id.clone()))?,
        );
        self.orgs.insert(id.clone(), Arc::clone(&org));
        Ok(org)
    }

    /// Forgets a key at once (after revocation).
    pub fn evict_key(&self, prefix: &str) {
        self.keys.invalidate(prefix);
    }

    /// Forgets an organisation's cached settings (after an update).
    pub fn evict_org(&self, id: &OrgId) {
        self.orgs.invalidate(id);
    }
}
