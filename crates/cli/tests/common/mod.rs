//! Set-up shared by the CLI's process tests: a sandbox with an empty inbox, and a data
//! directory holding one connected app-only (*Webhooks*) mailbox of it.

use mailroom_engine::mailboxes::MailboxSetup;
use mailroom_engine::store_types::{Cloud, CredentialKind, MailboxMethod};
use mailroom_engine::{Core, Mailbox};
use mailroom_sandbox::{Sandbox, SandboxOptions, SandboxSeed};
use mailroom_secrets::SecretValue;

/// The default sandbox tenant without its seeded mail.
pub async fn sandbox_without_mail() -> Sandbox {
    let mut seed = SandboxSeed::default();
    seed.graph.messages.clear();
    Sandbox::start(SandboxOptions {
        seed: Some(seed),
        // Notifications go to a receiver on this machine (Graph itself requires HTTPS).
        loopback_webhooks: true,
        ..Default::default()
    })
    .await
    .expect("sandbox")
}

/// Adds `address` as a Webhooks mailbox named `name`, with the daemon app's secret, and
/// connects it (the secret goes to the keyring).
pub async fn connected_app_only_mailbox(
    core: &Core,
    sb: &Sandbox,
    name: &str,
    address: &str,
) -> Mailbox {
    let t = sb.tenant();
    let mailbox = core
        .add_mailbox_with_credentials(
            MailboxSetup {
                name: name.into(),
                method: MailboxMethod::Webhook,
                cloud: Cloud::Custom,
                authority_url: Some(sb.authority_url()),
                graph_url: Some(sb.graph_url()),
                tenant_id: t.tenant_id.clone(),
                client_id: t.daemon_app.client_id.clone(),
                credential_kind: CredentialKind::Secret,
                client_secret: Some(SecretValue::new(
                    t.daemon_app.client_secret.clone().expect("daemon secret"),
                )),
                shared_mailbox: None,
                mailbox_address: Some(address.into()),
            },
            None,
            None,
        )
        .await
        .expect("mailbox added");
    core.connect_app_only(&mailbox.id)
        .await
        .expect("mailbox connected");
    mailbox
}

/// A data directory as an admin leaves it before `mailroom run`: support@ connected app-only
/// (a Webhooks mailbox, so `run` starts the receiver, on any free port), the sandbox's HaloPSA
/// as the PSA connection. Secrets in the keyring: call [`forget_secrets`] at the end.
#[allow(dead_code)]
pub async fn configured_data_dir(sb: &Sandbox) -> (tempfile::TempDir, Core, Mailbox) {
    let dir = tempfile::tempdir().expect("temp dir");
    let core = Core::open(dir.path()).await.expect("core");
    let mailbox = configure(&core, sb).await;
    (dir, core, mailbox)
}

/// What [`configured_data_dir`] sets up, on `core` (whichever secret store it uses).
#[allow(dead_code)]
pub async fn configure(core: &Core, sb: &Sandbox) -> Mailbox {
    let mailbox = connected_app_only_mailbox(core, sb, "Support", "support@contoso.test").await;
    core.set_webhook_settings(&mailroom_engine::webhooks::WebhookSettings {
        port: Some(0),
        ..Default::default()
    })
    .await
    .expect("webhook settings");
    let t = sb.tenant();
    core.set_psa_connection(
        &sb.psa_url(),
        &t.psa.client_id,
        SecretValue::new(t.psa.client_secret.clone()),
        Some(&t.psa.tenant),
    )
    .await
    .expect("PSA connection");
    mailbox
}

/// Deletes the keyring entries [`configured_data_dir`] made.
#[allow(dead_code)]
pub async fn forget_secrets(core: &Core, mailbox: &Mailbox) {
    let _ = core
        .secrets()
        .delete_owner(mailroom_engine::psa_connection::PSA_CONNECTION_ID)
        .await;
    let _ = core.secrets().delete_owner(&mailbox.id).await;
}

/// Runs `mailroom ARGS` on `dir` off the async runtime (the sandbox serves on it meanwhile).
#[allow(dead_code)]
pub async fn mailroom(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mailroom"));
    command.args(args).env("MAILROOM_DATA_DIR", dir);
    tokio::task::spawn_blocking(move || command.output().expect("run mailroom"))
        .await
        .unwrap()
}

/// What a run printed, stdout then stderr.
#[allow(dead_code)]
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
