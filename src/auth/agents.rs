//! Agent secrets (the mailbox, issue 12): `as_` + 40 base62 characters from the OS CSPRNG,
//! stored as an argon2id hash and shown once. A login verifies the secret with argon2 (it is
//! a password-like credential presented once per token, not on every request); the token it
//! yields is then checked like any other JWT.

use std::sync::OnceLock;

use super::api_keys;

/// Length of the random part of a secret.
pub const SECRET_LEN: usize = 40;

/// A fresh secret (plaintext, to show once).
pub fn generate_secret() -> String {
    format!("as_{}", api_keys::random_base62(SECRET_LEN))
}

/// argon2id PHC string of a secret.
pub fn hash_secret(plaintext: &str) -> Result<String, argon2::password_hash::Error> {
    api_keys::hash(plaintext)
}

/// Checks a presented secret against a stored hash (slow: off the async workers).
pub fn verify_secret(plaintext: &str, phc: &str) -> bool {
    api_keys::verify(plaintext, phc)
}

/// A hash no secret matches, verified against when the handle is unknown so that a wrong
/// handle and a wrong secret take the same time.
pub fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_secret(&generate_secret()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_verifies_against_its_hash_only() {
        let s = generate_secret();
        assert!(s.starts_with("as_") && s.len() == 3 + SECRET_LEN);
        let h = hash_secret(&s).unwrap();
        assert!(verify_secret(&s, &h));
        assert!(!verify_secret(&generate_secret(), &h));
        assert!(!verify_secret(&s, decoy_hash()));
    }
}
