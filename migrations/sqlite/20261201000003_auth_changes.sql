-- Credentials end when they should (docs/operations.md, "Keys and tokens").
--
-- `api_keys.fingerprint`: the SHA-256 of the whole key. A key is ~238 random bits, so a fast
-- hash is as safe as argon2 for it, and it makes a right and a wrong secret cost the same:
-- nothing to learn from timing, no argon2 for an attacker to trigger. Keys created before
-- this get theirs at their first successful argon2 verification.
ALTER TABLE api_keys ADD COLUMN fingerprint TEXT;

-- `auth_changes`: every revocation and organisation change, in order. Each instance reads the
-- new rows about twice a second and drops what it cached about them, so a change made
-- anywhere (the admin API of another instance, the CLI in another process) applies
-- everywhere within a second. Old rows are pruned by the sweeper.
CREATE TABLE auth_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('key', 'org')),
    org_id      TEXT NOT NULL,
    key_id      BLOB,
    key_prefix  TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX auth_changes_created ON auth_changes (created_at);
