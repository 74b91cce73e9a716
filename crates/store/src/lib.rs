//! Mailroom's local store: one SQLite file per user, opened through sqlx.
//!
//! Invariants:
//! - The schema only changes through the embedded migrations in `migrations/` (applied on
//!   [`Store::open`]); a database written by a newer Mailroom is refused, not guessed at.
//! - WAL journaling and foreign keys are always on.
//! - No secret is ever written here: client secrets, tokens and private keys live in the OS
//!   keyring (crate `mailroom-secrets`), keyed by the ids this store hands out.

mod data_dir;
mod delta_cursor;
pub mod inbound;
mod mailboxes;
mod settings;
mod store_id;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use data_dir::{data_dir, DATA_DIR_ENV};
pub use delta_cursor::DeltaRoundCursor;
pub use mailboxes::{Cloud, CredentialKind, Mailbox, MailboxMethod, NewMailbox};
pub use store_id::{StoreId, STORE_ID_SETTING};

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "mailroom.db";

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not open the database at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("could not update the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{what} '{id}' does not exist")]
    NotFound { what: &'static str, id: String },
    #[error("a mailbox named '{0}' already exists; choose another name")]
    DuplicateName(String),
    #[error("stored value is not valid: {0}")]
    Corrupt(String),
    #[error("could not determine the data directory: {0}")]
    DataDir(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and applies pending migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::DataDir(e.to_string()))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        tracing::debug!(path = %path.display(), "store opened");
        Ok(Store { pool, path })
    }

    /// Opens the database in the per-user data directory (see [`data_dir`]).
    pub async fn open_default() -> Result<Self> {
        Self::open(data_dir()?.join(DATABASE_FILE)).await
    }

    /// The underlying pool, for crates that own tables of their own (the engine).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Where the database file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes all connections (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opening_twice_keeps_data_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(DATABASE_FILE);
        let store = Store::open(&path).await.unwrap();
        store.set_setting("theme", &"dark").await.unwrap();
        store.close().await;
        let again = Store::open(&path).await.unwrap();
        assert_eq!(
            again.setting::<String>("theme").await.unwrap().as_deref(),
            Some("dark")
        );
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(again.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(again.pool())
            .await
            .unwrap();
        assert_eq!(fk, 1);
    }
}
