-- The ticket tab lists the emails of one PSA ticket.
CREATE INDEX IF NOT EXISTS inbound_emails_ticket ON inbound_emails (ticket_id)
    WHERE ticket_id IS NOT NULL;
