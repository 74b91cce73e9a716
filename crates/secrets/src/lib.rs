//! Credentials in the OS keyring, and nowhere else.
//!
//! Every client secret, refresh token, certificate private key and webhook client state that
//! Mailroom holds goes through this module. The backend is the platform's own store, through
//! the `keyring` crate:
//! - Linux: the Secret Service (GNOME Keyring, KWallet) for persistence, with the kernel
//!   keyutils keyring as a session cache (`linux-native-sync-persistent`). On a headless
//!   machine a Secret Service must be running and unlocked (the test command starts one with
//!   `dbus-run-session` + `gnome-keyring-daemon --unlock`).
//! - Windows: the Credential Manager. macOS: the login Keychain.
//!
//! Invariants:
//! - [`SecretValue`] never prints, logs or serializes its contents (`Debug` shows
//!   `SecretValue([redacted])`, there is no `Display`/`Serialize`), and it zeroizes on drop.
//! - Entries are namespaced `service = "Mailroom"` (overridable for tests with
//!   [`SERVICE_ENV`]), `user = "<owner id>/<kind>"`, so that removing a mailbox can remove every
//!   entry it owns.
//! - A keyring that silently drops writes (keyring's mock backend) is detected by
//!   [`Secrets::self_check`] and reported as [`SecretsError::Unavailable`].

use zeroize::Zeroizing;

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
}

impl SecretKind {
    /// All kinds, for cleanup.
    pub const ALL: [SecretKind; 5] = [
        SecretKind::ClientSecret,
        SecretKind::RefreshToken,
        SecretKind::Certificate,
        SecretKind::PsaClientSecret,
        SecretKind::ClientState,
    ];

    fn as_str(self) -> &'static str {
        match self {
            SecretKind::ClientSecret => "client-secret",
            SecretKind::RefreshToken => "refresh-token",
            SecretKind::Certificate => "certificate",
            SecretKind::PsaClientSecret => "psa-client-secret",
            SecretKind::ClientState => "client-state",
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

    fn user(&self) -> String {
        format!("{}/{}", self.owner, self.kind.as_str())
    }
}

/// A secret in memory: never printed, never serialized, zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(Zeroizing::new(value.into()))
    }

    /// The plain value, for the one place that must send it (a token request, a signature).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        SecretValue::new(value)
    }
}

/// Errors from the keyring.
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

/// The keyring, under one service name.
#[derive(Debug, Clone)]
pub struct Secrets {
    service: String,
}

impl Default for Secrets {
    fn default() -> Self {
        Self::from_env()
    }
}

impl Secrets {
    /// Uses `$MAILROOM_KEYRING_SERVICE` if set, else [`DEFAULT_SERVICE`].
    pub fn from_env() -> Self {
        let service = std::env::var(SERVICE_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SERVICE.to_string());
        Secrets { service }
    }

    /// Uses an explicit service name.
    pub fn with_service(service: impl Into<String>) -> Self {
        Secrets {
            service: service.into(),
        }
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    fn entry(&self, key: &SecretKey) -> Result<keyring::Entry, SecretsError> {
        keyring::Entry::new(&self.service, &key.user()).map_err(|e| map_err(key, e))
    }

    /// Stores (or replaces) a secret.
    pub fn set(&self, key: &SecretKey, value: &SecretValue) -> Result<(), SecretsError> {
        self.entry(key)?
            .set_password(value.expose())
            .map_err(|e| map_err(key, e))?;
        tracing::debug!(entry = %key.user(), "secret stored");
        Ok(())
    }

    /// Reads a secret; `None` when there is none.
    pub fn get(&self, key: &SecretKey) -> Result<Option<SecretValue>, SecretsError> {
        match self.entry(key)?.get_password() {
            Ok(value) => Ok(Some(SecretValue::new(value))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_err(key, e)),
        }
    }

    /// Removes a secret; removing a missing one is not an error.
    pub fn delete(&self, key: &SecretKey) -> Result<(), SecretsError> {
        match self.entry(key)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(map_err(key, e)),
        }
    }

    /// Removes every secret an owner (a mailbox or PSA connection) has.
    pub fn delete_owner(&self, owner: &str) -> Result<(), SecretsError> {
        for kind in SecretKind::ALL {
            self.delete(&SecretKey::new(owner, kind))?;
        }
        Ok(())
    }

    /// Writes, reads back through a fresh entry and deletes a probe value, so that a backend
    /// that accepts writes but keeps nothing is caught at start-up rather than at the first
    /// token refresh.
    pub fn self_check(&self) -> Result<(), SecretsError> {
        let probe = SecretKey::new("self-check", SecretKind::ClientState);
        let value = SecretValue::new(format!("probe-{}", std::process::id()));
        self.set(&probe, &value)?;
        let read = self.get(&probe)?;
        self.delete(&probe)?;
        match read {
            Some(read) if read == value => Ok(()),
            _ => Err(SecretsError::Unavailable {
                detail: "the keyring accepted a value but did not keep it".into(),
            }),
        }
    }

    /// [`Secrets::set`] off the async runtime's worker threads.
    pub async fn set_async(&self, key: SecretKey, value: SecretValue) -> Result<(), SecretsError> {
        let this = self.clone();
        blocking(move || this.set(&key, &value)).await
    }

    /// [`Secrets::get`] off the async runtime's worker threads.
    pub async fn get_async(&self, key: SecretKey) -> Result<Option<SecretValue>, SecretsError> {
        let this = self.clone();
        blocking(move || this.get(&key)).await
    }

    /// [`Secrets::delete_owner`] off the async runtime's worker threads.
    pub async fn delete_owner_async(&self, owner: String) -> Result<(), SecretsError> {
        let this = self.clone();
        blocking(move || this.delete_owner(&owner)).await
    }
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

fn map_err(key: &SecretKey, error: keyring::Error) -> SecretsError {
    let entry = key.user();
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
        assert_eq!(format!("{value:?}"), "SecretValue([redacted])");
        assert_eq!(value.expose(), "hunter2");
    }

    #[test]
    fn entries_are_namespaced_by_owner_and_kind() {
        let key = SecretKey::new("mbx-1", SecretKind::RefreshToken);
        assert_eq!(key.user(), "mbx-1/refresh-token");
    }
}
