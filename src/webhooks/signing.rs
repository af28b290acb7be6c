//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): headers `webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `"{id}.{timestamp}.{body}"`. Two forms of secret, as plugins send them (issue 11.6):
//! `whsec_<base64>` is keyed with the decoded bytes after the prefix (the spec's form, what
//! agentd generates); any other secret of at least 16 characters is keyed with its own UTF-8
//! bytes, as Standard Webhooks libraries do with a raw secret (`{format: "raw"}` in
//! JavaScript, a `bytes` secret in Python) and as a PHP plugin's `hash_hmac` does.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Prefix of a base64 signing secret, as the spec writes it.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a generated secret (the spec asks for 24 to 64).
const GENERATED_BYTES: usize = 32;
const MIN_BYTES: usize = 24;
const MAX_BYTES: usize = 64;
/// Characters a raw (non-`whsec_`) secret must have at least: 16 characters of a plugin's
/// own choosing, e.g. `wordpress_webhook_secret`.
pub const MIN_RAW_CHARS: usize = 16;
/// Characters a raw secret may have at most.
pub const MAX_RAW_CHARS: usize = 256;

/// A signing secret. Debug prints `[redacted]`, so a secret cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    text: String,
    key: Vec<u8>,
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

impl SigningSecret {
    /// A fresh secret of 32 random bytes from the OS.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        Self {
            text: format!("{SECRET_PREFIX}{}", STANDARD.encode(&key)),
            key,
        }
    }

    /// Parses a secret as registered: `whsec_<base64 of 24..=64 bytes>` (surrounding
    /// whitespace ignored), or any other text of 16 to 256 characters, used as it is (so it
    /// may not begin or end with whitespace: the sender would sign with other bytes).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if let Some(b64) = trimmed.strip_prefix(SECRET_PREFIX) {
            let key = STANDARD
                .decode(b64)
                .map_err(|_| format!("must be {SECRET_PREFIX} followed by standard base64"))?;
            if !(MIN_BYTES..=MAX_BYTES).contains(&key.len()) {
                return Err(format!(
                    "a {SECRET_PREFIX} secret must encode {MIN_BYTES} to {MAX_BYTES} bytes (got {})",
                    key.len()
                ));
            }
            return Ok(Self {
                text: trimmed.to_owned(),
                key,
            });
        }
        let chars = raw.chars().count();
        if !(MIN_RAW_CHARS..=MAX_RAW_CHARS).contains(&chars) {
            return Err(format!(
                "must be {SECRET_PREFIX}<base64 of {MIN_BYTES} to {MAX_BYTES} bytes>, or any text of \
                 {MIN_RAW_CHARS} to {MAX_RAW_CHARS} characters (got {chars})"
            ));
        }
        if trimmed.len() != raw.len() {
            return Err("must not begin or end with whitespace".to_owned());
        }
        Ok(Self {
            text: raw.to_owned(),
            key: raw.as_bytes().to_vec(),
        })
    }

    /// The secret as given to the customer (`whsec_…`, or their own text).
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// True for a `whsec_` secret (keyed with its decoded bytes), false for a raw one (keyed
    /// with its text).
    pub fn is_base64(&self) -> bool {
        self.text.starts_with(SECRET_PREFIX)
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length; the error arm is unreachable but costs nothing.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// Checks a `webhook-signature` header value (space-separated `v1,…` entries) the way a
    /// receiver does; used by the tests and documented in docs/webhooks.md.
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let expected = self.sign(id, timestamp, body);
        header
            .split(' ')
            .any(|sig| subtle::ConstantTimeEq::ct_eq(sig.as_bytes(), expected.as_bytes()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_reference_vector() {
        // The test vector of the Standard Webhooks reference libraries.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(secret.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
            &format!("v1,bogus {sig}")
        ));
        assert!(!secret.verify("msg_other", 1_614_265_330, b"{}", &sig));
    }

    #[test]
    fn generated_secrets_parse_back_and_never_print() {
        let s = SigningSecret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(s.expose()).unwrap(), s);
        assert!(!format!("{s:?}").contains(s.expose()));
    }

    #[test]
    fn short_or_malformed_secrets_are_refused() {
        assert!(SigningSecret::parse("whsec_c2hvcnQ=").is_err());
        assert!(SigningSecret::parse("whsec_!!!").is_err());
        assert!(SigningSecret::parse("fifteen-chars!!").is_err());
        assert!(SigningSecret::parse(&"x".repeat(257)).is_err());
        assert!(SigningSecret::parse(" wordpress_webhook_secret").is_err());
    }

    #[test]
    fn a_raw_secret_signs_with_its_own_bytes() {
        // What a PHP plugin computes: hash_hmac('sha256', "$id.$ts.$body", $secret, true).
        let secret = SigningSecret::parse("wordpress_webhook_secret").unwrap();
        assert!(!secret.is_base64());
        assert_eq!(secret.expose(), "wordpress_webhook_secret");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"wordpress_webhook_secret").unwrap();
        mac.update(b"msg_1.1614265330.{}");
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(secret.sign("msg_1", 1_614_265_330, b"{}"), expected);
        // Unicode counts characters, not bytes, and signs with the UTF-8 bytes.
        assert!(SigningSecret::parse("ключ-ключ-ключ-ключ").is_ok());
        // A whsec_ secret is never taken as raw text, whatever its length.
        let b64 = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert!(b64.is_base64());
        assert_ne!(b64.sign("m", 1, b"{}"), {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
            mac.update(b"m.1.{}");
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        });
    }
}
