-- The PSA attachments an outgoing email carries (a JSON array of attachment ids), fetched
-- from the PSA when the draft is made.
ALTER TABLE outbound_emails ADD COLUMN attachment_ids TEXT NOT NULL DEFAULT '[]';
