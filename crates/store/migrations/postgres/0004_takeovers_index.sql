-- /metrics sums the claim takeovers at every scrape (SQLite: 0024): this index holds only the
-- few emails that had one, so the sum never reads the log.
CREATE INDEX inbound_takeovers ON inbound_emails (takeovers) WHERE takeovers > 0;
