-- The dashboard's charts (issue 14): emails per received hour, mailbox and state, kept by
-- triggers, so a 30-day chart reads a few thousand rows at most, never the log.
CREATE TABLE inbound_hourly_counts (
    -- 'YYYY-MM-DDTHH' of received_at (UTC)
    hour       TEXT NOT NULL,
    mailbox_id TEXT NOT NULL,
    state      TEXT NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (hour, mailbox_id, state)
) WITHOUT ROWID;

INSERT INTO inbound_hourly_counts (hour, mailbox_id, state, n)
    SELECT substr(received_at, 1, 13), mailbox_id, state, COUNT(*)
    FROM inbound_emails GROUP BY 1, 2, 3;

CREATE TRIGGER inbound_hourly_insert AFTER INSERT ON inbound_emails BEGIN
    INSERT INTO inbound_hourly_counts (hour, mailbox_id, state, n)
        VALUES (substr(new.received_at, 1, 13), new.mailbox_id, new.state, 1)
        ON CONFLICT (hour, mailbox_id, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER inbound_hourly_delete AFTER DELETE ON inbound_emails BEGIN
    UPDATE inbound_hourly_counts SET n = n - 1
        WHERE hour = substr(old.received_at, 1, 13) AND mailbox_id = old.mailbox_id
          AND state = old.state;
END;

CREATE TRIGGER inbound_hourly_update AFTER UPDATE OF state, mailbox_id, received_at ON inbound_emails
    WHEN old.state IS NOT new.state OR old.mailbox_id IS NOT new.mailbox_id
      OR old.received_at IS NOT new.received_at BEGIN
    UPDATE inbound_hourly_counts SET n = n - 1
        WHERE hour = substr(old.received_at, 1, 13) AND mailbox_id = old.mailbox_id
          AND state = old.state;
    INSERT INTO inbound_hourly_counts (hour, mailbox_id, state, n)
        VALUES (substr(new.received_at, 1, 13), new.mailbox_id, new.state, 1)
        ON CONFLICT (hour, mailbox_id, state) DO UPDATE SET n = n + 1;
END;
