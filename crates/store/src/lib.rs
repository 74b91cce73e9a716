//! Mailroom's store: one SQLite file per user (the default), or a PostgreSQL database shared by
//! several `mailroom serve` workers; both through sqlx's `Any` driver, one set of queries.
//!
//! Invariants:
//! - The schema only changes through the embedded migrations in `migrations/` (applied on
//!   [`Store::open`]); a database written by a newer Mailroom is refused, not guessed at.
//! - WAL journaling and foreign keys are always on.
//! - No secret is ever written here: client secrets, tokens and private keys live in the OS
//!   keyring (crate `mailroom-secrets`), keyed by the ids this store hands out.

/// Implements `as_str` (the stored text), `FromStr` and `Display` for a fieldless enum whose
/// values are stored as text; the texts are the schema's, so existing databases keep working.
macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The value stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            #[allow(dead_code)]
            pub(crate) fn parse(text: &str) -> $crate::Result<Self> {
                text.parse()
            }
        }
        impl std::str::FromStr for $ty {
            type Err = $crate::StoreError;
            fn from_str(text: &str) -> $crate::Result<Self> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err($crate::StoreError::Corrupt(format!(
                        "unknown {} '{other}'", stringify!($ty)
                    ))),
                }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

mod backend;
pub mod changes;
pub mod contacts;
pub mod dashboard;
mod data_dir;
mod delta_cursor;
pub mod heartbeats;
pub mod inbound;
mod leases;
mod lock;
pub mod mailbox_checks;
mod mailboxes;
pub mod notifications;
pub mod outbound;
mod psa_connections;
pub mod psa_webhooks;
pub mod retention;
pub mod sealed_secrets;
mod settings;
mod store_id;
pub mod synthetic;
#[cfg(test)]
mod testing;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::any::AnyConnectOptions;
use sqlx::pool::PoolOptions;
use sqlx::{Any, Pool};

type AnyPool = Pool<Any>;
type AnyPoolOptions = PoolOptions<Any>;

pub use backend::Backend;
pub(crate) use backend::{flag, numbered, Arg};
pub use data_dir::{data_dir, DATA_DIR_ENV};
pub use delta_cursor::DeltaRoundCursor;
pub use leases::LeaseTakeovers;
pub use lock::{DataDirLock, LockError, LOCK_FILE};
pub use mailboxes::{Cloud, CredentialKind, Mailbox, MailboxMethod, NewMailbox};
pub use psa_connections::{NewPsaConnection, PsaConnection};
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
        source: BackendError,
    },
    #[error("could not update the database schema: {0}")]
    Migrate(#[source] BackendError),
    #[error("database error: {0}")]
    Database(#[source] BackendError),
    #[error("{what} '{id}' does not exist")]
    NotFound { what: &'static str, id: String },
    #[error("a mailbox named '{0}' already exists; choose another name")]
    DuplicateName(String),
    #[error("stored value is not valid: {0}")]
    Corrupt(String),
    #[error("'{0}' is not a PostgreSQL URL: write postgres://user:password@host:5432/database")]
    Url(String),
    #[error("could not determine the data directory: {0}")]
    DataDir(String),
}

/// An error of the database backend, opaque so that the store's API names no backend type
/// (a second backend, e.g. PostgreSQL, returns its own errors through the same type).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BackendError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(BackendError(Box::new(e)))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(BackendError(Box::new(e)))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The database file (SQLite only).
    path: Option<PathBuf>,
    /// Serializes bursts of small write transactions from one source (PSA webhook deliveries):
    /// waiting here is cheaper than SQLite's busy handler, which sleeps between retries.
    burst_writes: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// PostgreSQL only: where to listen for other processes' changes ([`Store::listen`]).
    shared: Option<changes::Shared>,
}

/// The environment variable naming a PostgreSQL database for the service
/// (`postgres://user:password@host:5432/mailroom`).
pub const DATABASE_URL_ENV: &str = "MAILROOM_DATABASE_URL";

/// SQLite's settings for every connection: write-ahead log, foreign keys, a busy timeout;
/// pages freed by retention can be given back (takes effect when the file is created; an older
/// database reuses its free pages instead).
const SQLITE_PRAGMAS: &str = "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;";

impl Store {
    /// Opens (creating if needed) the SQLite database file at `path` and applies pending
    /// migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::DataDir(e.to_string()))?;
        }
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let open_error = |source: sqlx::Error| StoreError::Open {
            path: path.clone(),
            source: BackendError(Box::new(source)),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(open_error)?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *conn, SQLITE_PRAGMAS).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(open_error)?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        tracing::debug!(path = %path.display(), "store opened");
        Ok(Store {
            pool,
            backend: Backend::Sqlite,
            path: Some(path),
            burst_writes: Default::default(),
            shared: None,
        })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://…`) and applies pending
    /// migrations; several processes may share it.
    pub async fn connect(url: &str) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Url(redacted(url)));
        }
        sqlx::any::install_default_drivers();
        let open_error = |source: sqlx::Error| StoreError::Open {
            path: PathBuf::from(redacted(url)),
            source: BackendError(Box::new(source)),
        };
        // Every store connects under a name of its own, which its changes carry (see
        // `Store::listen`); a name in the URL is replaced (the last one given wins).
        let shared = changes::Shared::new(url);
        let options = AnyConnectOptions::from_str(shared.url()).map_err(open_error)?;
        // One connection first, so that a server that refuses, a wrong password or a missing
        // database is reported as such at once (the pool would retry until its timeout and
        // report only that).
        let probe = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            sqlx::ConnectOptions::connect(&options),
        )
        .await
        .map_err(|_| {
            open_error(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the server did not answer within 10 s",
            )))
        })?
        .map_err(open_error)?;
        let _ = sqlx::Connection::close(probe).await;
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        tracing::debug!(url = %redacted(url), "store connected");
        Ok(Store {
            pool,
            backend: Backend::Postgres,
            path: None,
            burst_writes: Default::default(),
            shared: Some(shared),
        })
    }

    /// Opens the database in the per-user data directory (see [`data_dir`]).
    pub async fn open_default() -> Result<Self> {
        Self::open(data_dir()?.join(DATABASE_FILE)).await
    }

    /// The underlying pool; private to the store, which owns every query.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where the database file lives (SQLite; `None` on PostgreSQL).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Closes all connections (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A database URL without its password, for messages and logs.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(not a URL)".into(),
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
