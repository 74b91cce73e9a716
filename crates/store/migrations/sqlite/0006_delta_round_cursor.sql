-- The cursor of a delta round in progress: the @odata.nextLink of the next page to read, stored
-- after each page's sightings. A round resumes here; only the round's final @odata.deltaLink
-- (mailbox_sync.delta_link) replaces the mailbox's cursor, and then this row is removed.
CREATE TABLE delta_round_cursors (
    mailbox_id TEXT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    folder     TEXT NOT NULL,
    next_link  TEXT NOT NULL,  -- an opaque Graph URL (no secret)
    pages      INTEGER NOT NULL, -- pages of this round read so far
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, folder)
);
