-- Organisations (tenants) and their API keys. PostgreSQL flavour with native types; the
-- SQLite twin in ../sqlite has the same shape.

CREATE TABLE orgs (
    id                         TEXT PRIMARY KEY,              -- ^[A-Za-z0-9_-]{1,100}$, chosen by the operator
    name                       TEXT NOT NULL,
    active                     BOOLEAN NOT NULL DEFAULT TRUE,
    tier                       TEXT NOT NULL CHECK (tier IN ('free', 'basic', 'premium', 'custom')),
    -- The quota in force (the tier's, or the custom one), so the limiter needs no lookup table.
    rate_limit_requests        BIGINT NOT NULL,
    rate_limit_window_seconds  BIGINT NOT NULL,
    -- Agent settings (prompt, model, tools, services, hours, origins, TTL, limits) as one jsonb
    -- document: always read whole with the org and never filtered on.
    settings                   JSONB NOT NULL,
    version                    BIGINT NOT NULL DEFAULT 1,     -- optimistic concurrency (ETag)
    created_at                 TIMESTAMPTZ NOT NULL,
    updated_at                 TIMESTAMPTZ NOT NULL
);

CREATE INDEX orgs_created_at ON orgs (created_at DESC, id);

CREATE TABLE api_keys (
    id            UUID PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- The public part of the key; lookups go through this unique index so that validating a
    -- key costs one argon2 verification however many keys exist.
    prefix        TEXT NOT NULL UNIQUE,
    secret_hash   TEXT NOT NULL,                              -- argon2id PHC string of the whole key
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,                                -- written at most about once a minute
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);

CREATE INDEX api_keys_org ON api_keys (org_id, created_at);
