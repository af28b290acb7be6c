-- Webhooks: endpoints an organisation registers, the events it subscribes them to, and the
-- transactional outbox that delivers them (docs/webhooks.md). SQLite flavour; see
-- ../postgres for the same tables with native types.

-- A registered endpoint. `secret` is the Standard Webhooks signing secret (`whsec_…`); it is
-- needed in clear to sign every delivery, so it is stored as given and never returned after
-- registration.
CREATE TABLE webhooks (
    id               BLOB PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    url              TEXT NOT NULL,
    secret           TEXT NOT NULL,
    description      TEXT,
    active           BOOLEAN NOT NULL DEFAULT 1,
    -- Start of the current run of failed attempts (NULL after a success). An endpoint failing
    -- longer than WEBHOOK_DISABLE_AFTER_SECONDS is disabled.
    failing_since    TEXT,
    disabled_at      TEXT,
    disabled_reason  TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE INDEX webhooks_org_created ON webhooks (org_id, created_at DESC);

-- Which event types an endpoint receives: a row per (endpoint, type), so the fan-out at write
-- time is one indexed lookup by (org, type).
CREATE TABLE webhook_subscriptions (
    webhook_id  BLOB NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    org_id      TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    PRIMARY KEY (webhook_id, event_type)
);

CREATE INDEX webhook_subscriptions_fanout ON webhook_subscriptions (org_id, event_type);

-- The outbox: one row per event, written in the same transaction as the change that caused
-- it. Only written when some endpoint subscribes, so an org without webhooks pays one lookup.
-- Its id is the `webhook-id` header and the payload's `id`: the same across retries.
CREATE TABLE webhook_events (
    id          BLOB PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE INDEX webhook_events_created ON webhook_events (created_at);

-- One event to one endpoint, until delivered or given up. A worker claims a due row by
-- setting `lock_token` and a lease (`locked_until`); SQLite serialises writers, so the claim
-- needs no row locks here. A crashed worker's lease simply expires.
CREATE TABLE webhook_deliveries (
    id               BLOB PRIMARY KEY,
    webhook_id       BLOB NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         BLOB NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    org_id           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    locked_until     TEXT,
    lock_token       BLOB,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (webhook_id, event_id)
);

-- The worker's scan: only pending rows, by due time.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- The delivery log an org reads through GET /webhooks/{id}/deliveries: one row per attempt,
-- plus an `endpoint_disabled` row when continuous failure switched the endpoint off.
CREATE TABLE webhook_attempts (
    id             BLOB PRIMARY KEY,
    webhook_id     BLOB NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    delivery_id    BLOB REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    org_id         TEXT NOT NULL,
    event_id       BLOB NOT NULL,
    event_type     TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    -- delivered | retry_scheduled | failed | endpoint_disabled
    outcome        TEXT NOT NULL,
    status_code    INTEGER,
    latency_ms     INTEGER,
    error          TEXT,
    next_retry_at  TEXT,
    created_at     TEXT NOT NULL
);

CREATE INDEX webhook_attempts_log ON webhook_attempts (webhook_id, created_at DESC);
