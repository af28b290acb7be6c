-- Wave 2 architecture: skills own their state and their rows (docs/architecture.md).
-- SQLite flavour; see ../postgres for the same change with native types.

-- 1. The conversation state becomes {"stage", "skills": {<skill>: …}}: the booking flow's
--    draft and last confirmation number move under the booking skill's name. The stage label
--    stays where it was (it is what clients see as current_state). Checkpoints get the same.
UPDATE conversations
SET state = json_object(
    'stage', COALESCE(json_extract(state, '$.stage'), 'IDLE'),
    'skills', json_object('booking', json_object(
        'draft', json(COALESCE(json_extract(state, '$.booking'), '{}')),
        'last_confirmation', json_extract(state, '$.last_confirmation'))))
WHERE json_extract(state, '$.skills') IS NULL
  AND (json_extract(state, '$.booking') IS NOT NULL
       OR json_extract(state, '$.last_confirmation') IS NOT NULL);

UPDATE checkpoints
SET state = json_object(
    'stage', COALESCE(json_extract(state, '$.stage'), 'IDLE'),
    'skills', json_object('booking', json_object(
        'draft', json(COALESCE(json_extract(state, '$.booking'), '{}')),
        'last_confirmation', json_extract(state, '$.last_confirmation'))))
WHERE json_extract(state, '$.skills') IS NULL
  AND (json_extract(state, '$.booking') IS NOT NULL
       OR json_extract(state, '$.last_confirmation') IS NOT NULL);

-- 2. A stored Idempotency-Key reply keeps the stage label only (`current_state`), not the
--    whole state: replays need nothing else.
UPDATE idempotency_keys
SET response = json_set(json_remove(response, '$.state'), '$.current_state',
                        COALESCE(json_extract(response, '$.state.stage'), 'IDLE'))
WHERE json_extract(response, '$.state') IS NOT NULL;

-- 3. Rows a skill keeps about a conversation go with it when it is erased, through the
--    skill's own triggers (the core's erase knows no skill's table): an API-key session's
--    tasks are deleted; an appointment forgets the conversation that made it.
ALTER TABLE tasks ADD COLUMN conversation_id BLOB;  -- the session owning the task (key callers)
UPDATE tasks SET conversation_id = unhex(replace(substr(owner, 9), '-', ''))
WHERE owner LIKE 'session:%';
CREATE INDEX tasks_conversation ON tasks (conversation_id) WHERE conversation_id IS NOT NULL;
CREATE INDEX appointments_conversation ON appointments (conversation_id)
    WHERE conversation_id IS NOT NULL;

CREATE TRIGGER tasks_erased_with_session AFTER DELETE ON conversations
BEGIN
    DELETE FROM tasks WHERE conversation_id = old.id;
END;

CREATE TRIGGER appointments_forget_erased_conversation AFTER DELETE ON conversations
BEGIN
    UPDATE appointments SET conversation_id = NULL WHERE conversation_id = old.id;
END;
