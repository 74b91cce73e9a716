//! The store as the storage of sealed secrets (`mailroom_secrets::sealed`): the secrets crate
//! knows nothing of the database, the store nothing of keys; this is where they meet.

use mailroom_secrets::sealed::{SealedRecord, SealedStorage};
use mailroom_store::sealed_secrets::SealedSecretRow;
use mailroom_store::Store;

#[derive(Debug, Clone)]
pub(crate) struct StoreSealedStorage {
    store: Store,
}

impl StoreSealedStorage {
    pub(crate) fn new(store: Store) -> Self {
        StoreSealedStorage { store }
    }
}

#[async_trait::async_trait]
impl SealedStorage for StoreSealedStorage {
    async fn load(&self, name: &str) -> Result<Option<SealedRecord>, String> {
        let row = self
            .store
            .sealed_secret(name)
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.map(|r| SealedRecord {
            key_id: r.key_id,
            nonce: r.nonce,
            ciphertext: r.ciphertext,
        }))
    }

    async fn save(&self, name: &str, record: &SealedRecord) -> Result<(), String> {
        self.store
            .put_sealed_secret(
                name,
                &SealedSecretRow {
                    key_id: record.key_id.clone(),
                    nonce: record.nonce.clone(),
                    ciphertext: record.ciphertext.clone(),
                },
            )
            .await
            .map_err(|e| e.to_string())
    }

    async fn remove(&self, name: &str) -> Result<(), String> {
        self.store
            .delete_sealed_secret(name)
            .await
            .map_err(|e| e.to_string())
    }

    async fn key_ids(&self) -> Result<Vec<(String, String)>, String> {
        self.store
            .sealed_secret_key_ids()
            .await
            .map_err(|e| e.to_string())
    }
}
