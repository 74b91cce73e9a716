-- Mailroom's first schema: mailboxes, PSA connections and app settings.
-- Secrets (client secrets, tokens, private keys) are never stored here: they live in the OS
-- keyring, keyed by the ids below (see crates/secrets).

CREATE TABLE mailboxes (
    id                TEXT PRIMARY KEY NOT NULL,           -- uuid
    name              TEXT NOT NULL,
    -- 'scan' (delegated sign-in, delta scan) or 'webhook' (application permissions + subscriptions)
    method            TEXT NOT NULL CHECK (method IN ('scan', 'webhook')),
    -- 'global' | 'usgov_gcc_high' | 'usgov_dod' | 'china' | 'custom'
    cloud             TEXT NOT NULL DEFAULT 'global',
    authority_url     TEXT,                                -- only for cloud = 'custom'
    graph_url         TEXT,                                -- only for cloud = 'custom'
    tenant_id         TEXT NOT NULL,
    client_id         TEXT NOT NULL,
    -- 'public' (no credential), 'secret' or 'certificate'; the credential itself is in the keyring
    credential_kind   TEXT NOT NULL CHECK (credential_kind IN ('public', 'secret', 'certificate')),
    credential_expires_at TEXT,                            -- secret/certificate expiry, for warnings
    certificate_thumbprint TEXT,                           -- SHA-1 hex, public information
    shared_mailbox    TEXT,                                -- scan: optional shared mailbox address
    mailbox_address   TEXT,                                -- webhook: the mailbox to subscribe to
    connected_account TEXT,                                -- UPN shown once connected
    connected_at      TEXT,
    enabled           INTEGER NOT NULL DEFAULT 1,
    settings          TEXT NOT NULL DEFAULT '{}',          -- JSON: processing rules
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE UNIQUE INDEX mailboxes_name ON mailboxes (name);

CREATE TABLE psa_connections (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    base_url    TEXT NOT NULL,
    auth_url    TEXT,
    tenant      TEXT,
    client_id   TEXT NOT NULL,
    scopes      TEXT NOT NULL DEFAULT 'all',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,                              -- JSON
    updated_at TEXT NOT NULL
);
