-- The agent mailbox (issue 12, docs/mailbox.md): agent identities, threads, messages and the
-- full-text index over messages. SQLite flavour; see ../postgres for the native types.
-- Timestamps are RFC 3339 text, UUIDs 16-byte blobs, JSON is text.

-- Agents an organisation registers. The handle is the agent's address in its organisation
-- (`a-z0-9._-`, 1–64); the secret is an argon2id PHC string, shown once at creation or
-- rotation. `secret_version` grows with every rotation: tokens carry the version they were
-- minted under, so rotating the secret ends the tokens minted with the old one.
CREATE TABLE mailbox_agents (
    org_id          TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    handle          TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    active          BOOLEAN NOT NULL DEFAULT 1,
    secret_hash     TEXT NOT NULL,
    secret_version  INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (org_id, handle)
);

-- A thread: the first message starts it, replies join it. `last_message_at` orders the
-- thread list by activity; `metadata` is per thread (key → JSON value).
CREATE TABLE mailbox_threads (
    id               BLOB PRIMARY KEY,               -- UUIDv7: sortable by creation
    org_id           TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    subject          TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    last_message_at  TEXT NOT NULL,
    message_count    INTEGER NOT NULL DEFAULT 0,
    metadata         TEXT NOT NULL DEFAULT '{}'
);

-- Who takes part in a thread (senders and recipients); only they see it. Archiving is per
-- participant.
CREATE TABLE mailbox_thread_participants (
    thread_id  BLOB NOT NULL REFERENCES mailbox_threads (id) ON DELETE CASCADE,
    org_id     TEXT NOT NULL,
    handle     TEXT NOT NULL,
    archived   BOOLEAN NOT NULL DEFAULT 0,
    PRIMARY KEY (thread_id, handle)
);
CREATE INDEX mailbox_participants_agent ON mailbox_thread_participants (org_id, handle, archived);

-- Messages are immutable. `to_handles` and `tags` are JSON arrays of strings. A rowid table
-- (not WITHOUT ROWID): the full-text index below refers to messages by rowid.
CREATE TABLE mailbox_messages (
    id           BLOB PRIMARY KEY,                   -- UUIDv7: sortable by creation
    org_id       TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    thread_id    BLOB NOT NULL REFERENCES mailbox_threads (id) ON DELETE CASCADE,
    from_handle  TEXT NOT NULL,
    to_handles   TEXT NOT NULL,
    subject      TEXT NOT NULL,
    body         TEXT NOT NULL,
    tags         TEXT NOT NULL DEFAULT '[]',
    in_reply_to  BLOB,
    created_at   TEXT NOT NULL
);
CREATE INDEX mailbox_messages_thread ON mailbox_messages (thread_id, id);

-- The full-text index: FTS5 over subject and body, holding no copy of the text (an
-- external-content table read back from mailbox_messages by rowid), kept current by the
-- triggers below. unicode61 without diacritic folding matches PostgreSQL's 'simple'
-- configuration, so a query finds the same messages on both backends.
CREATE VIRTUAL TABLE mailbox_messages_fts USING fts5(
    subject, body,
    content = 'mailbox_messages', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 0'
);
CREATE TRIGGER mailbox_messages_fts_insert AFTER INSERT ON mailbox_messages BEGIN
    INSERT INTO mailbox_messages_fts (rowid, subject, body) VALUES (new.rowid, new.subject, new.body);
END;
CREATE TRIGGER mailbox_messages_fts_delete AFTER DELETE ON mailbox_messages BEGIN
    INSERT INTO mailbox_messages_fts (mailbox_messages_fts, rowid, subject, body)
        VALUES ('delete', old.rowid, old.subject, old.body);
END;

-- Each agent's view of the mailbox: one row per message it sent or received, so "the
-- messages I may see" is a range of one index, and visibility is one primary-key probe.
CREATE TABLE mailbox_message_agents (
    org_id      TEXT NOT NULL,
    handle      TEXT NOT NULL,
    message_id  BLOB NOT NULL REFERENCES mailbox_messages (id) ON DELETE CASCADE,
    thread_id   BLOB NOT NULL,
    sent        BOOLEAN NOT NULL DEFAULT 0,
    received    BOOLEAN NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, handle, message_id)
);
CREATE INDEX mailbox_message_agents_thread ON mailbox_message_agents (org_id, handle, thread_id, message_id);
CREATE INDEX mailbox_message_agents_message ON mailbox_message_agents (message_id);
