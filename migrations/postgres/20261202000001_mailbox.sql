-- The agent mailbox (issue 12, docs/mailbox.md): agent identities, threads, messages and the
-- full-text index over messages. PostgreSQL flavour; see ../sqlite for the same tables.

-- Agents an organisation registers. The handle is the agent's address in its organisation
-- (`a-z0-9._-`, 1–64); the secret is an argon2id PHC string, shown once at creation or
-- rotation. `secret_version` grows with every rotation: tokens carry the version they were
-- minted under, so rotating the secret ends the tokens minted with the old one.
CREATE TABLE mailbox_agents (
    org_id          TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    handle          TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    secret_hash     TEXT NOT NULL,
    secret_version  BIGINT NOT NULL DEFAULT 1,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, handle)
);

-- A thread: the first message starts it, replies join it. `last_message_at` orders the
-- thread list by activity; `metadata` is per thread (key → JSON value).
CREATE TABLE mailbox_threads (
    id               UUID PRIMARY KEY,               -- UUIDv7: sortable by creation
    org_id           TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    subject          TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    last_message_at  TIMESTAMPTZ NOT NULL,
    message_count    BIGINT NOT NULL DEFAULT 0,
    metadata         JSONB NOT NULL DEFAULT '{}'
);

-- Who takes part in a thread (senders and recipients); only they see it. Archiving is per
-- participant.
CREATE TABLE mailbox_thread_participants (
    thread_id  UUID NOT NULL REFERENCES mailbox_threads (id) ON DELETE CASCADE,
    org_id     TEXT NOT NULL,
    handle     TEXT NOT NULL,
    archived   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (thread_id, handle)
);
CREATE INDEX mailbox_participants_agent ON mailbox_thread_participants (org_id, handle, archived);

-- Messages are immutable. `to_handles` and `tags` are JSON arrays of strings.
-- `search` is the full-text document: the subject weighs more (A) than the body (B). The
-- 'simple' configuration (lower-casing, no stemming, no stop words) matches what SQLite's
-- unicode61 tokenizer does, so a query finds the same messages on both backends.
CREATE TABLE mailbox_messages (
    id           UUID PRIMARY KEY,                   -- UUIDv7: sortable by creation
    org_id       TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    thread_id    UUID NOT NULL REFERENCES mailbox_threads (id) ON DELETE CASCADE,
    from_handle  TEXT NOT NULL,
    to_handles   JSONB NOT NULL,
    subject      TEXT NOT NULL,
    body         TEXT NOT NULL,
    tags         JSONB NOT NULL DEFAULT '[]',
    in_reply_to  UUID,
    created_at   TIMESTAMPTZ NOT NULL,
    search       TSVECTOR GENERATED ALWAYS AS (
                     setweight(to_tsvector('simple', subject), 'A')
                     || setweight(to_tsvector('simple', body), 'B')) STORED
);
CREATE INDEX mailbox_messages_thread ON mailbox_messages (thread_id, id);
CREATE INDEX mailbox_messages_search ON mailbox_messages USING GIN (search);

-- Each agent's view of the mailbox: one row per message it sent or received, so "the
-- messages I may see" is a range of one index, and visibility is one primary-key probe.
CREATE TABLE mailbox_message_agents (
    org_id      TEXT NOT NULL,
    handle      TEXT NOT NULL,
    message_id  UUID NOT NULL REFERENCES mailbox_messages (id) ON DELETE CASCADE,
    thread_id   UUID NOT NULL,
    sent        BOOLEAN NOT NULL DEFAULT FALSE,
    received    BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (org_id, handle, message_id)
);
CREATE INDEX mailbox_message_agents_thread ON mailbox_message_agents (org_id, handle, thread_id, message_id);
CREATE INDEX mailbox_message_agents_message ON mailbox_message_agents (message_id);
