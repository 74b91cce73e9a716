//! Where Mailroom keeps its database and logs.

use std::path::PathBuf;

use crate::{Result, StoreError};

/// Environment variable that overrides the data directory (tests, portable installs).
pub const DATA_DIR_ENV: &str = "MAILROOM_DATA_DIR";

/// The per-user data directory: `$MAILROOM_DATA_DIR` if set, else the platform's data
/// directory plus `Mailroom` (`~/.local/share/Mailroom` on Linux,
/// `%APPDATA%\Mailroom` on Windows, `~/Library/Application Support/Mailroom` on macOS).
pub fn data_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::data_dir()
        .map(|base| base.join("Mailroom"))
        .ok_or_else(|| {
            StoreError::DataDir(format!(
                "no home directory is known for this user; set {DATA_DIR_ENV}"
            ))
        })
}
