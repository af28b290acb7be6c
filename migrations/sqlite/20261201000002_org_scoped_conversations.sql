-- Conversations are identified within their organisation: the primary key becomes
-- (org_id, id), so a session id one organisation uses is free for every other (a client
-- chooses session ids), and every lookup on the turn path is a primary-key lookup whatever
-- the planner knows about the table. Their rows in other tables reference (org_id, id).
-- Also: turn leases name the instance that holds them (lease_owner), finished runs keep
-- their stream's events (runs.events), runs may be cancelled, and operators may write
-- messages (role 'operator').
-- SQLite cannot change a primary key in place: the tables are rebuilt (renamed, recreated,
-- copied, dropped), children before parents so that nothing cascades.

DROP TRIGGER tasks_erased_with_session;
DROP TRIGGER appointments_forget_erased_conversation;
DROP INDEX conversations_org_created;
DROP INDEX conversations_sweep;
DROP INDEX runs_conversation;

ALTER TABLE tool_effects RENAME TO tool_effects_old;
ALTER TABLE runs RENAME TO runs_old;
ALTER TABLE checkpoints RENAME TO checkpoints_old;
ALTER TABLE messages RENAME TO messages_old;
ALTER TABLE conversations RENAME TO conversations_old;

CREATE TABLE conversations (
    id                BLOB NOT NULL,
    org_id            TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    kind              TEXT NOT NULL CHECK (kind IN ('session', 'conversation')),
    end_user          TEXT,                       -- owner when created with an end-user token
    title             TEXT NOT NULL,
    metadata          TEXT NOT NULL DEFAULT '{}',
    archived          BOOLEAN NOT NULL DEFAULT 0,
    -- Sequence number of the last message: messages are numbered 1, 2, … so the history
    -- window is a range read (seq > last_seq - N) that stays O(window) however long the
    -- conversation grows.
    last_seq          INTEGER NOT NULL DEFAULT 0,
    message_count     INTEGER NOT NULL DEFAULT 0, -- visible (not deleted) messages
    last_message_at   TEXT,
    state             TEXT NOT NULL DEFAULT '{}', -- conversation state of the latest checkpoint
    checkpoint_version INTEGER NOT NULL DEFAULT 0,
    -- The turn lease: turns on one conversation never interleave, across processes too. The
    -- owner is the instance holding it; a restarted instance frees its previous life's leases.
    lease_token       BLOB,
    lease_owner       TEXT,
    lease_expires_at  TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    deleted_at        TEXT,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE messages (
    id               BLOB PRIMARY KEY,
    org_id           TEXT NOT NULL,
    conversation_id  BLOB NOT NULL,
    seq              INTEGER NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool', 'operator')),
    content          TEXT NOT NULL,
    tool_calls       TEXT,                         -- JSON array on assistant messages that call tools
    tool_call_id     TEXT,                         -- on tool results
    tool_name        TEXT,
    run_id           BLOB,
    model            TEXT,
    usage            TEXT,                         -- JSON token usage of the step that wrote it
    created_at       TEXT NOT NULL,
    deleted_at       TEXT,
    UNIQUE (org_id, conversation_id, seq),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE
);

CREATE TABLE checkpoints (
    org_id           TEXT NOT NULL,
    conversation_id  BLOB NOT NULL,
    version          INTEGER NOT NULL,
    parent_version   INTEGER,
    run_id           BLOB NOT NULL,
    step             INTEGER NOT NULL,
    state            TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (org_id, conversation_id, version),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE
);

CREATE TABLE runs (
    id                 BLOB PRIMARY KEY,
    org_id             TEXT NOT NULL,
    conversation_id    BLOB NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('completed', 'failed', 'cancelled')),
    model              TEXT,
    steps              INTEGER NOT NULL DEFAULT 0,
    prompt_tokens      INTEGER NOT NULL DEFAULT 0,
    completion_tokens  INTEGER NOT NULL DEFAULT 0,
    total_tokens       INTEGER NOT NULL DEFAULT 0,
    error              TEXT,
    -- A streamed run's events (JSON array), so a finished run replays from here, not memory.
    events             TEXT,
    started_at         TEXT NOT NULL,
    finished_at        TEXT NOT NULL,
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE
);

CREATE TABLE tool_effects (
    org_id           TEXT NOT NULL,
    conversation_id  BLOB NOT NULL,
    tool_call_id     TEXT NOT NULL,
    tool_name        TEXT NOT NULL,
    result           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (org_id, conversation_id, tool_call_id),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE
);

INSERT INTO conversations (id, org_id, kind, end_user, title, metadata, archived, last_seq,
    message_count, last_message_at, state, checkpoint_version, lease_token, lease_owner,
    lease_expires_at, created_at, updated_at, deleted_at)
SELECT id, org_id, kind, end_user, title, metadata, archived, last_seq, message_count,
    last_message_at, state, checkpoint_version, lease_token, NULL, lease_expires_at,
    created_at, updated_at, deleted_at
FROM conversations_old;

INSERT INTO messages (id, org_id, conversation_id, seq, role, content, tool_calls,
    tool_call_id, tool_name, run_id, model, usage, created_at, deleted_at)
SELECT id, org_id, conversation_id, seq, role, content, tool_calls, tool_call_id, tool_name,
    run_id, model, usage, created_at, deleted_at
FROM messages_old;

INSERT INTO checkpoints (org_id, conversation_id, version, parent_version, run_id, step,
    state, created_at)
SELECT c.org_id, k.conversation_id, k.version, k.parent_version, k.run_id, k.step, k.state,
    k.created_at
FROM checkpoints_old k JOIN conversations_old c ON c.id = k.conversation_id;

INSERT INTO runs (id, org_id, conversation_id, status, model, steps, prompt_tokens,
    completion_tokens, total_tokens, error, events, started_at, finished_at)
SELECT id, org_id, conversation_id, status, model, steps, prompt_tokens, completion_tokens,
    total_tokens, error, NULL, started_at, finished_at
FROM runs_old;

INSERT INTO tool_effects (org_id, conversation_id, tool_call_id, tool_name, result, created_at)
SELECT c.org_id, t.conversation_id, t.tool_call_id, t.tool_name, t.result, t.created_at
FROM tool_effects_old t JOIN conversations_old c ON c.id = t.conversation_id;

DROP TABLE tool_effects_old;
DROP TABLE runs_old;
DROP TABLE checkpoints_old;
DROP TABLE messages_old;
DROP TABLE conversations_old;

-- Listing an org's conversations, newest first (also how the sweeper finds sessions old
-- enough to be idle). No index covers a column a turn changes (updated_at, the lease), so that
-- PostgreSQL's twin can update the row in place on every turn.
CREATE INDEX conversations_org_created ON conversations (org_id, created_at DESC, id DESC);
CREATE INDEX runs_conversation ON runs (org_id, conversation_id, started_at);

DROP INDEX tasks_conversation;
CREATE INDEX tasks_conversation ON tasks (org_id, conversation_id)
    WHERE conversation_id IS NOT NULL;
DROP INDEX appointments_conversation;
CREATE INDEX appointments_conversation ON appointments (org_id, conversation_id)
    WHERE conversation_id IS NOT NULL;

CREATE TRIGGER tasks_erased_with_session AFTER DELETE ON conversations
BEGIN
    DELETE FROM tasks WHERE org_id = old.org_id AND conversation_id = old.id;
END;

CREATE TRIGGER appointments_forget_erased_conversation AFTER DELETE ON conversations
BEGIN
    UPDATE appointments SET conversation_id = NULL
    WHERE org_id = old.org_id AND conversation_id = old.id;
END;
