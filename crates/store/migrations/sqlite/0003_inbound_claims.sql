-- Which state an email was claimed from ('seen', 'retrying', 'claimed', 'psa_written'): tells the
-- engine whether an attempt is a first try, a retry or the recovery of a dead process's claim.
ALTER TABLE inbound_emails ADD COLUMN claimed_from TEXT;

-- Recent mail of a sender with a subject (the loop guard).
CREATE INDEX inbound_by_sender ON inbound_emails (mailbox_id, from_address, received_at);
