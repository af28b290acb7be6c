-- Conversations are identified within their organisation: the primary key becomes
-- (org_id, id), so a session id one organisation uses is free for every other (a client
-- chooses session ids), and every lookup on the turn path is a primary-key lookup whatever
-- the planner knows about the table (on a never-analysed table, PostgreSQL used to plan
-- `id = $1 AND org_id = $2` on the (org_id, created_at) index and walk the org's
-- conversations). Their rows in other tables reference (org_id, id).
-- Also: turn leases name the instance that holds them (lease_owner), finished runs keep
-- their stream's events (runs.events), runs may be cancelled, and operators may write
-- messages (role 'operator').

ALTER TABLE checkpoints ADD COLUMN org_id TEXT;
UPDATE checkpoints k SET org_id = c.org_id FROM conversations c WHERE c.id = k.conversation_id;
ALTER TABLE checkpoints ALTER COLUMN org_id SET NOT NULL;
ALTER TABLE tool_effects ADD COLUMN org_id TEXT;
UPDATE tool_effects t SET org_id = c.org_id FROM conversations c WHERE c.id = t.conversation_id;
ALTER TABLE tool_effects ALTER COLUMN org_id SET NOT NULL;

ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_fkey;
ALTER TABLE checkpoints DROP CONSTRAINT checkpoints_conversation_id_fkey;
ALTER TABLE runs DROP CONSTRAINT runs_conversation_id_fkey;
ALTER TABLE tool_effects DROP CONSTRAINT tool_effects_conversation_id_fkey;

ALTER TABLE conversations DROP CONSTRAINT conversations_pkey;
ALTER TABLE conversations ADD PRIMARY KEY (org_id, id);
ALTER TABLE conversations ADD COLUMN lease_owner TEXT;

ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_seq_key;
ALTER TABLE messages ADD CONSTRAINT messages_conversation_seq UNIQUE (org_id, conversation_id, seq);
ALTER TABLE messages ADD FOREIGN KEY (org_id, conversation_id)
    REFERENCES conversations (org_id, id) ON DELETE CASCADE;
ALTER TABLE messages DROP CONSTRAINT messages_role_check;
ALTER TABLE messages ADD CONSTRAINT messages_role_check
    CHECK (role IN ('user', 'assistant', 'tool', 'operator'));

ALTER TABLE checkpoints DROP CONSTRAINT checkpoints_pkey;
ALTER TABLE checkpoints ADD PRIMARY KEY (org_id, conversation_id, version);
ALTER TABLE checkpoints ADD FOREIGN KEY (org_id, conversation_id)
    REFERENCES conversations (org_id, id) ON DELETE CASCADE;

ALTER TABLE runs ADD FOREIGN KEY (org_id, conversation_id)
    REFERENCES conversations (org_id, id) ON DELETE CASCADE;
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('completed', 'failed', 'cancelled'));
-- A streamed run's events, so a finished run replays from here, not from memory.
ALTER TABLE runs ADD COLUMN events JSONB;

ALTER TABLE tool_effects DROP CONSTRAINT tool_effects_pkey;
ALTER TABLE tool_effects ADD PRIMARY KEY (org_id, conversation_id, tool_call_id);
ALTER TABLE tool_effects ADD FOREIGN KEY (org_id, conversation_id)
    REFERENCES conversations (org_id, id) ON DELETE CASCADE;

-- Listing an org's conversations, newest first (also how the sweeper finds sessions old
-- enough to be idle). No index covers a column a turn changes (updated_at, the lease; the
-- sweep index on updated_at goes), and pages keep room to spare, so a turn's update of its
-- conversation row is a HOT update: no index entries, no bloat on a busy conversation.
DROP INDEX conversations_org_created;
CREATE INDEX conversations_org_created ON conversations (org_id, created_at DESC, id DESC);
DROP INDEX conversations_sweep;
ALTER TABLE conversations SET (fillfactor = 80);
DROP INDEX runs_conversation;
CREATE INDEX runs_conversation ON runs (org_id, conversation_id, started_at);

DROP INDEX tasks_conversation;
CREATE INDEX tasks_conversation ON tasks (org_id, conversation_id)
    WHERE conversation_id IS NOT NULL;
DROP INDEX appointments_conversation;
CREATE INDEX appointments_conversation ON appointments (org_id, conversation_id)
    WHERE conversation_id IS NOT NULL;

CREATE OR REPLACE FUNCTION tasks_erase_with_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasks WHERE org_id = OLD.org_id AND conversation_id = OLD.id;
    RETURN OLD;
END $$;

CREATE OR REPLACE FUNCTION appointments_forget_conversation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE appointments SET conversation_id = NULL
    WHERE org_id = OLD.org_id AND conversation_id = OLD.id;
    RETURN OLD;
END $$;
