-- The agent's data: conversations (a session is a conversation whose id the client chose),
-- their messages, versioned checkpoints, one run per turn, idempotency keys, at-most-once tool
-- effects, and the booking and task tools' tables. PostgreSQL flavour; see ../sqlite.

CREATE TABLE conversations (
    id                UUID PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    kind              TEXT NOT NULL CHECK (kind IN ('session', 'conversation')),
    end_user          TEXT,                       -- owner when created with an end-user token
    title             TEXT NOT NULL,
    metadata          JSONB NOT NULL DEFAULT '{}',
    archived          BOOLEAN NOT NULL DEFAULT FALSE,
    -- Sequence number of the last message: messages are numbered 1, 2, … so the history
    -- window is a range read (seq > last_seq - N) that stays O(window) however long the
    -- conversation grows.
    last_seq          BIGINT NOT NULL DEFAULT 0,
    message_count     BIGINT NOT NULL DEFAULT 0, -- visible (not deleted) messages
    last_message_at TIMESTAMPTZ,
    state             JSONB NOT NULL DEFAULT '{}', -- agent state of the latest checkpoint
    checkpoint_version BIGINT NOT NULL DEFAULT 0,
    -- The turn lease: turns on one conversation never interleave, across processes too.
    lease_token       UUID,
    lease_expires_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ
);

CREATE INDEX conversations_org_created ON conversations (org_id, created_at DESC);
CREATE INDEX conversations_sweep ON conversations (kind, updated_at);

CREATE TABLE messages (
    id               UUID PRIMARY KEY,
    conversation_id  UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    org_id           TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
    content          TEXT NOT NULL,
    tool_calls       JSONB,                         -- JSON array on assistant messages that call tools
    tool_call_id     TEXT,                         -- on tool results
    tool_name        TEXT,
    run_id           UUID,
    model            TEXT,
    usage            JSONB,                         -- JSON token usage of the step that wrote it
    created_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ,
    UNIQUE (conversation_id, seq)
);

CREATE TABLE checkpoints (
    conversation_id  UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    version          BIGINT NOT NULL,
    parent_version   BIGINT,
    run_id           UUID NOT NULL,
    step             BIGINT NOT NULL,
    state            JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (conversation_id, version)
);

CREATE TABLE runs (
    id                 UUID PRIMARY KEY,
    org_id             TEXT NOT NULL,
    conversation_id    UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    status             TEXT NOT NULL CHECK (status IN ('completed', 'failed')),
    model              TEXT,
    steps              BIGINT NOT NULL DEFAULT 0,
    prompt_tokens      BIGINT NOT NULL DEFAULT 0,
    completion_tokens  BIGINT NOT NULL DEFAULT 0,
    total_tokens       BIGINT NOT NULL DEFAULT 0,
    error              TEXT,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX runs_conversation ON runs (conversation_id, started_at);

-- Responses kept for Idempotency-Key replays (24 h).
CREATE TABLE idempotency_keys (
    org_id        TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    response      JSONB NOT NULL,
    conversation_id  UUID,                          -- erased with the conversation
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, key)
);

-- Results of side-effecting tool calls, so a retried turn repeats no side effect.
CREATE TABLE tool_effects (
    conversation_id  UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    tool_call_id     TEXT NOT NULL,
    tool_name        TEXT NOT NULL,
    result           JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (conversation_id, tool_call_id)
);

CREATE TABLE appointments (
    id                   UUID PRIMARY KEY,
    org_id               TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    confirmation_number  TEXT NOT NULL UNIQUE,
    service_id           TEXT NOT NULL,
    service_name         TEXT NOT NULL,
    start_at TIMESTAMPTZ NOT NULL,
    end_at TIMESTAMPTZ NOT NULL,
    customer_name        TEXT NOT NULL,
    customer_email       TEXT NOT NULL,
    customer_phone       TEXT,
    status               TEXT NOT NULL CHECK (status IN ('booked', 'cancelled')),
    end_user             TEXT,
    conversation_id      UUID,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX appointments_org_start ON appointments (org_id, start_at);

-- Every 5-minute slot a booked appointment covers. The primary key is what makes double
-- booking impossible, whatever the services' durations and however many instances run.
CREATE TABLE appointment_slots (
    org_id          TEXT NOT NULL,
    slot_at TIMESTAMPTZ NOT NULL,
    appointment_id  UUID NOT NULL REFERENCES appointments (id) ON DELETE CASCADE,
    PRIMARY KEY (org_id, slot_at)
);

CREATE TABLE tasks (
    id            UUID PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    owner         TEXT NOT NULL,                  -- the end user, or session:<id> for key callers
    title         TEXT NOT NULL,
    description   TEXT,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'completed')),
    created_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ
);

CREATE INDEX tasks_owner ON tasks (org_id, owner, created_at);
