//! Application settings: a small JSON key/value table.

use serde::{de::DeserializeOwned, Serialize};

use crate::{now_text, Result, Store, StoreError};

impl Store {
    /// Reads a setting, `None` when it was never set.
    pub async fn setting<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let raw: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        raw.map(|raw| {
            serde_json::from_str(&raw)
                .map_err(|e| StoreError::Corrupt(format!("setting '{key}': {e}")))
        })
        .transpose()
    }

    /// Deletes every setting whose key starts with `prefix`.
    pub async fn delete_settings_prefixed(&self, prefix: &str) -> Result<u64> {
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let done = sqlx::query("DELETE FROM settings WHERE key LIKE $1 ESCAPE '\\'")
            .bind(pattern)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Writes (or replaces) a setting.
    pub async fn set_setting<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let raw = serde_json::to_string(value)
            .map_err(|e| StoreError::Corrupt(format!("setting '{key}': {e}")))?;
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(raw)
        .bind(now_text())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
