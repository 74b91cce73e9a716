-- Rejected (forged or stale) webhook notifications are counted, not stored one row each: one
-- 'rejected' event per mailbox per minute (bucket = the minute, 'YYYY-MM-DDTHH:MM'), whose count
-- grows and whose detail is the last reason. Other events keep bucket NULL and count 1.
ALTER TABLE webhook_events ADD COLUMN bucket TEXT;
ALTER TABLE webhook_events ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX webhook_events_bucket ON webhook_events (mailbox_id, kind, bucket) WHERE bucket IS NOT NULL;

-- Fold the per-item rows written before this migration into per-minute counters (the detail of
-- the latest row of each minute is kept: SQLite takes bare columns from the MAX(at) row).
INSERT INTO webhook_events (mailbox_id, at, kind, detail, bucket, count)
SELECT mailbox_id, MAX(at), 'rejected', detail, substr(at, 1, 16), COUNT(*)
FROM webhook_events WHERE kind = 'rejected' AND bucket IS NULL
GROUP BY mailbox_id, substr(at, 1, 16);
DELETE FROM webhook_events WHERE kind = 'rejected' AND bucket IS NULL;
