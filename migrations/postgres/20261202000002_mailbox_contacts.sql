-- The mailbox's address book (issue 12.4, docs/mailbox.md): contacts per organisation, with a
-- version for optimistic locking (a PUT names the version it read; a stale one is 409
-- VERSION_CONFLICT) and soft deletion (is_active). PostgreSQL flavour.
CREATE TABLE mailbox_contacts (
    org_id        TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    handle        TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    tags          JSONB NOT NULL DEFAULT '[]',   -- array of strings
    is_active     BOOLEAN NOT NULL DEFAULT TRUE,
    version       BIGINT NOT NULL DEFAULT 1,
    updated_by    TEXT NOT NULL,                 -- the agent that made the last change
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, handle)
);
