-- Several workers (issue 16). On SQLite one process works on a store at a time, but the store
-- keeps the same records on both databases.

-- How many times an email's claim was taken over after its lease ran out (a worker died).
ALTER TABLE inbound_emails ADD COLUMN takeovers INTEGER NOT NULL DEFAULT 0;

-- Named leases: one holder at a time (one delta round per mailbox across all workers); a
-- lease whose holder stops renewing it is taken over once it expires.
CREATE TABLE work_leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    takeovers  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
