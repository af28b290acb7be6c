-- The mailbox's audit log (issue 12.5, docs/mailbox.md): every send, reply, broadcast,
-- metadata change, archive, contact change and agent token issue, written in the same
-- transaction as the change. Append-only: the triggers below refuse UPDATE and DELETE.
-- SQLite flavour: UUIDs as blobs, JSON and timestamps as text.
CREATE TABLE mailbox_audit_events (
    event_id       BLOB PRIMARY KEY,              -- UUIDv7: sortable by time
    org_id         TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    actor_handle   TEXT NOT NULL,
    target_handle  TEXT,
    details        TEXT NOT NULL DEFAULT '{}',
    timestamp      TEXT NOT NULL
);
-- An agent reads the events it made or that concern it, newest first.
CREATE INDEX mailbox_audit_actor ON mailbox_audit_events (org_id, actor_handle, event_id);
CREATE INDEX mailbox_audit_target ON mailbox_audit_events (org_id, target_handle, event_id);

CREATE TRIGGER mailbox_audit_no_update BEFORE UPDATE ON mailbox_audit_events BEGIN
    SELECT RAISE(ABORT, 'mailbox audit events are append-only');
END;
CREATE TRIGGER mailbox_audit_no_delete BEFORE DELETE ON mailbox_audit_events BEGIN
    SELECT RAISE(ABORT, 'mailbox audit events are append-only');
END;
