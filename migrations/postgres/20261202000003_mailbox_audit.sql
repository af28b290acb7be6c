-- The mailbox's audit log (issue 12.5, docs/mailbox.md): every send, reply, broadcast,
-- metadata change, archive, contact change and agent token issue, written in the same
-- transaction as the change. Append-only: the triggers below refuse UPDATE and DELETE.
-- PostgreSQL flavour.
CREATE TABLE mailbox_audit_events (
    event_id       UUID PRIMARY KEY,              -- UUIDv7: sortable by time
    org_id         TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    actor_handle   TEXT NOT NULL,
    target_handle  TEXT,
    details        JSONB NOT NULL DEFAULT '{}',
    timestamp      TIMESTAMPTZ NOT NULL
);
-- An agent reads the events it made or that concern it, newest first.
CREATE INDEX mailbox_audit_actor ON mailbox_audit_events (org_id, actor_handle, event_id);
CREATE INDEX mailbox_audit_target ON mailbox_audit_events (org_id, target_handle, event_id);

CREATE FUNCTION mailbox_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mailbox audit events are append-only';
END;
$$;
CREATE TRIGGER mailbox_audit_no_update BEFORE UPDATE OR DELETE ON mailbox_audit_events
    FOR EACH ROW EXECUTE FUNCTION mailbox_audit_append_only();
