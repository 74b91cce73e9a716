-- The inbound pipeline: every email Mailroom sees, its processing state machine, each attempt
-- with its HTTP exchanges and step-by-step log, the PSA writes it made (for exactly-once), the
-- thread keys that map replies to tickets, and each mailbox's sync cursor.

CREATE TABLE inbound_emails (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox_id          TEXT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    -- Identity of the email for de-duplication: the Internet Message-ID when present, else
    -- the Graph id. A second sighting (webhook + scan, a duplicate notification) finds this row.
    dedupe_key          TEXT NOT NULL,
    graph_message_id    TEXT NOT NULL,      -- current Graph id (changes when the mail is moved)
    internet_message_id TEXT,
    conversation_id     TEXT,
    received_at         TEXT NOT NULL,
    from_address        TEXT NOT NULL DEFAULT '',
    from_name           TEXT NOT NULL DEFAULT '',
    subject             TEXT NOT NULL DEFAULT '',
    -- State machine: seen -> claimed -> psa_written -> done; or -> skipped; failures go to
    -- retrying (with next_attempt_at) and, after the last attempt, to failed.
    state               TEXT NOT NULL DEFAULT 'seen'
                        CHECK (state IN ('seen', 'claimed', 'psa_written', 'done', 'skipped', 'retrying', 'failed')),
    outcome             TEXT,               -- 'ticket_created' | 'action_added' | NULL
    skip_reason         TEXT,               -- stable code of the skip reason
    skip_detail         TEXT,
    ticket_id           INTEGER,
    action_id           INTEGER,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TEXT,
    claim_token         TEXT,               -- who holds the claim
    claimed_at          TEXT,
    error_code          TEXT,
    error_message       TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (mailbox_id, dedupe_key)
);

CREATE INDEX inbound_by_mailbox ON inbound_emails (mailbox_id, received_at DESC, id DESC);
CREATE INDEX inbound_by_received ON inbound_emails (received_at DESC, id DESC);
CREATE INDEX inbound_by_state ON inbound_emails (state, received_at DESC, id DESC);
CREATE INDEX inbound_due ON inbound_emails (mailbox_id, state, next_attempt_at);

-- Full-text search over the log (sender and subject), kept in step by triggers.
CREATE VIRTUAL TABLE inbound_search USING fts5 (
    from_address, from_name, subject,
    content = 'inbound_emails', content_rowid = 'id', tokenize = 'unicode61'
);
CREATE TRIGGER inbound_search_insert AFTER INSERT ON inbound_emails BEGIN
    INSERT INTO inbound_search (rowid, from_address, from_name, subject)
    VALUES (new.id, new.from_address, new.from_name, new.subject);
END;
CREATE TRIGGER inbound_search_delete AFTER DELETE ON inbound_emails BEGIN
    INSERT INTO inbound_search (inbound_search, rowid, from_address, from_name, subject)
    VALUES ('delete', old.id, old.from_address, old.from_name, old.subject);
END;
CREATE TRIGGER inbound_search_update AFTER UPDATE OF from_address, from_name, subject ON inbound_emails BEGIN
    INSERT INTO inbound_search (inbound_search, rowid, from_address, from_name, subject)
    VALUES ('delete', old.id, old.from_address, old.from_name, old.subject);
    INSERT INTO inbound_search (rowid, from_address, from_name, subject)
    VALUES (new.id, new.from_address, new.from_name, new.subject);
END;

CREATE TABLE processing_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    email_id     INTEGER NOT NULL REFERENCES inbound_emails (id) ON DELETE CASCADE,
    number       INTEGER NOT NULL,
    trigger      TEXT NOT NULL,            -- 'scan' | 'webhook' | 'retry' | 'reprocess' | 'recovery'
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    result       TEXT,                     -- 'processed' | 'skipped' | 'failed'
    error_code   TEXT,
    error_message TEXT,
    UNIQUE (email_id, number)
);

CREATE TABLE attempt_requests (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt_id       INTEGER NOT NULL REFERENCES processing_attempts (id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,
    service          TEXT NOT NULL,
    method           TEXT NOT NULL,
    url              TEXT NOT NULL,
    status           INTEGER,
    duration_ms      INTEGER NOT NULL,
    started_at       TEXT NOT NULL,
    request_headers  TEXT NOT NULL,        -- JSON array of [name, value], redacted
    request_body     TEXT,                 -- redacted, capped
    response_headers TEXT NOT NULL,
    response_body    TEXT,
    error            TEXT
);
CREATE INDEX attempt_requests_by_attempt ON attempt_requests (attempt_id, seq);

CREATE TABLE attempt_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt_id INTEGER NOT NULL REFERENCES processing_attempts (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    at         TEXT NOT NULL,
    level      TEXT NOT NULL,              -- 'info' | 'warn' | 'error'
    message    TEXT NOT NULL
);
CREATE INDEX attempt_log_by_attempt ON attempt_log (attempt_id, seq);

-- A PSA write is recorded here *before* it is sent and confirmed after, so that a crash
-- between the two is reconciled (look the object up by its message id) instead of repeated.
CREATE TABLE psa_writes (
    email_id     INTEGER PRIMARY KEY REFERENCES inbound_emails (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('ticket', 'action')),
    message_key  TEXT NOT NULL,            -- the value written to the PSA's email message id field
    ticket_id    INTEGER,                  -- for actions: the target ticket; for tickets: once known
    object_id    INTEGER,                  -- the created ticket/action id, once confirmed
    state        TEXT NOT NULL CHECK (state IN ('intent', 'confirmed')),
    created_at   TEXT NOT NULL,
    confirmed_at TEXT
);

-- Message-IDs and conversation ids of mail a ticket holds: how replies find their ticket.
CREATE TABLE ticket_threads (
    mailbox_id TEXT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    thread_key TEXT NOT NULL,
    ticket_id  INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, thread_key)
);

CREATE TABLE mailbox_sync (
    mailbox_id     TEXT PRIMARY KEY REFERENCES mailboxes (id) ON DELETE CASCADE,
    delta_link     TEXT,                   -- Graph's @odata.deltaLink (an opaque URL, no secret)
    last_sync_at   TEXT,
    last_error     TEXT,
    processed_folder_id TEXT
);
