-- The inbound log's sender filter across every mailbox (Monitoring), newest first; the
-- per-mailbox form is served by inbound_by_sender (0003), a ticket by inbound_emails_ticket
-- (0009), a time range by inbound_by_received (0002).
CREATE INDEX inbound_by_from ON inbound_emails (from_address, received_at DESC, id DESC);
