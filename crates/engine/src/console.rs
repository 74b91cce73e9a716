//! The desktop app as the console of a shared database (issue 16): which database this
//! workstation opens — its own SQLite file, or the PostgreSQL database the Mailroom service's
//! workers share — and whether it processes mail itself.
//!
//! The choice is per user and lives beside the database it picks, in `console.json` in the
//! data directory (it cannot live in a database: it says which one). The database password and
//! the secrets key are secrets, so they go in the OS keyring, under entries scoped to this
//! console's id; the file holds the URL without its password.
//!
//! Invariants:
//! - A shared database is only saved after it was reached and the key was shown to open the
//!   secrets sealed in it ([`check`]): a workstation is never pointed at a database it cannot
//!   use.
//! - A shared database that cannot be reached at start does not keep the app from starting:
//!   it opens this workstation's own database and says why ([`Configured::shared_error`]), so
//!   that the admin can fix the setting from the window.

use std::path::{Path, PathBuf};

use mailroom_secrets::sealed::{SealingKey, SealingKeys};
use mailroom_secrets::{SecretKey, SecretKind, SecretValue, Secrets};
use serde::{Deserialize, Serialize};

use crate::{Core, CoreError};

/// The console's settings file in the data directory.
pub const CONSOLE_FILE: &str = "console.json";

/// The owner of the console's keyring entries.
const OWNER: &str = "console";

/// Which database this workstation opens and whether it processes mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleSettings {
    /// Scopes this console's keyring entries (a second data directory has its own).
    pub id: String,
    /// The shared PostgreSQL database, without its password; `None`: this workstation's own
    /// database.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Whether this workstation processes mail too (read mailboxes, write tickets, send mail)
    /// or only shows and configures what the service processes.
    #[serde(default = "yes")]
    pub process_mail: bool,
}

fn yes() -> bool {
    true
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            id: uuid::Uuid::new_v4().to_string(),
            database_url: None,
            process_mail: true,
        }
    }
}

impl ConsoleSettings {
    fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(CONSOLE_FILE)
    }

    /// The settings saved in `data_dir` (the defaults when there are none).
    pub fn load(data_dir: &Path) -> Result<Self, CoreError> {
        let path = Self::path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                CoreError::InvalidInput(format!(
                    "{} is not valid ({e}): correct it, or delete it to use this workstation's \
                     own database",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(CoreError::InvalidInput(format!(
                "{} could not be read: {e}",
                path.display()
            ))),
        }
    }

    /// Saves the settings (written beside and renamed over, so a crash leaves the old file).
    pub fn save(&self, data_dir: &Path) -> Result<(), CoreError> {
        let path = Self::path(data_dir);
        let temporary = path.with_extension("json.new");
        let text = serde_json::to_string_pretty(self).expect("settings serialize");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|e| {
                CoreError::InvalidInput(format!("{} could not be written: {e}", path.display()))
            })
    }

    /// The console's keyring entries, scoped to its id.
    fn secrets(&self, keyring: &Secrets) -> Secrets {
        keyring.scoped(format!("console-{}", self.id))
    }
}

/// A change of the console's settings, as the admin enters it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConsoleChange {
    /// `None` or empty: this workstation's own database.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Empty: keep the saved one (or none, for a server that trusts this workstation).
    #[serde(default)]
    pub password: Option<String>,
    /// The secrets key, base64 (what `mailroom secrets new-key` printed for the service).
    /// Empty: keep the saved one.
    #[serde(default)]
    pub secrets_key: Option<String>,
    pub process_mail: bool,
}

/// What [`check`] found in a shared database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseCheck {
    /// The URL without its password.
    pub database_url: String,
    pub mailboxes: usize,
    /// Secrets sealed in the database (all open with the key given).
    pub secrets: usize,
    /// The key's id (the service logs it; `mailroom secrets` prints it).
    pub key_id: String,
}

/// A shared database's URL without its password, and the password if the URL had one.
fn split_url(input: &str) -> Result<(String, Option<String>), CoreError> {
    let input = input.trim();
    let invalid = |why: &str| {
        CoreError::InvalidInput(format!(
            "{why}: write the database's URL as postgres://user@host:5432/database"
        ))
    };
    let mut url = url::Url::parse(input).map_err(|_| invalid("this is not a URL"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(invalid("only PostgreSQL databases can be shared"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL names no server"));
    }
    if url.path().trim_matches('/').is_empty() {
        return Err(invalid("the URL names no database after the server"));
    }
    let password = url
        .password()
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|p| !p.is_empty());
    let _ = url.set_password(None);
    Ok((url.to_string(), password))
}

/// `url` with `password` in it.
fn with_password(url: &str, password: Option<&SecretValue>) -> Result<String, CoreError> {
    let mut url = url::Url::parse(url).map_err(|e| {
        CoreError::InvalidInput(format!("the saved database URL is not valid: {e}"))
    })?;
    if let Some(password) = password {
        url.set_password(Some(password.expose()))
            .map_err(|()| CoreError::InvalidInput("this URL cannot carry a password".into()))?;
    }
    Ok(url.to_string())
}

fn sealing_key(text: &str) -> Result<SealingKey, CoreError> {
    SealingKey::from_base64(text, "the secrets key entered").map_err(|e| {
        CoreError::InvalidInput(format!(
            "{e}. Paste the key the Mailroom service uses: the contents of the file its \
             MAILROOM_SECRETS_KEY_FILE names"
        ))
    })
}

/// A console change made concrete: the URL with its password, the key.
struct Target {
    url: String,
    password: Option<SecretValue>,
    key: SealingKey,
}

/// Resolves a change against what is saved: an empty password or key keeps the saved one.
async fn target(
    saved: &ConsoleSettings,
    keyring: &Secrets,
    change: &ConsoleChange,
    url: &str,
) -> Result<Target, CoreError> {
    let (url, password_in_url) = split_url(url)?;
    let secrets = saved.secrets(keyring);
    let entered = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    let password = match entered(&change.password).or(password_in_url) {
        Some(p) => Some(SecretValue::new(p)),
        None if saved.database_url.as_deref() == Some(url.as_str()) => {
            secrets
                .get(&SecretKey::new(OWNER, SecretKind::DatabasePassword))
                .await?
        }
        None => None,
    };
    let key =
        match entered(&change.secrets_key) {
            Some(text) => sealing_key(&text)?,
            None => match secrets
                .get(&SecretKey::new(OWNER, SecretKind::SealingKey))
                .await?
            {
                Some(saved) => sealing_key(saved.expose())?,
                None => return Err(CoreError::InvalidInput(
                    "enter the secrets key: a shared database keeps its secrets sealed with the \
                     key every Mailroom worker uses"
                        .into(),
                )),
            },
        };
    Ok(Target { url, password, key })
}

/// Connects to the shared database a change names and checks that the key opens its secrets.
/// The database's schema is brought up to date, as opening it would.
pub async fn check(
    data_dir: &Path,
    keyring: &Secrets,
    change: &ConsoleChange,
) -> Result<DatabaseCheck, CoreError> {
    let saved = ConsoleSettings::load(data_dir)?;
    let Some(url) = change
        .database_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    else {
        return Err(CoreError::InvalidInput(
            "enter the shared database's URL to test it".into(),
        ));
    };
    let target = target(&saved, keyring, change, url).await?;
    check_target(&target).await
}

async fn check_target(target: &Target) -> Result<DatabaseCheck, CoreError> {
    let full = with_password(&target.url, target.password.as_ref())?;
    let store = mailroom_store::Store::connect(&full).await?;
    let result = async {
        let sealed = store.sealed_secret_key_ids().await?;
        let foreign: Vec<&str> = sealed
            .iter()
            .map(|(_, id)| id.as_str())
            .filter(|id| *id != target.key.id())
            .collect();
        if !foreign.is_empty() {
            let mut ids: Vec<&str> = foreign.clone();
            ids.sort_unstable();
            ids.dedup();
            return Err(CoreError::InvalidInput(format!(
                "this key (id {}) does not open {} of the {} secrets sealed in this database \
                 (sealed with key {}): paste the key the Mailroom service uses",
                target.key.id(),
                foreign.len(),
                sealed.len(),
                ids.join(", ")
            )));
        }
        Ok(DatabaseCheck {
            database_url: target.url.clone(),
            mailboxes: store.mailboxes().await?.len(),
            secrets: sealed.len(),
            key_id: target.key.id().to_string(),
        })
    }
    .await;
    store.close().await;
    result
}

/// Saves a change: a shared database after [`check`] passed (its password and key in the
/// keyring), or this workstation's own database. Takes effect at the next start.
pub async fn apply(
    data_dir: &Path,
    keyring: &Secrets,
    change: &ConsoleChange,
) -> Result<(ConsoleSettings, Option<DatabaseCheck>), CoreError> {
    let saved = ConsoleSettings::load(data_dir)?;
    let mut settings = ConsoleSettings {
        process_mail: change.process_mail,
        ..saved.clone()
    };
    let url = change
        .database_url
        .as_deref()
        .filter(|u| !u.trim().is_empty());
    let Some(url) = url else {
        settings.database_url = None;
        settings.process_mail = true;
        settings.save(data_dir)?;
        return Ok((settings, None));
    };
    let target = target(&saved, keyring, change, url).await?;
    let checked = check_target(&target).await?;
    let secrets = settings.secrets(keyring);
    let password_key = SecretKey::new(OWNER, SecretKind::DatabasePassword);
    match &target.password {
        Some(password) => secrets.set(&password_key, password).await?,
        None => secrets.delete(&password_key).await?,
    }
    secrets
        .set(
            &SecretKey::new(OWNER, SecretKind::SealingKey),
            &SecretValue::new(target.key.to_base64().as_str()),
        )
        .await?;
    settings.database_url = Some(target.url);
    settings.save(data_dir)?;
    Ok((settings, Some(checked)))
}

/// The saved settings as the window shows them: no secret, only whether one is saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavedConsole {
    pub database_url: Option<String>,
    pub process_mail: bool,
    pub has_password: bool,
    pub has_key: bool,
}

/// The settings saved in `data_dir`, and which of their secrets the keyring holds.
pub async fn saved(data_dir: &Path, keyring: &Secrets) -> Result<SavedConsole, CoreError> {
    let settings = ConsoleSettings::load(data_dir)?;
    let secrets = settings.secrets(keyring);
    let key = |kind| SecretKey::new(OWNER, kind);
    Ok(SavedConsole {
        has_password: secrets
            .get(&key(SecretKind::DatabasePassword))
            .await?
            .is_some(),
        has_key: secrets.get(&key(SecretKind::SealingKey)).await?.is_some(),
        database_url: settings.database_url,
        process_mail: settings.process_mail,
    })
}

/// A process is alive while its heartbeats keep coming: three missed ones (30 s at the
/// default interval) and it is listed as silent.
pub const ALIVE_WITHIN: chrono::Duration = chrono::Duration::seconds(30);

/// A Mailroom process on the database, as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    #[serde(flatten)]
    pub heartbeat: mailroom_store::heartbeats::Heartbeat,
    /// Seen within [`ALIVE_WITHIN`].
    pub alive: bool,
}

/// Every Mailroom process on the database, and whether any processes mail now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Processes {
    pub processes: Vec<Process>,
    /// Processes alive now that process mail.
    pub processing_alive: usize,
    /// When a process that processes mail was last seen (none alive: how long mail waits).
    pub processing_last_seen: Option<chrono::DateTime<chrono::Utc>>,
}

impl Core {
    /// The processes on this database as of `now` ([`mailroom_store::heartbeats`]).
    pub async fn processes(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Processes, CoreError> {
        let beats = self.store().heartbeats().await?;
        let processing_last_seen = beats
            .iter()
            .filter(|b| b.processing)
            .map(|b| b.seen_at)
            .max();
        let processes: Vec<Process> = beats
            .into_iter()
            .map(|heartbeat| Process {
                alive: now - heartbeat.seen_at <= ALIVE_WITHIN,
                heartbeat,
            })
            .collect();
        Ok(Processes {
            processing_alive: processes
                .iter()
                .filter(|p| p.alive && p.heartbeat.processing)
                .count(),
            processes,
            processing_last_seen,
        })
    }
}

impl Core {
    /// Each mailbox's last scan as the workers recorded it in the database (a console, which
    /// runs no sync task, shows these): idle after a clean scan, error after a failed one,
    /// needs sign-in when the grant was refused.
    pub async fn recorded_sync_statuses(
        &self,
    ) -> Result<Vec<crate::events::SyncStatus>, CoreError> {
        use crate::events::{SyncState, SyncStatus};
        let mut statuses = Vec::new();
        for mailbox in self.mailboxes().await? {
            let (last_sync_at, error) = match self.store().sync_state(&mailbox.id).await? {
                Some((_, at, error)) => (at, error),
                None => (None, None),
            };
            let state = if mailbox.sign_in_required.is_some() {
                SyncState::NeedsSignIn
            } else if !mailbox.enabled {
                SyncState::Paused
            } else if error.is_some() {
                SyncState::Error
            } else {
                SyncState::Idle
            };
            statuses.push(SyncStatus {
                mailbox_id: mailbox.id,
                state,
                last_sync_at,
                next_scan_at: None,
                error: error.or(mailbox.sign_in_required),
            });
        }
        Ok(statuses)
    }
}

/// What [`Core::open_configured`] opened.
#[derive(Debug)]
pub struct Configured {
    pub core: Core,
    pub settings: ConsoleSettings,
    /// Why the shared database the settings name was not opened (this workstation's own
    /// database was, and nothing is processed on it unless the settings say so).
    pub shared_error: Option<String>,
}

impl Configured {
    /// Whether this workstation is the console of a shared database.
    pub fn is_shared(&self) -> bool {
        self.settings.database_url.is_some() && self.shared_error.is_none()
    }

    /// Whether the engine processes mail here: always on its own database unless the shared
    /// one failed to open (then the admin fixes the setting first).
    pub fn process_mail(&self) -> bool {
        match (&self.settings.database_url, &self.shared_error) {
            (None, _) => true,
            (Some(_), Some(_)) => false,
            (Some(_), None) => self.settings.process_mail,
        }
    }
}

impl Core {
    /// Opens the database this workstation's console settings name (see [`crate::console`]):
    /// its own in `data_dir`, or the shared PostgreSQL database with the password and key
    /// from `keyring`. A shared database that cannot be opened falls back to the own one, with
    /// the reason.
    pub async fn open_configured(
        data_dir: &Path,
        keyring: Secrets,
    ) -> Result<Configured, CoreError> {
        let (settings, settings_error) = match ConsoleSettings::load(data_dir) {
            Ok(settings) => (settings, None),
            Err(e) => (ConsoleSettings::default(), Some(e.to_string())),
        };
        if let Some(url) = &settings.database_url {
            match open_shared(data_dir, &keyring, &settings, url).await {
                Ok(core) => {
                    return Ok(Configured {
                        core,
                        settings,
                        shared_error: None,
                    })
                }
                Err(e) => {
                    tracing::warn!(
                        "the shared database was not opened: {e}; this workstation's own \
                         database is open instead"
                    );
                    let core = open_own(data_dir, keyring).await?;
                    return Ok(Configured {
                        core,
                        settings,
                        shared_error: Some(e.to_string()),
                    });
                }
            }
        }
        Ok(Configured {
            core: open_own(data_dir, keyring).await?,
            settings,
            shared_error: settings_error,
        })
    }
}

/// This workstation's own database, its secrets sealed when the environment names a key (as
/// [`Core::open`]), else in `keyring`.
async fn open_own(data_dir: &Path, keyring: Secrets) -> Result<Core, CoreError> {
    match SealingKeys::from_env()? {
        Some(keys) => Core::open_sealed(data_dir, keys).await,
        None => Core::open_with_secrets(data_dir, keyring).await,
    }
}

async fn open_shared(
    data_dir: &Path,
    keyring: &Secrets,
    settings: &ConsoleSettings,
    url: &str,
) -> Result<Core, CoreError> {
    let secrets = settings.secrets(keyring);
    let password = secrets
        .get(&SecretKey::new(OWNER, SecretKind::DatabasePassword))
        .await?;
    let key = match SealingKeys::from_env()? {
        Some(keys) => keys,
        None => {
            let saved = secrets
                .get(&SecretKey::new(OWNER, SecretKind::SealingKey))
                .await?
                .ok_or_else(|| {
                    CoreError::NotConfigured(
                        "the secrets key of the shared database is not in this workstation's \
                         keyring: enter it again under Monitoring > Shared database"
                            .into(),
                    )
                })?;
            SealingKeys {
                current: sealing_key(saved.expose())?,
                previous: None,
            }
        }
    };
    Core::connect_sealed(&with_password(url, password.as_ref())?, data_dir, key).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_kept_without_its_password() {
        let (url, password) =
            split_url(" postgres://mailroom:p%40ss+1@db.example.com:5432/mailroom ").unwrap();
        assert_eq!(url, "postgres://mailroom@db.example.com:5432/mailroom");
        // Percent-decoded, and a `+` stays a `+` (it is not a form's space).
        assert_eq!(password.as_deref(), Some("p@ss+1"));
        let (url, password) = split_url("postgresql://db.example.com/mr?sslmode=require").unwrap();
        assert_eq!(url, "postgresql://db.example.com/mr?sslmode=require");
        assert_eq!(password, None);
        assert_eq!(
            with_password(&url, Some(&SecretValue::new("p@ss"))).unwrap(),
            "postgresql://:p%40ss@db.example.com/mr?sslmode=require"
        );
    }

    #[test]
    fn a_url_that_cannot_be_a_shared_database_says_what_to_write() {
        for (input, why) in [
            ("db.example.com", "this is not a URL"),
            ("mysql://db.example.com/mr", "only PostgreSQL"),
            ("postgres://db.example.com", "names no database"),
            ("postgres:///mr", "names no server"),
        ] {
            let error = split_url(input).unwrap_err().to_string();
            assert!(error.contains(why), "{input}: {error}");
            assert!(
                error.contains("postgres://user@host:5432/database"),
                "{error}"
            );
        }
    }

    #[test]
    fn settings_survive_a_save_and_a_broken_file_says_how_to_recover() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ConsoleSettings::load(dir.path()).unwrap().database_url,
            None
        );
        let settings = ConsoleSettings {
            database_url: Some("postgres://db.example.com/mr".into()),
            process_mail: false,
            ..Default::default()
        };
        settings.save(dir.path()).unwrap();
        assert_eq!(ConsoleSettings::load(dir.path()).unwrap(), settings);
        std::fs::write(dir.path().join(CONSOLE_FILE), "{").unwrap();
        let error = ConsoleSettings::load(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("delete it to use this workstation's own database"),
            "{error}"
        );
    }
}
