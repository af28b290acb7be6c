//! API key format, generation and hashing.
//!
//! A key is `ak_<prefix>_<secret>`: a 12-character public prefix (the lookup handle, shown in
//! listings) and a 40-character secret, both base62 from the OS CSPRNG (~238 bits of secret).
//! The database keeps the prefix and an argon2id hash of the whole key.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

pub const PREFIX_LEN: usize = 12;
pub const SECRET_LEN: usize = 40;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub(crate) fn random_base62(n: usize) -> String {
    let mut rng = OsRng;
    (0..n)
        .map(|_| char::from(BASE62[rng.gen_range(0..BASE62.len())]))
        .collect()
}

/// A freshly generated key: the plaintext (shown once) and its prefix.
pub struct GeneratedKey {
    pub plaintext: String,
    pub prefix: String,
}

pub fn generate() -> GeneratedKey {
    let prefix = random_base62(PREFIX_LEN);
    let plaintext = format!("ak_{prefix}_{}", random_base62(SECRET_LEN));
    GeneratedKey { plaintext, prefix }
}

/// Splits a presented key into its prefix, or `None` when it is not shaped like one of ours.
pub fn parse_prefix(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix("ak_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let base62 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    (prefix.len() == PREFIX_LEN && secret.len() >= 32 && base62(prefix) && base62(secret))
        .then_some(prefix)
}

/// argon2id (the crate's defaults: OWASP's m=19 MiB, t=2, p=1) PHC string of the whole key.
pub fn hash(plaintext: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(plaintext.as_bytes(), &salt)?
        .to_string())
}

/// Checks a presented key against a stored hash. Slow by design: call it off the async
/// runtime, and only on a cache miss.
pub fn verify(plaintext: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .and_then(|h| Argon2::default().verify_password(plaintext.as_bytes(), &h))
        .is_ok()
}

/// A fast fingerprint of a presented key, to recognise it again in the cache.
pub fn fingerprint(plaintext: &str) -> [u8; 32] {
    Sha256::digest(plaintext.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify_against_their_hash() {
        let k = generate();
        assert!(k.plaintext.starts_with("ak_"));
        assert_eq!(parse_prefix(&k.plaintext), Some(k.prefix.as_str()));
        let h = hash(&k.plaintext).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&k.plaintext, &h));
        assert!(!verify(&generate().plaintext, &h));
    }

    #[test]
    fn keys_are_not_reused() {
        assert_ne!(generate().plaintext, generate().plaintext);
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        for bad in [
            "",
            "ak_",
            "ak_short_secret",
            "sk_ABCDEFGHIJKL_0123456789012345678901234567890123",
            "ak_ABCDEFGHIJK!_0123456789012345678901234567890123",
            "ak_ABCDEFGHIJKL_tooshort",
        ] {
            assert_eq!(parse_prefix(bad), None, "{bad:?}");
        }
    }
}
