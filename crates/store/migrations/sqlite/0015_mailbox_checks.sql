-- The mailbox checks (issue 25): the last findings of each mailbox's safety checks (blast
-- radius, identity, who signs in) and when they ran — by Test connection, Check now, or the
-- daily re-check. One row per mailbox; the findings are the engine's JSON list.
CREATE TABLE mailbox_checks (
    mailbox_id TEXT PRIMARY KEY NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    checked_at TEXT NOT NULL,
    -- JSON array of {id, title, state, detail, fix, request_id}
    findings   TEXT NOT NULL
);
