//! End-user tokens: HS256 JWTs with `sub` (end user) and `org` claims.
//!
//! Only HS256 is accepted (so `alg: none` and key-confusion tricks fail), `exp` is required,
//! and a small leeway absorbs clock skew between the plugin's server and ours.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

/// Allowed clock skew when checking `exp`.
const LEEWAY_SECONDS: u64 = 30;
const ISSUER: &str = "agentd";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The end user, as the plugin identifies them.
    pub sub: String,
    /// The organisation the token belongs to.
    pub org: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    /// Set on stream tokens only: the one run whose event stream the token may read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<crate::domain::RunId>,
    /// The API key that minted the token: it dies with the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<uuid::Uuid>,
    /// Not valid before (seconds since the epoch), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Set on agent tokens only (the mailbox, issue 12): the agent the token speaks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_handle: Option<String>,
    /// The agent's display name when the token was minted (informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_display_name: Option<String>,
    /// The version of the agent's secret the token was minted under: a rotation ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asv: Option<i64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
}

/// Signing and verification keys built once from `JWT_SECRET`.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys([redacted])")
    }
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        // `nbf` is checked when present (with the same leeway).
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Mints a token for `sub` in `org`, valid until `exp`; `kid` names the API key that
    /// minted it (the token dies with the key).
    pub fn mint(
        &self,
        org: &str,
        sub: &str,
        kid: Option<uuid::Uuid>,
        now: DateTime<Utc>,
        exp: DateTime<Utc>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign(org, sub, None, kid, now, exp)
    }

    /// Mints a stream token: reads the events of run `run` only (for browsers' EventSource,
    /// which cannot send headers). `sub` is the end user, or `key:<key id>` for key callers.
    pub fn mint_stream(
        &self,
        org: &str,
        sub: &str,
        run: crate::domain::RunId,
        kid: Option<uuid::Uuid>,
        now: DateTime<Utc>,
        exp: DateTime<Utc>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign(org, sub, Some(run), kid, now, exp)
    }

    /// Mints an agent token (the mailbox): `sub` is `agent:<handle>`, and the claims carry
    /// the handle, the display name and the secret's version.
    #[expect(
        clippy::too_many_arguments,
        reason = "the claims of one token, each named"
    )]
    pub fn mint_agent(
        &self,
        org: &str,
        handle: &str,
        display_name: &str,
        secret_version: i64,
        kid: Option<uuid::Uuid>,
        now: DateTime<Utc>,
        exp: DateTime<Utc>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = Claims {
            sub: format!("agent:{handle}"),
            org: org.to_owned(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
            iss: ISSUER.to_owned(),
            run: None,
            kid,
            nbf: Some(now.timestamp()),
            agent_handle: Some(handle.to_owned()),
            agent_display_name: Some(display_name.to_owned()),
            asv: Some(secret_version),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    fn sign(
        &self,
        org: &str,
        sub: &str,
        run: Option<crate::domain::RunId>,
        kid: Option<uuid::Uuid>,
        now: DateTime<Utc>,
        exp: DateTime<Utc>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = Claims {
            sub: sub.to_owned(),
            org: org.to_owned(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
            iss: ISSUER.to_owned(),
            run,
            kid,
            nbf: Some(now.timestamp()),
            agent_handle: None,
            agent_display_name: None,
            asv: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use chrono::Duration;

    #[test]
    fn a_minted_token_verifies() {
        let keys = JwtKeys::new(b"test-secret");
        let now = Utc::now();
        let t = keys
            .mint("acme", "user-1", None, now, now + Duration::minutes(5))
            .unwrap();
        let c = keys.verify(&t).unwrap();
        assert_eq!((c.org.as_str(), c.sub.as_str()), ("acme", "user-1"));
    }

    #[test]
    fn a_token_is_not_valid_before_its_nbf() {
        let keys = JwtKeys::new(b"test-secret");
        let later = Utc::now() + Duration::minutes(10);
        let t = keys
            .mint("acme", "u", None, later, later + Duration::minutes(5))
            .unwrap();
        assert_eq!(keys.verify(&t).unwrap_err(), TokenError::Invalid);
    }

    #[test]
    fn expired_tokens_are_reported_as_expired() {
        let keys = JwtKeys::new(b"test-secret");
        let now = Utc::now();
        let t = keys
            .mint(
                "acme",
                "u",
                None,
                now - Duration::hours(2),
                now - Duration::hours(1),
            )
            .unwrap();
        assert_eq!(keys.verify(&t).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_invalid() {
        let now = Utc::now();
        let t = JwtKeys::new(b"other")
            .mint("acme", "u", None, now, now + Duration::minutes(5))
            .unwrap();
        assert_eq!(
            JwtKeys::new(b"test-secret").verify(&t).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let exp = Utc::now().timestamp() + 300;
        let t = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(
                r#"{{"sub":"u","org":"acme","iat":0,"exp":{exp},"iss":"agentd"}}"#
            ))
        );
        assert_eq!(
            JwtKeys::new(b"test-secret").verify(&t).unwrap_err(),
            TokenError::Invalid
        );
    }
}
