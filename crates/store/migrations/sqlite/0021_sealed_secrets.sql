-- Secrets sealed with a key (issue 16): the secret store of a server, which has no desktop
-- keyring, and of several workers sharing one database. The value is AES-256-GCM ciphertext;
-- the key is never here (MAILROOM_SECRETS_KEY or a file); key_id names the key that sealed it.
CREATE TABLE sealed_secrets (
    name       TEXT PRIMARY KEY NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
