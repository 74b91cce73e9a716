//! Mailroom's core, shared by the desktop shell (`src-tauri/`) and the CLI (`crates/cli`).
//!
//! Invariants:
//! - Never depends on tauri, wry or webkit: everything here builds and tests headless.
//! - Front ends hold a [`Core`] and call its methods; they never open the store or the
//!   keyring themselves.

pub mod connect;
pub mod console;
pub mod contacts;
pub mod dashboard;
pub mod engine;
pub mod events;
pub mod export;
pub mod integration;
pub mod logging;
pub mod mailboxes;
pub mod notifications;
pub mod ops;
pub mod outbound;
pub mod outcomes;
pub mod pipeline;
pub mod preferences;
pub mod psa_check;
pub mod psa_connection;
pub mod psa_webhook;
pub mod retention;
mod sealed_storage;
pub mod sync;
pub mod ticket_tab;
pub mod webhooks;

use std::path::{Path, PathBuf};

pub use mailroom_secrets::Secrets;
pub use mailroom_store::{Mailbox, Store};

/// Record types of the store, re-exported for front ends.
pub mod store_types {
    pub use mailroom_store::notifications::StoredNotification;
    pub use mailroom_store::outbound::{OutboundAttempt, OutboundEmail, OutboundStatus};
    pub use mailroom_store::psa_webhooks::{PsaDelivery, Verification};
    pub use mailroom_store::{Cloud, CredentialKind, MailboxMethod, NewMailbox};
}

/// Errors a front end may show. Each maps to a stable [`ErrorCode`].
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Store(#[from] mailroom_store::StoreError),
    #[error(transparent)]
    Secrets(#[from] mailroom_secrets::SecretsError),
    #[error("{0}")]
    InvalidInput(String),
    /// Connecting to Microsoft 365 failed (see [`connect::ConnectError`]).
    #[error(transparent)]
    Connect(#[from] connect::ConnectError),
    /// A HaloPSA call failed.
    #[error(transparent)]
    Psa(#[from] mailroom_psa::PsaError),
    /// Something the operation needs is not set up yet (e.g. the PSA connection).
    #[error("{0}")]
    NotConfigured(String),
    /// The webhook receiver or a subscription call failed.
    #[error(transparent)]
    Webhook(#[from] webhooks::WebhookError),
    /// A certificate could not be generated, read or used (the message says why and what to do).
    #[error("{0}")]
    Certificate(String),
    /// The same work is already under way (an import of this mailbox runs).
    #[error("{0}")]
    Busy(String),
}

/// The closed set of error codes front ends switch on (never on message text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    NotFound,
    InvalidInput,
    Conflict,
    StorageFailed,
    KeyringUnavailable,
    Internal,
    /// The mailbox has no usable token/credential: authorize or re-enter the credential.
    NotConnected,
    /// The identity platform refused; a diagnosis is attached.
    AuthFailed,
    SignInCancelled,
    SignInTimedOut,
    SignInNotPending,
    CertificateInvalid,
    /// The certificate's validity has ended; a new one must be created and imported.
    CertificateExpired,
    PfxPasswordWrong,
    /// A Microsoft Graph call failed; a diagnosis is attached.
    GraphFailed,
    /// A HaloPSA call failed.
    PsaFailed,
    /// A required connection or setting is missing.
    NotConfigured,
}

impl CoreError {
    pub fn code(&self) -> ErrorCode {
        use mailroom_secrets::SecretsError as S;
        use mailroom_store::StoreError as St;
        match self {
            CoreError::Store(St::NotFound { .. }) => ErrorCode::NotFound,
            CoreError::Store(St::DuplicateName(_)) => ErrorCode::Conflict,
            CoreError::Store(_) => ErrorCode::StorageFailed,
            CoreError::Secrets(S::Unavailable { .. } | S::Denied { .. }) => {
                ErrorCode::KeyringUnavailable
            }
            CoreError::Secrets(_) => ErrorCode::Internal,
            CoreError::InvalidInput(_) => ErrorCode::InvalidInput,
            CoreError::Connect(e) => e.code(),
            CoreError::Psa(_) => ErrorCode::PsaFailed,
            CoreError::NotConfigured(_) => ErrorCode::NotConfigured,
            CoreError::Certificate(_) => ErrorCode::CertificateInvalid,
            CoreError::Busy(_) => ErrorCode::Conflict,
            CoreError::Webhook(e) => {
                use webhooks::WebhookError as W;
                match e {
                    W::Bind { .. } => ErrorCode::InvalidInput,
                    W::NotRegistered(_) => ErrorCode::NotConnected,
                    W::NoSubscription(_) => ErrorCode::NotFound,
                    W::Graph(_) => ErrorCode::GraphFailed,
                    W::Store(_) => ErrorCode::StorageFailed,
                    W::Secrets(_) => ErrorCode::KeyringUnavailable,
                    W::NoPublicUrl => ErrorCode::NotConfigured,
                }
            }
        }
    }
}

/// The opened application: data directory, store and keyring.
#[derive(Clone, Debug)]
pub struct Core {
    data_dir: PathBuf,
    store: Store,
    secrets: Secrets,
}

impl Core {
    /// Opens the store in `data_dir` (created if missing), with the secret store scoped to
    /// it: secrets sealed in the database when the environment names a secrets key
    /// (`MAILROOM_SECRETS_KEY` or `MAILROOM_SECRETS_KEY_FILE`: a server), else the OS keyring.
    pub async fn open(data_dir: impl AsRef<Path>) -> Result<Self, CoreError> {
        match mailroom_secrets::sealed::SealingKeys::from_env()? {
            Some(keys) => Self::open_sealed(data_dir, keys).await,
            None => Self::open_with_secrets(data_dir, Secrets::from_env()).await,
        }
    }

    /// Opens the store in `data_dir` with its secrets sealed by `keys` in its own database
    /// (see `mailroom_secrets::sealed`). Keyring entries are not read: a data directory that
    /// moves from the keyring to sealed secrets has its credentials entered again.
    pub async fn open_sealed(
        data_dir: impl AsRef<Path>,
        keys: mailroom_secrets::sealed::SealingKeys,
    ) -> Result<Self, CoreError> {
        let data_dir = data_dir.as_ref().to_path_buf();
        let store = Store::open(data_dir.join(mailroom_store::DATABASE_FILE)).await?;
        Self::with_sealed_store(data_dir, store, keys).await
    }

    /// Connects to a PostgreSQL database shared by several workers (`postgres://…`, e.g. from
    /// `MAILROOM_DATABASE_URL`). Its secrets are sealed in the database, so the secrets key
    /// must be set (`MAILROOM_SECRETS_KEY_FILE` or `MAILROOM_SECRETS_KEY`), the same on every
    /// worker and on the console. `data_dir` keeps what stays local (logs, the lock).
    pub async fn connect(
        database_url: &str,
        data_dir: impl AsRef<Path>,
    ) -> Result<Self, CoreError> {
        let keys = mailroom_secrets::sealed::SealingKeys::from_env()?.ok_or_else(|| {
            CoreError::NotConfigured(
                "a PostgreSQL database keeps its secrets sealed in the database: set \
                 MAILROOM_SECRETS_KEY_FILE (or MAILROOM_SECRETS_KEY) to the key every worker \
                 shares (make one with `mailroom secrets new-key`)"
                    .into(),
            )
        })?;
        Self::connect_sealed(database_url, data_dir, keys).await
    }

    /// [`Core::connect`] with explicit keys.
    pub async fn connect_sealed(
        database_url: &str,
        data_dir: impl AsRef<Path>,
        keys: mailroom_secrets::sealed::SealingKeys,
    ) -> Result<Self, CoreError> {
        let data_dir = data_dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| CoreError::Store(mailroom_store::StoreError::DataDir(e.to_string())))?;
        let store = Store::connect(database_url).await?;
        Self::with_sealed_store(data_dir, store, keys).await
    }

    async fn with_sealed_store(
        data_dir: PathBuf,
        store: Store,
        keys: mailroom_secrets::sealed::SealingKeys,
    ) -> Result<Self, CoreError> {
        let store_id = store.store_id().await?;
        let storage = std::sync::Arc::new(sealed_storage::StoreSealedStorage::new(store.clone()));
        let secrets = Secrets::sealed(keys, storage).scoped(&store_id.id);
        Ok(Core {
            data_dir,
            store,
            secrets,
        })
    }

    /// Like [`Core::open`] with an explicit keyring service (benchmarks and tests that must not
    /// touch the user's own entries). Entries are scoped to the store's id either way.
    pub async fn open_with_secrets(
        data_dir: impl AsRef<Path>,
        secrets: Secrets,
    ) -> Result<Self, CoreError> {
        let data_dir = data_dir.as_ref().to_path_buf();
        let store = Store::open(data_dir.join(mailroom_store::DATABASE_FILE)).await?;
        let store_id = store.store_id().await?;
        let secrets = secrets.scoped(&store_id.id);
        if store_id.created {
            adopt_unscoped_entries(&store, &secrets).await?;
        }
        Ok(Core {
            data_dir,
            store,
            secrets,
        })
    }

    /// Opens the per-user data directory (`$MAILROOM_DATA_DIR` or the platform default).
    pub async fn open_default() -> Result<Self, CoreError> {
        Self::open(mailroom_store::data_dir()?).await
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// All configured mailboxes.
    pub async fn mailboxes(&self) -> Result<Vec<Mailbox>, CoreError> {
        Ok(self.store.mailboxes().await?)
    }
}

/// A store opened for the first time by a Mailroom that scopes keyring entries may hold records
/// whose entries have unscoped names (`<owner>/<kind>`): this store is their owner, so it moves
/// them to its own scope. A new, empty store (a fresh sandbox directory) adopts nothing — so it
/// can never take over, or later delete, another data directory's credentials.
async fn adopt_unscoped_entries(store: &Store, secrets: &Secrets) -> Result<(), CoreError> {
    let mut owners: Vec<String> = store.mailboxes().await?.into_iter().map(|m| m.id).collect();
    if let Some(conn) = store
        .psa_connection(psa_connection::PSA_CONNECTION_ID)
        .await?
    {
        owners.push(conn.id);
    }
    for owner in owners {
        let moved = secrets.adopt_unscoped(&owner).await?;
        if moved > 0 {
            tracing::info!(owner = %owner, moved, "keyring entries scoped to this data directory");
        }
    }
    Ok(())
}

#[cfg(test)]
mod error_code_tests {
    use super::ErrorCode;

    /// The wire string of every code, pinned: front ends switch on these, so renaming one is a
    /// breaking change that must show up here. The `match` makes a new variant fail to compile
    /// until it is pinned too.
    fn pinned(code: ErrorCode) -> &'static str {
        match code {
            ErrorCode::NotFound => "not_found",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Conflict => "conflict",
            ErrorCode::StorageFailed => "storage_failed",
            ErrorCode::KeyringUnavailable => "keyring_unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::NotConnected => "not_connected",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::SignInCancelled => "sign_in_cancelled",
            ErrorCode::SignInTimedOut => "sign_in_timed_out",
            ErrorCode::SignInNotPending => "sign_in_not_pending",
            ErrorCode::CertificateInvalid => "certificate_invalid",
            ErrorCode::CertificateExpired => "certificate_expired",
            ErrorCode::PfxPasswordWrong => "pfx_password_wrong",
            ErrorCode::GraphFailed => "graph_failed",
            ErrorCode::PsaFailed => "psa_failed",
            ErrorCode::NotConfigured => "not_configured",
        }
    }

    #[test]
    fn error_codes_serialize_to_their_pinned_strings() {
        let all = [
            ErrorCode::NotFound,
            ErrorCode::InvalidInput,
            ErrorCode::Conflict,
            ErrorCode::StorageFailed,
            ErrorCode::KeyringUnavailable,
            ErrorCode::Internal,
            ErrorCode::NotConnected,
            ErrorCode::AuthFailed,
            ErrorCode::SignInCancelled,
            ErrorCode::SignInTimedOut,
            ErrorCode::SignInNotPending,
            ErrorCode::CertificateInvalid,
            ErrorCode::CertificateExpired,
            ErrorCode::PfxPasswordWrong,
            ErrorCode::GraphFailed,
            ErrorCode::PsaFailed,
            ErrorCode::NotConfigured,
        ];
        for code in all {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(pinned(code).into()),
                "{code:?}"
            );
        }
    }
}
