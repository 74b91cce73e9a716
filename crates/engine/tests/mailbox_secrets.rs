//! Adding and removing mailboxes through the core, with the real keyring: the secret goes to
//! the keyring and never into the SQLite file.

use mailroom_engine::mailboxes::MailboxSetup;
use mailroom_engine::Core;
use mailroom_secrets::{SecretKey, SecretKind, Secrets};

const SECRET: &str = "Wq8~sandbox.secret.value.Z1x2c3v4b5n6m7";

fn setup_json() -> serde_json::Value {
    serde_json::json!({
        "name": "Support (webhooks)",
        "method": "webhook",
        "cloud": "global",
        "tenant_id": "6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab",
        "client_id": "c0ffee00-0000-4000-8000-000000000003",
        "credential_kind": "secret",
        "client_secret": SECRET,
        "mailbox_address": "support@contoso.test"
    })
}

#[tokio::test]
async fn the_client_secret_lives_in_the_keyring_only() {
    std::env::set_var(
        mailroom_secrets::SERVICE_ENV,
        format!("mailroom-test-{}", std::process::id()),
    );
    let dir = tempfile::tempdir().unwrap();
    let core = Core::open(dir.path()).await.unwrap();
    let setup: MailboxSetup = serde_json::from_value(setup_json()).unwrap();
    assert!(
        !format!("{setup:?}").contains(SECRET),
        "Debug must not show the secret"
    );
    let mailbox = core.add_mailbox(setup).await.unwrap();

    let key = SecretKey::new(&mailbox.id, SecretKind::ClientSecret);
    let stored = Secrets::from_env()
        .get(&key)
        .unwrap()
        .expect("secret in keyring");
    assert_eq!(stored.expose(), SECRET);

    core.store().close().await;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(!found, "secret found in {}", path.display());
        }
    }

    let core = Core::open(dir.path()).await.unwrap();
    core.remove_mailbox(&mailbox.id).await.unwrap();
    assert_eq!(Secrets::from_env().get(&key).unwrap(), None);
    assert!(core.mailboxes().await.unwrap().is_empty());
}
