//! Credentials in the OS keyring — or, on a server, sealed in the database — and nowhere else.
//!
//! Every client secret, refresh token, certificate private key and webhook client state that
//! Mailroom holds goes through this module. The desktop's backend is the platform's own store,
//! through the `keyring` crate:
//! - Linux: the Secret Service (GNOME Keyring, KWallet) for persistence, with the kernel
//!   keyutils keyring as a session cache (`linux-native-sync-persistent`). On a headless
//!   machine a Secret Service must be running and unlocked (the test command starts one with
//!   `dbus-run-session` + `gnome-keyring-daemon --unlock`).
//! - Windows: the Credential Manager. macOS: the login Keychain.
//!
//! A server (`mailroom serve`, several workers on one database) has no desktop keyring: with a
//! key in `MAILROOM_SECRETS_KEY` (or a file in `MAILROOM_SECRETS_KEY_FILE`) secrets are sealed
//! with AES-256-GCM and kept in the database instead ([`sealed`]). The API is the same.
//!
//! Invariants:
//! - [`SecretValue`] never prints, logs or serializes its contents (`Debug` shows
//!   `[REDACTED]`, there is no `Display`/`Serialize`), and it zeroizes on drop.
//! - Entries are namespaced `service = "Mailroom"` (overridable for tests with
//!   [`SERVICE_ENV`]), `user = "<store id>/<owner id>/<kind>"`: the store id scopes every entry
//!   to one data directory (the real one, the sandbox's, a second profile), so no data
//!   directory reads, overwrites or deletes another's credentials; the owner id lets removing a
//!   mailbox remove every entry it owns. Entries written before scoping (`<owner>/<kind>`) are
//!   adopted once by the store that owns their records ([`Secrets::adopt_unscoped`]).
//! - A keyring that silently drops writes (keyring's mock backend) is detected by
//!   [`Secrets::self_check`] and reported as [`SecretsError::Unavailable`].

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

pub mod sealed;

/// Keyring service name used for every entry.
pub const DEFAULT_SERVICE: &str = "Mailroom";

/// Environment variable that overrides the service name (tests use a unique one per run).
pub const SERVICE_ENV: &str = "MAILROOM_KEYRING_SERVICE";

/// What a secret is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// A Microsoft app registration's client secret.
    ClientSecret,
    /// The newest delegated refresh token (rotated on every refresh).
    RefreshToken,
    /// A certificate credential: PEM certificate + PKCS#8 private key.
    Certificate,
    /// A PSA API application's client secret.
    PsaClientSecret,
    /// The random `clientState` of a Graph subscription.
    ClientState,
    /// The PSA ticket tab's *Iframe secret* (verifies its secure URL parameter).
    TabSecret,
    /// The certificate HaloPSA signs its webhooks with: PEM certificate + PKCS#8 private key.
    WebhookCertificate,
    /// The desktop console's password for a shared PostgreSQL database.
    DatabasePassword,
    /// The desktop console's copy of the key a shared database's secrets are sealed with.
    SealingKey,
}

impl SecretKind {
    /// All kinds, for cleanup.
    pub const ALL: [SecretKind; 9] = [
        SecretKind::ClientSecret,
        SecretKind::RefreshToken,
        SecretKind::Certificate,
        SecretKind::PsaClientSecret,
        SecretKind::ClientState,
        SecretKind::TabSecret,
        SecretKind::WebhookCertificate,
        SecretKind::DatabasePassword,
        SecretKind::SealingKey,
    ];

    fn as_str(self) -> &'static str {
        match self {
            SecretKind::ClientSecret => "client-secret",
            SecretKind::RefreshToken => "refresh-token",
            SecretKind::Certificate => "certificate",
            SecretKind::PsaClientSecret => "psa-client-secret",
            SecretKind::ClientState => "client-state",
            SecretKind::TabSecret => "tab-secret",
            SecretKind::WebhookCertificate => "webhook-certificate",
            SecretKind::DatabasePassword => "database-password",
            SecretKind::SealingKey => "sealing-key",
        }
    }
}

/// Names one keyring entry: the owning record's id (a mailbox or PSA connection) and the kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretKey {
    pub owner: String,
    pub kind: SecretKind,
}

impl SecretKey {
    pub fn new(owner: impl Into<String>, kind: SecretKind) -> Self {
        SecretKey {
            owner: owner.into(),
            kind,
        }
    }

    /// The entry name before entries were scoped to a store (`<owner>/<kind>`).
    fn unscoped_user(&self) -> String {
        format!("{}/{}", self.owner, self.kind.as_str())
    }
}

/// A secret in memory: never printed, never serialized, zeroized on drop (a thin newtype over
/// `secrecy::SecretString`, whose `Debug` prints `[REDACTED]`).
#[derive(Clone, Debug)]
pub struct SecretValue(SecretString);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(SecretString::from(value.into()))
    }

    /// The plain value, for the one place that must send it (a token request, a signature).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for SecretValue {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for SecretValue {}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        SecretValue::new(value)
    }
}

/// Errors from the secret store.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "no usable secret store: {detail}. On Linux, install and unlock GNOME Keyring or \
         KWallet (a Secret Service provider); on Windows and macOS the system store is used"
    )]
    Unavailable { detail: String },
    #[error("the secret store refused access to '{entry}': {detail}")]
    Denied { entry: String, detail: String },
    #[error("secret store error for '{entry}': {detail}")]
    Backend { entry: String, detail: String },
}

/// Where secrets are kept: the OS keyring under one service name (the desktop), or sealed in
/// the database ([`sealed`]: a server, several workers) — either way scoped to one store.
#[derive(Debug, Clone)]
pub struct Secrets {
    backend: Backend,
    /// The store id every entry name starts with; `None` only for the unscoped names of
    /// entries written before scoping (read by [`Secrets::adopt_unscoped`]).
    scope: Option<String>,
}

#[derive(Debug, Clone)]
enum Backend {
    Keyring { service: String },
    Sealed(sealed::Sealed),
}

/// Which backend a [`Secrets`] uses (for status lines; never the secrets themselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    /// The OS keyring, under this service name.
    Keyring { service: String },
    /// Sealed in the database, with the key of this id.
    Sealed { key_id: String },
}

impl Default for Secrets {
    fn default() -> Self {
        Self::from_env()
    }
}

impl Secrets {
    /// The keyring under `$MAILROOM_KEYRING_SERVICE` if set, else [`DEFAULT_SERVICE`].
    pub fn from_env() -> Self {
        let service = std::env::var(SERVICE_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SERVICE.to_string());
        Self::with_service(service)
    }

    /// The keyring under an explicit service name.
    pub fn with_service(service: impl Into<String>) -> Self {
        Secrets {
            backend: Backend::Keyring {
                service: service.into(),
            },
            scope: None,
        }
    }

    /// Secrets sealed with `keys` in `storage` (see [`sealed`]).
    pub fn sealed(keys: sealed::SealingKeys, storage: Arc<dyn sealed::SealedStorage>) -> Self {
        Secrets {
            backend: Backend::Sealed(sealed::Sealed::new(keys, storage)),
            scope: None,
        }
    }

    /// The same backend, with every entry scoped to `store_id` (a store's
    /// `mailroom_store::StoreId`). `Core::open` scopes its secrets this way.
    pub fn scoped(&self, store_id: impl Into<String>) -> Self {
        Secrets {
            backend: self.backend.clone(),
            scope: Some(store_id.into()),
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> BackendKind {
        match &self.backend {
            Backend::Keyring { service } => BackendKind::Keyring {
                service: service.clone(),
            },
            Backend::Sealed(sealed) => BackendKind::Sealed {
                key_id: sealed.current_key_id().to_string(),
            },
        }
    }

    /// The store id entries are scoped to, if any.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The entry name (`user`) of a key in this backend.
    pub fn entry_name(&self, key: &SecretKey) -> String {
        match &self.scope {
            Some(scope) => format!("{scope}/{}", key.unscoped_user()),
            None => key.unscoped_user(),
        }
    }

    fn unscoped(&self) -> Self {
        Secrets {
            backend: self.backend.clone(),
            scope: None,
        }
    }

    /// Moves the entries an owner had before entries were scoped (`<owner>/<kind>`) to this
    /// backend's scoped names, unless a scoped entry already exists. Returns how many moved.
    ///
    /// Only the store whose records name `owner` may call this, once (when its store id is
    /// created): an unscoped entry is otherwise indistinguishable between data directories.
    pub async fn adopt_unscoped(&self, owner: &str) -> Result<usize, SecretsError> {
        if self.scope.is_none() {
            return Ok(0);
        }
        let legacy = self.unscoped();
        let mut moved = 0;
        for kind in SecretKind::ALL {
            let key = SecretKey::new(owner, kind);
            let Some(value) = legacy.get(&key).await? else {
                continue;
            };
            if self.get(&key).await?.is_none() {
                self.set(&key, &value).await?;
                moved += 1;
            }
            legacy.delete(&key).await?;
        }
        Ok(moved)
    }

    /// Stores (or replaces) a secret.
    pub async fn set(&self, key: &SecretKey, value: &SecretValue) -> Result<(), SecretsError> {
        let name = self.entry_name(key);
        match &self.backend {
            Backend::Keyring { service } => {
                let (service, entry, value) = (service.clone(), name.clone(), value.clone());
                blocking(move || {
                    keyring_entry(&service, &entry)?
                        .set_password(value.expose())
                        .map_err(|e| map_err(&entry, e))
                })
                .await?
            }
            Backend::Sealed(sealed) => sealed.set(&name, value).await?,
        }
        tracing::debug!(entry = %name, "secret stored");
        Ok(())
    }

    /// Reads a secret; `None` when there is none.
    pub async fn get(&self, key: &SecretKey) -> Result<Option<SecretValue>, SecretsError> {
        let name = self.entry_name(key);
        match &self.backend {
            Backend::Keyring { service } => {
                let service = service.clone();
                blocking(
                    move || match keyring_entry(&service, &name)?.get_password() {
                        Ok(value) => Ok(Some(SecretValue::new(value))),
                        Err(keyring::Error::NoEntry) => Ok(None),
                        Err(e) => Err(map_err(&name, e)),
                    },
                )
                .await
            }
            Backend::Sealed(sealed) => sealed.get(&name).await,
        }
    }

    /// Removes a secret; removing a missing one is not an error.
    pub async fn delete(&self, key: &SecretKey) -> Result<(), SecretsError> {
        let name = self.entry_name(key);
        match &self.backend {
            Backend::Keyring { service } => {
                let service = service.clone();
                blocking(
                    move || match keyring_entry(&service, &name)?.delete_credential() {
                        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                        Err(e) => Err(map_err(&name, e)),
                    },
                )
                .await
            }
            Backend::Sealed(sealed) => sealed.delete(&name).await,
        }
    }

    /// Removes every secret an owner (a mailbox or PSA connection) has.
    pub async fn delete_owner(&self, owner: &str) -> Result<(), SecretsError> {
        for kind in SecretKind::ALL {
            self.delete(&SecretKey::new(owner, kind)).await?;
        }
        Ok(())
    }

    /// Reseals every sealed secret with the current key (after a key rotation; see [`sealed`]).
    /// Returns how many were resealed; the keyring has nothing to rotate.
    pub async fn rotate(&self) -> Result<usize, SecretsError> {
        match &self.backend {
            Backend::Keyring { .. } => Ok(0),
            Backend::Sealed(sealed) => sealed.rotate().await,
        }
    }

    /// Writes, reads back and deletes a probe value, so that a backend that accepts writes but
    /// keeps nothing is caught at start-up rather than at the first token refresh.
    pub async fn self_check(&self) -> Result<(), SecretsError> {
        let probe = SecretKey::new("self-check", SecretKind::ClientState);
        let value = SecretValue::new(format!("probe-{}", std::process::id()));
        self.set(&probe, &value).await?;
        let read = self.get(&probe).await?;
        self.delete(&probe).await?;
        match read {
            Some(read) if read == value => Ok(()),
            _ => Err(SecretsError::Unavailable {
                detail: "the secret store accepted a value but did not keep it".into(),
            }),
        }
    }
}

fn keyring_entry(service: &str, entry: &str) -> Result<keyring::Entry, SecretsError> {
    keyring::Entry::new(service, entry).map_err(|e| map_err(entry, e))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SecretsError> + Send + 'static,
) -> Result<T, SecretsError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|join| {
        Err(SecretsError::Backend {
            entry: "-".into(),
            detail: format!("keyring task failed: {join}"),
        })
    })
}

fn map_err(entry: &str, error: keyring::Error) -> SecretsError {
    let entry = entry.to_string();
    match error {
        keyring::Error::PlatformFailure(e) | keyring::Error::NoStorageAccess(e) => {
            let detail = e.to_string();
            if detail.to_ascii_lowercase().contains("denied") {
                SecretsError::Denied { entry, detail }
            } else {
                SecretsError::Unavailable { detail }
            }
        }
        other => SecretsError::Backend {
            entry,
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_never_print() {
        let value = SecretValue::new("hunter2");
        let debug = format!("{value:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("REDACTED"),
            "{debug}"
        );
        assert_eq!(value.expose(), "hunter2");
    }

    #[test]
    fn entries_are_namespaced_by_store_owner_and_kind() {
        let key = SecretKey::new("mbx-1", SecretKind::RefreshToken);
        let secrets = Secrets::with_service("t");
        assert_eq!(secrets.entry_name(&key), "mbx-1/refresh-token");
        assert_eq!(
            secrets.scoped("store-a").entry_name(&key),
            "store-a/mbx-1/refresh-token"
        );
    }
}
