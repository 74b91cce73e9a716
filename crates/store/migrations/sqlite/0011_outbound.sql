-- Outgoing mail (agent replies, notifications): an intent stored before anything is sent,
-- keyed by what caused it (`source_key`, e.g. the PSA action), with the Internet Message-ID
-- Mailroom chose for it. The draft's Graph id is kept once it exists; a message found in
-- Sent Items under that Message-ID is sent, whatever happened in between.
CREATE TABLE outbound_emails (
    id INTEGER PRIMARY KEY,
    source_key TEXT NOT NULL UNIQUE,
    mailbox_id TEXT NOT NULL,
    ticket_id INTEGER,
    action_id INTEGER,
    -- The Graph id of the message this one answers (a threaded reply), if any.
    reply_to_message_id TEXT,
    internet_message_id TEXT NOT NULL UNIQUE,
    to_addresses TEXT NOT NULL,
    cc_addresses TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_html TEXT NOT NULL,
    -- pending | drafted | sent | failed
    status TEXT NOT NULL,
    draft_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX outbound_emails_due ON outbound_emails (status, next_attempt_at);
CREATE INDEX outbound_emails_mailbox ON outbound_emails (mailbox_id, id);

CREATE TABLE outbound_attempts (
    id INTEGER PRIMARY KEY,
    outbound_id INTEGER NOT NULL REFERENCES outbound_emails (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    trigger TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    result TEXT,
    error_code TEXT,
    error_message TEXT,
    -- JSON: the processing log lines and the HTTP exchanges (redacted).
    log TEXT NOT NULL DEFAULT '[]',
    requests TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX outbound_attempts_email ON outbound_attempts (outbound_id, number);
