-- Deliveries of HaloPSA's outbound webhook to Mailroom's receiver (POST /halo/webhook): every
-- one is stored before it is answered, with what verifying it found. A verified delivery's
-- payload id (HaloPSA's GUID) is unique, which is how a replay is told from a first delivery.
CREATE TABLE psa_webhook_deliveries (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    payload_id TEXT,
    webhook_id TEXT,
    event TEXT,
    ticket_id INTEGER,
    action_id INTEGER,
    -- verified | replay | stale | forged | unsigned | wrong_certificate | no_certificate | malformed
    verification TEXT NOT NULL,
    -- What verifying (or handling) found, in words.
    detail TEXT NOT NULL,
    -- The HTTP status answered.
    status INTEGER NOT NULL,
    -- The request headers as a JSON array of [name, value] (credentials redacted).
    headers TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX psa_webhook_deliveries_payload ON psa_webhook_deliveries (payload_id)
    WHERE verification = 'verified';
CREATE INDEX psa_webhook_deliveries_received ON psa_webhook_deliveries (received_at);
CREATE INDEX psa_webhook_deliveries_ticket ON psa_webhook_deliveries (ticket_id)
    WHERE ticket_id IS NOT NULL;

-- What HaloPSA's webhook told Mailroom about its tickets (logged elsewhere, closed, moved to
-- another client or site, deleted): the newest state of each ticket seen.
CREATE TABLE psa_tickets (
    ticket_id INTEGER PRIMARY KEY,
    summary TEXT,
    client_id INTEGER,
    site_id INTEGER,
    user_id INTEGER,
    status_id INTEGER,
    tickettype_id INTEGER,
    closed INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    last_event TEXT NOT NULL
);

-- Actions agents added in HaloPSA (private notes, emails to the customer), for outgoing mail.
CREATE TABLE psa_agent_actions (
    ticket_id INTEGER NOT NULL,
    action_id INTEGER NOT NULL,
    outcome TEXT,
    note TEXT,
    hidden_from_user INTEGER NOT NULL DEFAULT 0,
    agent_id INTEGER,
    received_at TEXT NOT NULL,
    delivery_id INTEGER NOT NULL REFERENCES psa_webhook_deliveries (id),
    handled_at TEXT,
    PRIMARY KEY (ticket_id, action_id)
);
