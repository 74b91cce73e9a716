-- Contact imports: Outlook contacts of a mailbox into PSA users.
--
-- A run (manual or scheduled) and its counts; one row per contact it looked at, with the
-- outcome, the reason and the PSA requests made for it.
CREATE TABLE contact_import_runs (
    id INTEGER PRIMARY KEY,
    mailbox_id TEXT NOT NULL,
    -- manual | scheduled
    trigger TEXT NOT NULL,
    -- running | finished | cancelled | failed | interrupted
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    total INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    removed INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    -- JSON: the HTTP exchanges of the run that belong to no one contact (reads of the
    -- address book, the PSA's users and sites), redacted.
    requests TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX contact_import_runs_mailbox ON contact_import_runs (mailbox_id, id);

CREATE TABLE contact_import_rows (
    run_id INTEGER NOT NULL REFERENCES contact_import_runs (id) ON DELETE CASCADE,
    contact_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    email TEXT,
    -- created | updated | unchanged | skipped | failed | removed
    outcome TEXT NOT NULL,
    reason TEXT,
    psa_user_id INTEGER,
    site_id INTEGER,
    -- JSON: [{field, from, to}] of an update or the fields of a created user.
    changes TEXT NOT NULL DEFAULT '[]',
    -- JSON: the PSA requests made for this contact (a batch's requests on each of its rows).
    requests TEXT NOT NULL DEFAULT '[]',
    at TEXT NOT NULL,
    PRIMARY KEY (run_id, contact_id)
);

-- Never a second user for one address: the address (lower case) is claimed before the PSA
-- user is created, and the user's id noted once HaloPSA answered. A claim without an id
-- (the process stopped mid-request) is settled by reading HaloPSA again before any create.
CREATE TABLE contact_links (
    email TEXT PRIMARY KEY NOT NULL,
    psa_user_id INTEGER,
    mailbox_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    linked_at TEXT
);

-- Where each contact folder's delta round stands, per mailbox (scheduled imports).
CREATE TABLE contact_delta_cursors (
    mailbox_id TEXT NOT NULL,
    folder_id TEXT NOT NULL,
    link TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, folder_id)
);
