-- Wave 2 architecture: skills own their state and their rows (docs/architecture.md).
-- PostgreSQL flavour; see ../sqlite for the same change.

-- 1. The conversation state becomes {"stage", "skills": {<skill>: …}}: the booking flow's
--    draft and last confirmation number move under the booking skill's name. The stage label
--    stays where it was (it is what clients see as current_state). Checkpoints get the same.
UPDATE conversations
SET state = jsonb_build_object(
    'stage', COALESCE(state -> 'stage', '"IDLE"'),
    'skills', jsonb_build_object('booking', jsonb_build_object(
        'draft', COALESCE(state -> 'booking', '{}'::jsonb),
        'last_confirmation', state -> 'last_confirmation')))
WHERE NOT state ? 'skills' AND (state ? 'booking' OR state ? 'last_confirmation');

UPDATE checkpoints
SET state = jsonb_build_object(
    'stage', COALESCE(state -> 'stage', '"IDLE"'),
    'skills', jsonb_build_object('booking', jsonb_build_object(
        'draft', COALESCE(state -> 'booking', '{}'::jsonb),
        'last_confirmation', state -> 'last_confirmation')))
WHERE NOT state ? 'skills' AND (state ? 'booking' OR state ? 'last_confirmation');

-- 2. A stored Idempotency-Key reply keeps the stage label only (`current_state`), not the
--    whole state: replays need nothing else.
UPDATE idempotency_keys
SET response = (response - 'state')
    || jsonb_build_object('current_state', COALESCE(response -> 'state' -> 'stage', '"IDLE"'))
WHERE response ? 'state';

-- 3. Rows a skill keeps about a conversation go with it when it is erased, through the
--    skill's own triggers (the core's erase knows no skill's table): an API-key session's
--    tasks are deleted; an appointment forgets the conversation that made it.
ALTER TABLE tasks ADD COLUMN conversation_id UUID;  -- the session owning the task (key callers)
UPDATE tasks SET conversation_id = substr(owner, 9)::uuid WHERE owner LIKE 'session:%';
CREATE INDEX tasks_conversation ON tasks (conversation_id) WHERE conversation_id IS NOT NULL;
CREATE INDEX appointments_conversation ON appointments (conversation_id)
    WHERE conversation_id IS NOT NULL;

CREATE FUNCTION tasks_erase_with_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasks WHERE conversation_id = OLD.id;
    RETURN OLD;
END $$;

CREATE TRIGGER tasks_erased_with_session AFTER DELETE ON conversations
    FOR EACH ROW EXECUTE FUNCTION tasks_erase_with_session();

CREATE FUNCTION appointments_forget_conversation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE appointments SET conversation_id = NULL WHERE conversation_id = OLD.id;
    RETURN OLD;
END $$;

CREATE TRIGGER appointments_forget_erased_conversation AFTER DELETE ON conversations
    FOR EACH ROW EXECUTE FUNCTION appointments_forget_conversation();
