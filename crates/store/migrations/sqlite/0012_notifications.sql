-- Problems that need an admin or an agent (an email failed for good, a mailbox disconnected,
-- a credential expiring, the PSA unreachable): one row per problem (`key` is unique, so the
-- same problem is told once), included in the next digest email to the chosen agents.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    mailbox_id TEXT,
    title TEXT NOT NULL,
    detail TEXT NOT NULL,
    fix TEXT NOT NULL,
    created_at TEXT NOT NULL,
    digested_at TEXT
);
CREATE INDEX notifications_pending ON notifications (digested_at, id);
