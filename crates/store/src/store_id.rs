//! The store's own id: a random id created the first time a database is opened, kept in the
//! `settings` table. Keyring entries are scoped by it, so two data directories (the real one and
//! the sandbox's, or two profiles) never read, overwrite or delete each other's credentials.

use crate::{Result, Store};

/// Settings key of the store id.
pub const STORE_ID_SETTING: &str = "store.id";

/// What [`Store::store_id`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreId {
    pub id: String,
    /// True when the id was created by this call (a database opened for the first time by a
    /// Mailroom that scopes keyring entries; it may hold records whose entries are unscoped).
    pub created: bool,
}

impl Store {
    /// The store's id, created (random) at the first call.
    pub async fn store_id(&self) -> Result<StoreId> {
        if let Some(id) = self.setting::<String>(STORE_ID_SETTING).await? {
            return Ok(StoreId { id, created: false });
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        // Two processes opening a new database at once agree on one id.
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(STORE_ID_SETTING)
        .bind(serde_json::to_string(&id).expect("a string serializes"))
        .bind(crate::now_text())
        .execute(self.pool())
        .await?;
        let stored = self
            .setting::<String>(STORE_ID_SETTING)
            .await?
            .unwrap_or(id.clone());
        Ok(StoreId {
            created: stored == id,
            id: stored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_store_id_is_created_once_and_differs_per_database() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path().join("a.db")).await.unwrap();
        let first = a.store_id().await.unwrap();
        assert!(first.created);
        let again = a.store_id().await.unwrap();
        assert_eq!(again.id, first.id);
        assert!(!again.created);
        let b = Store::open(dir.path().join("b.db")).await.unwrap();
        assert_ne!(b.store_id().await.unwrap().id, first.id);
    }
}
