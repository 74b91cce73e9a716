//! Secrets sealed in the database (issue 16): a server's secret store. What lands in the
//! database is ciphertext bound to its entry; the same key opens it after a restart, another
//! key is refused with what to do, and a rotation reseals everything under the new key.

use mailroom_engine::Core;
use mailroom_secrets::sealed::{SealingKey, SealingKeys};
use mailroom_secrets::{BackendKind, SecretKey, SecretKind, SecretValue, SecretsError};

fn keys(current: &SealingKey, previous: Option<&SealingKey>) -> SealingKeys {
    SealingKeys {
        current: current.clone(),
        previous: previous.cloned(),
    }
}

#[tokio::test]
async fn secrets_are_sealed_in_the_database_and_reopen_only_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let old = SealingKey::generate().unwrap();
    let new = SealingKey::generate().unwrap();
    let psa = SecretKey::new("default", SecretKind::PsaClientSecret);
    let token = SecretKey::new("mbx-1", SecretKind::RefreshToken);

    let core = Core::open_sealed(dir.path(), keys(&old, None))
        .await
        .unwrap();
    assert_eq!(
        core.secrets().backend(),
        BackendKind::Sealed {
            key_id: old.id().to_string()
        }
    );
    core.secrets().self_check().await.unwrap();
    core.secrets()
        .set(&psa, &SecretValue::new("psa-client-secret-value"))
        .await
        .unwrap();
    core.secrets()
        .set(&token, &SecretValue::new("1.AXkA-refresh"))
        .await
        .unwrap();
    // In the database: ciphertext under the scoped entry name, sealed with the old key.
    let name = core.secrets().entry_name(&psa);
    assert!(name.ends_with("/default/psa-client-secret"), "{name}");
    let row = core.store().sealed_secret(&name).await.unwrap().unwrap();
    assert_eq!(row.key_id, old.id());
    assert!(!String::from_utf8_lossy(&row.ciphertext).contains("psa-client-secret-value"));
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("psa-client-secret-value"),
            "{} holds a secret in clear",
            path.display()
        );
    }
    drop(core);

    // A restart with the same key reads it.
    let core = Core::open_sealed(dir.path(), keys(&old, None))
        .await
        .unwrap();
    assert_eq!(
        core.secrets().get(&psa).await.unwrap().unwrap().expose(),
        "psa-client-secret-value"
    );
    drop(core);

    // Another key is refused, naming the key it needs.
    let core = Core::open_sealed(dir.path(), keys(&new, None))
        .await
        .unwrap();
    let refused = core.secrets().get(&psa).await.unwrap_err();
    assert!(matches!(refused, SecretsError::Denied { .. }), "{refused}");
    assert!(
        refused.to_string().contains(old.id())
            && refused
                .to_string()
                .contains("MAILROOM_SECRETS_PREVIOUS_KEY"),
        "{refused}"
    );
    drop(core);

    // Rotation: the new key with the old as previous reads everything, reseals it, and the new
    // key alone then suffices.
    let core = Core::open_sealed(dir.path(), keys(&new, Some(&old)))
        .await
        .unwrap();
    assert_eq!(
        core.secrets().get(&token).await.unwrap().unwrap().expose(),
        "1.AXkA-refresh"
    );
    assert_eq!(core.secrets().rotate().await.unwrap(), 2);
    assert_eq!(
        core.secrets().rotate().await.unwrap(),
        0,
        "nothing left to reseal"
    );
    drop(core);
    let core = Core::open_sealed(dir.path(), keys(&new, None))
        .await
        .unwrap();
    assert_eq!(
        core.secrets().get(&psa).await.unwrap().unwrap().expose(),
        "psa-client-secret-value"
    );
    // Removing an owner's secrets removes its rows.
    core.secrets().delete_owner("mbx-1").await.unwrap();
    assert_eq!(core.secrets().get(&token).await.unwrap(), None);
    assert_eq!(core.store().sealed_secret_key_ids().await.unwrap().len(), 1);
}

/// A sealed value moved to another entry's row (someone with database access swapping a
/// mailbox's client secret for another's) does not open.
#[tokio::test]
async fn a_sealed_value_moved_to_another_entry_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let key = SealingKey::generate().unwrap();
    let core = Core::open_sealed(dir.path(), keys(&key, None))
        .await
        .unwrap();
    let a = SecretKey::new("mbx-a", SecretKind::ClientSecret);
    let b = SecretKey::new("mbx-b", SecretKind::ClientSecret);
    core.secrets()
        .set(&a, &SecretValue::new("secret-of-a"))
        .await
        .unwrap();
    let row = core
        .store()
        .sealed_secret(&core.secrets().entry_name(&a))
        .await
        .unwrap()
        .unwrap();
    core.store()
        .put_sealed_secret(&core.secrets().entry_name(&b), &row)
        .await
        .unwrap();
    let refused = core.secrets().get(&b).await.unwrap_err();
    assert!(matches!(refused, SecretsError::Denied { .. }), "{refused}");
}
