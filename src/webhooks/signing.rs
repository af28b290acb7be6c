//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): secrets `whsec_<base64>`,
//! headers `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `"{id}.{timestamp}.{body}"`, keyed with the base64-decoded part of the secret.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Prefix of every signing secret, as the spec writes it.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a generated secret (the spec asks for 24 to 64).
const GENERATED_BYTES: usize = 32;
const MIN_BYTES: usize = 24;
const MAX_BYTES: usize = 64;

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

    /// Parses `whsec_<base64 of 24..=64 bytes>`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let b64 = raw
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| format!("must start with {SECRET_PREFIX}"))?;
        let key = STANDARD
            .decode(b64)
            .map_err(|_| format!("must be {SECRET_PREFIX} followed by standard base64"))?;
        if !(MIN_BYTES..=MAX_BYTES).contains(&key.len()) {
            return Err(format!(
                "must encode {MIN_BYTES} to {MAX_BYTES} bytes (got {})",
                key.len()
            ));
        }
        Ok(Self {
            text: raw.to_owned(),
            key,
        })
    }

    /// The secret as given to the customer (`whsec_…`).
    pub fn expose(&self) -> &str {
        &self.text
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
        assert!(SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(SigningSecret::parse("whsec_!!!").is_err());
    }
}
