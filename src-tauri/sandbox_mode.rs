//! `--sandbox`: the app runs against the built-in sandbox tenant.
//!
//! The sandbox (identity platform, Graph, HaloPSA) runs in-process on its default ports (or
//! free ones when those are taken). Its state lives in memory, so the app's sandbox data
//! directory is started afresh on every launch — after the keyring entries of the previous
//! run's mailboxes are deleted — and is kept apart from the real data directory.

use std::path::{Path, PathBuf};

use mailroom_engine::Core;
use mailroom_sandbox::{Sandbox, SandboxOptions, DEFAULT_BASE_PORT};
use mailroom_store::DataDirLock;
use serde::Serialize;

use crate::Opened;

/// The sandbox tenant as the sandbox commands see it (`None` when the app runs on real data).
pub struct SandboxState {
    pub sandbox: Option<Sandbox>,
    /// How many test emails were sent (to vary the sender).
    pub test_emails_sent: std::sync::atomic::AtomicUsize,
}

impl SandboxState {
    pub fn new(sandbox: Option<Sandbox>) -> SandboxState {
        SandboxState {
            sandbox,
            test_emails_sent: Default::default(),
        }
    }
}

/// Sandbox mode's data directory, afresh, with the sandbox tenant running and its demo
/// mailboxes connected. The directory's lock is taken before anything in it is read or reset.
pub async fn open(base: &Path) -> Result<Opened, String> {
    let secrets = secrets();
    let dir = data_dir(base);
    let lock = DataDirLock::acquire(&dir, "Mailroom (sandbox)").map_err(|e| e.to_string())?;
    reset_data_dir(&dir, &secrets).await?;
    let core = Core::open_with_secrets(&dir, secrets)
        .await
        .map_err(|e| e.to_string())?;
    let sandbox = start_sandbox().await?;
    // The summary names the sandbox's credentials: log only where it listens.
    tracing::info!(
        authority = %sandbox.authority_url(),
        graph = %sandbox.graph_url(),
        psa = %sandbox.psa_url(),
        control = %sandbox.control_url(),
        "sandbox tenant running"
    );
    connect_demo_tenant(&core, &sandbox).await?;
    Ok(Opened {
        lock,
        core,
        database: crate::ActiveDatabase::own(),
        sandbox: Some(sandbox),
    })
}

/// The sandbox data directory: `<data dir>/sandbox`.
pub fn data_dir(base: &Path) -> PathBuf {
    base.join("sandbox")
}

/// The keyring service of sandbox mode: `MAILROOM_KEYRING_SERVICE` when set (tests), else
/// "Mailroom Sandbox", apart from the real data's "Mailroom". Passed explicitly: the process
/// environment is never changed at run time.
pub fn secrets() -> mailroom_secrets::Secrets {
    if std::env::var_os(mailroom_secrets::SERVICE_ENV).is_some() {
        mailroom_secrets::Secrets::from_env()
    } else {
        mailroom_secrets::Secrets::with_service("Mailroom Sandbox")
    }
}

/// Clears what a previous sandbox run left: its keyring entries, then its files. The caller
/// holds the directory's lock.
pub async fn reset_data_dir(dir: &Path, secrets: &mailroom_secrets::Secrets) -> Result<(), String> {
    if dir.join(mailroom_store::DATABASE_FILE).exists() {
        let core = Core::open_with_secrets(dir, secrets.clone())
            .await
            .map_err(|e| e.to_string())?;
        // The keyring is scoped to this directory's store id: only its own entries go.
        let mut owners: Vec<String> = core
            .mailboxes()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|m| m.id)
            .collect();
        owners.push(mailroom_engine::psa_connection::PSA_CONNECTION_ID.to_string());
        for owner in owners {
            if let Err(e) = core.secrets().delete_owner(&owner).await {
                tracing::warn!(owner = %owner, "sandbox reset: a keyring entry stays: {e}");
            }
        }
        core.store().close().await;
    }
    // Everything but the lock this process holds (removing it would let a second process lock
    // a new file of the same name).
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        if entry.file_name() == mailroom_store::LOCK_FILE {
            continue;
        }
        let path = entry.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Starts the sandbox on its default ports, or on free ports when those are taken.
pub async fn start_sandbox() -> Result<Sandbox, String> {
    // Graph's change notifications go to the app's own receiver on 127.0.0.1 (Graph itself
    // requires HTTPS; the sandbox stands in for the tunnel a real deployment needs).
    let options = |base_port| SandboxOptions {
        base_port,
        loopback_webhooks: true,
        ..Default::default()
    };
    let default = Sandbox::start(options(Some(DEFAULT_BASE_PORT))).await;
    match default {
        Ok(sandbox) => Ok(sandbox),
        Err(e) => {
            tracing::warn!("sandbox default ports unavailable ({e}); using free ports");
            Sandbox::start(options(None))
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
    }
}

/// Sandbox mode's demo set-up, so that a first run shows mail turning into tickets with no
/// typing: the sandbox HaloPSA as the PSA connection, `support@` connected by delegated sign-in
/// (the sandbox's sign-in page completed as a browser would), and the shared `helpdesk@`
/// connected app-only with the daemon app's secret. Both go through the same code paths as a
/// real mailbox.
pub async fn connect_demo_tenant(core: &Core, sandbox: &Sandbox) -> Result<(), String> {
    use mailroom_engine::mailboxes::MailboxSetup;
    use mailroom_engine::store_types::{Cloud, CredentialKind, MailboxMethod};
    use mailroom_secrets::SecretValue;

    let tenant = sandbox.tenant();
    let psa = &tenant.psa;
    core.set_psa_connection(
        &sandbox.psa_url(),
        &psa.client_id,
        SecretValue::new(psa.client_secret.clone()),
        Some(&psa.tenant),
    )
    .await
    .map_err(|e| format!("PSA connection: {e}"))?;

    // Unknown senders from unknown domains go to the PSA's "Default Site".
    let default_site = sandbox
        .halo()
        .sites()
        .into_iter()
        .find(|s| s["name"] == "Default Site")
        .and_then(|s| s["id"].as_f64())
        .map(|id| id as i64);
    let settings = serde_json::json!({ "sender_policy": { "default_site_id": default_site } });
    let setup = |name: &str, method, client_id: &str, credential_kind, secret: Option<String>| {
        MailboxSetup {
            name: name.into(),
            method,
            cloud: Cloud::Custom,
            authority_url: Some(sandbox.authority_url()),
            graph_url: Some(sandbox.graph_url()),
            tenant_id: tenant.tenant_id.clone(),
            client_id: client_id.into(),
            credential_kind,
            client_secret: secret.map(SecretValue::new),
            shared_mailbox: None,
            mailbox_address: None,
        }
    };

    let support_upn = format!("support@{}", tenant.domain);
    let support = core
        .add_mailbox(setup(
            "Support",
            MailboxMethod::Scan,
            &tenant.desktop_app.client_id,
            CredentialKind::Public,
            None,
        ))
        .await
        .map_err(|e| e.to_string())?;
    // Support's contacts are imported too: its sign-in asks for Contacts.Read.
    let mut support_settings = settings.clone();
    support_settings["contact_import"] = serde_json::json!(true);
    core.store()
        .set_mailbox_settings(&support.id, &support_settings)
        .await
        .map_err(|e| e.to_string())?;
    core.set_expected_account(&support.id, Some(&support_upn))
        .await
        .map_err(|e| e.to_string())?;
    let (url, authorization) = core
        .start_authorization(&support.id)
        .await
        .map_err(|e| e.to_string())?;
    let browser = tokio::spawn(async move {
        mailroom_sandbox::sign_in::complete_sign_in(url.as_str(), &support_upn)
            .await
            .map(|_| ())
    });
    core.finish_authorization(authorization, std::time::Duration::from_secs(30))
        .await
        .map_err(|e| format!("signing in support@: {e}"))?;
    browser
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;

    let mut helpdesk_setup = setup(
        "Helpdesk (shared)",
        MailboxMethod::Webhook,
        &tenant.daemon_app.client_id,
        CredentialKind::Secret,
        tenant.daemon_app.client_secret.clone(),
    );
    helpdesk_setup.mailbox_address = tenant.shared_mailbox.clone();
    let helpdesk = core
        .add_mailbox(helpdesk_setup)
        .await
        .map_err(|e| e.to_string())?;
    core.store()
        .set_mailbox_settings(&helpdesk.id, &settings)
        .await
        .map_err(|e| e.to_string())?;
    // The safety checks have something to try: the CFO's mailbox must stay out of reach (and
    // is not, until a policy is applied — as in a new tenant).
    core.set_canary_address(&helpdesk.id, tenant.canary_mailbox.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    core.connect_app_only(&helpdesk.id)
        .await
        .map_err(|e| format!("connecting helpdesk@: {e}"))?;
    Ok(())
}
