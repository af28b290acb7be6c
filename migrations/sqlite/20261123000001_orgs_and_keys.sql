-- Organisations (tenants) and their API keys. SQLite flavour: see ../postgres for the native
-- types. Timestamps are RFC 3339 text bound from Rust; UUIDs are 16-byte blobs (sqlx's encoding).

CREATE TABLE orgs (
    id                         TEXT PRIMARY KEY,              -- ^[A-Za-z0-9_-]{1,100}$, chosen by the operator
    name                       TEXT NOT NULL,
    active                     BOOLEAN NOT NULL DEFAULT 1,
    tier                       TEXT NOT NULL CHECK (tier IN ('free', 'basic', 'premium', 'custom')),
    -- The quota in force (the tier's, or the custom one), so the limiter needs no lookup table.
    rate_limit_requests        INTEGER NOT NULL,
    rate_limit_window_seconds  INTEGER NOT NULL,
    -- Agent settings (prompt, model, tools, services, hours, origins, TTL, limits) as one JSON
    -- document: always read whole with the org and never filtered on, so columns would only
    -- add migrations.
    settings                   TEXT NOT NULL,
    version                    INTEGER NOT NULL DEFAULT 1,    -- optimistic concurrency (ETag)
    created_at                 TEXT NOT NULL,
    updated_at                 TEXT NOT NULL
);

CREATE INDEX orgs_created_at ON orgs (created_at DESC, id);

CREATE TABLE api_keys (
    id            BLOB PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- The public part of the key; lookups go through this unique index so that validating a
    -- key costs one argon2 verification however many keys exist.
    prefix        TEXT NOT NULL UNIQUE,
    secret_hash   TEXT NOT NULL,                            -- argon2id PHC string of the whole key
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,                                     -- written at most about once a minute
    expires_at    TEXT,
    revoked_at    TEXT
);

CREATE INDEX api_keys_org ON api_keys (org_id, created_at);
