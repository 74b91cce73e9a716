-- A claim passes over an email whose conversation has an earlier email another pass is
-- working on (SQLite: 0023): a reply waits for its original, on any worker.
CREATE INDEX inbound_by_conversation ON inbound_emails (mailbox_id, conversation_id, received_at)
    WHERE conversation_id IS NOT NULL;
