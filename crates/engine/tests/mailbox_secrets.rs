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
    // An explicit keyring service (no process-wide environment variable).
    let secrets = || Secrets::with_service(format!("mailroom-test-{}", std::process::id()));
    let dir = tempfile::tempdir().unwrap();
    let core = Core::open_with_secrets(dir.path(), secrets())
        .await
        .unwrap();
    let setup: MailboxSetup = serde_json::from_value(setup_json()).unwrap();
    assert!(
        !format!("{setup:?}").contains(SECRET),
        "Debug must not show the secret"
    );
    let mailbox = core.add_mailbox(setup).await.unwrap();

    let key = SecretKey::new(&mailbox.id, SecretKind::ClientSecret);
    let stored = core
        .secrets()
        .get(&key)
        .await
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

    let core = Core::open_with_secrets(dir.path(), secrets())
        .await
        .unwrap();
    core.remove_mailbox(&mailbox.id).await.unwrap();
    assert_eq!(core.secrets().get(&key).await.unwrap(), None);
    assert!(core.mailboxes().await.unwrap().is_empty());
}

/// Issue 9 #3: the PSA connection's keyring entry had a constant name, so a sandbox data
/// directory wrote — and on launch deleted — the entry the real data directory used.
#[tokio::test]
async fn two_data_directories_never_share_a_keyring_entry() {
    use mailroom_engine::psa_connection::PSA_CONNECTION_ID;
    use mailroom_secrets::SecretValue;

    let service = format!("mailroom-test-{}", uuid::Uuid::new_v4());
    let real_dir = tempfile::tempdir().unwrap();
    let sandbox_dir = tempfile::tempdir().unwrap();
    let real = Core::open_with_secrets(real_dir.path(), Secrets::with_service(&service))
        .await
        .unwrap();
    let sandbox = Core::open_with_secrets(sandbox_dir.path(), Secrets::with_service(&service))
        .await
        .unwrap();
    real.set_psa_connection(
        "https://contoso.halopsa.com",
        "real-client",
        SecretValue::new("production-secret"),
        None,
    )
    .await
    .unwrap();
    sandbox
        .set_psa_connection(
            "http://127.0.0.1:47113",
            "sandbox-client",
            SecretValue::new("sandbox-secret"),
            None,
        )
        .await
        .unwrap();
    let key = SecretKey::new(PSA_CONNECTION_ID, SecretKind::PsaClientSecret);
    let read = async |core: &Core| {
        core.secrets()
            .get(&key)
            .await
            .unwrap()
            .map(|v| v.expose().to_string())
    };
    assert_eq!(read(&real).await.as_deref(), Some("production-secret"));
    assert_eq!(read(&sandbox).await.as_deref(), Some("sandbox-secret"));

    // What a sandbox reset does: delete every entry its records own.
    sandbox
        .secrets()
        .delete_owner(PSA_CONNECTION_ID)
        .await
        .unwrap();
    assert_eq!(read(&sandbox).await, None);
    assert_eq!(read(&real).await.as_deref(), Some("production-secret"));

    // Reopening finds its own entry again (the store id is kept in the database).
    real.store().close().await;
    let real = Core::open_with_secrets(real_dir.path(), Secrets::with_service(&service))
        .await
        .unwrap();
    assert_eq!(read(&real).await.as_deref(), Some("production-secret"));
    real.secrets()
        .delete_owner(PSA_CONNECTION_ID)
        .await
        .unwrap();
}

/// A data directory from before entries were scoped adopts its own unscoped entries the first
/// time it is opened; a new empty data directory opened meanwhile adopts nothing.
#[tokio::test]
async fn a_data_directory_from_before_scoping_adopts_its_entries() {
    use mailroom_engine::psa_connection::PSA_CONNECTION_ID;
    use mailroom_secrets::SecretValue;

    let service = format!("mailroom-test-{}", uuid::Uuid::new_v4());
    let unscoped = Secrets::with_service(&service);
    let key = SecretKey::new(PSA_CONNECTION_ID, SecretKind::PsaClientSecret);

    // The old layout: a PSA connection row, its secret under the unscoped name.
    let old_dir = tempfile::tempdir().unwrap();
    let store = mailroom_engine::Store::open(old_dir.path().join("mailroom.db"))
        .await
        .unwrap();
    store
        .upsert_psa_connection(
            &mailroom_store::NewPsaConnection {
                scopes: "read:tickets",
                id: PSA_CONNECTION_ID,
                base_url: "https://contoso.halopsa.com",
                tenant: None,
                client_id: "real-client",
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    store.close().await;
    unscoped
        .set(&key, &SecretValue::new("production-secret"))
        .await
        .unwrap();

    // A fresh (sandbox) data directory must not take it.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = Core::open_with_secrets(fresh_dir.path(), Secrets::with_service(&service))
        .await
        .unwrap();
    assert_eq!(fresh.secrets().get(&key).await.unwrap(), None);
    assert!(unscoped.get(&key).await.unwrap().is_some());

    let old = Core::open_with_secrets(old_dir.path(), Secrets::with_service(&service))
        .await
        .unwrap();
    let adopted = old.secrets().get(&key).await.unwrap().expect("adopted");
    assert_eq!(adopted.expose(), "production-secret");
    assert_eq!(
        unscoped.get(&key).await.unwrap(),
        None,
        "the unscoped name is gone"
    );
    old.psa_client()
        .await
        .expect("the PSA client finds its secret");
    old.secrets().delete_owner(PSA_CONNECTION_ID).await.unwrap();
}
