//! Secrets sealed with a key, kept in the database: the backend of a server, which has no
//! desktop keyring, and of several workers sharing one database.
//!
//! Each secret is encrypted with AES-256-GCM (the `aes-gcm` crate, RustCrypto) under a random
//! 96-bit nonce, with its entry name as associated data: a sealed value copied to another
//! entry's row does not open. The key is 32 random bytes, base64 in `MAILROOM_SECRETS_KEY` or
//! in the file `MAILROOM_SECRETS_KEY_FILE` names (`mailroom secrets new-key` prints one); it is
//! never stored with the data, never logged, and zeroized on drop. Every record names the key
//! that sealed it by the key's id (the first 8 bytes of its SHA-256, hex), so that a key can be
//! rotated: start every worker with the new key as `MAILROOM_SECRETS_KEY` and the old one as
//! `MAILROOM_SECRETS_PREVIOUS_KEY` (or `…_FILE`), run `mailroom secrets rotate` (it reseals every
//! record with the new key), then drop the previous key.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine as _;
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::{SecretValue, SecretsError};

/// The key, base64 (32 bytes).
pub const KEY_ENV: &str = "MAILROOM_SECRETS_KEY";
/// A file holding the key, base64.
pub const KEY_FILE_ENV: &str = "MAILROOM_SECRETS_KEY_FILE";
/// The key being rotated away from (still opens the records it sealed).
pub const PREVIOUS_KEY_ENV: &str = "MAILROOM_SECRETS_PREVIOUS_KEY";
/// A file holding the previous key.
pub const PREVIOUS_KEY_FILE_ENV: &str = "MAILROOM_SECRETS_PREVIOUS_KEY_FILE";

const NONCE_LEN: usize = 12;

/// A 32-byte sealing key. `Debug` shows only its id.
#[derive(Clone)]
pub struct SealingKey {
    id: String,
    bytes: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey").field("id", &self.id).finish()
    }
}

impl SealingKey {
    /// A new random key.
    pub fn generate() -> Result<Self, SecretsError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|e| SecretsError::Unavailable {
            detail: format!("the system's random number generator failed: {e}"),
        })?;
        Ok(Self::from_bytes(bytes))
    }

    fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        let digest = sha2::Sha256::digest(bytes.as_ref());
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        SealingKey { id, bytes }
    }

    /// Reads a key written as base64 (surrounding whitespace ignored). `origin` names where it
    /// came from, for the error.
    pub fn from_base64(text: &str, origin: &str) -> Result<Self, SecretsError> {
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| invalid_key(origin, "it is not base64"))?,
        );
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
            invalid_key(origin, &format!("it holds {} bytes, not 32", decoded.len()))
        })?;
        Ok(Self::from_bytes(Zeroizing::new(bytes)))
    }

    /// Reads a key from a file holding it as base64.
    pub fn from_file(path: &Path) -> Result<Self, SecretsError> {
        let origin = path.display().to_string();
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            SecretsError::Unavailable {
                detail: format!("the secrets key file {origin} could not be read: {e}"),
            }
        })?);
        Self::from_base64(&text, &origin)
    }

    /// The key as base64 (what `mailroom secrets new-key` prints).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.bytes.as_ref()))
    }

    /// The key's id: the first 8 bytes of its SHA-256, hex. Records name their key by it.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.bytes.as_ref()).expect("a 32-byte key")
    }

    /// Seals `value` for the entry `name`.
    pub fn seal(&self, name: &str, value: &SecretValue) -> Result<SealedRecord, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SecretsError::Unavailable {
            detail: format!("the system's random number generator failed: {e}"),
        })?;
        let ciphertext = self
            .cipher()
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: value.expose().as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Backend {
                entry: name.to_string(),
                detail: "the secret could not be sealed".into(),
            })?;
        Ok(SealedRecord {
            key_id: self.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a record sealed with this key for the entry `name`.
    fn open(&self, name: &str, record: &SealedRecord) -> Result<SecretValue, SecretsError> {
        let refused = || {
            SecretsError::Denied {
            entry: name.to_string(),
            detail: "the sealed value does not open with the secrets key (altered, or sealed for another entry)".into(),
        }
        };
        let nonce: [u8; NONCE_LEN] = record.nonce.as_slice().try_into().map_err(|_| refused())?;
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(
                    (&nonce).into(),
                    Payload {
                        msg: &record.ciphertext,
                        aad: name.as_bytes(),
                    },
                )
                .map_err(|_| refused())?,
        );
        let text = String::from_utf8(plain.to_vec()).map_err(|_| refused())?;
        Ok(SecretValue::new(text))
    }
}

fn invalid_key(origin: &str, why: &str) -> SecretsError {
    SecretsError::Unavailable {
        detail: format!(
            "the secrets key in {origin} is not usable: {why}. A key is 32 random bytes in base64; `mailroom secrets new-key` prints one"
        ),
    }
}

/// The keys a sealed backend works with: the current one seals, the previous one (while a
/// rotation runs) still opens what it sealed.
#[derive(Debug, Clone)]
pub struct SealingKeys {
    pub current: SealingKey,
    pub previous: Option<SealingKey>,
}

impl SealingKeys {
    /// The keys the environment names ([`KEY_ENV`] or [`KEY_FILE_ENV`], and the previous
    /// ones); `None` when no key is set (the keyring is then the backend).
    pub fn from_env() -> Result<Option<Self>, SecretsError> {
        let Some(current) = key_from_env(KEY_ENV, KEY_FILE_ENV)? else {
            if key_from_env(PREVIOUS_KEY_ENV, PREVIOUS_KEY_FILE_ENV)?.is_some() {
                return Err(SecretsError::Unavailable {
                    detail: format!("{PREVIOUS_KEY_ENV} is set without {KEY_ENV}: set the new key as {KEY_ENV} (or {KEY_FILE_ENV}) too"),
                });
            }
            return Ok(None);
        };
        let previous = key_from_env(PREVIOUS_KEY_ENV, PREVIOUS_KEY_FILE_ENV)?;
        Ok(Some(SealingKeys { current, previous }))
    }

    fn for_id(&self, id: &str) -> Option<&SealingKey> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|k| k.id == id)
    }
}

fn key_from_env(value_var: &str, file_var: &str) -> Result<Option<SealingKey>, SecretsError> {
    let value = std::env::var(value_var)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let file = std::env::var_os(file_var).filter(|v| !v.is_empty());
    match (value, file) {
        (Some(_), Some(_)) => Err(SecretsError::Unavailable {
            detail: format!("both {value_var} and {file_var} are set: set one"),
        }),
        (Some(value), None) => SealingKey::from_base64(&Zeroizing::new(value), value_var).map(Some),
        (None, Some(file)) => SealingKey::from_file(Path::new(&file)).map(Some),
        (None, None) => Ok(None),
    }
}

/// One sealed secret as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    /// The id of the key that sealed it.
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Where sealed secrets are kept (the database: `mailroom-engine` implements it on the store).
/// Errors are the storage's own words.
#[async_trait::async_trait]
pub trait SealedStorage: Send + Sync + fmt::Debug {
    async fn load(&self, name: &str) -> Result<Option<SealedRecord>, String>;
    async fn save(&self, name: &str, record: &SealedRecord) -> Result<(), String>;
    async fn remove(&self, name: &str) -> Result<(), String>;
    /// Every record's name and the id of the key that sealed it.
    async fn key_ids(&self) -> Result<Vec<(String, String)>, String>;
}

/// The sealed backend: keys and storage.
#[derive(Debug, Clone)]
pub(crate) struct Sealed {
    keys: SealingKeys,
    storage: Arc<dyn SealedStorage>,
}

fn storage_error(entry: &str, detail: String) -> SecretsError {
    SecretsError::Backend {
        entry: entry.to_string(),
        detail: format!("the database refused: {detail}"),
    }
}

impl Sealed {
    pub(crate) fn new(keys: SealingKeys, storage: Arc<dyn SealedStorage>) -> Self {
        Sealed { keys, storage }
    }

    pub(crate) fn current_key_id(&self) -> &str {
        self.keys.current.id()
    }

    pub(crate) async fn set(&self, name: &str, value: &SecretValue) -> Result<(), SecretsError> {
        let record = self.keys.current.seal(name, value)?;
        self.storage
            .save(name, &record)
            .await
            .map_err(|e| storage_error(name, e))
    }

    pub(crate) async fn get(&self, name: &str) -> Result<Option<SecretValue>, SecretsError> {
        let Some(record) = self
            .storage
            .load(name)
            .await
            .map_err(|e| storage_error(name, e))?
        else {
            return Ok(None);
        };
        let key = self.keys.for_id(&record.key_id).ok_or_else(|| SecretsError::Denied {
            entry: name.to_string(),
            detail: format!(
                "it was sealed with key {}, and the secrets key is {}: start Mailroom with that key (as {PREVIOUS_KEY_ENV} while rotating)",
                record.key_id,
                self.keys.current.id()
            ),
        })?;
        key.open(name, &record).map(Some)
    }

    pub(crate) async fn delete(&self, name: &str) -> Result<(), SecretsError> {
        self.storage
            .remove(name)
            .await
            .map_err(|e| storage_error(name, e))
    }

    /// Reseals every record the current key did not seal; returns how many.
    pub(crate) async fn rotate(&self) -> Result<usize, SecretsError> {
        let records = self
            .storage
            .key_ids()
            .await
            .map_err(|e| storage_error("-", e))?;
        let mut resealed = 0;
        for (name, key_id) in records {
            if key_id == self.keys.current.id() {
                continue;
            }
            if let Some(value) = self.get(&name).await? {
                self.set(&name, &value).await?;
                resealed += 1;
            }
        }
        Ok(resealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_for_its_entry() {
        let key = SealingKey::generate().unwrap();
        let record = key
            .seal("store/mbx/client-secret", &SecretValue::new("hunter2"))
            .unwrap();
        assert_eq!(record.key_id, key.id());
        assert!(!String::from_utf8_lossy(&record.ciphertext).contains("hunter2"));
        assert_eq!(
            key.open("store/mbx/client-secret", &record)
                .unwrap()
                .expose(),
            "hunter2"
        );
        // Another entry's name: refused (the name is the associated data).
        assert!(key.open("store/other/client-secret", &record).is_err());
        // Another key: refused.
        let other = SealingKey::generate().unwrap();
        assert!(other.open("store/mbx/client-secret", &record).is_err());
        // An altered byte: refused.
        let mut altered = record.clone();
        altered.ciphertext[0] ^= 1;
        assert!(key.open("store/mbx/client-secret", &altered).is_err());
        // Two seals of one value differ (fresh nonce).
        let again = key
            .seal("store/mbx/client-secret", &SecretValue::new("hunter2"))
            .unwrap();
        assert_ne!(again.ciphertext, record.ciphertext);
    }

    #[test]
    fn keys_read_from_base64_say_what_is_wrong() {
        let key = SealingKey::generate().unwrap();
        let read =
            SealingKey::from_base64(&format!(" {}\n", key.to_base64().as_str()), "test").unwrap();
        assert_eq!(read.id(), key.id());
        assert_eq!(read.id().len(), 16);
        let short = SealingKey::from_base64("c2hvcnQ=", "MAILROOM_SECRETS_KEY").unwrap_err();
        assert!(short.to_string().contains("5 bytes, not 32"), "{short}");
        assert!(
            short.to_string().contains("mailroom secrets new-key"),
            "{short}"
        );
        let garbage = SealingKey::from_base64("not base64!", "MAILROOM_SECRETS_KEY").unwrap_err();
        assert!(garbage.to_string().contains("not base64"), "{garbage}");
        assert!(!format!("{key:?}").contains(key.to_base64().as_str()));
    }
}
