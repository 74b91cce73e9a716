-- Webhook mode (Graph change notifications). The engine owns these tables (crates/engine/src/webhooks.rs).

-- The active subscription of a webhook mailbox (at most one). Its clientState is a keyring secret
-- (kind client-state, owner = the mailbox id), never stored here.
CREATE TABLE webhook_subscriptions (
    mailbox_id           TEXT PRIMARY KEY NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    subscription_id      TEXT NOT NULL,
    resource             TEXT NOT NULL,
    expires_at           TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    last_notification_at TEXT,
    renewals             INTEGER NOT NULL DEFAULT 0
);

-- Every accepted notification, persisted before the receiver answers 202; processed_at is set once
-- the engine has handled it (a notification left unprocessed by a crash is handled at the next start).
CREATE TABLE webhook_notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox_id      TEXT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL,
    -- 'created' (a change notification) or a lifecycle event ('reauthorizationRequired', 'subscriptionRemoved', 'missed')
    kind            TEXT NOT NULL,
    resource        TEXT,
    received_at     TEXT NOT NULL,
    processed_at    TEXT
);
CREATE INDEX webhook_notifications_pending ON webhook_notifications (processed_at);

-- Subscription events for the inbound/monitoring log (created, renewed, reauthorized, recreated,
-- cancelled, rejected notifications, failures).
CREATE TABLE webhook_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox_id TEXT NOT NULL,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX webhook_events_by_mailbox ON webhook_events (mailbox_id, id);
