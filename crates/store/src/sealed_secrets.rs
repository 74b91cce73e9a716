//! Sealed secrets (`mailroom_secrets::sealed`): ciphertext by entry name, never the key.

use crate::{now_text, Result, Store};

/// One sealed secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecretRow {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl Store {
    /// The sealed secret named `name`, if any.
    pub async fn sealed_secret(&self, name: &str) -> Result<Option<SealedSecretRow>> {
        let row: Option<(String, Vec<u8>, Vec<u8>)> =
            sqlx::query_as("SELECT key_id, nonce, ciphertext FROM sealed_secrets WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(key_id, nonce, ciphertext)| SealedSecretRow {
            key_id,
            nonce,
            ciphertext,
        }))
    }

    /// Writes (or replaces) the sealed secret named `name`.
    pub async fn put_sealed_secret(&self, name: &str, row: &SealedSecretRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO sealed_secrets (name, key_id, nonce, ciphertext, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce,
                 ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(&row.key_id)
        .bind(&row.nonce)
        .bind(&row.ciphertext)
        .bind(now_text())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes the sealed secret named `name` (none is not an error).
    pub async fn delete_sealed_secret(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM sealed_secrets WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every sealed secret's name and the id of the key that sealed it, by name.
    pub async fn sealed_secret_key_ids(&self) -> Result<Vec<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT name, key_id FROM sealed_secrets ORDER BY name")
                .fetch_all(self.pool())
                .await?,
        )
    }
}
