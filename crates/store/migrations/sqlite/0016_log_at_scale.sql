-- The inbound log at a million entries (issue 14): every query the log and the dashboard run
-- answers from an index or a handful of rows.

-- Emails per mailbox and state, kept by triggers: the log's header and the dashboard read a
-- few rows instead of counting the table.
CREATE TABLE inbound_state_counts (
    mailbox_id TEXT NOT NULL,
    state      TEXT NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, state)
) WITHOUT ROWID;

INSERT INTO inbound_state_counts (mailbox_id, state, n)
    SELECT mailbox_id, state, COUNT(*) FROM inbound_emails GROUP BY mailbox_id, state;

CREATE TRIGGER inbound_counts_insert AFTER INSERT ON inbound_emails BEGIN
    INSERT INTO inbound_state_counts (mailbox_id, state, n) VALUES (new.mailbox_id, new.state, 1)
        ON CONFLICT (mailbox_id, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER inbound_counts_delete AFTER DELETE ON inbound_emails BEGIN
    UPDATE inbound_state_counts SET n = n - 1
        WHERE mailbox_id = old.mailbox_id AND state = old.state;
END;

CREATE TRIGGER inbound_counts_update AFTER UPDATE OF state, mailbox_id ON inbound_emails
    WHEN old.state IS NOT new.state OR old.mailbox_id IS NOT new.mailbox_id BEGIN
    UPDATE inbound_state_counts SET n = n - 1
        WHERE mailbox_id = old.mailbox_id AND state = old.state;
    INSERT INTO inbound_state_counts (mailbox_id, state, n) VALUES (new.mailbox_id, new.state, 1)
        ON CONFLICT (mailbox_id, state) DO UPDATE SET n = n + 1;
END;

-- A status within a mailbox, newest first (the log filtered by both).
CREATE INDEX inbound_by_mailbox_state ON inbound_emails (mailbox_id, state, received_at DESC, id DESC);
