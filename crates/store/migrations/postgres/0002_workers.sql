-- Several workers (issue 16; SQLite: 0022_workers.sql).

-- How many times an email's claim was taken over after its lease ran out (a worker died).
ALTER TABLE inbound_emails ADD COLUMN takeovers BIGINT NOT NULL DEFAULT 0;

-- Named leases: one holder at a time (one delta round per mailbox across all workers); a
-- lease whose holder stops renewing it is taken over once it expires.
CREATE TABLE work_leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL,
    takeovers  BIGINT NOT NULL DEFAULT 0
);
