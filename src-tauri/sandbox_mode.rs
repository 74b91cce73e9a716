//! `--sandbox`: the app runs against the built-in sandbox tenant.
//!
//! The sandbox (identity platform, Graph, HaloPSA) runs in-process on its default ports (or
//! free ones when those are taken). Its state lives in memory, so the app's sandbox data
//! directory is started afresh on every launch — after the keyring entries of the previous
//! run's mailboxes are deleted — and is kept apart from the real data directory.

use std::path::{Path, PathBuf};

use mailroom_engine::Core;
use mailroom_sandbox::{Sandbox, SandboxOptions, DEFAULT_BASE_PORT};
use serde::Serialize;

/// Command-line flag that selects sandbox mode.
pub const FLAG: &str = "--sandbox";

/// Whether the app was started with `--sandbox`.
pub fn requested() -> bool {
    std::env::args().skip(1).any(|a| a == FLAG)
}

/// The sandbox data directory: `<data dir>/sandbox`.
pub fn data_dir(base: &Path) -> PathBuf {
    base.join("sandbox")
}

/// Clears what a previous sandbox run left: its mailboxes' keyring entries, then its files.
pub async fn reset_data_dir(dir: &Path) -> Result<(), String> {
    if dir.join(mailroom_store::DATABASE_FILE).exists() {
        let core = Core::open(dir).await.map_err(|e| e.to_string())?;
        for mailbox in core.mailboxes().await.map_err(|e| e.to_string())? {
            let _ = core.secrets().delete_owner_async(mailbox.id).await;
        }
        core.store().close().await;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Starts the sandbox on its default ports, or on free ports when those are taken.
pub async fn start_sandbox() -> Result<Sandbox, String> {
    let default = Sandbox::start(SandboxOptions {
        base_port: Some(DEFAULT_BASE_PORT),
        ..Default::default()
    })
    .await;
    match default {
        Ok(sandbox) => Ok(sandbox),
        Err(e) => {
            tracing::warn!("sandbox default ports unavailable ({e}); using free ports");
            Sandbox::start(SandboxOptions::default())
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// What the UI shows about the sandbox tenant (no secrets).
#[derive(Debug, Clone, Serialize)]
pub struct SandboxInfo {
    pub tenant: String,
    pub domain: String,
    pub authority_url: String,
    pub graph_url: String,
    pub psa_url: String,
    pub control_url: String,
    pub mailboxes: Vec<String>,
}

pub fn info(sandbox: &Sandbox) -> SandboxInfo {
    let tenant = sandbox.tenant();
    SandboxInfo {
        tenant: tenant.display_name.clone(),
        domain: tenant.domain.clone(),
        authority_url: sandbox.authority_url(),
        graph_url: sandbox.graph_url(),
        psa_url: sandbox.psa_url(),
        control_url: sandbox.control_url(),
        mailboxes: tenant
            .users
            .iter()
            .map(|u| u.user_principal_name.clone())
            .collect(),
    }
}
